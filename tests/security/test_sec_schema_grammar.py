"""Issue 18, finding 3: one request crashed the shared engine. `response_format` json_schema
`{"enum": []}` (also under `properties`) converted to an empty grammar rule, llama.cpp could
not parse it, the NULL sampler went into the chain and the engine process segfaulted; every
tenant's stream got engine_unavailable. Now a schema with no valid output, or whose grammar
llama.cpp would refuse, is a 400 in the gateway, and the engine refuses such a grammar itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import httpx
import pytest

from conftest import CHAT
from rixin.grammar import check_decodable, gbnf
from rixin.schemas import SchemaProblem, check

HERE = Path(__file__).resolve().parent
PARAM = "response_format.json_schema.schema"

# Schemas with no valid output, or that the converter / llama.cpp cannot take: (schema, words
# the 400 says).
NO_OUTPUT = [
    ({"enum": []}, "'enum' is empty"),
    ({"type": "object", "properties": {"a": {"enum": []}}, "required": ["a"]}, "'enum' is empty"),
    ({"type": "object", "properties": {"a": {"enum": []}}}, "'enum' is empty"),  # optional: still a rule
    ({"type": "object", "properties": {"a": {"type": "array", "items": {"enum": []}}}}, "'enum' is empty"),
    ({"not": {}}, "'not' excludes every value"),
    ({"type": "object", "properties": {"a": False}}, "it is false"),
    ({"type": "array", "items": {"type": "string"}, "minItems": 3, "maxItems": 1}, "minItems 3 is above maxItems 1"),
    ({"type": "string", "minLength": 5, "maxLength": 2}, "minLength 5 is above maxLength 2"),
    ({"type": "integer", "minimum": 5, "maximum": 1}, "minimum 5 leaves no room"),
    ({"type": "object", "required": ["x"], "additionalProperties": False}, "additionalProperties: false forbids"),
    ({"type": "string", "const": 3}, "fits the rest of the schema"),
    ({"anyOf": [{"enum": []}, {"enum": []}]}, "no alternative of 'anyOf'"),
    ({"$defs": {"a": {"$ref": "#/$defs/a"}}, "$ref": "#/$defs/a"}, "can produce no text"),
    ({"$defs": {"n": {"type": "object", "properties": {"next": {"$ref": "#/$defs/n"}}, "required": ["next"]}},
      "$ref": "#/$defs/n"}, "can produce no text"),  # every object must hold another: endless
    ({"$defs": {"x": {"anyOf": [{"$ref": "#/$defs/x"}, {"type": "string"}]}}, "$ref": "#/$defs/x"}, "left recursion"),
    ({"anyOf": [{"$ref": "#"}, {"type": "string"}]}, "Unsupported ref #"),  # the converter's limit, said
    ({"const": "\ud800"}, "no model can write"),
    ({"type": "array", "items": True}, "write {} for any value"),
    ({"type": "string", "maxLength": 10**9}, "at most 500"),
    ({"type": "array", "items": {"type": "integer"}, "minItems": 10**9}, "at most 500"),
    ({"type": "string", "pattern": "^(a{400}){400}$"}, "expands too far"),
    ({"type": "object", "properties": {f"p{i}": {"type": "string"} for i in range(300)}}, "at most 200"),
    ({"type": "string", "pattern": "no anchors"}, "cannot be turned into a grammar"),
    ({"type": "string", "pattern": "^\\d+$"}, "write [0-9]"),  # llama.cpp refused the converter's "\d"
]

GOOD = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
     "required": ["name", "age"], "additionalProperties": False},
    {"enum": ["中文", "😀", "a\\b", "new\nline", "\u0000"]},
    {"$defs": {"node": {"type": "object", "properties": {"next": {"$ref": "#/$defs/node"}}}}, "$ref": "#/$defs/node"},
    {"type": "array", "items": {"type": "string", "maxLength": 20}, "maxItems": 500},
    {"type": "string", "pattern": "^[a-z]{1,64}@[a-z]{1,255}[.]com$"},
]


@pytest.mark.parametrize("schema,words", NO_OUTPUT, ids=range(len(NO_OUTPUT)))
def test_no_output_schemas_are_refused_with_a_reason(schema, words):
    with pytest.raises(SchemaProblem) as e:
        check_decodable(schema)
    assert words in str(e.value)


@pytest.mark.parametrize("schema", GOOD, ids=range(len(GOOD)))
def test_usual_schemas_give_a_grammar(schema):
    assert "root ::=" in gbnf(check_decodable(schema))


@pytest.mark.parametrize("seed", [0, 1])
def test_random_schemas_are_refused_or_safe_for_llama_cpp(seed):
    """A few hundred random small schemas (empty enums, impossible bounds, false, refs, odd
    strings, patterns): each is refused, or its grammar parses in llama.cpp and always leaves
    a token to pick. In a subprocess: a segfault fails this test, not pytest."""
    run = subprocess.run([sys.executable, str(HERE / "schema_fuzz.py"), str(seed), "300"], capture_output=True,
                         text=True, timeout=300)
    assert run.returncode == 0, f"rc {run.returncode}; last lines:\n{run.stdout[-3000:]}\n{run.stderr[-2000:]}"
    summary = json.loads(run.stdout.strip().splitlines()[-1])
    assert summary["broken"] == [] and summary["accepted"] >= 50 and summary["rejected"] >= 50, summary


def test_the_engine_refuses_a_bad_grammar_itself():
    """The engine's own check, for callers that reach it without the gateway (labelers, graders):
    InvalidRequest, then the same engine still answers. In a subprocess for the segfault."""
    code = textwrap.dedent("""
        from rixin.engines.base import GenerateRequest, SamplingParams
        from rixin.engines.llama_cpp import LlamaCppEngine
        from rixin.errors import InvalidRequest
        from rixin.models.registry import CHAT_MODEL, bundled_models
        path = next(m.path for m in bundled_models() if m.id == CHAT_MODEL)
        engine = LlamaCppEngine("smollm2", path, context_length=256, threads=1, slots=2)
        msgs = [{"role": "user", "content": "Hi"}]
        for schema in ({"enum": []}, {"properties": {"a": {"enum": []}}, "required": ["a"]}, {"not": {}}):
            try:
                list(engine.generate(GenerateRequest(SamplingParams(max_tokens=4, json_schema=schema), messages=msgs)))
                raise SystemExit(f"no error for {schema}")
            except InvalidRequest as e:
                assert e.param == "response_format.json_schema.schema", e.param
        ok = SamplingParams(max_tokens=8, temperature=0.0, json_schema={"enum": ["yes", "no"]})
        text = "".join(c.text for c in engine.generate(GenerateRequest(ok, messages=msgs)))
        assert text in ('"yes"', '"no"'), text
        print("OK")
    """)
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("OK"), f"rc {run.returncode}\n{run.stdout}\n{run.stderr[-3000:]}"


def _chat_model_pids(server) -> list[int]:
    engines = server.http().get("/v1/engines").json()["data"]
    return sorted(e["pid"] for e in engines if e["model"] == CHAT and e["state"] == "running")


def test_bad_schemas_are_400_and_other_tenants_streams_survive(server):
    attacker, other = server.new_key("schema-attacker"), server.new_key("schema-bystander")
    pids = _chat_model_pids(server)
    assert pids, "no running chat engine"
    stream_result: dict = {}

    def bystander_stream():  # in flight while the bad schemas arrive
        try:
            stream = server.client(other).chat.completions.create(
                model=CHAT, messages=[{"role": "user", "content": "Count from one to fifty in words."}],
                max_tokens=96, temperature=0, stream=True)
            stream_result["finish"] = [c.choices[0].finish_reason for c in stream if c.choices][-1]
        except Exception as e:  # noqa: BLE001 - recorded and asserted below
            stream_result["error"] = repr(e)

    thread = threading.Thread(target=bystander_stream)
    thread.start()
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {attacker}"}, timeout=120) as http:
        for schema, words in NO_OUTPUT[:12]:
            for attempt in range(2):  # the retry crashed it again, before
                r = http.post("/v1/chat/completions", json={
                    "model": CHAT, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8,
                    "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": schema}}})
                assert r.status_code == 400, (schema, r.status_code, r.text)
                error = r.json()["error"]
                assert error["type"] == "invalid_request_error" and error["param"] == PARAM, error
                assert words in error["message"], error
    thread.join(300)
    assert stream_result.get("finish") in ("stop", "length"), stream_result
    answer = server.client(other).chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Is the sky blue?"}], max_tokens=24, temperature=0,
        response_format={"type": "json_schema", "json_schema": {"name": "ok", "schema": {
            "type": "object", "properties": {"ok": {"type": "boolean"}}, "required": ["ok"],
            "additionalProperties": False}}})
    assert answer.choices[0].finish_reason == "stop", answer
    assert set(json.loads(answer.choices[0].message.content)) == {"ok"}
    assert _chat_model_pids(server) == pids, "the chat engine restarted"
