"""POST /v1/completions (legacy raw-prompt completions), in the OpenAI spec's field order."""

from __future__ import annotations

from typing import Annotated, Union

from pydantic import Field, StrictBool, StrictInt, StrictStr

from rixin.api.params import Integer
from rixin.api.sampling import Lenient, Penalty, PositiveInt, Seed, Stop, StreamOptions, Temperature, TopP
from rixin.engines.base import TokenLogprob

Prompt = Union[StrictStr, Annotated[list[StrictStr], Field(min_length=1)],
               Annotated[list[StrictInt], Field(min_length=1)], Annotated[list[list[StrictInt]], Field(min_length=1)]]


class CompletionRequest(Lenient):
    model: StrictStr
    prompt: Prompt
    best_of: PositiveInt | None = None
    echo: StrictBool | None = None
    frequency_penalty: Penalty | None = None
    logit_bias: dict[str, Integer] | None = None
    logprobs: Annotated[Integer, Field(ge=0, le=5)] | None = None
    max_tokens: Annotated[Integer, Field(ge=1)] | None = 16
    n: PositiveInt | None = None
    presence_penalty: Penalty | None = None
    seed: Seed | None = None
    stop: Stop = None
    stream: StrictBool | None = None
    stream_options: StreamOptions | None = None
    suffix: StrictStr | None = None
    temperature: Temperature | None = None
    top_p: TopP | None = None
    user: StrictStr | None = None
    # rixin extensions (as in chat completions): log this request, tagged with metadata
    metadata: dict[str, StrictStr] | None = None
    store: StrictBool | None = None


def legacy_logprobs(logprobs: list[TokenLogprob], offset: int) -> dict:
    """The completions API's column-wise logprobs: tokens, token_logprobs, top_logprobs, text_offset."""
    tokens, values, tops, offsets = [], [], [], []
    for lp in logprobs:
        tokens.append(lp.token)
        values.append(lp.logprob)
        tops.append({t.token: t.logprob for t in lp.top_logprobs})
        offsets.append(offset)
        offset += len(lp.token)
    return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops, "text_offset": offsets}


def completion_object(cid: str, created: int, model: str, choices: list[dict], usage=False) -> dict:
    out = {"id": cid, "object": "text_completion", "created": created, "model": model,
           "choices": choices, "system_fingerprint": None}
    if usage is not False:
        out["usage"] = usage
    return out
