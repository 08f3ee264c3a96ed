"""The shape every inference engine shares.

Engines know nothing of HTTP or the OpenAI wire format: they take a `GenerateRequest`
and yield `Chunk`s of text; api/ turns those into chat.completion(.chunk) objects.
An engine instance is used from one thread at a time (the actor serialises calls).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator, Protocol, runtime_checkable

import numpy as np


@dataclass
class SamplingParams:
    max_tokens: int | None = None
    """Most tokens to generate; None: until end of sequence or the context is full."""
    temperature: float = 1.0
    """0 means greedy decoding."""
    top_p: float = 1.0
    stop: list[str] = field(default_factory=list)
    """Generation ends before the first occurrence of any of these; they are not returned."""
    seed: int | None = None
    """Same seed, same request, same engine ⇒ same text, even with temperature > 0."""
    logprobs: bool = False
    top_logprobs: int = 0
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    json_schema: dict | None = None
    """Constrain the output to JSON valid against this schema."""
    json_object: bool = False
    """Constrain the output to some JSON object."""
    grammar: str | None = None
    """Constrain the output to this GBNF grammar (tool calls: rixin/toolcalls.py builds it)."""


@dataclass
class GenerateRequest:
    params: SamplingParams
    prompt: str | None = None
    """Raw text to continue (completions); exactly one of prompt and messages is set."""
    messages: list[dict] | None = None
    """Chat messages: dicts with 'role' and 'content' (a string), rendered by the model's template."""
    adapter: str | None = None
    """Path of a LoRA adapter directory to apply for this request (engines that support it)."""
    project: str | None = None
    """The project asking: engines admit waiting requests round-robin across projects."""
    request_id: str | None = None
    """Set by the actor: `cancel(request_id)` stops this generation, queued or running."""


class Cancelled(Exception):
    """The caller went away: a generation stops without a result (nobody reads it)."""


@dataclass
class TopLogprob:
    token: str
    logprob: float
    bytes: list[int]


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top_logprobs: list[TopLogprob] = field(default_factory=list)


@dataclass
class Chunk:
    text: str = ""
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    """Set on the last chunk only: 'stop' (end of sequence or a stop string) or 'length'."""
    prompt_tokens: int = 0
    completion_tokens: int = 0
    """Both counts are set on the last chunk."""


@dataclass
class Collected:
    """One choice's whole answer, gathered from its chunks as they pass."""

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


@dataclass(frozen=True)
class EngineInfo:
    model_id: str
    engine: str
    context_length: int
    pid: int


@runtime_checkable
class Engine(Protocol):
    """A text generator (llama.cpp, transformers+peft, ...)."""

    def info(self) -> EngineInfo: ...

    def count_prompt_tokens(self, request: GenerateRequest) -> int:
        """Tokens the rendered prompt takes."""
        ...

    def generate(self, request: GenerateRequest) -> Iterator[Chunk]:
        """Yield text as it is produced; the last chunk has finish_reason and token counts.

        Raises rixin.errors.ContextLengthExceeded before yielding anything when the prompt
        plus max_tokens does not fit the context, and InvalidRequest for a bad parameter
        (e.g. a schema the engine cannot constrain to).
        """
        ...


@dataclass
class Embeddings:
    vectors: np.ndarray
    """(n_inputs, dim) float32, L2-normalised."""
    prompt_tokens: int


@runtime_checkable
class Embedder(Protocol):
    def info(self) -> EngineInfo: ...

    def embed(self, texts: list[str]) -> Embeddings:
        """Raises ContextLengthExceeded when an input exceeds the model's maximum length."""
        ...


def check_context(prompt_tokens: int, max_tokens: int | None, context_length: int) -> int:
    """The number of tokens to generate, or ContextLengthExceeded as OpenAI words it."""
    from rixin.errors import ContextLengthExceeded

    if max_tokens is None:
        if prompt_tokens >= context_length:
            raise ContextLengthExceeded(
                f"This model's maximum context length is {context_length} tokens. However, your "
                f"messages resulted in {prompt_tokens} tokens. Please reduce the length of the messages.",
                param="messages",
            )
        return context_length - prompt_tokens
    if prompt_tokens + max_tokens > context_length:
        raise ContextLengthExceeded(
            f"This model's maximum context length is {context_length} tokens. However, you "
            f"requested {prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, "
            f"{max_tokens} in the completion). Please reduce the length of the messages or completion.",
            param="messages",
        )
    return max_tokens
