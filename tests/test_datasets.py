"""Datasets from uploaded files, immutable versions, paged records, and cleaning through
the HTTP API (a job on Ray Data) with its report."""

from __future__ import annotations

import io
import json
import random
import time

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

CHAT = [{"messages": [{"role": "user", "content": f"Question {i}?"},
                      {"role": "assistant", "content": f"Answer number {i}."}]} for i in range(5)]
WORDS = ("river mill farmer grain town scientist lake morning bakery corner bread village summer "
         "water library history engineering volunteer tree road school market bridge harbour ship "
         "mountain forest garden kitchen museum painter letter station train winter festival music "
         "teacher student doctor patient engine bicycle island weather storm harvest orchard").split()
VERBS = "visits builds measures paints carries studies repairs watches finds sells opens crosses".split()


def paragraph(i: int) -> str:
    """A distinct, well-formed paragraph (passes the default quality thresholds)."""
    rng = random.Random(i)
    sentences = [f"The {rng.choice(WORDS)} {rng.choice(VERBS)} the {rng.choice(WORDS)} near the "
                 f"{rng.choice(WORDS)} and the {rng.choice(WORDS)}." for _ in range(8)]
    return " ".join(sentences)


def upload(client, name: str, data: bytes, purpose: str = "user_data") -> str:
    return client.files.create(file=(name, io.BytesIO(data)), purpose=purpose).id


def wait_job(http, job_id: str, timeout: float = 300) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = http.get(f"/v1/jobs/{job_id}").json()
        if job["status"] in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(0.5)
    raise AssertionError(f"job {job_id} did not finish: {job}")


@pytest.fixture(scope="module")
def project(server):
    key = server.new_key(f"data-{server.backend}")
    return key, server.client(key), server.http(key)


def test_dataset_from_every_file_type(project):
    _, client, http = project
    table = pa.table({"prompt": ["p1", "p2"], "completion": ["c1", "c2"]})
    sink = io.BytesIO()
    pq.write_table(table, sink)
    files = [
        upload(client, "chat.jsonl", "\n".join(json.dumps(r) for r in CHAT).encode()),
        upload(client, "pc.csv", b"prompt,completion\nhello,world\nfoo,bar\n"),
        upload(client, "pc.parquet", sink.getvalue()),
        upload(client, "notes.txt", b"First paragraph.\n\nSecond paragraph.\n"),
        upload(client, "readme.md", b"# Title\n\nSome *markdown* text.\n"),
    ]
    r = http.post("/v1/datasets", json={"name": "mixed", "files": files})
    assert r.status_code == 200, r.text
    dataset = r.json()
    assert [v["version"] for v in dataset["versions"]] == [1]
    v1 = dataset["versions"][0]
    assert v1["records"] == 5 + 2 + 2 + 2 + 2 and v1["format"] == "mixed" and v1["operation"] == "create"
    assert v1["report"]["records_per_format"] == {"chat": 5, "prompt_completion": 4, "text": 4}
    page = http.get(f"/v1/datasets/{dataset['id']}/versions/1/records", params={"offset": 5, "limit": 3}).json()
    assert page["total"] == 13 and [r["prompt"] for r in page["data"][:2]] == ["hello", "foo"]
    assert page["data"][0]["id"].startswith(files[1])


@pytest.mark.parametrize("name, data, param", [
    ("data.xml", b"<a/>", "files"),
    ("bad.jsonl", b'{"messages": []}\n{not json}\n', "files"),
    ("cols.csv", b"a,b\n1,2\n", "files"),
])
def test_bad_files_are_400(project, name, data, param):
    _, client, http = project
    r = http.post("/v1/datasets", json={"name": "bad", "files": [upload(client, name, data)]})
    assert r.status_code == 400 and r.json()["error"]["param"] == param, r.text


def test_other_projects_files_and_datasets_are_404(server, project):
    _, client, http = project
    file_id = upload(client, "own.txt", b"mine")
    dataset = http.post("/v1/datasets", json={"name": "own", "files": [file_id]}).json()
    with server.http(server.new_key("data-stranger")) as other:
        assert other.post("/v1/datasets", json={"name": "x", "files": [file_id]}).status_code == 404
        assert other.get(f"/v1/datasets/{dataset['id']}").status_code == 404
        assert other.get(f"/v1/datasets/{dataset['id']}/versions/1/records").status_code == 404
        assert other.post(f"/v1/datasets/{dataset['id']}/clean", json={}).status_code == 404
        assert dataset["id"] not in [d["id"] for d in other.get("/v1/datasets").json()["data"]]


def test_clean_through_the_api_makes_a_new_version_with_a_report(project):
    _, client, http = project
    docs = [paragraph(i) for i in range(40)]
    docs += [docs[3].upper().replace(" ", "  "), docs[7]]                      # exact duplicates
    words = docs[10].split()
    docs += [" ".join(words[:-3] + ["and", "then", "rested."])]                 # a near duplicate
    docs += ["$$$ ### @@@ %%% !!! ***" * 5, "too short"]                      # junk
    docs += [paragraph(50) + " Write to jane.doe@example.com or call +44 20 7946 0958."]
    text = "\n\n".join(docs).encode()
    dataset = http.post("/v1/datasets", json={"name": "corpus", "files": [upload(client, "c.txt", text)]}).json()
    job = http.post(f"/v1/datasets/{dataset['id']}/clean", json={"recipe": "default"}).json()
    assert job["status"] in ("queued", "running") and job["kind"] == "clean"
    job = wait_job(http, job["id"])
    assert job["status"] == "succeeded", job
    assert job["progress"]["shards_done"] == job["progress"]["shards_total"] >= 1
    v2 = http.get(f"/v1/datasets/{dataset['id']}/versions/2").json()
    assert v2["parent_id"] == dataset["versions"][0]["id"] and v2["operation"] == "clean"
    report = v2["report"]
    assert report["documents_in"] == len(docs) and report["documents_out"] == v2["records"]
    assert report["removed"].get("exact_duplicate") == 2
    assert report["removed"].get("near_duplicate") == 1
    assert sum(report["removed"].values()) == len(docs) - v2["records"]
    assert report["redactions"].get("email") == 1 and report["redactions"].get("phone") == 1
    for reason, samples in report["samples"].items():
        assert samples and all("@example.com" not in s["text"] for s in samples), reason
    records = http.get(f"/v1/datasets/{dataset['id']}/versions/2/records", params={"limit": 1000}).json()["data"]
    joined = "\n".join(r["text"] for r in records)
    assert "jane.doe@example.com" not in joined and "<EMAIL>" in joined


def test_recipe_errors_are_400_naming_the_field(project):
    _, client, http = project
    dataset = http.post("/v1/datasets", json={"name": "r", "files": [upload(client, "r.txt", b"x")]}).json()
    r = http.post(f"/v1/datasets/{dataset['id']}/clean", json={"recipe": {"quality": {"min_wordz": 3}}})
    assert r.status_code == 400 and r.json()["error"]["param"] == "quality.min_wordz", r.text
    r = http.post(f"/v1/datasets/{dataset['id']}/clean", json={"recipe": "no-such-recipe"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "recipe"
