"""POST /v1/chat/completions: the request in the OpenAI spec's field order, and the
response objects (chat.completion, chat.completion.chunk)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictBool, StrictStr

from rixin.api.params import Integer
from rixin.api.sampling import (Lenient, Penalty, PositiveInt, ResponseFormat, Seed, Stop, StreamOptions,
                                Temperature, TopP)
from rixin.api.streaming import logprob_object
from rixin.engines.base import TokenLogprob


class ContentPart(Lenient):
    type: Literal["text", "image_url", "input_audio", "file", "refusal"]
    text: StrictStr | None = None
    refusal: StrictStr | None = None


class Message(Lenient):
    role: Literal["system", "developer", "user", "assistant", "tool", "function"]
    content: StrictStr | list[ContentPart] | None = None
    name: StrictStr | None = None
    tool_call_id: StrictStr | None = None
    tool_calls: list[dict] | None = None


class ChatCompletionRequest(Lenient):
    messages: Annotated[list[Message], Field(min_length=1)]
    model: StrictStr
    frequency_penalty: Penalty | None = None
    function_call: StrictStr | dict | None = None
    functions: list[dict] | None = None
    logit_bias: dict[str, Integer] | None = None
    logprobs: StrictBool | None = None
    max_completion_tokens: PositiveInt | None = None
    max_tokens: PositiveInt | None = None
    metadata: dict[str, StrictStr] | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    n: PositiveInt | None = None
    parallel_tool_calls: StrictBool | None = None
    presence_penalty: Penalty | None = None
    response_format: ResponseFormat | None = None
    seed: Seed | None = None
    service_tier: StrictStr | None = None
    stop: Stop = None
    store: StrictBool | None = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    temperature: Temperature | None = None
    tool_choice: StrictStr | dict | None = None
    tools: list[dict] | None = None
    top_logprobs: Annotated[Integer, Field(ge=0, le=20)] | None = None
    top_p: TopP | None = None
    user: StrictStr | None = None


def choice_logprobs(logprobs: list[TokenLogprob], wanted: bool) -> dict | None:
    return {"content": [logprob_object(lp) for lp in logprobs], "refusal": None} if wanted else None


def completion_object(cid: str, created: int, model: str, choices: list[dict], usage: dict) -> dict:
    return {"id": cid, "object": "chat.completion", "created": created, "model": model,
            "choices": choices, "usage": usage, "system_fingerprint": None}


def chunk_object(cid: str, created: int, model: str, choices: list[dict], usage=False) -> dict:
    out = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
           "system_fingerprint": None, "choices": choices}
    if usage is not False:
        out["usage"] = usage
    return out
