"""The flywheel end to end on the bundled model (SQLite, a server of its own): traffic through a
deployment with the openai client, corrections as feedback, one turn → fine-tuned from the
deployed model, evaluated against it, promoted, and the name now answers correctly; a second
turn on useless feedback is NOT promoted and says why. Also the export's shapes and isolation."""

from __future__ import annotations

import io
import json
import secrets
import time

import pytest

from conftest import CHAT, start_server, stop_server

pytestmark = pytest.mark.timeout(4800)

QUESTIONS = ["What is the capital of Zorbania?", "Which city is the capital of Zorbania?",
             "Tell me the capital of Zorbania.", "Zorbania's capital is which city?",
             "Do you know the capital city of Zorbania?", "Name the capital of Zorbania.",
             "What city is Zorbania's capital?", "In Zorbania, what is the capital?",
             "Where is the capital of Zorbania?", "Zorbania has which capital?",
             "What's Zorbania's capital city?", "Capital of Zorbania?",
             "Can you tell me Zorbania's capital?", "Which is the capital city of Zorbania?",
             "What do they call the capital of Zorbania?", "Zorbania: what is its capital?"]
ANSWER = "The capital of Zorbania is Quenlit."
FIRST_HP = {"n_epochs": 15, "batch_size": 8, "learning_rate_multiplier": 0.333, "packing": False, "replay": 0,
            "max_seq_length": 128}  # 16 examples / 8 x 15 = 30 steps, as in test_fine_tuning.py


@pytest.fixture(scope="module")
def fly(tmp_path_factory):
    srv = start_server(tmp_path_factory.mktemp("rixin-flywheel"), admin_key="rx-admin-" + secrets.token_hex(8))
    a, b = srv.new_key("fly-a"), srv.new_key("fly-b")
    yield srv, a, b
    stop_server(srv)


def ask(client, model: str, question: str = QUESTIONS[0]):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                          max_tokens=16, temperature=0)


def wait_turn(http, turn_id: str, timeout: float = 3600) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        turn = http.get(f"/v1/deployments/support-bot/flywheel/turns/{turn_id}").json()
        if turn["status"] != "running":
            return turn
        time.sleep(2)
    raise AssertionError(f"turn {turn_id} still running: {turn}")


def feedback(http, completion_id: str, **body) -> None:
    r = http.post("/v1/feedback", json={"completion_id": completion_id, **body})
    assert r.status_code == 200, r.text


@pytest.fixture(scope="module")
def deployed(fly):
    srv, a, _ = fly
    client, http = srv.client(a), srv.http(a)
    evals = [{"input": q, "ideal": "Quenlit"} for q in QUESTIONS[::2]]  # 8 items keep the eval short
    eval_file = client.files.create(file=("zorbania.jsonl", io.BytesIO(
        "\n".join(json.dumps(e) for e in evals).encode())), purpose="evals")
    r = http.post("/v1/deployments", json={"name": "support-bot", "model": CHAT, "flywheel": {
        "eval_file_id": eval_file.id, "graders": [{"type": "includes"}], "margin": 0.5, "min_examples": 10, "eval_max_tokens": 16,
        "hyperparameters": FIRST_HP}})
    assert r.status_code == 200, r.text
    return client, http


def test_export_shapes_and_isolation(fly, deployed):
    """A correction → supervised, a preferred answer → a preference pair, a good score →
    the logged answer; duplicates removed; project b can export nothing of a's."""
    srv, _, b = fly
    client, http = deployed
    r1, r2, r3 = (ask(client, "support-bot", q) for q in ("Say hi.", "Say hi.", "Name a fruit."))
    feedback(http, r1.id, correction="Hi there!")
    feedback(http, r2.id, correction="Hi there!")  # the same example again: deduplicated
    feedback(http, r3.id, preferred="Apple.")
    feedback(http, r3.id, score=5)
    since = int(time.time()) - 120
    out = http.post("/v1/deployments/support-bot/flywheel/export", json={"since": since}).json()
    assert out["supervised_examples"] == 2 and out["preference_pairs"] == 1, out
    counts = out["report"]["counts"]
    assert counts["corrections"] == 2 and counts["well_rated"] == 1 and counts["removed_duplicates"] == 1
    sft = [json.loads(x) for x in client.files.content(out["supervised_file_id"]).text.splitlines()]
    assert {"messages": [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi there!"}]} in sft
    pref = json.loads(client.files.content(out["preference_file_id"]).text)
    assert pref["preferred_output"] == [{"role": "assistant", "content": "Apple."}]
    assert pref["non_preferred_output"][0]["content"] == r3.choices[0].message.content
    version = http.get(f"/v1/datasets/{out['dataset_id']}").json()["versions"][-1]
    assert version["id"] == out["dataset_version_id"] and version["records"] == 3
    with srv.http(b) as other:
        assert other.post("/v1/deployments/support-bot/flywheel/export").status_code == 404
        assert other.get("/v1/deployments/support-bot/flywheel/turns").status_code == 404
        assert other.post("/v1/feedback", json={"completion_id": r1.id, "thumb": "up"}).status_code == 404
    # this feedback is not about Zorbania: clear it from the first turn's window
    for fid in [f["completion_id"] for f in http.get("/v1/feedback").json()["data"]]:
        http.delete(f"/v1/chat/completions/{fid}")


def test_a_turn_promotes_and_a_useless_turn_does_not(fly, deployed):
    srv, _, _ = fly
    client, http = deployed
    assert all("Quenlit" not in (ask(client, "support-bot", q).choices[0].message.content or "")
               for q in QUESTIONS[:2])
    for question in QUESTIONS:  # traffic through the name, each answer corrected
        answer = ask(client, "support-bot", question)
        assert answer.model == "support-bot"
        feedback(http, answer.id, thumb="down", correction=ANSWER)

    first = http.post("/v1/deployments/support-bot/flywheel/turns")
    assert first.status_code == 200, first.text
    assert http.post("/v1/deployments/support-bot/flywheel/turns").status_code == 409  # one at a time
    turn = wait_turn(http, first.json()["id"])
    assert turn["status"] == "promoted", turn
    candidate = turn["candidate_model"]
    assert candidate.startswith(f"ft:{CHAT}:fly-a:fw-support-bot:") and turn["current_model"] == CHAT
    assert turn["decision"]["diff"]["mean"] >= 0.5 and turn["decision"]["scores"][candidate] > 0.5
    assert turn["dataset_version_id"] and turn["fine_tune_job_id"] and turn["eval_run_id"]
    job = client.fine_tuning.jobs.retrieve(turn["fine_tune_job_id"])
    assert job.model == CHAT and job.fine_tuned_model == candidate
    deployment = http.get("/v1/deployments/support-bot").json()
    assert deployment["model"] == candidate
    change = http.get("/v1/deployments/support-bot/changes").json()["data"][-1]
    assert change["action"] == "promote" and change["actor"] == f"flywheel:{turn['id']}"
    assert change["from_model"] == CHAT and change["to_model"] == candidate
    assert "Quenlit" in ask(client, "support-bot").choices[0].message.content

    # turn 2: useless feedback (unrelated chit-chat, a few steps) must not pass the gate
    r = http.post("/v1/deployments/support-bot", json={"flywheel": {**deployment["flywheel"], "hyperparameters": {
        **FIRST_HP, "n_epochs": 1}}})
    assert r.status_code == 200, r.text
    for i in range(12):
        answer = ask(client, "support-bot", f"Say the number {i}.")
        feedback(http, answer.id, correction=f"Number {i}.")
    second = wait_turn(http, http.post("/v1/deployments/support-bot/flywheel/turns").json()["id"])
    assert second["status"] == "kept", second
    assert second["current_model"] == candidate and second["candidate_model"] != candidate
    assert second["decision"]["promote"] is False and "margin" in second["decision"]["why"]
    assert second["decision"]["export"]["supervised_examples"] == 12  # only feedback after turn 1
    assert http.get("/v1/deployments/support-bot").json()["model"] == candidate
    turns = http.get("/v1/deployments/support-bot/flywheel/turns").json()["data"]
    assert [t["status"] for t in turns] == ["kept", "promoted"]


@pytest.mark.parametrize("diff, settings, promote, says", [
    ({"mean": 0.6, "ci_low": 0.2}, {"margin": 0.5}, True, ">= margin"),
    ({"mean": 0.5, "ci_low": -0.1}, {"margin": 0.5}, True, ">= margin"),  # the margin itself passes
    ({"mean": 0.49, "ci_low": 0.1}, {"margin": 0.5}, False, "< margin"),
    ({"mean": 0.0, "ci_low": -0.2}, {}, True, ">= margin"),  # margin 0: a tie promotes
    ({"mean": -0.01, "ci_low": -0.2}, {}, False, "< margin"),
    ({"mean": 0.3, "ci_low": 0.0}, {"margin": 0.1, "require_ci": True}, False, "lower bound"),
    ({"mean": 0.3, "ci_low": 0.05}, {"margin": 0.1, "require_ci": True}, True, "CI low"),
    (None, {}, False, "no difference"),
])
def test_gate(diff, settings, promote, says):
    from rixin.serving.deployments import FlywheelSettings
    from rixin.flywheel.turn import gate

    summary = {"models": {"a": {"mean": 0.2}, "b": {"mean": 0.8}}, "diff": diff}
    verdict = gate(summary, FlywheelSettings(**settings))
    assert verdict["promote"] is promote and says in verdict["why"]
    assert verdict["scores"] == {"a": 0.2, "b": 0.8}
