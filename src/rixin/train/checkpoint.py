"""Checkpoints as safetensors + JSON, written atomically (directory renamed into place).

    step-000040/
      adapter_model.safetensors + adapter_config.json   (LoRA)  |  model.safetensors + config.json (full)
      optimizer.safetensors   every tensor of the optimizer state, and the torch RNG state
      state.json              step, epoch, optimizer param groups, scheduler, python RNG, metrics

Nothing is pickled. `latest()` ignores half-written directories (they never got renamed).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from rixin.store.artifacts import fsync_path


def _optimizer_tensors(optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict]:
    state = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"state.{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{name}"] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _restore_optimizer(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict) -> None:
    state: dict[int, dict] = {}
    for key, value in tensors.items():
        if key.startswith("state."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    for key, value in meta["scalars"].items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


def save(directory: Path, step: int, model, optimizer, scheduler, state: dict) -> Path:
    """Write checkpoint `step` under `directory`; returns its final path."""
    final = directory / f"step-{step:06d}"
    tmp = directory / f".step-{step:06d}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tensors, optimizer_meta = _optimizer_tensors(optimizer)
    tensors["rng.torch"] = torch.get_rng_state()
    save_file(tensors, str(tmp / "optimizer.safetensors"))
    scheduler_state = {k: v for k, v in scheduler.state_dict().items() if k != "lr_lambdas"}
    meta = {"step": step, **state, "optimizer": optimizer_meta, "scheduler": scheduler_state,
            "python_rng": _jsonable_rng(random.getstate())}
    (tmp / "state.json").write_text(json.dumps(meta))
    for f in tmp.iterdir():
        fsync_path(f)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    fsync_path(directory)
    return final


def latest(directory: Path) -> Path | None:
    done = sorted(p for p in directory.glob("step-*") if (p / "state.json").exists()) if directory.exists() else []
    return done[-1] if done else None


def restore(path: Path, optimizer, scheduler) -> dict:
    """Load optimizer, scheduler and RNG state from `path`; returns state.json (weights are
    loaded by the caller, who knows whether they are an adapter or a full model)."""
    meta = json.loads((path / "state.json").read_text())
    tensors = load_file(str(path / "optimizer.safetensors"))
    torch.set_rng_state(tensors.pop("rng.torch"))
    _restore_optimizer(optimizer, tensors, meta["optimizer"])
    scheduler.load_state_dict({**meta["scheduler"], "lr_lambdas": [None] * len(scheduler.lr_lambdas)})
    random.setstate(_rng_from_json(meta["python_rng"]))
    return meta


def _jsonable_rng(state) -> list:
    version, internal, gauss = state
    return [version, list(internal), gauss]


def _rng_from_json(data: list):
    version, internal, gauss = data
    return version, tuple(internal), gauss
