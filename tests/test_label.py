"""Automated labeling with the bundled models on a task whose answers are known (sentiment of
templated sentences): labels stay inside the label set, extraction answers validate against
the schema, confidences lie in [0, 1], the review queue holds exactly the items under the
threshold, reviews end in a new version; a kNN labeler from two seeds per label is accurate;
other projects see nothing; the CLI labels, is killed, resumes, and reviews."""

from __future__ import annotations

import io
import json
import os
import random
import re
import secrets
import signal
import subprocess
import time

import jsonschema
import pytest

from conftest import RIXIN, start_server, stop_server
from test_datasets import wait_job

LABELS = ["positive", "negative"]
THINGS = "movie restaurant book hotel concert phone meal game show trip album museum".split()
TEMPLATES = {
    "positive": ["I loved the {t}, it was wonderful.", "The {t} was fantastic and I enjoyed every minute.",
                 "What a great {t}, I am so happy with it."],
    "negative": ["The {t} was terrible and I hated it.", "I am very disappointed with the {t}, it was awful.",
                 "What a horrible {t}, I regret it."],
}
THRESHOLD = 0.6
FEW_SHOT = [{"input": "The dinner was lovely, I loved it.", "output": "positive"},
            {"input": "The service was bad and I hated it.", "output": "negative"}]
CLASSIFY = {"type": "classification", "name": "sentiment", "labels": LABELS, "few_shot": FEW_SHOT,
            "instruction": "Classify the sentiment of the text.", "confidence_threshold": THRESHOLD,
            "max_tokens": 16, "output_field": "sentiment"}
EXTRACT_SCHEMA = {"type": "object", "additionalProperties": False, "required": ["thing", "positive"],
                  "properties": {"thing": {"type": "string", "maxLength": 20}, "positive": {"type": "boolean"}}}
SEEDS = [{"text": "This is great, I really love it.", "label": "positive"},
         {"text": "Wonderful experience, I am delighted.", "label": "positive"},
         {"text": "This is awful, I really hate it.", "label": "negative"},
         {"text": "Terrible experience, I am disappointed.", "label": "negative"}]


def sentences(n: int, seed: int = 0) -> list[dict]:
    """Alternating positive/negative sentences; the known answer rides along in meta.truth."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        truth = LABELS[i % 2]
        text = rng.choice(TEMPLATES[truth]).format(t=rng.choice(THINGS))
        out.append({"text": text, "truth": truth})
    return out


def jsonl(rows: list[dict]) -> bytes:
    return "\n".join(json.dumps(r) for r in rows).encode()


@pytest.fixture(scope="module")
def project(server):
    key = server.new_key(f"label-{server.backend}")
    return server.client(key), server.http(key)


def make_dataset(project, name: str, rows: list[dict]) -> dict:
    client, http = project
    file_id = client.files.create(file=(f"{name}.jsonl", io.BytesIO(jsonl(rows))), purpose="user_data").id
    r = http.post("/v1/datasets", json={"name": name, "files": [file_id]})
    assert r.status_code == 200, r.text
    return r.json()


def run_label(http, dataset_id: str, task: dict, **body) -> dict:
    r = http.post(f"/v1/datasets/{dataset_id}/label", json={"task": task, **body})
    assert r.status_code == 200, r.text
    assert r.json()["kind"] == "label"
    job = wait_job(http, r.json()["id"])
    assert job["status"] == "succeeded", (job["error"], job["progress"])
    return job


def version_records(http, dataset_id: str, version: int) -> list[dict]:
    return http.get(f"/v1/datasets/{dataset_id}/versions/{version}/records", params={"limit": 1000}).json()["data"]


def all_review_items(http, **filters) -> list[dict]:
    """Every item, paging through with a small page size."""
    items, after = [], None
    while True:
        page = http.get("/v1/review_items", params={**filters, "limit": 7, **({"after": after} if after else {})})
        assert page.status_code == 200, page.text
        body = page.json()
        items += body["data"]
        if not body["has_more"]:
            return items
        after = body["last_id"]


@pytest.fixture(scope="module")
def sentiment(project):
    return make_dataset(project, "sentiment", sentences(40))


@pytest.fixture(scope="module")
def classified(project, sentiment):
    _, http = project
    job = run_label(http, sentiment["id"], CLASSIFY, shard_size=15)
    return job


def test_classification_labels_in_set_and_review_holds_exactly_the_unsure(project, sentiment, classified):
    _, http = project
    job = classified
    assert job["progress"]["shards_total"] == job["progress"]["shards_done"] == 3
    assert job["progress"]["items_done"] == 40
    version = http.get(f"/v1/datasets/{sentiment['id']}/versions/{job['result']['version']}").json()
    assert version["operation"] == "label" and version["parent_id"] == sentiment["versions"][0]["id"]
    labeled = version_records(http, sentiment["id"], version["version"])
    review = all_review_items(http, dataset_id=sentiment["id"], job_id=job["id"])
    for record in labeled:
        assert record["sentiment"] in LABELS
        assert THRESHOLD <= record["meta"]["label_confidence"] <= 1
    for item in review:
        assert item["status"] == "pending" and item["proposed_label"] in LABELS, item
        assert 0 <= item["confidence"] < THRESHOLD
    source_ids = {r["id"] for r in version_records(http, sentiment["id"], 1)}
    labeled_ids, review_ids = {r["id"] for r in labeled}, {i["record"]["id"] for i in review}
    assert labeled_ids.isdisjoint(review_ids) and labeled_ids | review_ids == source_ids
    assert len(review) == len(review_ids)  # no item queued twice
    assert labeled and review, "the threshold should split this task; confidences: " + json.dumps(
        sorted(round(r["meta"]["label_confidence"], 3) for r in labeled) + [i["confidence"] for i in review])
    report = version["report"]
    assert report["items_in"] == 40 and report["labeled"] == len(labeled) == version["records"]
    assert report["to_review"] == len(review) == job["result"]["to_review"]
    assert sum(report["labels"].values()) == 40 and sum(report["reasons"].values()) == 40


def test_review_accept_correct_reject_and_commit(project, sentiment, classified):
    _, http = project
    pending = all_review_items(http, job_id=classified["id"], status="pending")
    assert len(pending) >= 3
    first, second, third = pending[:3]

    accepted = http.post(f"/v1/review_items/{first['id']}/accept").json()
    assert accepted["status"] == "accepted" and accepted["final_label"] == first["proposed_label"]
    assert accepted["reviewed_at"] is not None
    r = http.post(f"/v1/review_items/{second['id']}/correct", json={"label": "neutral"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "label", r.text
    truth = second["record"]["meta"]["truth"]
    corrected = http.post(f"/v1/review_items/{second['id']}/correct", json={"label": truth}).json()
    assert corrected["status"] == "corrected" and corrected["final_label"] == truth
    assert http.post(f"/v1/review_items/{third['id']}/reject").json()["status"] == "rejected"
    for item, action, body in [(first, "accept", None), (second, "correct", {"label": truth}),
                               (third, "reject", None), (first, "reject", None)]:
        r = http.post(f"/v1/review_items/{item['id']}/{action}", json=body)
        assert r.status_code == 409 and r.headers["x-should-retry"] == "false", r.text
    assert [i["id"] for i in all_review_items(http, job_id=classified["id"], status="accepted")] == [first["id"]]
    assert http.get(f"/v1/review_items/{second['id']}").json()["status"] == "corrected"

    r = http.post(f"/v1/datasets/{sentiment['id']}/review/commit")
    assert r.status_code == 200, r.text
    committed = r.json()
    label_version = classified["result"]["version"]
    assert committed["operation"] == "review" and committed["version"] == label_version + 1
    records = version_records(http, sentiment["id"], committed["version"])
    base = version_records(http, sentiment["id"], label_version)
    assert records[:len(base)] == base and len(records) == len(base) + 2
    reviewed = {r["id"]: r for r in records[len(base):]}
    assert set(reviewed) == {first["record"]["id"], second["record"]["id"]}
    assert reviewed[first["record"]["id"]]["sentiment"] == first["proposed_label"]
    assert reviewed[second["record"]["id"]]["sentiment"] == truth
    assert all(r["meta"]["reviewed"] is True for r in reviewed.values())
    assert third["record"]["id"] not in {r["id"] for r in records}


def test_extraction_answers_validate_against_the_schema(project):
    _, http = project
    dataset = make_dataset(project, "extract", sentences(8, seed=1))
    task = {"type": "extraction", "json_schema": EXTRACT_SCHEMA, "confidence_threshold": 0.5, "max_tokens": 48,
            "instruction": "Extract what the text talks about and whether it is positive.",
            "few_shot": [{"input": "The dinner was lovely, I loved it.", "output": {"thing": "dinner", "positive": True}},
                         {"input": "The service was bad and I hated it.", "output": {"thing": "service", "positive": False}}]}
    job = run_label(http, dataset["id"], task)
    labeled = version_records(http, dataset["id"], job["result"]["version"])
    review = all_review_items(http, job_id=job["id"])
    assert len(labeled) + len(review) == 8
    for answer, confidence in [(r["label"], r["meta"]["label_confidence"]) for r in labeled] + [
            (i["proposed_label"], i["confidence"]) for i in review]:
        jsonschema.validate(answer, EXTRACT_SCHEMA)
        assert 0 <= confidence <= 1
    if review:  # a correction is checked against the schema too
        r = http.post(f"/v1/review_items/{review[0]['id']}/correct", json={"label": {"thing": 3}})
        assert r.status_code == 400 and r.json()["error"]["param"] == "label"


def test_knn_from_two_seeds_per_label_is_accurate(project, sentiment):
    _, http = project
    task = {"type": "knn", "labels": LABELS, "seeds": SEEDS, "k": 3, "confidence_threshold": 0.7}
    job = run_label(http, sentiment["id"], task, version=1)
    labeled = version_records(http, sentiment["id"], job["result"]["version"])
    review = all_review_items(http, job_id=job["id"])
    answers = [(r["label"], r["meta"]["label_confidence"], r["meta"]["truth"]) for r in labeled]
    answers += [(i["proposed_label"], i["confidence"], i["record"]["meta"]["truth"]) for i in review]
    assert len(answers) == 40
    assert all(label in LABELS and 0 <= c <= 1 for label, c, _ in answers)
    assert all(c >= 0.7 for _, c, _ in answers[:len(labeled)]) and all(c < 0.7 for _, c, _ in answers[len(labeled):])
    accuracy = sum(label == truth for label, _, truth in answers) / len(answers)
    assert accuracy >= 0.8, answers


def test_bad_task_specs_are_400_naming_the_field(project, sentiment):
    _, http = project
    url = f"/v1/datasets/{sentiment['id']}/label"
    cases = [({**CLASSIFY, "labelz": LABELS}, "task.labelz"),
             ({**CLASSIFY, "few_shot": [{"input": "x", "output": "meh"}]}, "task.few_shot[0].output"),
             ({"type": "knn", "labels": LABELS, "seeds": SEEDS[:2]}, "task.seeds"),
             ({"type": "extraction", "json_schema": {"type": "string"}}, "task.json_schema.type"),
             ({**CLASSIFY, "confidence_threshold": 1.5}, "task.confidence_threshold")]
    for task, param in cases:
        r = http.post(url, json={"task": task})
        assert r.status_code == 400 and r.json()["error"]["param"] == param, (param, r.text)
    r = http.post(url, json={"task": {**CLASSIFY, "model": "no-such-model"}})
    assert r.status_code == 404 and r.json()["error"]["param"] == "task.model", r.text
    r = http.post(url, json={"task": {**CLASSIFY, "model": "all-minilm-l6-v2"}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "task.model", r.text
    r = http.post(url, json={})
    assert r.status_code == 400 and r.json()["error"]["param"] == "task", r.text
    r = http.get("/v1/review_items", params={"status": "done"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "status", r.text


def test_other_projects_get_404(server, project, sentiment, classified):
    _, http = project
    item = all_review_items(http, job_id=classified["id"])[0]
    with server.http(server.new_key("label-stranger")) as other:
        assert other.get(f"/v1/review_items/{item['id']}").status_code == 404
        for action, body in [("accept", None), ("reject", None), ("correct", {"label": "positive"})]:
            assert other.post(f"/v1/review_items/{item['id']}/{action}", json=body).status_code == 404
        assert other.get("/v1/review_items", params={"dataset_id": sentiment["id"]}).status_code == 404
        assert other.get("/v1/review_items", params={"job_id": classified["id"]}).status_code == 404
        assert other.get("/v1/review_items").json()["data"] == []
        assert other.post(f"/v1/datasets/{sentiment['id']}/label", json={"task": CLASSIFY}).status_code == 404
        assert other.post(f"/v1/datasets/{sentiment['id']}/review/commit").status_code == 404
    assert http.get(f"/v1/review_items/{item['id']}").json()["status"] in ("pending", "accepted", "corrected",
                                                                         "rejected")


# ---------------------------------------------------------------------- the CLI, killed and resumed


def kill_when_some_shards_are_done(cli, log_path, data, gateway) -> tuple[str, set[str], int]:
    """Kill the gateway's whole process group (Ray included) once 1..half of the shards of the
    job that `cli` follows are done."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and cli.poll() is None:
        found = re.search(r"labeling job (\S+)", log_path.read_text())
        if found:
            shards = data / "jobs" / found.group(1) / "shards"
            split = shards / "split.done"
            total = int(split.read_text()) if split.exists() else 0
            done = {p.name for p in shards.glob("[0-9]*.done")} if shards.exists() else set()
            if total and 1 <= len(done) <= total // 2:
                os.killpg(gateway.process.pid, signal.SIGKILL)
                gateway.process.wait(30)
                return found.group(1), {p.name.split(".")[0] for p in shards.glob("[0-9]*.done")}, total
        time.sleep(0.05)
    raise AssertionError(f"could not kill mid-run:\n{log_path.read_text()}")


def test_cli_labels_resumes_after_kill_and_reviews(tmp_path):
    """`rixin label` submits to the gateway and follows; the gateway killed mid-job resumes it at
    its next start, and `--resume JOB` follows it to the end without relabeling finished shards."""
    data, admin = tmp_path / "data", "rx-admin-" + secrets.token_hex(8)
    first = start_server(data, admin_key=admin)
    key = first.new_key("p")
    corpus = tmp_path / "reviews.jsonl"
    corpus.write_bytes(jsonl(sentences(8, seed=2)))
    dataset = first.cli("data", "create", "reviews", str(corpus), key=key).stdout.strip().splitlines()[-1]
    spec = tmp_path / "spec.yaml"
    spec.write_text(json.dumps(CLASSIFY))  # JSON is YAML

    log_path = tmp_path / "label.log"
    cli = subprocess.Popen([RIXIN, "label", dataset, "--task", str(spec), "--project", "p", "--shard-size", "2"],
                           stdout=log_path.open("w"), stderr=subprocess.STDOUT, env=first.cli_env(key))
    try:
        job_id, done_at_kill, total = kill_when_some_shards_are_done(cli, log_path, data, first)
        assert cli.wait(60) == 2 and "rixin up" in log_path.read_text()  # the gateway is gone, said clearly
    finally:
        stop_server(first)
        if cli.poll() is None:
            cli.kill()
    second = start_server(data, admin_key=admin)
    try:
        check_resumed_and_review(second, key, dataset, job_id, done_at_kill, total)
    finally:
        stop_server(second)


def check_resumed_and_review(server, key, dataset, job_id, done_at_kill, total) -> None:
    def rixin(*args):
        return server.cli(*args, key=key, check=False)

    resumed = rixin("label", dataset, "--project", "p", "--resume", job_id)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "labeled 8 items" in resumed.stdout
    data = server.data_dir
    runs = [line.split()[0] for line in (data / "jobs" / job_id / "processed.log").read_text().splitlines()]
    assert sorted(set(runs)) == [f"{i:05d}" for i in range(total)]
    assert all(runs.count(name) == 1 for name in done_at_kill), "a finished shard was labeled again"

    listed = rixin("label", "review", "list", "--project", "p", "--status", "pending", "--limit", "100")
    assert listed.returncode == 0, listed.stderr
    pending = re.findall(r"rev-[0-9a-f]{16}", listed.stdout)
    assert pending, listed.stdout
    bad = rixin("label", "review", "correct", pending[0], "--label", "meh", "--project", "p")
    assert bad.returncode == 2 and "label" in bad.stderr
    accepted = rixin("label", "review", "accept", pending[0], "--project", "p")
    assert accepted.returncode == 0 and "accepted" in accepted.stdout, accepted.stderr
    again = rixin("label", "review", "reject", pending[0], "--project", "p")
    assert again.returncode == 2 and "already reviewed" in again.stderr
    committed = rixin("label", "review", "commit", dataset, "--project", "p")
    assert committed.returncode == 0, committed.stderr
    assert committed.stdout.strip().splitlines()[-1] == "3"  # v1 create, v2 label, v3 review
