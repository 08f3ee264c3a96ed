"""The one background polling loop: the job runner and the flywheel driver each run a step
every few seconds for the life of the server."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("rixin.jobs")


async def every(interval_s: float, step: Callable[[], Awaitable[None]], *, name: str,
                logger: logging.Logger = log) -> None:
    """Await `step` now and then `interval_s` seconds after each run, until cancelled. A step
    that fails is logged and the loop goes on: a database hiccup must not stop the server's
    background work for good. The failure is logged on `logger` (the caller's room)."""
    while True:
        try:
            await step()
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 - the loop must outlive a bad step
            logger.exception("%s tick failed", name)
        await asyncio.sleep(interval_s)
