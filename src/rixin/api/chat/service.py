"""Chat completions, one straight path: resolve the model (serving), validate and render the
messages, run n choices through the pool (serving.Choices), shape the answer whole or as a
stream (api/streaming); the flywheel's record, if the request is logged, is told how it ended."""

from __future__ import annotations

import time
import uuid

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from rixin.api.chat.protocol import ChatCompletionRequest, choice_logprobs, chunk_object, completion_object
from rixin.api.chat.tools import Deltas, ToolPlan, message, plan
from rixin.api.sampling import check_n, reject_unsupported, sampling_params
from rixin.api.streaming import respond_when_done, stream_response, usage
from rixin.engines.base import Chunk, Collected, GenerateRequest
from rixin.errors import InvalidRequest
from rixin.flywheel.hook import track
from rixin.models.engines import LLAMA_CPP
from rixin.models.registry import spec_of
from rixin.platform import Platform
from rixin.serving.choices import Choices
from rixin.store.tenancy import Caller
from rixin.toolcalls import render


def _check_calls(calls: list[dict], param: str) -> list[dict]:
    """An assistant message's tool_calls, each {id, type: function, function: {name, arguments}}."""
    for k, call in enumerate(calls):
        fn = call.get("function") if isinstance(call, dict) else None
        if (not isinstance(fn, dict) or not isinstance(fn.get("name"), str)
                or not isinstance(fn.get("arguments", ""), str)):
            raise InvalidRequest(f"Invalid '{param}[{k}]': a tool call is {{\"id\": ..., \"type\": \"function\", "
                                 "\"function\": {\"name\": ..., \"arguments\": \"<JSON text>\"}}.",
                                 param=f"{param}[{k}]", code="invalid_value")
    return calls


def engine_messages(body: ChatCompletionRequest) -> list[dict]:
    """Messages as {role, content: str | None} (with an assistant's `tool_calls` and a tool
    message's `tool_call_id`), for toolcalls.render to turn into what chat templates expect."""
    out = []
    for i, m in enumerate(body.messages):
        role = "system" if m.role == "developer" else m.role
        if m.role == "function":
            raise InvalidRequest("Role 'function' is deprecated and not supported; use 'tool'.",
                                 param=f"messages[{i}].role", code="invalid_value")
        if m.role == "tool" and not m.tool_call_id:
            raise InvalidRequest("Missing required parameter: 'tool_call_id' for a tool message.",
                                 param=f"messages[{i}].tool_call_id", code="missing_required_parameter")
        calls = None
        if m.role == "assistant" and m.tool_calls:
            calls = _check_calls(m.tool_calls, f"messages[{i}].tool_calls")
        if m.content is None:
            if calls:
                out.append({"role": role, "content": None, "tool_calls": calls})
                continue
            raise InvalidRequest(f"Missing required parameter: 'content' of a {m.role} message.",
                                 param=f"messages[{i}].content", code="missing_required_parameter")
        if isinstance(m.content, str):
            text = m.content
        else:
            parts = []
            for j, part in enumerate(m.content):
                if part.type not in ("text", "refusal"):
                    raise InvalidRequest(f"This model accepts only text; content part of type "
                                         f"'{part.type}' is not supported.",
                                         param=f"messages[{i}].content[{j}].type", code="invalid_value")
                value = part.text if part.type == "text" else part.refusal
                if value is None:
                    raise InvalidRequest(f"Missing required parameter: '{part.type}' in content part.",
                                         param=f"messages[{i}].content[{j}].{part.type}",
                                         code="missing_required_parameter")
                parts.append(value)
            text = "".join(parts)
        out.append({"role": role, "content": text, **({"tool_calls": calls} if calls else {})})
    return out


def build_requests(body: ChatCompletionRequest, max_n: int, project: str | None = None,
                   tools: ToolPlan | None = None) -> list[GenerateRequest]:
    reject_unsupported(functions=body.functions, logit_bias=body.logit_bias)
    if body.modalities and "audio" in body.modalities:
        raise InvalidRequest("Audio output is not supported; use modalities ['text'].",
                             param="modalities", code="invalid_value")
    if body.top_logprobs and not body.logprobs:
        raise InvalidRequest("'top_logprobs' requires 'logprobs' to be true.", param="top_logprobs",
                             code="invalid_value")
    if body.stream_options is not None and not body.stream:
        raise InvalidRequest("'stream_options' is only allowed when 'stream' is true.",
                             param="stream_options", code="invalid_value")
    n = check_n(body.n, max_n)
    tools = tools or plan(body, constrains=False)
    messages = render(engine_messages(body), tools.functions)
    requests = []
    for i in range(n):
        params = sampling_params(
            max_tokens=body.max_completion_tokens or body.max_tokens, temperature=body.temperature,
            top_p=body.top_p, stop=body.stop, seed=None if body.seed is None else body.seed + i,
            logprobs=bool(body.logprobs), top_logprobs=body.top_logprobs,
            presence_penalty=body.presence_penalty, frequency_penalty=body.frequency_penalty,
            response_format=body.response_format)
        params.grammar = tools.grammar
        requests.append(GenerateRequest(params, messages=messages, project=project))
    return requests


def _answer(cid: str, created: int, model: str, results: list[Collected], wants_logprobs: bool,
            tools: ToolPlan) -> dict:
    choices = []
    for i, r in enumerate(results):
        msg, finish_reason = message(r.text, r.finish_reason, tools, cid, i)
        choices.append({"index": i, "message": msg, "logprobs": choice_logprobs(r.logprobs, wants_logprobs),
                        "finish_reason": finish_reason})
    return completion_object(cid, created, model, choices,
                             usage(sum(r.prompt_tokens for r in results), sum(r.completion_tokens for r in results)))


async def create(platform: Platform, caller: Caller, body: ChatCompletionRequest,
                 request: Request | None = None):
    # A deployment name resolves once per request: a concurrent switch never mixes targets.
    resolved = await run_in_threadpool(platform.deployments.resolve, caller, body.model)
    row, shown = resolved.model, body.model  # clients get back the name they sent
    spec = spec_of(row)
    tools = plan(body, constrains=spec.engine == LLAMA_CPP.name)
    requests = build_requests(body, platform.settings.max_n, caller.project_id, tools)
    cid, created = f"chatcmpl-{uuid.uuid4().hex}", int(time.time())
    wants_logprobs = bool(body.logprobs)
    choices = Choices(platform.pool, spec, requests)
    record = track(platform.log_writer, caller, resolved, body, cid=cid, endpoint="chat.completions",
                   prompt_text="\n".join(m["content"] for m in requests[0].messages))

    def shape(results: list[Collected]) -> dict:
        return _answer(cid, created, shown, results, wants_logprobs, tools)

    if not body.stream:
        return await respond_when_done(choices, request, shape, record)

    include_usage = bool(body.stream_options and body.stream_options.include_usage)
    usage_field = None if include_usage else False
    streams: dict[int, Deltas] = {}

    def event(index: int, delta: dict, logprobs=None, finish_reason: str | None = None) -> dict:
        return chunk_object(cid, created, shown, [{"index": index, "delta": delta, "logprobs": logprobs,
                                                   "finish_reason": finish_reason}], usage_field)

    def render_chunk(index: int, chunk: Chunk) -> list[dict]:
        events_out = []
        if index not in streams:
            streams[index] = Deltas(tools, cid, index)
            # With tools the reply may turn out to be calls: content starts as null, as OpenAI's does.
            content = None if tools.choice.calls else ""
            events_out.append(event(index, {"role": "assistant", "content": content, "refusal": None}))
        deltas, finish_reason = streams[index].add(chunk.text, chunk.finish_reason)
        logprobs = choice_logprobs(chunk.logprobs, wants_logprobs) if chunk.logprobs else None
        if logprobs is not None and not deltas:
            deltas = [{}]
        for k, delta in enumerate(deltas):
            last = k == len(deltas) - 1
            events_out.append(event(index, delta, logprobs if k == 0 else None, finish_reason if last else None))
        if chunk.finish_reason and not deltas:
            events_out.append(event(index, {}, None, finish_reason))
        return events_out

    def final(prompt_tokens: int, completion_tokens: int) -> dict | None:
        if not include_usage:
            return None
        return chunk_object(cid, created, shown, [], usage(prompt_tokens, completion_tokens))

    return await stream_response(choices, render_chunk, final, shape, record)
