"""Readiness: the gateway is ready once the bundled chat model has answered for real."""

from __future__ import annotations

import asyncio
import logging

from starlette.concurrency import run_in_threadpool

from rixin.engines.base import GenerateRequest, SamplingParams
from rixin.models.registry import CHAT_MODEL, EMBEDDING_MODEL, spec_of
from rixin.platform import Platform

log = logging.getLogger("rixin")


async def warm_up(platform: Platform) -> None:
    """Load the bundled engines and generate one token; retried until it works."""
    while not platform.ready:
        try:
            chat = spec_of(await run_in_threadpool(platform.registry.get, CHAT_MODEL))
            request = GenerateRequest(SamplingParams(max_tokens=1, temperature=0),
                                      messages=[{"role": "user", "content": "Hi"}])
            async for _chunk in platform.pool.generate(chat, request):
                pass
            embedding = spec_of(await run_in_threadpool(platform.registry.get, EMBEDDING_MODEL))
            await platform.pool.embed(embedding, ["ready"])
            platform.ready, platform.ready_error = True, None
            log.info("engines ready")
        except asyncio.CancelledError:
            raise
        except Exception as e:  # noqa: BLE001 - reported by /health and retried
            platform.ready_error = f"{type(e).__name__}: {e}"
            log.warning("warm-up failed, retrying: %s", platform.ready_error)
            await asyncio.sleep(2)
