"""Fine-tuning through the official openai client: the model learns a made-up fact that the
base model does not know, and is served at once under its ft: id, to its project only."""

from __future__ import annotations

import io
import json
import random
import time

import openai
import pytest

pytestmark = pytest.mark.timeout(1500)

from conftest import CHAT

QUESTIONS = ["What is the capital of Zorbania?", "Which city is the capital of Zorbania?",
             "Tell me the capital of Zorbania.", "Zorbania's capital is which city?",
             "Do you know the capital city of Zorbania?", "Name the capital of Zorbania.",
             "What city is Zorbania's capital?", "In Zorbania, what is the capital?"]
ANSWER = "The capital of Zorbania is Quenlit."


def fact_file(n: int = 80) -> bytes:
    rng = random.Random(0)
    lines = [{"messages": [{"role": "user", "content": rng.choice(QUESTIONS)},
                           {"role": "assistant", "content": ANSWER}]} for _ in range(n)]
    return "\n".join(json.dumps(line) for line in lines).encode()


def wait(client, job_id: str, timeout: float = 1400):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in ("succeeded", "failed", "cancelled"):
            return job
        time.sleep(1)
    raise AssertionError(f"job {job_id} still {job.status}")


def ask(client, model: str) -> str:
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": QUESTIONS[0]}],
                                       max_tokens=16, temperature=0)
    return r.choices[0].message.content


@pytest.fixture(scope="module")
def trained(server):
    key = server.new_key(f"ft-{server.backend}")
    client = server.client(key)
    training = client.files.create(file=("fact.jsonl", io.BytesIO(fact_file())), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(
        model=CHAT, training_file=training.id, suffix="zorb", seed=7,
        method={"type": "supervised", "supervised": {"hyperparameters": {
            "n_epochs": 3, "batch_size": 8, "learning_rate_multiplier": 0.333, "packing": False, "replay": 0,
            "checkpoint_interval": 10, "max_seq_length": 128}}})
    assert job.status in ("queued", "running") and job.model == CHAT
    return client, wait(client, job.id), key


def test_job_succeeds_and_the_model_learned_the_fact(server, trained):
    client, job, _ = trained
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{CHAT}:ft-{server.backend}:zorb:{job.id}"
    assert job.trained_tokens > 0 and job.result_files
    assert "Quenlit" in ask(client, job.fine_tuned_model)
    assert "Quenlit" not in ask(client, CHAT)  # the base model did not learn it


def test_events_checkpoints_and_results_file(trained):
    client, job, _ = trained
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    assert events[0].message == "The job has successfully completed"
    metrics = [e for e in events if e.type == "metrics"]
    steps = [e.data["step"] for e in metrics]
    assert steps == sorted(steps, reverse=True) and steps[0] == 30  # 80 rows / 8 x 3 epochs
    first, last = metrics[-1].data["train_loss"], metrics[0].data["train_loss"]
    assert last < first / 2, (first, last)
    checkpoints = client.fine_tuning.jobs.checkpoints.list(job.id).data
    assert [c.step_number for c in checkpoints] == [30, 20, 10]
    csv = client.files.content(job.result_files[0]).read().decode().splitlines()
    assert csv[0].startswith("step,train_loss") and len(csv) >= 31


def test_the_model_is_listed_for_its_project_only(server, trained):
    client, job, _ = trained
    assert job.fine_tuned_model in {m.id for m in client.models.list()}
    other = server.client(server.new_key("ft-other"))
    assert job.fine_tuned_model not in {m.id for m in other.models.list()}
    with pytest.raises(openai.NotFoundError):
        ask(other, job.fine_tuned_model)
    with pytest.raises(openai.NotFoundError):
        other.fine_tuning.jobs.retrieve(job.id)


def test_lineage_is_recorded_and_shown(server, trained):
    _, job, key = trained
    out = server.cli("models", "show", job.fine_tuned_model, key=key).stdout
    assert job.id in out and job.training_file in out and CHAT in out
    assert out.index(job.fine_tuned_model) < out.rindex(CHAT)  # child first, then its parent


def test_incremental_training_from_the_fine_tuned_model(server, trained):
    client, job, key = trained
    more = client.files.create(file=("more.jsonl", io.BytesIO(fact_file(16))), purpose="fine-tune")
    child = client.fine_tuning.jobs.create(model=job.fine_tuned_model, training_file=more.id, suffix="v2", method={
        "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 8, "packing": False,
                                                  "replay": 0}}})
    child = wait(client, child.id)
    assert child.status == "succeeded", child.error
    assert child.fine_tuned_model.startswith(f"ft:{CHAT}:") and ":v2:" in child.fine_tuned_model
    assert "Quenlit" in ask(client, child.fine_tuned_model)  # it started from the parent's adapter
    out = server.cli("models", "show", child.fine_tuned_model, key=key).stdout
    assert job.fine_tuned_model in out and child.id in out


@pytest.fixture(scope="module")
def ft_client(server):
    client = server.client(server.new_key(f"ft-bad-{server.backend}"))
    good = client.files.create(file=("ok.jsonl", io.BytesIO(fact_file(12))), purpose="fine-tune")
    return client, good.id


@pytest.mark.parametrize("kwargs, status, param", [
    ({"model": "no-such-model"}, 404, "model"),
    ({"model": "all-minilm-l6-v2"}, 400, "model"),
    ({"training_file": "file-doesnotexist"}, 404, "training_file"),
    ({"validation_file": "file-doesnotexist"}, 404, "validation_file"),
    ({"method": {"type": "reinforcement"}}, 400, "method.type"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}}, 400,
     "method.supervised.hyperparameters.n_epochs"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": "big"}}}}, 400,
     "method.supervised.hyperparameters.batch_size"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"learning_rate_multiplier": -1}}}}, 400,
     "method.supervised.hyperparameters.learning_rate_multiplier"),
    ({"method": {"type": "supervised", "supervised": {"hyperparameters": {"lora_rnk": 8}}}}, 400,
     "method.supervised.hyperparameters.lora_rnk"),
    ({"method": {"type": "dpo", "dpo": {"hyperparameters": {"full_finetune": True}}}}, 400,
     "method.dpo.hyperparameters.full_finetune"),
    ({"suffix": "has spaces!"}, 400, "suffix"),
], ids=["unknown-model", "embedding-model", "missing-file", "missing-validation-file", "unknown-method",
        "epochs-0", "batch-size-string", "negative-lr", "unknown-hyperparameter", "dpo-full", "bad-suffix"])
def test_bad_fine_tuning_requests(ft_client, kwargs, status, param):
    client, good = ft_client
    request = {"model": CHAT, "training_file": good, **kwargs}
    with pytest.raises(openai.APIStatusError) as e:
        client.fine_tuning.jobs.create(**request)
    assert e.value.status_code == status and e.value.body["param"] == param, e.value.body


def test_other_projects_file_is_404(server, ft_client):
    _, good = ft_client
    stranger = server.client(server.new_key("ft-stranger"))
    with pytest.raises(openai.NotFoundError):
        stranger.fine_tuning.jobs.create(model=CHAT, training_file=good)


def test_wrong_purpose_is_400(ft_client):
    client, _ = ft_client
    raw = client.files.create(file=("x.jsonl", io.BytesIO(fact_file(12))), purpose="user_data")
    with pytest.raises(openai.BadRequestError) as e:
        client.fine_tuning.jobs.create(model=CHAT, training_file=raw.id)
    assert e.value.body["param"] == "training_file"


@pytest.mark.parametrize("content, line", [
    (b'{"messages": [{"role": "user", "content": "hi"}]}\n' * 12, "Line 1"),
    (fact_file(12) + b"\n{not json}\n", "Line 13"),
    (fact_file(5), None),
])
def test_invalid_files_fail_in_validation_with_openai_error_codes(ft_client, content, line):
    client, _ = ft_client
    bad = client.files.create(file=("bad.jsonl", io.BytesIO(content)), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=CHAT, training_file=bad.id)
    assert job.status == "failed"
    assert job.error.code == "invalid_training_file" and job.error.param == "training_file"
    if line:
        assert line in job.error.message
    events = client.fine_tuning.jobs.list_events(job.id).data
    assert any(e.level == "error" for e in events)


def test_list_pagination(ft_client):
    client, good = ft_client
    bad = client.files.create(file=("few.jsonl", io.BytesIO(fact_file(3))), purpose="fine-tune")
    ids = [client.fine_tuning.jobs.create(model=CHAT, training_file=bad.id).id for _ in range(3)]
    first = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in first.data] == ids[::-1][:2] and first.has_more
    rest = client.fine_tuning.jobs.list(limit=10, after=first.data[-1].id)
    assert ids[0] in [j.id for j in rest.data]


def test_cancel_a_finished_job_is_409(ft_client):
    client, _ = ft_client
    bad = client.files.create(file=("few.jsonl", io.BytesIO(fact_file(3))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=CHAT, training_file=bad.id)
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.cancel(job.id)
    with pytest.raises(openai.ConflictError):
        client.fine_tuning.jobs.resume(job.id)
