"""The n choices of one request run through the engine pool: one chunk stream, gathered once.

`Choices` yields (choice index, chunk) for every choice, one after the other, records token
metrics, and keeps each choice's whole answer in `results` as the chunks pass: the API shapes
its answer from them and the flywheel logs them, without gathering the stream again.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace
from typing import AsyncIterator

from rixin import metrics
from rixin.engines.base import Chunk, Collected, GenerateRequest
from rixin.errors import ContextLengthExceeded
from rixin.models.registry import ModelSpec


class Choices:
    """An async iterator of (index, chunk); `results[i]` is choice i so far (partial if the
    stream failed or was closed early). `about`: what the request calls its input ("messages"
    for chat, "prompt" for completions), named in a context-length error."""

    def __init__(self, pool, spec: ModelSpec, requests: list[GenerateRequest], about: str = "messages"):
        self.results = [Collected() for _ in requests]
        self._events = self._run(pool, spec, requests, about)

    def __aiter__(self) -> "Choices":
        return self

    async def __anext__(self) -> tuple[int, Chunk]:
        index, chunk = await anext(self._events)
        self.results[index].add(chunk)
        return index, chunk

    async def aclose(self) -> None:
        await self._events.aclose()

    @staticmethod
    async def _run(pool, spec: ModelSpec, requests: list[GenerateRequest],
                   about: str) -> AsyncIterator[tuple[int, Chunk]]:
        """Choices that repeat the previous choice's prompt report 0 prompt tokens, so that summing
        prompt_tokens over all final chunks counts each prompt once, as OpenAI's usage does."""
        start = time.perf_counter()
        first = True
        try:
            for index, request in enumerate(requests):
                previous = requests[index - 1] if index else None
                repeats = previous is not None and (previous.prompt, previous.messages) == (request.prompt,
                                                                                            request.messages)
                async with contextlib.aclosing(pool.generate(spec, request)) as chunks:
                    async for chunk in chunks:
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
        except ContextLengthExceeded as e:
            if about == "messages":  # the engines word a context overflow for chat messages
                raise
            raise ContextLengthExceeded(e.message.replace("messages", about), param=about) from e
