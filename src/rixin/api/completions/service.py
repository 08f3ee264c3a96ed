"""Completions for raw prompts (no chat template): the same straight path as chat (api/chat/service.py)."""

from __future__ import annotations

import time
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from rixin.api.completions.protocol import CompletionRequest, completion_object, legacy_logprobs
from rixin.api.sampling import check_n, reject_unsupported, sampling_params
from rixin.api.streaming import respond_when_done, stream_response, usage
from rixin.engines.base import Chunk, Collected, GenerateRequest
from rixin.errors import InvalidRequest
from rixin.flywheel.hook import track
from rixin.models.registry import spec_of
from rixin.platform import Platform
from rixin.serving.choices import Choices
from rixin.store.tenancy import Caller


def prompts_of(prompt) -> list[str]:
    if isinstance(prompt, str):
        return [prompt]
    if prompt and all(isinstance(p, str) for p in prompt):
        return list(prompt)
    raise InvalidRequest("Token-id prompts are not supported (token ids differ between models); "
                         "send the prompt as a string or a list of strings.", param="prompt",
                         code="invalid_type")


def build_requests(body: CompletionRequest, max_n: int,
                   project: str | None = None) -> list[GenerateRequest]:
    reject_unsupported(suffix=body.suffix, logit_bias=body.logit_bias)
    if body.best_of is not None and body.best_of != (body.n or 1):
        raise InvalidRequest("'best_of' other than n is not supported; remove it.", param="best_of",
                             code="unsupported_parameter")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true.",
                             param="stream_options", code="invalid_value")
    n = check_n(body.n, max_n)
    prompts = prompts_of(body.prompt)
    if len(prompts) * n > max_n * 8:
        raise InvalidRequest(f"Too many choices: {len(prompts)} prompts x n={n}; at most {max_n * 8}.",
                             param="prompt", code="array_above_max_length")
    requests = []
    for prompt in prompts:
        for i in range(n):
            params = sampling_params(
                max_tokens=body.max_tokens, temperature=body.temperature, top_p=body.top_p,
                stop=body.stop, seed=None if body.seed is None else body.seed + i,
                logprobs=body.logprobs is not None, top_logprobs=body.logprobs,
                presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty)
            requests.append(GenerateRequest(params, prompt=prompt, project=project))
    return requests


async def create(platform: Platform, caller: Caller, body: CompletionRequest,
                 request: Request | None = None):
    resolved = await run_in_threadpool(platform.deployments.resolve, caller, body.model)
    row, shown = resolved.model, body.model  # clients get back the name they sent
    requests = build_requests(body, platform.settings.max_n, caller.project_id)
    cid, created = f"cmpl-{uuid.uuid4().hex}", int(time.time())
    echo = [r.prompt if body.echo else "" for r in requests]
    wants_logprobs = body.logprobs is not None

    def answer(results: list[Collected]) -> dict:
        choices = [{"text": echo[i] + r.text, "index": i,
                    "logprobs": legacy_logprobs(r.logprobs, len(echo[i])) if wants_logprobs else None,
                    "finish_reason": r.finish_reason} for i, r in enumerate(results)]
        return completion_object(cid, created, shown, choices,
                                 usage(sum(r.prompt_tokens for r in results),
                                       sum(r.completion_tokens for r in results)))

    choices = Choices(platform.pool, spec_of(row), requests, about="prompt")
    record = track(platform.log_writer, caller, resolved, body, cid=cid, endpoint="completions",
                   prompt_text="\n".join(r.prompt for r in requests))
    if not body.stream:
        return await respond_when_done(choices, request, answer, record)

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    usage_field = None if include_usage else False
    echoed: set[int] = set()

    def render(index: int, chunk: Chunk) -> list[dict]:
        text = chunk.text
        if index not in echoed:
            echoed.add(index)
            text = echo[index] + text
        if not (text or chunk.logprobs or chunk.finish_reason):
            return []
        return [completion_object(cid, created, shown, [{
            "text": text, "index": index,
            "logprobs": legacy_logprobs(chunk.logprobs, 0) if wants_logprobs else None,
            "finish_reason": chunk.finish_reason}], usage_field)]

    def final(prompt_tokens: int, completion_tokens: int) -> dict | None:
        if not include_usage:
            return None
        return completion_object(cid, created, shown, [], usage(prompt_tokens, completion_tokens))

    return await stream_response(choices, render, final, answer, record)
