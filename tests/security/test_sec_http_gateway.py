"""Issue 18, findings 6, 7, 9 and 10 (the HTTP gateway), against a real `rixin up`:
/metrics behind a key, bad input that used to be a 500, authentication before the body,
framing errors and timeouts on raw sockets, the OpenAPI document, and ids of another project
in fields that reference one."""

from __future__ import annotations

import json
import secrets
import socket
import time

import httpx
import pytest

from conftest import BACKENDS, CHAT, fresh_postgres_database, start_server, stop_server

READ_TIMEOUT_S = 2
METRICS_TOKEN = "metrics-" + secrets.token_hex(8)
HELLO = [{"role": "user", "content": "Say hello."}]


@pytest.fixture(scope="module", params=BACKENDS)
def srv(request, tmp_path_factory):
    """A server of its own (short read timeout, a metrics token), on each database backend:
    PostgreSQL refuses NUL in text where SQLite stores it."""
    env = {"RIXIN_METRICS_TOKEN": METRICS_TOKEN, "RIXIN_READ_TIMEOUT_S": str(READ_TIMEOUT_S)}
    if request.param == "postgres":
        env["RIXIN_DATABASE_URL"] = fresh_postgres_database()
    server = start_server(tmp_path_factory.mktemp(f"sec-http-{request.param}"), env,
                          admin_key="rx-admin-" + secrets.token_hex(8))
    server.project_key = server.new_key("sec-http-a")
    server.other_key = server.new_key("sec-http-b")
    yield server
    stop_server(server)


def call(srv, method: str, path: str, key: str | None = "project", **kwargs) -> httpx.Response:
    headers = dict(kwargs.pop("headers", {}))
    if key is not None:
        headers["authorization"] = "Bearer " + {"project": srv.project_key, "other": srv.other_key,
                                                "admin": srv.admin_key}.get(key, key)
    with httpx.Client(base_url=srv.url, timeout=60) as http:
        return http.request(method, path, headers=headers, **kwargs)


def error_of(r: httpx.Response, status: int) -> dict:
    assert r.status_code == status, f"{r.status_code}: {r.text[:400]}"
    assert r.headers["content-type"].startswith("application/json"), r.headers
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]


# ------------------------------------------------------------------ finding 6: /metrics

@pytest.mark.parametrize("key, status", [(None, 401), ("project", 403), ("wrong-key", 401),
                                         ("admin", 200), (METRICS_TOKEN, 200)],
                         ids=["no-key", "project-key", "wrong-key", "admin-key", "metrics-token"])
def test_metrics_need_the_admin_key_or_the_metrics_token(srv, key, status):
    r = call(srv, "GET", "/metrics", key=key)
    if status == 200:
        assert r.status_code == 200 and "rixin_requests_total" in r.text
    else:
        error = error_of(r, status)
        assert "rixin_" not in r.text and error["code"] in ("invalid_api_key", "insufficient_permissions")


# ------------------------------------------------------------------ finding 7: 500s on bad input

@pytest.mark.parametrize("query, param", [
    ("since=-99999999999", "since"), ("since=1e30", "since"), ("until=-99999999999999999999", "until"),
    ("since=99999999999999", "since"), ("until=1e30", "until")])
def test_log_search_with_out_of_range_times_is_400(srv, query, param):
    error = error_of(call(srv, "GET", f"/v1/logs?{query}"), 400)
    assert error["param"] == param and param in error["message"]


def test_flywheel_export_since_out_of_range_is_400(srv):
    r = call(srv, "POST", "/v1/deployments", json={"name": "export-me", "model": CHAT})
    assert r.status_code == 200, r.text
    error = error_of(call(srv, "POST", "/v1/deployments/export-me/flywheel/export",
                          json={"since": -1324320832705}), 400)
    assert error["param"] == "since"
    assert call(srv, "POST", "/v1/deployments/export-me/flywheel/export", json={"since": 0}).status_code == 200


def test_dataset_records_offset_out_of_range_is_400(srv):
    error = error_of(call(srv, "GET", "/v1/datasets/ds-x/versions/1/records?offset=9223372036854775807"), 400)
    assert error["param"] == "offset"
    error = error_of(call(srv, "GET", "/v1/datasets/ds-x/versions/9223372036854775807"), 400)
    assert error["param"] == "version"


def test_lone_surrogate_in_chat_content_is_400(srv):
    raw = b'{"model": "%s", "messages": [{"role": "user", "content": "a\\ud800b"}], "max_tokens": 1}' % CHAT.encode()
    error = error_of(call(srv, "POST", "/v1/chat/completions", content=raw,
                          headers={"content-type": "application/json"}), 400)
    assert error["code"] == "invalid_text" and "Unicode" in error["message"]
    paired = raw.replace(b"a\\ud800b", b"a\\ud83d\\ude00b")  # a valid pair is text like any other
    assert call(srv, "POST", "/v1/chat/completions", content=paired,
                headers={"content-type": "application/json"}).status_code == 200


@pytest.mark.parametrize("method, path, raw", [
    ("POST", "/v1/deployments", b'{"name": "a\\u0000b", "model": "%s"}' % CHAT.encode()),
    ("POST", "/v1/chat/completions/chatcmpl-x", b'{"metadata": {"k\\u0000": "v"}}'),
    ("GET", "/v1/files/file-a%00b", None),
    ("GET", "/v1/logs?q=a%00b", None),
], ids=["name", "metadata-key", "path-id", "query"])
def test_nul_in_names_ids_and_metadata_is_400(srv, method, path, raw):
    kwargs = {"content": raw, "headers": {"content-type": "application/json"}} if raw else {}
    assert error_of(call(srv, method, path, **kwargs), 400)["code"] == "invalid_text"


def test_nul_in_an_uploaded_file_name_is_400(srv):
    body = (b'--BB\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nraw\r\n--BB\r\nContent-Disposition: '
            b'form-data; name="file"; filename="a\x00b.jsonl"\r\n\r\n{"text": "x"}\n\r\n--BB--\r\n')
    r = call(srv, "POST", "/v1/files", content=body, headers={"content-type": "multipart/form-data; boundary=BB"})
    assert error_of(r, 400)["code"] == "invalid_text"


def test_console_path_with_nul_is_404(srv):
    error_of(call(srv, "GET", "/console/static/app.js%00.html", key=None), 404)
    assert call(srv, "GET", "/console/static/app.js", key=None).status_code == 200


def test_bad_json_without_a_key_is_401(srv):
    for key in (None, "wrong-key"):
        r = call(srv, "POST", "/v1/chat/completions", key=key, content=b'{"model": ',
                 headers={"content-type": "application/json"})
        assert error_of(r, 401)["code"] == "invalid_api_key"


# ------------------------------------------------------------------ finding 9: framing, timeouts

def raw_exchange(srv, data: bytes, *, wait: float = 15) -> tuple[bytes, float]:
    """Send bytes on a fresh connection; (everything the server sent until it closed, seconds)."""
    host, port = srv.url.removeprefix("http://").split(":")
    start = time.monotonic()
    with socket.create_connection((host, int(port)), timeout=wait) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out, time.monotonic() - start


def parse(raw: bytes) -> tuple[int, dict, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return int(lines[0].split()[1]), headers, json.loads(body)


@pytest.mark.parametrize("data", [
    b"GARBAGE\r\n\r\n",
    b"GET /health HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    b"POST /v1/models HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nZZ\r\nabc\r\n",
], ids=["request-line", "content-length", "chunked"])
def test_framing_errors_get_an_openai_error_and_close(srv, data):
    out, _ = raw_exchange(srv, data)
    status, headers, body = parse(out)
    assert status == 400 and headers["connection"] == "close"
    assert body["error"]["code"] == "invalid_http_request" and body["error"]["type"] == "invalid_request_error"


def test_slow_headers_are_cut_off(srv):
    """A client that never finishes its headers gets 408 and loses the connection; so does one
    that sends nothing. 50 of them at once do not keep the server from answering."""
    host, port = srv.url.removeprefix("http://").split(":")
    slow = [socket.create_connection((host, int(port)), timeout=30) for _ in range(50)]
    try:
        for s in slow:
            s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        assert httpx.get(srv.url + "/health", timeout=30).status_code == 200
        for s in slow:
            out = b""
            while chunk := s.recv(65536):  # ends: the server closed it (the socket timeout would raise)
                out += chunk
            status, headers, body = parse(out)
            assert status == 408 and body["error"]["code"] == "request_timeout"
    finally:
        for s in slow:
            s.close()
    out, _ = raw_exchange(srv, b"")
    assert parse(out)[0] == 408


def test_oversized_headers_are_431(srv):
    out, _ = raw_exchange(srv, b"GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
    status, headers, body = parse(out)
    assert status == 431 and headers["connection"] == "close"


def test_a_stalled_body_is_408(srv):
    head = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"model\"" % srv.project_key.encode())
    out, _ = raw_exchange(srv, head)
    status, headers, body = parse(out)
    assert status == 408 and headers["connection"] == "close" and body["error"]["code"] == "request_timeout"


def test_errors_keep_the_pooled_connection_usable(srv):
    """One client, one pooled connection: after 4xx answers (and a framing error on another
    socket), the next request on the same connection is answered, not reset."""
    ports = set()
    with httpx.Client(base_url=srv.url, timeout=60, limits=httpx.Limits(max_connections=1),
                      headers={"authorization": f"Bearer {srv.project_key}"}) as http:
        for path in ("/v1/logs?since=-1", "/v1/files/file-nope", "/v1/models"):
            r = http.get(path, extensions={"trace": lambda name, info: ports.add(
                info["return_value"].get_extra_info("socket").getsockname()[1])
                if name == "connection.connect_tcp.complete" else None})
            assert r.status_code in (200, 400, 404) and r.headers.get("connection") != "close"
        raw_exchange(srv, b"GARBAGE\r\n\r\n")
        assert http.get("/v1/models").status_code == 200
    assert len(ports) == 1


# ------------------------------------------------------------------ finding 10: OpenAPI, references

def test_openapi_declares_our_errors_and_security(srv):
    doc = httpx.get(srv.url + "/openapi.json", timeout=30).json()
    assert doc["components"]["securitySchemes"]["bearer"] == {
        "type": "http", "scheme": "bearer", "description": "An API key: Authorization: Bearer KEY"}
    operations = [(path, method, op) for path, ops in doc["paths"].items() for method, op in ops.items()]
    assert len(operations) >= 60
    for path, method, op in operations:
        where = f"{method.upper()} {path}"
        assert "422" not in op["responses"], where
        ok = op["responses"]["200"]["content"]
        assert any(media.get("schema") for media in ok.values()), f"{where}: no response schema"
        if path.startswith("/v1/"):
            assert {"400", "401", "404", "429"} <= set(op["responses"]), where
            assert op["security"] == [{"bearer": []}], where
            assert op["responses"]["401"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"}
        if "requestBody" in op:
            assert "413" in op["responses"], where


def test_whole_floats_are_integers(srv):
    """The document says "integer"; JSON Schema counts 2.0 as one."""
    r = call(srv, "POST", "/v1/chat/completions", json={"model": CHAT, "messages": HELLO, "max_tokens": 2.0,
                                                        "n": 1.0})
    assert r.status_code == 200, r.text
    assert error_of(call(srv, "POST", "/v1/chat/completions",
                         json={"model": CHAT, "messages": HELLO, "max_tokens": 1.5}), 400)["param"] == "max_tokens"


def upload(srv, key: str, purpose: str, lines: list[dict]) -> str:
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    r = call(srv, "POST", "/v1/files", key=key, files={"file": ("x.jsonl", data)}, data={"purpose": purpose})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def test_ids_of_another_project_are_404_in_every_referencing_field(srv):
    """Project B's ids, sent by project A in each field that names an id, are 404 (as if they
    did not exist); the same request with A's own ids is not."""
    sft = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
           for i in range(12)]
    evals = [{"input": [{"role": "user", "content": "2+2?"}], "ideal": "4"}]
    theirs = {"train": upload(srv, "other", "fine-tune", sft), "eval": upload(srv, "other", "evals", evals)}
    mine = {"train": upload(srv, "project", "fine-tune", sft), "eval": upload(srv, "project", "evals", evals)}
    r = call(srv, "POST", "/v1/datasets", key="other", json={"name": "theirs", "files": [theirs["train"]]})
    assert r.status_code == 200, r.text
    their_dataset = r.json()["id"]
    grader = [{"type": "includes"}]
    # (method, path, body from a set of ids, whether the same request with A's own ids is cheap to run)
    cases = [
        ("POST", "/v1/deployments", lambda ids: {"name": "d-" + secrets.token_hex(3), "model": CHAT,
                                                 "flywheel": {"eval_file_id": ids["eval"]}}, True),
        ("POST", "/v1/deployments/export-me", lambda ids: {"flywheel": {"eval_file_id": ids["eval"]}}, True),
        ("POST", "/v1/fine_tuning/jobs", lambda ids: {"model": CHAT, "training_file": ids["train"]}, False),
        ("POST", "/v1/fine_tuning/jobs", lambda ids: {"model": CHAT, "training_file": mine["train"],
                                                      "validation_file": ids["train"]}, False),
        ("POST", "/v1/evals/runs", lambda ids: {"eval_file_id": ids["eval"], "models": [CHAT], "graders": grader,
                                                "max_tokens": 1}, False),
        ("POST", "/v1/datasets", lambda ids: {"name": "n-" + secrets.token_hex(3), "files": [ids["train"]]}, True),
        ("GET", f"/v1/files/{theirs['train']}/content", None, False),
        ("GET", f"/v1/datasets/{their_dataset}", None, False),
        ("POST", f"/v1/datasets/{their_dataset}/clean", lambda ids: {"recipe": "default"}, False),
    ]
    call(srv, "POST", "/v1/deployments", json={"name": "export-me", "model": CHAT})
    for method, path, body, control in cases:
        r = call(srv, method, path, json=body(theirs) if body else None)
        assert r.status_code == 404, f"{method} {path}: {r.status_code} {r.text[:300]}"
        if control:
            r = call(srv, method, path, json=body(mine))
            assert r.status_code == 200, f"{method} {path} with own ids: {r.text[:300]}"
