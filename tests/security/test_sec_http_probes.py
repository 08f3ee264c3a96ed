"""Path traversal and server-side request forgery probes across the whole API (issue 18):
the OpenAPI document is walked for every string a client can send (names, paths, ids, URLs)
and every object (schemas), and each gets `../../etc/passwd`, `/etc/passwd`, `file:///etc/passwd`
and a URL of a recording server on loopback. No answer may be a 500 or quote a file of the
server, and the recording server must get no request at all.

Probes marked DEPENDS_ON name the branch of issue 18 that fixes what they hit (recipes read
as paths: "data"; remote `$ref` in JSON schemas: "schema"); they pass once those are merged."""

from __future__ import annotations

import copy
import io
import json
import secrets
import threading
import time
from urllib.parse import quote
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from conftest import CHAT, start_server, stop_server

pytestmark = pytest.mark.timeout(900)
PASSWD_LINE = open("/etc/passwd").readline().strip()  # "root:x:0:0:..." : must never be quoted
LEAKS = (PASSWD_LINE, "root:x:0:0", "root:*:", "root:!:", "VmRSS", "VmPeak")


class Recorder:
    """An HTTP server on loopback that records every request it gets."""

    def __init__(self):
        hits = self.hits = []

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                hits.append(self.path)
                body = b'{"type": "object"}'
                self.send_response(200)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_POST = do_GET

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/x.json"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()


@pytest.fixture(scope="module")
def recorder():
    rec = Recorder()
    yield rec
    rec.close()


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("sec-http-probes"), admin_key="rx-admin-" + secrets.token_hex(8))
    yield server
    stop_server(server)


def string_probes(recorder) -> list[str]:
    return ["../../etc/passwd", "/etc/passwd", "file:///etc/passwd", "/proc/self/status", recorder.url]


def schema_probes(recorder) -> list[dict]:
    return [{"$ref": recorder.url}, {"$ref": "file:///etc/passwd"},
            {"type": "object", "properties": {"a": {"$ref": recorder.url}}}]


# ---------------------------------------------------------------- walking the document

def resolve(doc: dict, schema: dict) -> dict:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[-1]]
    branches = [b for b in schema.get("anyOf", []) if b.get("type") != "null"]
    return resolve(doc, branches[0]) if branches and "type" not in schema else schema


def minimal(doc: dict, schema: dict):
    """A small value the schema accepts as far as types go (ids will not exist)."""
    schema = resolve(doc, schema)
    if "const" in schema or "enum" in schema:
        return schema.get("const", (schema.get("enum") or [None])[0])
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        out = {name: minimal(doc, sub) for name, sub in schema.get("properties", {}).items()
               if name in schema.get("required", [])}
        if "max_tokens" in schema.get("properties", {}):
            out["max_tokens"] = 1  # a probe that reaches an engine costs one token
        return out
    if kind == "array":
        return [minimal(doc, schema.get("items", {}))] * max(1, schema.get("minItems", 1))
    return {"string": "x", "integer": max(1, schema.get("minimum", 1)), "number": 1,
            "boolean": False}.get(kind, "x")


def targets(doc: dict, schema: dict, at: tuple = (), depth: int = 0):
    """(path to a field, 'string' | 'object') for every string and object field of a body."""
    schema = resolve(doc, schema)
    if depth > 6:
        return
    kinds = {schema.get("type")} | {b.get("type") for b in schema.get("anyOf", [])}
    if "string" in kinds and at:
        yield at, "string"
    if "object" in kinds and at and not schema.get("properties"):
        yield at, "object"
    for name, sub in schema.get("properties", {}).items():
        yield from targets(doc, sub, at + (name,), depth + 1)
    if schema.get("type") == "array":
        yield from targets(doc, schema.get("items", {}), at + (0,), depth + 1)


def put(body, at: tuple, value):
    body = copy.deepcopy(body)
    node = body
    for key, following in zip(at[:-1], at[1:]):
        if isinstance(node, list):
            while len(node) <= key:
                node.append({} if not isinstance(following, int) else [])
            if not isinstance(node[key], (dict, list)):
                node[key] = [] if isinstance(following, int) else {}
        elif not isinstance(node.get(key), (dict, list)):
            node[key] = [] if isinstance(following, int) else {}
        node = node[key]
    if isinstance(node, list):
        while len(node) <= at[-1]:
            node.append(None)
    node[at[-1]] = value
    return body


def seed(srv) -> dict:
    client, http = srv.client(), srv.http()
    lines = "".join(json.dumps({"text": f"Line {i} of a small corpus about rivers."}) + "\n" for i in range(20))
    file_id = client.files.create(file=("c.jsonl", io.BytesIO(lines.encode())), purpose="user_data").id
    dataset = http.post("/v1/datasets", json={"name": "probed", "files": [file_id]}).json()
    assert http.post("/v1/deployments", json={"name": "probed", "model": CHAT}).status_code == 200
    evals = client.files.create(file=("e.jsonl", io.BytesIO(b'{"input": "2+2?", "ideal": "4"}\n')),
                                purpose="evals").id
    return {"file_id": file_id, "dataset_id": dataset["id"], "version": "1", "name": "probed",
            "model_id": CHAT, "project": "default", "evals": evals}


def fill(path: str, params: list[dict], ids: dict, probed: str | None = None, probe: str = "") -> str:
    """The path with the seeded ids, and the probe (percent-encoded) in parameter `probed`."""
    for p in params:
        if p["in"] == "path":
            value = quote(probe, safe="") if p["name"] == probed else str(ids.get(p["name"], "x"))
            path = path.replace("{%s}" % p["name"], value)
    return path


def requests_from_document(srv, recorder, ids: dict):
    doc = httpx.get(srv.url + "/openapi.json", timeout=30).json()
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            params = [p for p in op.get("parameters", []) if p["in"] in ("path", "query")]
            url = fill(path, params, ids)
            for p in params:  # each path and query string parameter, the probe percent-encoded
                for probe in string_probes(recorder):
                    if p["in"] == "path":
                        yield method, fill(path, params, ids, p["name"], probe), None
                    else:
                        yield method, f"{url}?{p['name']}={quote(probe, safe='')}", None
            schema = (op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema"))
            if not schema:
                continue
            base = minimal(doc, schema)
            for at, kind in targets(doc, schema):
                probes = string_probes(recorder) if kind == "string" else schema_probes(recorder)
                for probe in probes:
                    yield method, url, put(base, at, probe)


def check(r: httpx.Response, where: str) -> None:
    assert r.status_code < 500, f"{where}: {r.status_code} {r.text[:300]}"
    for leak in LEAKS:
        assert leak not in r.text, f"{where} quotes a server file: {r.text[:300]}"


def test_every_string_and_object_field_resists_traversal_and_ssrf(srv, recorder):
    ids = seed(srv)
    sent = 0
    with httpx.Client(base_url=srv.url, timeout=120, headers={"authorization": f"Bearer {srv.admin_key}"}) as http:
        for method, url, body in requests_from_document(srv, recorder, ids):
            if method.upper() == "DELETE" or url.endswith(("/cancel", "/pause", "/resume", "/reject")):
                continue  # would remove or stop the seeded objects the other probes need
            r = http.request(method.upper(), url, json=body)
            check(r, f"{method.upper()} {url} {json.dumps(body)[:200]}")
            sent += 1
    assert sent > 300
    time.sleep(3)  # jobs started by a probe (cleaning, labeling) run in the background
    assert recorder.hits == [], f"the server fetched {recorder.hits}"


# ---------------------------------------------------------------- the known places, by shape

def known_cases(recorder, ids: dict):
    """(DEPENDS_ON, method, path, body) for fields whose inner shape the document leaves open."""
    for probe in ["/etc/shadow", "/etc/passwd", "../../../../etc/passwd", "/proc/self/status",
                  "file:///etc/passwd", recorder.url, "/nonexistent/recipe.yaml"]:
        yield "data", "POST", f"/v1/datasets/{ids['dataset_id']}/clean", {"recipe": probe}
    for schema in schema_probes(recorder):
        yield "schema", "POST", "/v1/chat/completions", {
            "model": CHAT, "max_tokens": 1, "messages": [{"role": "user", "content": "hi"}],
            "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}}
        grader = {"type": "json_schema", "schema": schema}
        yield "schema", "POST", "/v1/evals/runs", {"eval_file_id": ids["evals"], "models": [CHAT],
                                                    "graders": [grader], "max_tokens": 1}
        yield "schema", "POST", "/v1/deployments/probed", {"flywheel": {"eval_file_id": ids["evals"],
                                                                         "graders": [grader]}}


@pytest.mark.parametrize("depends_on", ["data", "schema"], ids=["recipes", "schema-refs"])
def test_recipes_and_schemas_never_open_a_path_or_fetch_a_url(srv, recorder, depends_on):
    """DEPENDS_ON: recipes pass with branch "data" (a recipe is never a path), schema-refs with
    branch "schema" (no remote or file `$ref` is resolved)."""
    ids = seed_known(srv)
    runs = []
    with httpx.Client(base_url=srv.url, timeout=120, headers={"authorization": f"Bearer {srv.admin_key}"}) as http:
        for depends_on, method, path, body in (c for c in known_cases(recorder, ids) if c[0] == depends_on):
            r = http.request(method, path, json=body)
            check(r, f"[{depends_on}] {method} {path} {json.dumps(body)[:200]}")
            if r.status_code == 200 and r.json().get("object") in ("eval.run", "job"):
                runs.append(r.json())
        wait_for_jobs(http, runs)
    assert recorder.hits == [], f"the server fetched {recorder.hits}"


def seed_known(srv) -> dict:
    http = srv.http()
    if http.get("/v1/deployments/probed").status_code == 200:  # seeded by the walk above
        datasets = http.get("/v1/datasets").json()["data"]
        files = http.get("/v1/files", params={"purpose": "evals"}).json()["data"]
        return {"dataset_id": next(d["id"] for d in datasets if d["name"] == "probed"), "evals": files[0]["id"]}
    return seed(srv)


def wait_for_jobs(http: httpx.Client, runs: list[dict], timeout: float = 300) -> None:
    """Eval runs and cleaning jobs resolve their graders and recipes when they run: wait for them."""
    deadline = time.monotonic() + timeout
    for run in runs:
        path = f"/v1/evals/runs/{run['id']}" if run["object"] == "eval.run" else f"/v1/jobs/{run['id']}"
        while time.monotonic() < deadline:
            state = http.get(path).json()
            if state.get("status") in ("succeeded", "failed", "cancelled"):
                for leak in LEAKS:
                    assert leak not in json.dumps(state), f"{path} quotes a server file: {state}"
                break
            time.sleep(1)
