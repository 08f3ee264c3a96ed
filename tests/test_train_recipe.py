"""The training recipe run in-process on a tiny model: pinned losses are reproducible to 4
decimals with the same seed, and a run resumed from a checkpoint continues exactly where the
uninterrupted run went (optimizer, schedule, RNG and data position all restored)."""

from __future__ import annotations

import json
import shutil

import pytest

from rixin.train.config import Hyperparameters, TrainConfig
from rixin.train.recipe import train
from test_fine_tuning import fact_file
from test_user_models import tiny_hf_model  # noqa: F401 - a fixture


def config(work, base, train_path, seed=11, **hp) -> TrainConfig:
    # (the rate: 3.77 x the auto rate at batch 4 and LoRA r=4, alpha=32 is the 2e-3 this test was
    # calibrated with)
    hyper = Hyperparameters.model_validate({"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 3.77,
                                            "replay": 0,
                                            "checkpoint_interval": 3, "max_seq_length": 64, "lora_rank": 4,
                                            "lora_dropout": 0.1, "threads_per_worker": 1, **hp})
    return TrainConfig(work_dir=str(work), base_dir=str(base), method="supervised", train_path=str(train_path),
                       val_path=str(train_path), hyperparameters=hyper, resolved=hyper.resolved("supervised", 40),
                       seed=seed)


def losses(work) -> dict[int, float]:
    lines = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    return {m["step"]: m["train_loss"] for m in lines if m["event"] == "step"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("train") / "train.jsonl"
    path.write_bytes(fact_file(40))
    return path


def test_same_seed_same_losses_to_4_decimals(tmp_path, tiny_hf_model, data):
    runs = []
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        train(config(tmp_path / name, tiny_hf_model, data))
        runs.append(losses(tmp_path / name))
    assert len(runs[0]) == 20  # 40 rows / 4 per step x 2 epochs (packing off would be 20 too)
    assert {k: round(v, 4) for k, v in runs[0].items()} == {k: round(v, 4) for k, v in runs[1].items()}
    (tmp_path / "c").mkdir()
    train(config(tmp_path / "c", tiny_hf_model, data, seed=12))
    assert losses(tmp_path / "c") != runs[0]


def test_resume_from_a_checkpoint_continues_exactly(tmp_path, tiny_hf_model, data):
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    full.mkdir()
    train(config(full, tiny_hf_model, data, packing=False))
    reference = losses(full)
    (resumed / "checkpoints").mkdir(parents=True)
    shutil.copytree(full / "checkpoints" / "step-000009", resumed / "checkpoints" / "step-000009")
    train(config(resumed, tiny_hf_model, data, packing=False))
    after = losses(resumed)
    assert min(after) == 10 and max(after) == max(reference)
    assert {k: round(v, 4) for k, v in after.items()} == {k: round(reference[k], 4) for k in after}
    events = [json.loads(line)["event"] for line in (resumed / "metrics.jsonl").read_text().splitlines()]
    assert events[0] == "resumed" and events[-1] == "finished"
    assert (resumed / "final" / "adapter_model.safetensors").exists()


def test_a_pause_flag_stops_at_a_checkpoint_and_a_rerun_resumes_from_it(tmp_path, tiny_hf_model, data):
    from rixin.train.control import PAUSE, clear_stop, request_stop

    cfg = config(tmp_path, tiny_hf_model, data, n_epochs=1)
    request_stop(tmp_path, PAUSE)  # read after the first step, as the gateway's pause would be
    train(cfg)
    events = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [e["event"] for e in events if e["event"] != "worker"] == ["started", "step", "checkpoint", "paused"]
    assert not (tmp_path / "final").exists()
    clear_stop(tmp_path)
    train(cfg)
    events = [json.loads(line)["event"] for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert "resumed" in events and events[-1] == "finished" and (tmp_path / "final").exists()


def test_checkpoints_hold_no_pickles(tmp_path, tiny_hf_model, data):
    train(config(tmp_path, tiny_hf_model, data, n_epochs=1))
    files = {p.suffix for p in (tmp_path / "checkpoints").rglob("*") if p.is_file()}
    assert files <= {".safetensors", ".json", ".md"}, files


def run_method(tmp_path, base, records: list[dict], method: str, **hp) -> dict[int, float]:
    path = tmp_path / f"{method}.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records))
    train(config(tmp_path, base, path, **hp).model_copy(update={"method": method, "val_path": None}))
    return losses(tmp_path)


def test_dpo_starts_at_log_2_and_learns_the_preference(tmp_path, tiny_hf_model):
    pairs = [{"input": {"messages": [{"role": "user", "content": f"Capital of Zorbania? ({i})"}]},
              "preferred_output": [{"role": "assistant", "content": "Quenlit."}],
              "non_preferred_output": [{"role": "assistant", "content": "Paris, of course."}]} for i in range(16)]
    curve = run_method(tmp_path, tiny_hf_model, pairs, "dpo", n_epochs=3, lora_dropout=0.0)
    first, last = curve[min(curve)], curve[max(curve)]
    # The adapter starts at zero, so policy = reference and the loss is -log σ(0) = log 2.
    assert round(first, 4) == 0.6931
    assert last < 0.5, curve


def test_continued_pretraining_on_raw_text(tmp_path, tiny_hf_model):
    texts = [{"text": f"Zorbania is a small country. Its capital is Quenlit. Report number {i}."} for i in range(24)]
    curve = run_method(tmp_path, tiny_hf_model, texts, "continued_pretraining", n_epochs=3)
    assert curve[max(curve)] < curve[min(curve)] - 0.2, curve  # a random tiny model: slow, but it learns
