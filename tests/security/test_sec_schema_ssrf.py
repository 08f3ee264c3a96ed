"""Issue 18, finding 2 (server-side request forgery through JSON Schema) and, from finding 7,
pathological schemas (300 levels deep: RecursionError 500; 10,000 properties; a 1 MB enum).

jsonschema resolves a `$ref` it does not hold by fetching it (http, and `file:` through
urllib): an eval grader `{"type": "json_schema", "schema": {"$ref": "http://127.0.0.1:PORT/x"}}`
made the server request that URL. Every place a request carries a schema is probed here with
a recording HTTP server on 127.0.0.1: each probe is a 400 naming the field, and the recorder
gets zero requests.
"""

from __future__ import annotations

import http.server
import io
import json
import threading

import pytest

from conftest import CHAT
from rixin.schemas import MAX_CHARS, MAX_DEPTH, MAX_NODES, check, first_error, SchemaProblem


class Recorder(http.server.ThreadingHTTPServer):
    """Answers every GET with a harmless schema and remembers the path."""

    def __init__(self):
        self.hits: list[str] = []
        recorder = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the stdlib's name
                recorder.hits.append(self.path)
                body = b'{"type": "string"}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        super().__init__(("127.0.0.1", 0), Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@pytest.fixture(scope="module")
def recorder():
    server = Recorder()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def remote_refs(recorder: Recorder) -> list[dict]:
    """Schemas that reach outside themselves, each in a different keyword or position."""
    return [
        {"$ref": f"{recorder.url}/x.json"},
        {"type": "object", "properties": {"a": {"$ref": f"{recorder.url}/a.json#/defs/a"}}},
        {"$dynamicRef": f"{recorder.url}/d.json"},
        {"$schema": f"{recorder.url}/meta.json", "type": "object"},
        {"allOf": [{"$ref": "file:///etc/passwd"}]},
        {"$ref": "file:///etc/passwd"},
        {"$defs": {"a": {"$id": f"{recorder.url}/nested.json", "type": "string"}}, "$ref": "#/$defs/a"},
    ]


def deep(levels: int) -> dict:
    schema: dict = {"type": "string"}
    for _ in range(levels):
        schema = {"type": "object", "properties": {"a": schema}, "required": ["a"]}
    return schema


# (schema, words the 400 says)
HUGE = [
    (deep(300), f"at most {MAX_DEPTH} levels"),
    ({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(10_000)}}, f"at most {MAX_NODES}"),
    ({"enum": ["x" * 1000 for _ in range(1000)]}, f"at most {MAX_CHARS} characters"),
]


def assert_400(r, param: str, words: str | None = None) -> None:
    assert r.status_code == 400, (r.status_code, r.text[:500])
    error = r.json()["error"]
    assert error["type"] == "invalid_request_error" and error["param"] == param, error
    if words is not None:
        assert words in error["message"], error


def test_the_validator_never_fetches_even_unchecked(recorder):
    """Belt and braces: a schema that skipped the check still cannot make a request."""
    for schema in remote_refs(recorder)[:3]:
        where, message = first_error(schema, {"a": 1})
        assert "does not hold" in message or "refers" in message, message
    assert recorder.hits == []


def test_every_outside_reference_is_refused_by_the_check(recorder):
    for schema in remote_refs(recorder):
        with pytest.raises(SchemaProblem) as e:
            check(schema)
        assert "only local references" in str(e.value) or "unknown dialect" in str(e.value) \
            or "'$id' is allowed only at the schema's root" in str(e.value), e.value
    assert check({"$defs": {"a": {"type": "string"}}, "properties": {"x": {"$ref": "#/$defs/a"}}})
    assert check({"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": "https://example.com/p.json",
                  "properties": {"$ref": {"type": "string"}}})  # a property named $ref is no reference
    assert recorder.hits == []


@pytest.fixture(scope="module")
def tenant(server):
    key = server.new_key("schema-ssrf")
    return server.client(key), server.http(key)


def upload(client, rows: list[dict], purpose: str) -> str:
    data = "\n".join(json.dumps(r) for r in rows).encode()
    return client.files.create(file=("set.jsonl", io.BytesIO(data)), purpose=purpose).id


def test_eval_grader_schema(tenant, recorder):
    client, http = tenant
    file_id = upload(client, [{"input": "Give JSON.", "ideal": "{}"}], "evals")
    for schema, words in [*((s, "Invalid value at 'graders[0].schema'") for s in remote_refs(recorder)), *HUGE]:
        r = http.post("/v1/evals/runs", json={"eval_file_id": file_id, "models": [CHAT],
                                              "graders": [{"type": "json_schema", "schema": schema}]})
        assert_400(r, "graders[0].schema", words)
    assert recorder.hits == []


def test_eval_item_schema(tenant, recorder):
    client, http = tenant
    for schema, words in [*((s, "Line 1: invalid 'schema'") for s in remote_refs(recorder)), *HUGE]:
        file_id = upload(client, [{"input": "Give JSON.", "schema": schema}], "evals")
        r = http.post("/v1/evals/runs", json={"eval_file_id": file_id, "models": [CHAT],
                                              "graders": [{"type": "json_schema"}]})
        assert_400(r, "eval_file_id", words)
    assert recorder.hits == []


def test_chat_response_format(tenant, recorder):
    _, http = tenant
    for schema, words in [*((s, None) for s in remote_refs(recorder)), *HUGE]:
        r = http.post("/v1/chat/completions", json={
            "model": CHAT, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4,
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
        assert_400(r, "response_format.json_schema.schema", words)
    assert recorder.hits == []


def test_label_task_schema(tenant, recorder):
    client, http = tenant
    file_id = upload(client, [{"text": "Ada Lovelace, born 1815."}, {"text": "Alan Turing, born 1912."}], "user_data")
    r = http.post("/v1/datasets", json={"name": "people-ssrf", "files": [file_id]})
    assert r.status_code == 200, r.text
    url = f"/v1/datasets/{r.json()['id']}/label"
    for schema, words in [*((s, None) for s in remote_refs(recorder)), *HUGE]:
        r = http.post(url, json={"task": {"type": "extraction", "json_schema": schema}})
        assert_400(r, "task.json_schema", words)
    # A local schema is fine, and a few-shot answer is checked against it without fetching.
    local = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    r = http.post(url, json={"task": {"type": "extraction", "json_schema": local,
                                      "few_shot": [{"input": "Bob", "output": {"nam": "Bob"}}]}})
    assert_400(r, "task.few_shot[0].output", "not valid against the task's json_schema")
    assert recorder.hits == []
