"""Server-sent events and the two ways an answer leaves, shared by chat and completions: whole
(respond_when_done) or streamed (stream_response). Both read a serving `Choices` stream (which
gathers each choice once) and tell the flywheel's log record how it ended. Errors found before
the first token are HTTP errors; errors after it become an SSE error event (the `openai` client
raises it as an APIError)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from typing import Callable

from fastapi.responses import Response, StreamingResponse
from starlette.requests import Request

from rixin.api.errors import error_body
from rixin.engines.base import Chunk, Collected, TokenLogprob
from rixin.errors import RixinError
from rixin.flywheel.hook import Record
from rixin.serving.choices import Choices

log = logging.getLogger("rixin.api")
Shape = Callable[[list[Collected]], dict]
"""The answer object (chat.completion, text_completion) of every choice's results."""


def sse(data: dict | str) -> bytes:
    payload = data if isinstance(data, str) else json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    return f"data: {payload}\n\n".encode()


async def collect(choices: Choices, request: Request | None = None) -> list[Collected]:
    """Every choice's whole answer. With `request`, a client that disconnects before the answer
    is ready stops the generation (its engine slot and queue place are freed) instead of leaving
    it to run for nobody: uvicorn does not cancel a non-streaming handler by itself."""
    async def drain() -> list[Collected]:
        async for _ in choices:
            pass
        return choices.results

    if request is None:
        try:
            return await drain()
        finally:
            await choices.aclose()
    work, gone = asyncio.ensure_future(drain()), asyncio.ensure_future(_disconnect(request))
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
        await choices.aclose()


def _outcome(e: BaseException) -> str:
    """How a request that did not complete ended, as its log row says."""
    return "cancelled" if isinstance(e, ClientDisconnected | asyncio.CancelledError | GeneratorExit) else "failed"


def _ended(record: Record | None, e: BaseException, choices: Choices, shape: Shape) -> None:
    if record is not None:
        record.ended(_outcome(e), shape(choices.results), choices.results)  # partial answer


async def respond_when_done(choices: Choices, request: Request | None, shape: Shape,
                            record: Record | None) -> dict | Response:
    """The non-streaming answer (logged before it is returned); 499 (nginx's "client closed
    request", which nobody reads) when the client left before it was ready."""
    try:
        results = await collect(choices, request)
    except BaseException as e:
        _ended(record, e, choices, shape)
        if isinstance(e, ClientDisconnected):
            return Response(status_code=499)
        raise
    answer = shape(results)
    if record is not None:
        await record.completed(answer, results)
    return answer


async def _disconnect(request: Request) -> None:
    """Returns once the client closed the connection (the body was read already)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


class ClientDisconnected(Exception):
    """Nobody is waiting for this answer any more."""


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


async def stream_response(choices: Choices, render: Callable[[int, Chunk], list[dict]],
                          final: Callable[[int, int], dict | None], shape: Shape,
                          record: Record | None) -> StreamingResponse:
    """SSE response. `render` turns a chunk into event objects; `final(prompt, completion)`
    gives the closing usage event or None. The first chunk is awaited here, so an error
    before any token (context length, bad schema, full queue) is still a plain HTTP error."""
    try:
        first = await anext(choices)
    except BaseException as e:
        _ended(record, e, choices, shape)
        await choices.aclose()
        raise
    return StreamingResponse(_events(choices, first, render, final, shape, record),
                             media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})


async def _events(choices: Choices, first: tuple[int, Chunk], render, final, shape: Shape,
                  record: Record | None):
    prompt_tokens = completion_tokens = 0
    ended: BaseException | None = GeneratorExit()  # until it completes: the client went away
    try:
        pending = first
        while pending is not None:
            index, chunk = pending
            for event in render(index, chunk):
                yield sse(event)
            if chunk.finish_reason is not None:
                prompt_tokens += chunk.prompt_tokens
                completion_tokens += chunk.completion_tokens
            pending = await anext(choices, None)
        ended = None
        if record is not None:  # stored before the client reads [DONE]
            await record.completed(shape(choices.results), choices.results)
        closing = final(prompt_tokens, completion_tokens)
        if closing is not None:
            yield sse(closing)
        yield sse("[DONE]")
    except RixinError as e:
        ended = e if ended is not None else None
        yield sse(error_body(e.message, e.type, e.param, e.code))
    except Exception as e:  # noqa: BLE001 - the stream is open: report, don't crash the server
        ended = e if ended is not None else None
        log.exception("stream failed", exc_info=e)
        yield sse(error_body("The server had an error while streaming; retry the request.", "server_error"))
    finally:
        if ended is not None:
            _ended(record, ended, choices, shape)
        await choices.aclose()


def logprob_object(lp: TokenLogprob) -> dict:
    return {"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes,
            "top_logprobs": [{"token": t.token, "logprob": t.logprob, "bytes": t.bytes}
                             for t in lp.top_logprobs]}
