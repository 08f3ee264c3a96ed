"""schemathesis over every operation of /openapi.json against a real `rixin up` (issue 18):
no server error, and every answer conforms to the schema the document declares for it.

The project is seeded first (a file, a dataset, a deployment, a stored completion) and the
path parameters point at those ids, so that operations reach their handlers instead of
stopping at 404. A bounded number of examples per operation keeps the run to a few minutes."""

from __future__ import annotations

import io
import json
import secrets
import subprocess
import sys

import pytest

from conftest import CHAT, start_server, stop_server

# schemathesis' CLI with every compile() serialised. CPython 3.11.7 keeps the AST converter's
# recursion depth in module-global state, so two threads (--workers 2) that build ASTs at once
# (hypothesis describes lambdas with ast.parse; anyio's lazy importer compiles its source) trip
# "SystemError: AST constructor recursion depth mismatch" (gh-106905, fixed in 3.11.8). A lock
# around compile -- ast.parse calls it -- keeps one conversion at a time.
ST = """
import builtins, sys, threading
_compile, _lock = builtins.compile, threading.RLock()
def compile(*args, **kwargs):
    with _lock:
        return _compile(*args, **kwargs)
builtins.compile = compile
from schemathesis.cli import schemathesis
sys.argv[0] = "st"
sys.exit(schemathesis())
"""
MAX_EXAMPLES = 8
pytestmark = pytest.mark.timeout(900)


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    server = start_server(tmp_path_factory.mktemp("sec-http-st"), admin_key="rx-admin-" + secrets.token_hex(8))
    yield server
    stop_server(server)


def seed(srv) -> dict:
    """Objects of the admin key's project for the path parameters; returns their ids."""
    client, http = srv.client(), srv.http()
    lines = [{"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
             for i in range(12)]
    data = "".join(json.dumps(line) + "\n" for line in lines).encode()
    file_id = client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune").id
    dataset = http.post("/v1/datasets", json={"name": "fuzzed", "files": [file_id]})
    assert dataset.status_code == 200, dataset.text
    deployment = http.post("/v1/deployments", json={"name": "fuzzed", "model": CHAT})
    assert deployment.status_code == 200, deployment.text
    completion = client.chat.completions.create(model="fuzzed", messages=[{"role": "user", "content": "Hi"}],
                                                max_tokens=2, store=True)
    me = http.get("/v1/me").json()
    return {"path.file_id": file_id, "path.dataset_id": dataset.json()["id"], "path.version": 1,
            "path.name": "fuzzed", "path.completion_id": completion.id, "path.model_id": CHAT,
            "path.project": me["project"]}


def test_schemathesis_finds_no_server_error_and_no_nonconforming_answer(srv, tmp_path):
    parameters = seed(srv)
    config = tmp_path / "schemathesis.toml"
    config.write_text("[parameters]\n" + "".join(f'"{k}" = {json.dumps(v)}\n' for k, v in parameters.items()))
    result = subprocess.run(
        [sys.executable, "-c", ST, "--config-file", str(config), "run", srv.url + "/openapi.json",
         "--checks", "not_a_server_error,response_schema_conformance",
         "--max-examples", str(MAX_EXAMPLES), "--seed", "18", "--workers", "2", "--request-timeout", "120",
         "--header", f"Authorization: Bearer {srv.admin_key}", "--continue-on-failure"],
        capture_output=True, text=True, timeout=800, cwd=tmp_path)  # its caches stay out of the tree
    out = result.stdout + result.stderr
    assert "Tested:" in out, out[-3000:]
    failures = out[out.find("FAILURES"):out.find("WARNINGS")] if "FAILURES" in out else out[-6000:]
    assert result.returncode == 0, failures[:12000] + "\n" + srv.output()
    assert "Server error" not in out
