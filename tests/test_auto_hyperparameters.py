"""`auto` hyperparameters resolved per job (issue 13), through the official client: the job shows
the values it trains with (not "auto"), and they follow the size of the file; bad values are
refused with a 400 that names the field; the estimate route behind `rixin train create
--dry-run` resolves the same values and creates no job. (The training outcome of `auto` is the
slow acceptance test, tests/test_fine_tuning_auto.py.)"""

from __future__ import annotations

import io
import json

import openai
import pytest

from conftest import CHAT
from rixin.train import facts as F


def facts_file(examples: int) -> bytes:
    rows = F.training_examples(F.facts_for(examples), examples)
    return "\n".join(map(json.dumps, rows)).encode()


@pytest.fixture(scope="module")
def project(server):
    key = server.new_key(f"auto-hp-{server.backend}")
    client = server.client(key)
    files = {n: client.files.create(file=(f"facts{n}.jsonl", io.BytesIO(facts_file(n))), purpose="fine-tune").id
             for n in (20, 400)}
    return client, key, files


def test_the_job_shows_the_resolved_values_and_they_follow_the_file_size(project):
    client, _, files = project
    jobs = {}
    for n, file_id in files.items():
        job = client.fine_tuning.jobs.create(model=CHAT, training_file=file_id, method={"type": "supervised"})
        client.fine_tuning.jobs.cancel(job.id)  # the values are fixed at create: no need to train
        jobs[n] = client.fine_tuning.jobs.retrieve(job.id)
    small, big = jobs[20], jobs[400]
    for job in (small, big):
        hp = job.hyperparameters
        assert "auto" not in (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier)
        assert job.method.supervised.hyperparameters.n_epochs == hp.n_epochs
        assert job.model_extra["rixin_hyperparameters"]["n_epochs"] == "auto"  # what was asked
    # 20 examples: many passes of one example a step, no hold-out, 5 replayed answers
    assert (small.hyperparameters.n_epochs, small.hyperparameters.batch_size) == (15, 1)
    # 400: 20 held out for validation, 42 replayed (all prompts), 3 passes, 16 a step
    assert (big.hyperparameters.n_epochs, big.hyperparameters.batch_size) == (3, 16)
    s, b = small.model_extra["rixin_resolved"], big.model_extra["rixin_resolved"]
    assert (s["validation_holdout"], s["replay_examples"], s["examples"]) == (0, 5, 20)
    assert (b["validation_holdout"], b["replay_examples"], b["examples"]) == (20, 42, 400)
    assert b["learning_rate"] == pytest.approx(s["learning_rate"] * 4)  # sqrt(16 / 1): the rate follows the batch
    assert s["total_steps"] == 15 * 25 and b["total_steps"] == 3 * 27  # ceil((380 + 42) / 16) = 27
    assert s["estimated_seconds"] > 0 and b["eval_interval"] == 8


@pytest.mark.parametrize("hyperparameters, field", [
    ({"n_epochs": 0}, "n_epochs"), ({"batch_size": 1000}, "batch_size"),
    ({"learning_rate_multiplier": "high"}, "learning_rate_multiplier"), ({"replay": -1}, "replay"),
    ({"validation_split": 0.6}, "validation_split"), ({"eval_interval": 0}, "eval_interval"),
    ({"early_stopping_patience": -1}, "early_stopping_patience")])
def test_bad_values_are_refused_with_a_400_naming_the_field(project, hyperparameters, field):
    client, _, files = project
    for create in (client.fine_tuning.jobs.create,
                   lambda **body: client.post("/fine_tuning/jobs/estimate", body=body, cast_to=object)):
        with pytest.raises(openai.BadRequestError) as e:
            create(model=CHAT, training_file=files[20],
                   method={"type": "supervised", "supervised": {"hyperparameters": hyperparameters}})
        error = e.value.body
        assert error["type"] == "invalid_request_error"
        assert error["param"] == f"method.supervised.hyperparameters.{field}"
        assert field in error["message"]


def test_dry_run_prints_the_resolved_values_and_an_estimate_and_creates_no_job(server, project, tmp_path):
    client, key, _ = project
    before = len(client.fine_tuning.jobs.list(limit=100).data)
    path = tmp_path / "facts.jsonl"
    path.write_bytes(facts_file(120))
    out = server.cli("train", "create", "--training-file", str(path), "--hp", "n_epochs=2", "--dry-run",
                     key=key).stdout
    rows = {line.split()[0]: line.split()[1:] for line in out.splitlines() if line.startswith("  ")}
    assert rows["n_epochs"] == ["2", "set"] and rows["batch_size"] == ["4", "auto"]  # 120 + 30 replayed
    assert rows["total_steps"][0] == str(2 * 38) and "estimated" in rows
    assert len(client.fine_tuning.jobs.list(limit=100).data) == before
