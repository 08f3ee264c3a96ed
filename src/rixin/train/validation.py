"""Validation during training: the loss on held-out rows every `eval_interval` steps, the best
weights kept aside, and early stopping when the loss stops improving.

Where the rows come from: the job's validation file, or — when there is none and the training
file has enough examples (config.HOLDOUT_MIN_EXAMPLES) — a seeded share of the training file
held out (`split_holdout`). The best weights live in <work>/best (written atomically, like a
checkpoint); at the end, when the last validation loss is worse than the best one, the job's
model is the best weights, and the recipe says so in a `best_kept` line (an event).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import torch

from rixin.train.data import collate
from rixin.train.loss import token_loss_sum

MIN_GAIN = 1e-4  # a new best must beat the old one by this much (float noise is not progress)


def split_holdout(records: list[dict], holdout: int, seed: int) -> tuple[list[dict], list[dict]]:
    """(training, validation): `holdout` records chosen by a seeded shuffle, order kept."""
    if holdout <= 0:
        return records, []
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    held = set(order[:holdout])
    return ([r for i, r in enumerate(records) if i not in held], [r for i, r in enumerate(records) if i in held])


@torch.no_grad()
def validation_loss(model, rows: list, pad_id: int, batch_size: int) -> float | None:
    """Mean cross-entropy per trained token over every validation row (None without rows)."""
    if not rows:
        return None
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(rows), batch_size):
        loss_sum, n = token_loss_sum(model, collate(rows[i:i + batch_size], pad_id))
        total, count = total + float(loss_sum), count + n
    model.train(was_training)
    return total / max(1, count)


class Validator:
    """Validation losses, the best weights and the early-stopping decision of one job (rank 0)."""

    def __init__(self, model, rows: list, pad_id: int, batch_size: int, work: Path, interval: int,
                 patience: int, state: dict | None = None):
        self.model, self.rows, self.pad_id, self.batch_size = model, rows, pad_id, batch_size
        self.best_dir, self.interval, self.patience = work / "best", max(1, interval), patience
        state = state or {}
        self.best, self.last, self.since = state.get("best"), state.get("last"), state.get("since", 0)

    def due(self, step: int, total_steps: int) -> bool:
        return bool(self.rows) and (step % self.interval == 0 or step == total_steps)

    def evaluate(self, step: int) -> float:
        loss = validation_loss(self.model, self.rows, self.pad_id, self.batch_size)
        self.last = {"step": step, "valid_loss": round(loss, 6)}
        if self.best is None or loss < self.best["valid_loss"] - MIN_GAIN:
            self.best, self.since = dict(self.last), 0
            tmp = self.best_dir.with_name("best.tmp")
            shutil.rmtree(tmp, ignore_errors=True)
            self.model.save_pretrained(tmp, safe_serialization=True)
            (tmp / "best.json").write_text(json.dumps(self.best))
            shutil.rmtree(self.best_dir, ignore_errors=True)
            os.replace(tmp, self.best_dir)
        else:
            self.since += 1
        return loss

    def stop_early(self) -> bool:
        return bool(self.patience) and self.since >= self.patience

    def state(self) -> dict:
        """What a checkpoint keeps, so that a resumed job still knows its best step."""
        return {"best": self.best, "last": self.last, "since": self.since}

    def keep_best(self, final: Path) -> dict | None:
        """Replace the final weights by the best ones when validation got worse since; returns
        what happened (for the event), or None when the final weights are the best."""
        if self.best is None or self.last is None or self.last["step"] == self.best["step"]:
            return None
        if not (self.best_dir / "best.json").exists():
            return None
        for f in self.best_dir.iterdir():
            if f.name != "best.json":
                shutil.copy(f, final / f.name)
        return {"best_step": self.best["step"], "best_valid_loss": self.best["valid_loss"],
                "last_step": self.last["step"], "last_valid_loss": self.last["valid_loss"]}
