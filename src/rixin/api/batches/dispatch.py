"""How a batch's request is answered: the path of an online request without the HTTP around
it — the same request models (400 for a bad body), the same services and serving pool, the
same budget, rate limits and usage rows (compute/controls). A rate limit or a full engine
queue makes a batch wait its turn, where an online client would get 429: batches yield."""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import Future

from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from rixin.api.chat import service as chat
from rixin.api.chat.protocol import ChatCompletionRequest
from rixin.api.completions import service as completions
from rixin.api.completions.protocol import CompletionRequest
from rixin.api.embeddings import service as embeddings
from rixin.api.embeddings.protocol import EmbeddingRequest
from rixin.api.errors import error_body
from rixin.compute.controls import METERED
from rixin.errors import InvalidRequest, QueueFull, RateLimitExceeded, RixinError, invalid_from
from rixin.platform import Platform
from rixin.store.tenancy import Caller

log = logging.getLogger("rixin.batches")
ROUTES = {"/v1/chat/completions": (ChatCompletionRequest, chat.create),
          "/v1/completions": (CompletionRequest, completions.create),
          "/v1/embeddings": (EmbeddingRequest, embeddings.create)}
MAX_WAITS = 600  # turns a request waits for room (≈ seconds) before it is answered 429


class Dispatcher:
    """Bound to the gateway's event loop (where the pool lives); called from job threads."""

    def __init__(self, platform: Platform, loop: asyncio.AbstractEventLoop):
        self.platform, self.loop = platform, loop

    def __call__(self, caller: Caller, url: str, body: dict) -> Future:
        return asyncio.run_coroutine_threadsafe(answer(self.platform, caller, url, body), self.loop)


async def answer(platform: Platform, caller: Caller, url: str, body: dict) -> tuple[int, dict]:
    """(status, body) as the online route would answer, a 200's usage metered."""
    try:
        return 200, await _answer(platform, caller, url, body)
    except RixinError as e:
        return e.status, error_body(e.message, e.type, e.param, e.code)
    except Exception:  # noqa: BLE001 - one line's crash is that line's error, not the batch's
        log.exception("a batch request failed")
        return 500, error_body("The server had an error while processing this request.", "server_error")


async def _answer(platform: Platform, caller: Caller, url: str, body: dict) -> dict:
    model_type, create = ROUTES[url]
    try:
        request = model_type.model_validate(body)
    except ValidationError as e:
        raise invalid_from(e) from e
    if getattr(request, "stream", False):
        raise InvalidRequest("Batch requests are answered whole; remove 'stream'.", param="stream",
                             code="invalid_value")
    controls = platform.controls
    waits = 0
    while True:
        try:
            if controls.needs_load(caller.project_id):
                await run_in_threadpool(controls.load, caller.project_id)
            ticket, _ = controls.admit(caller, request.model, METERED[url])
            result = await create(platform, caller, request)
        except (RateLimitExceeded, QueueFull) as e:
            waits += 1
            if waits >= MAX_WAITS:
                raise
            await asyncio.sleep(max(1, e.retry_after))
            continue
        ticket.take_usage(result["usage"])
        await asyncio.wrap_future(controls.meter.record(ticket))
        return result
