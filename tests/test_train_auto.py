"""The `auto` hyperparameter rule and validation during training (in-process, tiny model).

The rule (config.py, docs/fine-tuning.md): epochs from the number of examples, the batch from
the file size, the rate from the batch, LoRA alpha/r and model width. Validation: a loss every
eval_interval steps, the best weights kept when it gets worse, early stopping, and a held-out
share of big training files when no validation file is given."""

from __future__ import annotations

import json

import pytest

from rixin.train.config import Hyperparameters, auto_batch, auto_epochs
from rixin.train.facts import chat
from rixin.train.recipe import train as run_recipe
from test_train_recipe import config
from test_user_models import tiny_hf_model  # noqa: F401 - a fixture


@pytest.mark.parametrize("examples, epochs, batch", [
    (10, 25, 1), (20, 15, 1), (50, 6, 2), (120, 3, 4), (500, 3, 16), (2000, 3, 32), (20000, 1, 32)])
def test_epochs_and_batch_follow_the_file_size(examples, epochs, batch):
    assert (auto_epochs(examples), auto_batch(examples)) == (epochs, batch)


def test_the_rate_follows_batch_lora_scale_width_and_full_fine_tuning():
    def lr(examples=120, width=None, **hp):
        return Hyperparameters.model_validate(hp).resolved("supervised", examples, width).learning_rate

    assert lr(examples=500) == pytest.approx(lr(examples=120) * 2)  # batch 16 against 4: sqrt(4)
    assert lr(lora_alpha=64) == pytest.approx(lr() / 2)  # twice the LoRA scale, half the rate
    assert lr(width=2304) == pytest.approx(lr() / 2)  # 4x wider, half the rate
    assert lr(full_finetune=True) == pytest.approx(lr() * 0.1)  # (default LoRA: alpha/r = 2, factor 1)
    assert lr(learning_rate_multiplier=3) == pytest.approx(lr() * 3)
    # a step's examples over every worker and micro-batch set the rate: 2 workers x 4 = 1 x 8
    assert lr(batch_size=4, num_workers=2) == pytest.approx(lr(batch_size=8)) == lr(batch_size=2,
                                                                                   gradient_accumulation_steps=4)


def test_set_values_win_and_small_files_hold_nothing_out():
    r = Hyperparameters(n_epochs=2, batch_size=8).resolved("supervised", 150)
    assert (r.n_epochs, r.batch_size, r.validation_holdout, r.replay_examples) == (2, 8, 0, 38)
    assert r.total_steps == 2 * 24  # (150 + 38 replayed) / 8 a step
    assert Hyperparameters(replay=0).resolved("supervised", 150).replay_examples == 0
    assert Hyperparameters().resolved("dpo", 150).replay_examples == 0  # supervised only


@pytest.mark.parametrize("examples, split, has_validation, held", [
    (199, "auto", False, 0), (200, "auto", False, 10), (2000, "auto", False, 100), (10000, "auto", False, 100),
    (2000, "auto", True, 0), (2000, 0, False, 0), (100, 0.2, False, 20)])
def test_holdout(examples, split, has_validation, held):
    r = Hyperparameters(validation_split=split).resolved("supervised", examples, has_validation=has_validation)
    assert r.validation_holdout == held
    assert r.batch_size == auto_batch(examples - held + r.replay_examples)


def lines(work) -> list[dict]:
    return [json.loads(x) for x in (work / "metrics.jsonl").read_text().splitlines()]


def test_validation_gets_worse_the_best_weights_are_kept_and_training_stops(tmp_path, tiny_hf_model):
    """Train on one answer, validate on another to the same questions: the validation loss falls
    while the shared tokens are learned, then rises as the trained answer takes over (a full
    fine-tune at a high rate, so that the tiny random model gets there in a few dozen steps)."""
    questions = [f"What is the capital of Zorbania? ({i})" for i in range(32)]
    train, valid = tmp_path / "train.jsonl", tmp_path / "valid.jsonl"
    train.write_text("\n".join(json.dumps(chat(q, "Quenlit Quenlit Quenlit.")) for q in questions))
    valid.write_text("\n".join(json.dumps(chat(q, "Paris Paris Paris.")) for q in questions[:8]))
    cfg = config(tmp_path, tiny_hf_model, train, n_epochs=8, batch_size=4, learning_rate_multiplier=100,
                 full_finetune=True, eval_interval=4, early_stopping_patience=3)
    cfg = cfg.model_copy(update={"val_path": str(valid)})
    run_recipe(cfg)
    events = lines(tmp_path)
    curve = [(m["step"], m["valid_loss"]) for m in events if m["event"] == "step" and "valid_loss" in m]
    assert [s for s, _ in curve][:3] == [4, 8, 12]
    best = min(curve, key=lambda c: c[1])
    kept = next(m for m in events if m["event"] == "best_kept")
    assert (kept["best_step"], kept["best_valid_loss"]) == (best[0], round(best[1], 6))
    assert kept["last_valid_loss"] > kept["best_valid_loss"]
    stop = next(m for m in events if m["event"] == "early_stop")
    assert stop["step"] == curve[-1][0] < 8 * 8  # stopped before the planned 64 steps
    assert events[-1]["event"] == "finished"
    # the model handed over is the best one, byte for byte
    assert (tmp_path / "final" / "model.safetensors").read_bytes() == \
        (tmp_path / "best" / "model.safetensors").read_bytes()


def test_big_files_hold_out_a_share_for_validation(tmp_path, tiny_hf_model):
    rows = [chat(f"Question number {i}?", f"Answer {i}.") for i in range(200)]
    train = tmp_path / "train.jsonl"
    train.write_text("\n".join(json.dumps(r) for r in rows))
    cfg = config(tmp_path, tiny_hf_model, train, n_epochs=1, batch_size=64, max_seq_length=32)
    cfg = cfg.model_copy(update={"val_path": None, "resolved": cfg.hyperparameters.resolved("supervised", 200)})
    run_recipe(cfg)
    events = lines(tmp_path)
    started = next(m for m in events if m["event"] == "started")
    assert (started["held_out"], started["train_examples"], started["validation_rows"]) == (10, 190, 10)
    assert any("valid_loss" in m for m in events if m["event"] == "step")
