"""Eval runs against a live server: the bundled chat model compared with a differently-prompted
variant of itself over a tiny eval set, every grader kind (the embedding and model-graded ones
through the real engine replicas); the stored outputs are what the model says to a greedy chat
request, the stored scores are what the graders give those outputs, the summary and the paired
difference agree with the per-item records; paging; other projects see nothing; bad input is
a 4xx naming the field. A no-server test kills a run midway and checks that the finished
shards are not generated again."""

from __future__ import annotations

import io
import json
import time

import httpx
import numpy as np
import pytest

from conftest import CHAT
from rixin.evals.evalset import parse_lines
from rixin.evals.graders import build_grader, parse_graders, registered

ITEMS = [
    {"input": "What is the capital of France? Answer in one word.", "ideal": "Paris"},
    {"input": "What is 2 + 2? Answer with a number.", "ideal": "4"},
    {"input": [{"role": "system", "content": "You are helpful."}, {"role": "user", "content": "Say hello."}],
     "ideal": ["hello", "hi"]},
    {"input": "Name a primary color.", "ideal": ["red", "blue", "yellow"], "id": "color"},
]
TERSE = {"model": CHAT, "name": "terse", "system": "Answer with one word only."}
GRADERS = [{"type": "includes"}, {"type": "exact_match"}, {"type": "regex", "pattern": r"\w+", "name": "word"},
           {"type": "numeric", "abs_tol": 0.5}, {"type": "embedding"},
           {"type": "model_graded", "rubric": "The answer matches the reference.", "choices": ["0", "1"]}]
LOCAL_GRADERS = ("includes", "exact_match", "word", "numeric")  # need no engine: re-graded here
# The first test also waits for the server and the module's eval run (slow on a loaded machine).
pytestmark = pytest.mark.timeout(1200)


def jsonl(rows) -> bytes:
    return "\n".join(json.dumps(r, ensure_ascii=False) for r in rows).encode()


def upload(client, rows, purpose="evals", name="set.jsonl") -> str:
    data = rows if isinstance(rows, bytes) else jsonl(rows)
    return client.files.create(file=(name, io.BytesIO(data)), purpose=purpose).id


def wait_run(http, run_id: str, timeout: float = 600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r = http.get(f"/v1/evals/runs/{run_id}")
        assert r.status_code == 200, r.text
        if r.json()["status"] in ("succeeded", "failed", "cancelled"):
            return r.json()
        time.sleep(1)
    raise AssertionError(f"eval run {run_id} did not finish: {r.json()}")


@pytest.fixture(scope="module")
def project(server):
    key = server.new_key(f"evals-{server.backend}")
    return server.client(key), server.http(key)


@pytest.fixture(scope="module")
def finished(project):
    client, http = project
    file_id = upload(client, ITEMS)
    r = http.post("/v1/evals/runs", json={"name": "smoke", "eval_file_id": file_id, "models": [CHAT, TERSE],
                                          "graders": GRADERS, "max_tokens": 12})
    assert r.status_code == 200, r.text
    created = r.json()
    assert created["status"] in ("queued", "running") and created["models"] == [CHAT, TERSE]
    run = wait_run(http, created["id"])
    assert run["status"] == "succeeded", run
    items = http.get(f"/v1/evals/runs/{run['id']}/items", params={"limit": 100}).json()["data"]
    return file_id, run, items


def test_outputs_are_the_models_greedy_answers(project, finished):
    client, _ = project
    _, run, items = finished
    assert [it["id"] for it in items] == ["1", "2", "3", "color"]
    first = items[0]
    answer = client.chat.completions.create(model=CHAT, messages=first["input"], temperature=0, max_tokens=12)
    assert first["outputs"][CHAT]["output"] == answer.choices[0].message.content
    terse = client.chat.completions.create(model=CHAT, temperature=0, max_tokens=12,
                                           messages=[{"role": "system", "content": TERSE["system"]}, *first["input"]])
    assert first["outputs"]["terse"]["output"] == terse.choices[0].message.content


def test_scores_are_the_graders_verdicts(finished):
    _, run, items = finished
    graders = [build_grader(c) for c in parse_graders(GRADERS) if c.label in LOCAL_GRADERS]
    parsed = parse_lines([json.dumps(i) for i in ITEMS], "test")
    for record, item in zip(items, parsed):
        for model in (CHAT, "terse"):
            out = record["outputs"][model]
            assert set(out["scores"]) == {c.label for c in parse_graders(GRADERS)}
            for g in graders:
                expected = g.grade(item, out["output"])
                assert (out["scores"][g.name], out["reasons"][g.name]) == (expected.score, expected.reason)
            assert 0.0 <= out["scores"]["embedding"] <= 1.0 and out["reasons"]["embedding"] in (
                "similarity", "empty_output")
            assert out["scores"]["model_graded"] in (0.0, 1.0)
            assert out["reasons"]["model_graded"] in ("judge_0", "judge_1", "empty_output")
            assert out["mean"] == pytest.approx(np.mean(list(out["scores"].values())))
        assert record["diff"] == pytest.approx(record["outputs"]["terse"]["mean"] - record["outputs"][CHAT]["mean"])


def test_summary_agrees_with_items(finished):
    _, run, items = finished
    summary = run["summary"]
    assert summary["n"] == len(ITEMS)
    for model in (CHAT, "terse"):
        s = summary["models"][model]
        assert s["mean"] == pytest.approx(np.mean([it["outputs"][model]["mean"] for it in items]))
        for name, mean in s["graders"].items():
            assert mean == pytest.approx(np.mean([it["outputs"][model]["scores"][name] for it in items]))
    diff = summary["diff"]
    assert (diff["a"], diff["b"]) == (CHAT, "terse")
    assert diff["mean"] == pytest.approx(np.mean([it["diff"] for it in items]))
    assert diff["ci_low"] <= diff["mean"] <= diff["ci_high"]
    assert diff["wins"] == sum(it["diff"] > 1e-12 for it in items)
    assert diff["losses"] == sum(it["diff"] < -1e-12 for it in items)
    assert diff["wins"] + diff["ties"] + diff["losses"] == len(ITEMS)
    assert run["results_sha256"] and run["finished_at"] >= run["created_at"]


def test_items_paging(project, finished):
    _, http = project
    _, run, items = finished
    page = http.get(f"/v1/evals/runs/{run['id']}/items", params={"limit": 3}).json()
    assert page["has_more"] is True and page["data"] == items[:3]
    rest = http.get(f"/v1/evals/runs/{run['id']}/items", params={"limit": 3, "offset": 3}).json()
    assert rest["has_more"] is False and rest["data"] == items[3:]


def test_list_newest_first_and_filtered(project, finished):
    client, http = project
    file_id, run, _ = finished
    other_file = upload(client, ITEMS[:1])
    r = http.post("/v1/evals/runs", json={"eval_file_id": other_file, "models": [CHAT],
                                          "graders": [{"type": "includes"}], "max_tokens": 4})
    assert r.status_code == 200, r.text
    second = wait_run(http, r.json()["id"])
    assert second["status"] == "succeeded" and second["summary"]["diff"] is None
    assert second["summary"]["n"] == 1
    ids = [x["id"] for x in http.get("/v1/evals/runs").json()["data"]]
    assert ids.index(second["id"]) < ids.index(run["id"])
    page = http.get("/v1/evals/runs", params={"limit": 1}).json()
    assert page["has_more"] is True and page["data"][0]["id"] == ids[0]
    after = http.get("/v1/evals/runs", params={"limit": 1, "after": ids[0]}).json()
    assert after["data"][0]["id"] == ids[1]
    filtered = [x["id"] for x in http.get("/v1/evals/runs", params={"eval_file_id": file_id}).json()["data"]]
    assert filtered == [run["id"]]


def test_other_projects_see_nothing(server, finished):
    file_id, run, _ = finished
    http = server.http(server.new_key(f"evals-other-{server.backend}"))
    for path in (f"/v1/evals/runs/{run['id']}", f"/v1/evals/runs/{run['id']}/items"):
        r = http.get(path)
        assert r.status_code == 404 and r.json()["error"]["type"] == "invalid_request_error", r.text
    assert http.get("/v1/evals/runs").json()["data"] == []
    r = http.post("/v1/evals/runs", json={"eval_file_id": file_id, "models": [CHAT], "graders": [{"type": "includes"}]})
    assert r.status_code == 404 and r.json()["error"]["param"] == "eval_file_id", r.text


def test_graders_list_every_registered_grader_with_its_schema(server, project):
    _, http = project
    body = http.get("/v1/evals/graders").json()
    graders = {g["type"]: g for g in body["data"]}
    assert body["object"] == "list" and set(graders) == set(registered())
    assert graders["regex"]["engine"] is None and graders["model_graded"]["engine"] == "chat"
    assert "pattern" in graders["regex"]["config_schema"]["required"]
    assert "schema" in graders["json_schema"]["config_schema"]["properties"]  # the alias a client writes
    assert httpx.get(f"{server.url}/v1/evals/graders", timeout=30).status_code == 401  # a key is needed


@pytest.mark.parametrize("change, status, param", [
    ({"graders": [{"type": "levenshtein"}]}, 400, "graders[0].type"),
    ({"graders": [{"type": "regex", "pattern": "(oops"}]}, 400, "graders[0].pattern"),
    ({"graders": [{"type": "includes", "case": True}]}, 400, "graders[0].case"),
    ({"graders": []}, 400, "graders"),
    ({"eval_file_id": "file-doesnotexist"}, 404, "eval_file_id"),
    ({"models": ["no-such-model"]}, 404, "models[0]"),
    ({"models": [CHAT, CHAT]}, 400, "models[1]"),
    ({"models": [{"model": CHAT, "sytem": "x"}]}, 400, "models[0]"),
    ({"graders": [{"type": "embedding", "model": CHAT}]}, 400, "graders[0].model"),
    ({"max_tokens": 0}, 400, "max_tokens"),
    ({"models": None}, 400, "models"),
])
def test_bad_requests(project, change, status, param):
    client, http = project
    body = {"eval_file_id": upload(client, ITEMS[:1]), "models": [CHAT], "graders": [{"type": "includes"}], **change}
    r = http.post("/v1/evals/runs", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"], error


def test_bad_files(project):
    client, http = project
    wrong_purpose = upload(client, ITEMS[:1], purpose="user_data")
    broken = upload(client, b'{"input": "ok", "ideal": "1"}\n\n{"input": 3}\n')
    for file_id, fragment in ((wrong_purpose, "purpose 'evals'"), (broken, "Line 3:")):
        r = http.post("/v1/evals/runs", json={"eval_file_id": file_id, "models": [CHAT],
                                              "graders": [{"type": "includes"}]})
        assert r.status_code == 400 and fragment in r.json()["error"]["message"], r.text
        assert r.json()["error"]["param"] == "eval_file_id"
    assert http.get("/v1/evals/runs/evalrun-nope").status_code == 404


def test_cli_run_show_list_plot(server, project, tmp_path):
    _, http = project
    local = tmp_path / "cli-set.jsonl"
    local.write_bytes(jsonl(ITEMS[:2]))
    name = f"evals-{server.backend}"
    key = server.new_key(name)  # the CLI is a client of the API: the key chooses the project
    out = server.cli("eval", "run", "--project", name, "--model", CHAT, "--model", json.dumps(TERSE),
                     "--set", str(local), "--grader", "includes", "--grader", '{"type": "regex", "pattern": "\\\\w"}',
                     "--max-tokens", "4", key=key).stdout
    run_id = out.strip().splitlines()[-1]
    run = http.get(f"/v1/evals/runs/{run_id}").json()  # the project's key sees what the CLI made
    assert run["status"] == "succeeded" and run["summary"]["n"] == 2
    assert "95% CI" in out and "terse" in out and run["eval_file_id"] in http.get("/v1/files").text
    shown = server.cli("eval", "show", run_id, "--project", name, key=key).stdout
    assert f"{run['summary']['diff']['mean']:+.3f}" in shown
    assert run_id in server.cli("eval", "list", "--project", name, key=key).stdout
    for args in ([run_id], ["--set", run["eval_file_id"]]):
        png = tmp_path / f"plot-{len(args)}.png"
        server.cli("eval", "plot", *args, "--project", name, "-o", str(png), key=key)
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    bad = server.cli("eval", "run", "--project", name, "--model", CHAT, "--set", str(local), "--grader", "nope",
                     key=key, check=False)
    assert bad.returncode == 2 and "graders[0].type" in bad.stderr


# ---------------------------------------------------------------------- resume (no server)


class CountingEngine:
    """Stands in for the chat replica in-process and dies on a chosen call: the crash of a
    job's process is what is simulated here (the live path is covered above)."""

    def __init__(self, die_at: int | None = None):
        self.calls, self.die_at = 0, die_at

    def generate(self, request):
        from rixin.engines.base import Chunk

        self.calls += 1
        if self.calls == self.die_at:
            raise KeyboardInterrupt("simulated crash of the job's process")
        return [Chunk(text=request.messages[-1]["content"].upper(), finish_reason="stop")]


def project_caller(platform, project: str):
    """A caller of `project` acting in-process (the CLI's own helper went with cli/client.py)."""
    from rixin.store.tenancy import Caller

    proj = platform.tenancy.ensure_project(project)
    return Caller(project_id=proj.id, project_name=proj.name, key_id="test", is_admin=True)


def upload_local(platform, caller, path, purpose: str):
    sha256, size = platform.artifacts.put_bytes(path.read_bytes())
    return platform.files.record(caller, filename=path.name, purpose=purpose, sha256=sha256, size=size)


def test_a_crashed_run_resumes_without_redoing_finished_shards(tmp_path, monkeypatch):
    import rixin.evals.job as job_module
    import rixin.serving.client as remote
    from rixin.config import Settings
    from rixin.evals.service import get_run, run_items, start_run
    from rixin.platform import Platform

    platform = Platform.open(Settings(data_dir=tmp_path / "data"))
    platform.registry.sync_bundled()
    caller = project_caller(platform, "resume")
    rows = [{"input": f"word {i}", "ideal": f"WORD {i}"} for i in range(5)]
    (tmp_path / "set.jsonl").write_bytes(jsonl(rows))
    file_id = upload_local(platform, caller, tmp_path / "set.jsonl", purpose="evals").id
    run = start_run(platform.evals, caller, models=[CHAT, {"model": CHAT, "name": "b", "system": "s"}],
                    eval_file_id=file_id, graders=[{"type": "exact_match"}], max_tokens=4)
    monkeypatch.setattr(job_module, "SHARD_SIZE", 2)  # 3 shards per model
    engine = CountingEngine(die_at=4)  # dies inside model a's second shard
    monkeypatch.setattr(remote, "connect", lambda *a, **k: engine)
    job = platform.jobs.claim(run.job_id)
    with pytest.raises(KeyboardInterrupt):
        job_module.run_eval(platform.evals, job, lambda **values: platform.jobs.progress(job.id, **values))
    shards = platform.work_dir / job.id / "shards"
    assert sorted(p.name for p in shards.glob("*.done")) == ["m0-00000.done"]
    assert get_run(platform.evals, caller, run.id).status == "running"

    engine = CountingEngine()
    monkeypatch.setattr(remote, "connect", lambda *a, **k: engine)
    result = job_module.run_eval(platform.evals, job, lambda **values: platform.jobs.progress(job.id, **values))
    assert engine.calls == 2 * len(rows) - 2  # the finished shard was not generated again
    assert platform.jobs.get(None, job.id).progress["shards_skipped"] == 1
    run = get_run(platform.evals, caller, run.id)
    assert run.status == "succeeded" and result["n"] == len(rows)
    assert run.summary["models"][CHAT]["mean"] == 1.0 and run.summary["models"]["b"]["mean"] == 1.0
    items, _ = run_items(platform.evals, caller, run.id)
    assert [it["outputs"]["b"]["output"] for it in items] == [f"WORD {i}" for i in range(len(rows))]
    assert run.summary["diff"]["ties"] == len(rows)


def test_run_inline_runs_the_job_in_this_thread(tmp_path, monkeypatch):
    import rixin.serving.client as remote
    from rixin.config import Settings
    from rixin.evals.service import run_inline, start_run
    from rixin.platform import Platform

    platform = Platform.open(Settings(data_dir=tmp_path / "data"))
    platform.registry.sync_bundled()
    caller = project_caller(platform, "inline")
    (tmp_path / "set.jsonl").write_bytes(jsonl([{"input": "abc", "ideal": "ABC"}, {"input": "x", "ideal": "no"}]))
    file_id = upload_local(platform, caller, tmp_path / "set.jsonl", purpose="evals").id
    run = start_run(platform.evals, caller, models=[CHAT], eval_file_id=file_id, graders=[{"type": "exact_match"}])
    monkeypatch.setattr(remote, "connect", lambda *a, **k: CountingEngine())
    run = run_inline(platform.evals, caller, run.id)
    assert run.status == "succeeded" and run.summary["models"][CHAT]["mean"] == 0.5
    assert platform.jobs.get(None, run.job_id).status == "succeeded"
