"""A catalogue of bad requests against a live `rixin up`: each gets the status OpenAI uses and
an OpenAI error object {"error": {"message", "type", "param", "code"}} that names the
offending parameter and says what is wrong; 4xx answers carry `x-should-retry: false`.

Rows that pass validation would reach the engine, so every row asks for at most 2 tokens."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import httpx
import pytest

from conftest import CHAT, EMBED

HELLO = [{"role": "user", "content": "Say hello."}]
DROP = object()  # a field value meaning "leave this field out"
LONG_PROMPT = " ".join(["history"] * 3000)  # ~3000 tokens, over the chat model's 2048
BODY_LIMIT = 8 * 1024 * 1024  # the default max_body_bytes


def _with(base: dict, fields: dict) -> dict:
    body = {**base, **fields}
    return {k: v for k, v in body.items() if v is not DROP}


def chat(**fields) -> dict:
    return _with({"model": CHAT, "messages": HELLO, "max_tokens": 1}, fields)


def user(content) -> dict:
    return chat(messages=[{"role": "user", "content": content}])


def completion(**fields) -> dict:
    return _with({"model": CHAT, "prompt": "Once upon a time", "max_tokens": 1}, fields)


def embedding(**fields) -> dict:
    return _with({"model": EMBED, "input": "hello"}, fields)


@dataclass(frozen=True)
class Bad:
    id: str
    path: str
    body: object = None  # sent as JSON unless raw is given
    status: int = 400
    param: str | None = None
    code: str | None = None
    says: str | None = None  # the message must contain this (default: the param's last name)
    type: str = "invalid_request_error"
    method: str = "POST"
    key: str = "project"  # project | admin | none | wrong | bare
    raw: bytes | None = None
    headers: dict = field(default_factory=dict)


CHAT_PATH, COMPLETIONS_PATH, EMBEDDINGS_PATH = "/v1/chat/completions", "/v1/completions", "/v1/embeddings"

ROWS = [
    # --- chat/completions: the body itself -------------------------------------------------
    Bad("chat-malformed-json", CHAT_PATH, raw=b'{"model": "x", "messages": [', code="invalid_json",
        says="JSON", headers={"content-type": "application/json"}),
    Bad("chat-body-is-array", CHAT_PATH, [chat()], code="invalid_json", says="JSON object"),
    Bad("chat-body-is-string", CHAT_PATH, "hello", code="invalid_json", says="JSON object"),
    Bad("chat-body-is-null", CHAT_PATH, raw=b"null", code="invalid_json", says="JSON object",
        headers={"content-type": "application/json"}),
    Bad("chat-empty-body", CHAT_PATH, raw=b"", code="invalid_json", says="JSON object",
        headers={"content-type": "application/json"}),
    Bad("chat-not-json-content-type", CHAT_PATH, raw=json.dumps(chat()).encode(), code="invalid_json",
        says="Content-Type", headers={"content-type": "text/plain"}),
    # --- chat/completions: model and messages ----------------------------------------------
    Bad("chat-missing-model", CHAT_PATH, chat(model=DROP), param="model", code="missing_required_parameter"),
    Bad("chat-model-as-number", CHAT_PATH, chat(model=7), param="model", code="invalid_type"),
    Bad("chat-unknown-model", CHAT_PATH, chat(model="no-such-model"), 404, "model", "model_not_found",
        says="no-such-model"),
    Bad("chat-embedding-model", CHAT_PATH, chat(model=EMBED), param="model", code="model_not_supported",
        says="embedding"),
    Bad("chat-missing-messages", CHAT_PATH, chat(messages=DROP), param="messages",
        code="missing_required_parameter"),
    Bad("chat-empty-messages", CHAT_PATH, chat(messages=[]), param="messages", code="empty_array"),
    Bad("chat-messages-not-a-list", CHAT_PATH, chat(messages="hi"), param="messages", code="invalid_type"),
    Bad("chat-message-without-role", CHAT_PATH, chat(messages=[{"content": "hi"}]), param="messages[0].role",
        code="missing_required_parameter"),
    Bad("chat-unknown-role", CHAT_PATH, chat(messages=[{"role": "wizard", "content": "hi"}]),
        param="messages[0].role", code="invalid_value", says="wizard"),
    Bad("chat-role-as-number", CHAT_PATH, chat(messages=[{"role": 1, "content": "hi"}]),
        param="messages[0].role", code="invalid_value"),
    Bad("chat-second-message-bad-role", CHAT_PATH,
        chat(messages=[{"role": "user", "content": "hi"}, {"role": "bot", "content": "hi"}]),
        param="messages[1].role", code="invalid_value"),
    Bad("chat-function-role", CHAT_PATH, chat(messages=[{"role": "function", "name": "f", "content": "1"}]),
        param="messages[0].role", code="invalid_value", says="tool"),
    Bad("chat-content-as-number", CHAT_PATH, user(42), param="messages[0].content", code="invalid_type"),
    Bad("chat-user-message-without-content", CHAT_PATH, chat(messages=[{"role": "user"}]),
        param="messages[0].content", code="missing_required_parameter"),
    Bad("chat-content-part-image", CHAT_PATH, user([{"type": "image_url", "image_url": {"url": "http://x/a.png"}}]),
        param="messages[0].content[0].type", code="invalid_value", says="image_url"),
    Bad("chat-content-part-unknown-type", CHAT_PATH, user([{"type": "video", "text": "hi"}]),
        param="messages[0].content[0].type", code="invalid_value", says="video"),
    Bad("chat-content-part-without-type", CHAT_PATH, user([{"text": "hi"}]),
        param="messages[0].content[0].type", code="missing_required_parameter"),
    Bad("chat-content-part-missing-text", CHAT_PATH, user([{"type": "text"}]),
        param="messages[0].content[0].text", code="missing_required_parameter"),
    Bad("chat-content-part-text-as-number", CHAT_PATH, user([{"type": "text", "text": 5}]),
        param="messages[0].content[0].text", code="invalid_type"),
    Bad("chat-tool-message-without-tool-call-id", CHAT_PATH, chat(messages=[{"role": "tool", "content": "42"}]),
        param="messages[0].tool_call_id", code="missing_required_parameter"),
    # --- chat/completions: sampling parameters ---------------------------------------------
    Bad("chat-temperature-string", CHAT_PATH, chat(temperature="hot"), param="temperature", code="invalid_type"),
    Bad("chat-temperature-negative", CHAT_PATH, chat(temperature=-0.5), param="temperature",
        code="below_min_value", says="-0.5"),
    Bad("chat-temperature-above-2", CHAT_PATH, chat(temperature=2.5), param="temperature",
        code="above_max_value", says="2.5"),
    Bad("chat-temperature-nan", CHAT_PATH, raw=b'{"model": "%s", "messages": [{"role": "user", "content": '
        b'"hi"}], "max_tokens": 1, "temperature": NaN}' % CHAT.encode(), param="temperature",
        code="below_min_value", says="nan", headers={"content-type": "application/json"}),
    Bad("chat-top-p-above-1", CHAT_PATH, chat(top_p=1.5), param="top_p", code="above_max_value"),
    Bad("chat-n-zero", CHAT_PATH, chat(n=0), param="n", code="below_min_value"),
    Bad("chat-n-over-server-max", CHAT_PATH, chat(n=9), param="n", code="integer_above_max_value", says="8"),
    Bad("chat-max-tokens-zero", CHAT_PATH, chat(max_tokens=0), param="max_tokens", code="below_min_value"),
    Bad("chat-max-tokens-negative", CHAT_PATH, chat(max_tokens=-5), param="max_tokens", code="below_min_value"),
    Bad("chat-max-tokens-string", CHAT_PATH, chat(max_tokens="10"), param="max_tokens", code="invalid_type"),
    Bad("chat-max-tokens-float", CHAT_PATH, chat(max_tokens=1.5), param="max_tokens", code="invalid_type"),
    Bad("chat-max-completion-tokens-zero", CHAT_PATH, chat(max_completion_tokens=0),
        param="max_completion_tokens", code="below_min_value"),
    Bad("chat-presence-penalty-3", CHAT_PATH, chat(presence_penalty=3), param="presence_penalty",
        code="above_max_value"),
    Bad("chat-frequency-penalty-minus-3", CHAT_PATH, chat(frequency_penalty=-3), param="frequency_penalty",
        code="below_min_value"),
    Bad("chat-stop-number", CHAT_PATH, chat(stop=5), param="stop", code="invalid_type"),
    Bad("chat-stop-list-of-5", CHAT_PATH, chat(stop=["a", "b", "c", "d", "e"]), param="stop",
        code="array_above_max_length"),
    Bad("chat-stop-list-with-number", CHAT_PATH, chat(stop=["a", 1]), param="stop[1]", code="invalid_type"),
    Bad("chat-seed-float", CHAT_PATH, chat(seed=1.5), param="seed", code="invalid_type"),
    Bad("chat-seed-string", CHAT_PATH, chat(seed="42"), param="seed", code="invalid_type"),
    Bad("chat-seed-too-large", CHAT_PATH, chat(seed=2**70), param="seed", code="above_max_value"),
    Bad("chat-logprobs-string", CHAT_PATH, chat(logprobs="yes"), param="logprobs", code="invalid_type"),
    Bad("chat-top-logprobs-21", CHAT_PATH, chat(logprobs=True, top_logprobs=21), param="top_logprobs",
        code="above_max_value"),
    Bad("chat-top-logprobs-without-logprobs", CHAT_PATH, chat(top_logprobs=2), param="top_logprobs",
        code="invalid_value", says="logprobs"),
    Bad("chat-stream-string", CHAT_PATH, chat(stream="yes"), param="stream", code="invalid_type"),
    Bad("chat-stream-options-without-stream", CHAT_PATH, chat(stream_options={"include_usage": True}),
        param="stream_options", code="invalid_value", says="stream"),
    Bad("chat-stream-options-include-usage-string", CHAT_PATH,
        chat(stream=True, stream_options={"include_usage": "yes"}), param="stream_options.include_usage",
        code="invalid_type"),
    # --- chat/completions: response_format -------------------------------------------------
    Bad("chat-response-format-unknown-type", CHAT_PATH, chat(response_format={"type": "yaml"}),
        param="response_format.type", code="invalid_value", says="yaml"),
    Bad("chat-response-format-as-string", CHAT_PATH, chat(response_format="json"),
        param="response_format", code="invalid_type"),
    Bad("chat-json-schema-missing", CHAT_PATH, chat(response_format={"type": "json_schema"}),
        param="response_format.json_schema", code="missing_required_parameter"),
    Bad("chat-json-schema-without-name", CHAT_PATH,
        chat(response_format={"type": "json_schema", "json_schema": {"schema": {"type": "object"}}}),
        param="response_format.json_schema.name", code="missing_required_parameter"),
    Bad("chat-json-schema-invalid", CHAT_PATH,
        chat(response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "nonsense"}}}),
        param="response_format.json_schema.schema", says="nonsense"),
    Bad("chat-json-schema-dangling-ref", CHAT_PATH,
        chat(response_format={"type": "json_schema", "json_schema": {
            "name": "x", "schema": {"type": "object", "properties": {"a": {"$ref": "#/$defs/nowhere"}}}}}),
        param="response_format.json_schema.schema", says="nowhere"),
    # --- chat/completions: features rixin does not implement --------------------------------
    # tools are supported (tests/test_tools.py has their own bad cases); the legacy functions are not
    Bad("chat-tools-name-with-space", CHAT_PATH, chat(tools=[{"type": "function", "function": {"name": "f g"}}]),
        param="tools[0].function.name", code="invalid_value"),
    Bad("chat-legacy-functions", CHAT_PATH, chat(functions=[{"name": "f", "parameters": {}}]),
        param="functions", code="unsupported_parameter"),
    Bad("chat-logit-bias", CHAT_PATH, chat(logit_bias={"50256": -100}), param="logit_bias",
        code="unsupported_parameter"),
    Bad("chat-audio-modality", CHAT_PATH, chat(modalities=["text", "audio"]), param="modalities",
        code="invalid_value"),
    # --- chat/completions: context length --------------------------------------------------
    Bad("chat-prompt-over-context", CHAT_PATH, user(LONG_PROMPT), param="messages",
        code="context_length_exceeded", says="maximum context length"),
    Bad("chat-prompt-over-context-streaming", CHAT_PATH, chat(messages=[{"role": "user", "content": LONG_PROMPT}],
        stream=True), param="messages", code="context_length_exceeded", says="maximum context length"),
    Bad("chat-max-tokens-over-context", CHAT_PATH, chat(max_tokens=2047), param="messages",
        code="context_length_exceeded", says="2047"),
    # --- completions ---------------------------------------------------------------------
    Bad("completions-missing-prompt", COMPLETIONS_PATH, completion(prompt=DROP), param="prompt",
        code="missing_required_parameter"),
    Bad("completions-prompt-number", COMPLETIONS_PATH, completion(prompt=3), param="prompt", code="invalid_type"),
    Bad("completions-prompt-empty-list", COMPLETIONS_PATH, completion(prompt=[]), param="prompt",
        code="empty_array"),
    Bad("completions-token-id-prompt", COMPLETIONS_PATH, completion(prompt=[1, 2, 3]), param="prompt",
        code="invalid_type", says="Token"),
    Bad("completions-logprobs-6", COMPLETIONS_PATH, completion(logprobs=6), param="logprobs",
        code="above_max_value"),
    Bad("completions-suffix", COMPLETIONS_PATH, completion(suffix="The end."), param="suffix",
        code="unsupported_parameter"),
    Bad("completions-best-of-3", COMPLETIONS_PATH, completion(best_of=3), param="best_of",
        code="unsupported_parameter"),
    Bad("completions-n-over-server-max", COMPLETIONS_PATH, completion(n=9), param="n",
        code="integer_above_max_value"),
    Bad("completions-embedding-model", COMPLETIONS_PATH, completion(model=EMBED), param="model",
        code="model_not_supported"),
    Bad("completions-prompt-over-context", COMPLETIONS_PATH, completion(prompt=LONG_PROMPT), param="prompt",
        code="context_length_exceeded", says="maximum context length"),
    # --- embeddings ----------------------------------------------------------------------
    Bad("embeddings-missing-input", EMBEDDINGS_PATH, embedding(input=DROP), param="input",
        code="missing_required_parameter"),
    Bad("embeddings-empty-list", EMBEDDINGS_PATH, embedding(input=[]), param="input", code="empty_array"),
    Bad("embeddings-empty-string", EMBEDDINGS_PATH, embedding(input=""), param="input", code="empty_string"),
    Bad("embeddings-empty-string-in-list", EMBEDDINGS_PATH, embedding(input=["a", ""]), param="input[1]",
        code="empty_string"),
    Bad("embeddings-input-number", EMBEDDINGS_PATH, embedding(input=5), param="input", code="invalid_type"),
    Bad("embeddings-token-id-input", EMBEDDINGS_PATH, embedding(input=[101, 2023]), param="input",
        code="invalid_type", says="Token"),
    Bad("embeddings-too-many-inputs", EMBEDDINGS_PATH, embedding(input=["a"] * 2049), param="input",
        code="array_above_max_length"),
    Bad("embeddings-input-over-context", EMBEDDINGS_PATH, embedding(input=LONG_PROMPT), param="input",
        code="context_length_exceeded", says="tokens"),
    Bad("embeddings-unknown-encoding-format", EMBEDDINGS_PATH, embedding(encoding_format="int8"),
        param="encoding_format", code="invalid_value", says="int8"),
    Bad("embeddings-dimensions-zero", EMBEDDINGS_PATH, embedding(dimensions=0), param="dimensions",
        code="below_min_value"),
    Bad("embeddings-dimensions-64", EMBEDDINGS_PATH, embedding(dimensions=64), param="dimensions",
        code="unsupported_value"),
    Bad("embeddings-chat-model", EMBEDDINGS_PATH, embedding(model=CHAT), param="model", code="model_not_supported",
        says="chat"),
    Bad("embeddings-unknown-model", EMBEDDINGS_PATH, embedding(model="no-such-embedder"), 404, "model",
        "model_not_found"),
    # --- models --------------------------------------------------------------------------
    Bad("models-unknown-id", "/v1/models/no-such-model", method="GET", status=404, param="model",
        code="model_not_found", says="no-such-model"),
    # --- auth ----------------------------------------------------------------------------
    Bad("auth-no-header", CHAT_PATH, chat(), 401, key="none", code="invalid_api_key", says="API key"),
    Bad("auth-wrong-key", CHAT_PATH, chat(), 401, key="wrong", code="invalid_api_key", says="API key"),
    Bad("auth-bearer-alone", CHAT_PATH, chat(), 401, key="bare", code="invalid_api_key", says="API key"),
    Bad("auth-wrong-key-on-models", "/v1/models", method="GET", status=401, key="wrong", code="invalid_api_key",
        says="API key"),
    Bad("auth-project-key-on-admin-route", "/v1/projects", {"name": "sneaky"}, 403,
        code="insufficient_permissions", says="admin"),
    # --- routing -------------------------------------------------------------------------
    Bad("unknown-route", "/v1/no/such/route", {}, 404, says="/v1/no/such/route"),
    Bad("wrong-method", CHAT_PATH, method="DELETE", status=405, says="POST"),
]


@pytest.fixture(scope="module")
def keys(server) -> dict:
    return {"project": server.new_key("bad-requests"), "admin": server.admin_key,
            "wrong": "rx-wrong-0123456789abcdef", "bare": None, "none": None}


def send(server, keys: dict, row: Bad) -> httpx.Response:
    headers = dict(row.headers)
    if row.key == "bare":
        headers["authorization"] = "Bearer"
    elif row.key != "none":
        headers["authorization"] = f"Bearer {keys[row.key]}"
    kwargs = {"content": row.raw} if row.raw is not None else (
        {"json": row.body} if row.body is not None else {})
    with httpx.Client(base_url=server.url, timeout=120) as http:
        return http.request(row.method, row.path, headers=headers, **kwargs)


def assert_openai_error(r: httpx.Response, status: int, *, param=None, code=None, type_="invalid_request_error",
                        says: str | None = None) -> dict:
    """The response is exactly an OpenAI error object with these fields; returns the error."""
    assert r.status_code == status, f"{r.status_code}: {r.text[:500]}"
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    error = body["error"]
    assert (error["type"], error["param"], error["code"]) == (type_, param, code), error
    assert isinstance(error["message"], str) and len(error["message"]) > 10, error
    if says is None and param is not None:
        says = param.rsplit(".", 1)[-1].split("[", 1)[0]
    if says is not None:
        assert says.lower() in error["message"].lower(), error["message"]
    if 400 <= status < 500 and status not in (408, 409, 429):
        assert r.headers.get("x-should-retry") == "false", dict(r.headers)
    return error


@pytest.mark.parametrize("row", ROWS, ids=[row.id for row in ROWS])
def test_bad_request_gets_an_openai_error(server, keys, row: Bad):
    r = send(server, keys, row)
    assert_openai_error(r, row.status, param=row.param, code=row.code, type_=row.type, says=row.says)


def test_catalogue_is_large_and_ids_are_unique():
    assert len(ROWS) >= 45 and len({row.id for row in ROWS}) == len(ROWS)


def _big_chat_body() -> bytes:
    """A valid chat request just over the body limit (~9 MB)."""
    body = json.dumps(user("a" * (BODY_LIMIT + 512 * 1024))).encode()
    assert len(body) > BODY_LIMIT
    return body


def test_body_over_limit_with_content_length_is_413(server, keys):
    body = _big_chat_body()
    r = httpx.post(server.v1 + "/chat/completions", content=body, timeout=120,
                   headers={"authorization": f"Bearer {keys['project']}", "content-type": "application/json"})
    assert_openai_error(r, 413, code="payload_too_large", says="limit")


def test_body_over_limit_streamed_without_content_length_is_413(server, keys):
    body = _big_chat_body()

    def chunks():
        for start in range(0, len(body), 1024 * 1024):
            yield body[start:start + 1024 * 1024]

    with httpx.Client(timeout=120) as http:
        request = http.build_request("POST", server.v1 + "/chat/completions", content=chunks(),
                                     headers={"authorization": f"Bearer {keys['project']}",
                                              "content-type": "application/json"})
        assert "content-length" not in request.headers and request.headers["transfer-encoding"] == "chunked"
        r = http.send(request)
    assert_openai_error(r, 413, code="payload_too_large", says="limit")


def test_the_server_still_answers_after_the_bad_requests(server, keys):
    r = send(server, keys, Bad("ok", CHAT_PATH, chat()))
    assert r.status_code == 200 and r.json()["choices"][0]["finish_reason"] in ("stop", "length")


@pytest.mark.parametrize("path, body", [
    (CHAT_PATH, chat(some_future_field=1, messages=[{"role": "user", "content": "Hi", "future_field": True}],
                     stream_options=None, response_format={"type": "text", "extra": 1})),
    (COMPLETIONS_PATH, completion(some_future_field={"nested": [1, 2]})),
    (EMBEDDINGS_PATH, embedding(some_future_field="x")),
], ids=["chat", "completions", "embeddings"])
def test_unknown_fields_are_accepted_and_ignored(server, keys, path, body):
    r = send(server, keys, Bad("extra", path, body))
    assert r.status_code == 200, r.text
    assert r.json()["object"] in ("chat.completion", "text_completion", "list")
