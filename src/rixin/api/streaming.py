"""Server-sent events and the running of n choices through an engine, shared by chat and
completions. Errors found before the first token are HTTP errors; errors after it become
an SSE error event (the `openai` client raises it as an APIError)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field, replace
from typing import AsyncIterator, Callable

from fastapi.responses import Response, StreamingResponse
from starlette.requests import Request

from rixin import metrics
from rixin.api.errors import error_body
from rixin.engines.base import Chunk, GenerateRequest, TokenLogprob
from rixin.errors import RixinError
from rixin.models.registry import ModelSpec

log = logging.getLogger("rixin.api")


def sse(data: dict | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


async def choice_events(pool, spec: ModelSpec, requests: list[GenerateRequest]) -> AsyncIterator[tuple[int, Chunk]]:
    """(choice index, chunk) for every choice, one after the other, with token metrics.

    Choices that repeat the previous choice's prompt report 0 prompt tokens, so that summing
    prompt_tokens over all final chunks counts each prompt once, as OpenAI's usage does."""
    start = time.perf_counter()
    first = True
    for index, request in enumerate(requests):
        previous = requests[index - 1] if index else None
        repeats = previous is not None and (previous.prompt, previous.messages) == (request.prompt, request.messages)
        async for chunk in pool.generate(spec, request):
            if first and chunk.text:
                metrics.TTFT.labels(spec.id).observe(time.perf_counter() - start)
                first = False
            if chunk.finish_reason is not None:
                if repeats:
                    chunk = replace(chunk, prompt_tokens=0)
                metrics.TOKENS_IN.labels(spec.id).inc(chunk.prompt_tokens)
                metrics.TOKENS_OUT.labels(spec.id).inc(chunk.completion_tokens)
                metrics.count_request_tokens(chunk.prompt_tokens, chunk.completion_tokens)
            yield index, chunk


@dataclass
class Collected:
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    prompt_tokens: int = 0
    completion_tokens: int = 0

    def add(self, chunk: Chunk) -> None:
        self.text += chunk.text
        self.logprobs.extend(chunk.logprobs)
        if chunk.finish_reason is not None:
            self.finish_reason = chunk.finish_reason
            self.prompt_tokens, self.completion_tokens = chunk.prompt_tokens, chunk.completion_tokens


async def collect(events: AsyncIterator[tuple[int, Chunk]], n: int,
                  request: Request | None = None) -> list[Collected]:
    """Every choice's text. With `request`, a client that disconnects before the answer is
    ready stops the generation (its engine slot and queue place are freed) instead of leaving
    it to run for nobody: uvicorn does not cancel a non-streaming handler by itself."""
    out = [Collected() for _ in range(n)]

    async def gather() -> list[Collected]:
        async for index, chunk in events:
            out[index].add(chunk)
        return out

    if request is None:
        return await gather()
    work, gone = asyncio.ensure_future(gather()), asyncio.ensure_future(_disconnect(request))
    try:
        await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
        if work.done():
            return work.result()
        work.cancel()  # the engine call is closed on the way out: the actor cancels it
        with contextlib.suppress(asyncio.CancelledError):
            await work
        raise ClientDisconnected()
    finally:
        gone.cancel()
        await events.aclose()


async def respond_when_done(events: AsyncIterator[tuple[int, Chunk]], n: int, request: Request | None,
                            respond: Callable[[list[Collected]], dict]) -> dict | Response:
    """The non-streaming answer; 499 (nginx's "client closed request", which nobody reads)
    when the client left before it was ready."""
    try:
        return respond(await collect(events, n, request))
    except ClientDisconnected:
        return Response(status_code=499)


async def _disconnect(request: Request) -> None:
    """Returns once the client closed the connection (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class ClientDisconnected(Exception):
    """Nobody is waiting for this answer any more."""


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def stream_response(events: AsyncIterator[tuple[int, Chunk]],
                          render: Callable[[int, Chunk], list[dict]],
                          final: Callable[[int, int], dict | None]) -> StreamingResponse:
    """SSE response. `render` turns a chunk into event objects; `final(prompt, completion)`
    gives the closing usage event or None. The first chunk is awaited here, so an error
    before any token (context length, bad schema, full queue) is still a plain HTTP error."""
    first = await anext(events)

    async def body():
        prompt_tokens = completion_tokens = 0
        try:
            pending = first
            while pending is not None:
                index, chunk = pending
                for event in render(index, chunk):
                    yield sse(event)
                if chunk.finish_reason is not None:
                    prompt_tokens += chunk.prompt_tokens
                    completion_tokens += chunk.completion_tokens
                pending = await anext(events, None)
            closing = final(prompt_tokens, completion_tokens)
            if closing is not None:
                yield sse(closing)
            yield sse("[DONE]")
        except RixinError as e:
            yield sse(error_body(e.message, e.type, e.param, e.code))
        except Exception as e:  # noqa: BLE001 - the stream is open: report, don't crash the server
            log.exception("stream failed", exc_info=e)
            yield sse(error_body("The server had an error while streaming; retry the request.",
                                 "server_error"))
        finally:
            await events.aclose()

    return StreamingResponse(body(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


def logprob_object(lp: TokenLogprob) -> dict:
    return {"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes,
            "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes}
                             for t in lp.top_logprobs]}
