"""The skeleton of a sharded, resumable job; cleaning (data/clean.py), labeling (label/job.py)
and evaluation (evals/job.py) are written on it. The layout of a job's work directory:

    work/shards/split.done        the number of input shards, written once they all exist
    work/shards/<name>.in.jsonl   an input shard (split_records; <name> is its index, 00000...)
    work/shards/<name>.*          the shard's outputs, each written atomically by the job
    work/shards/<name>.done       the marker, written last (atomically): the shard's item count
    work/processed.log            "<name> <pid>" per shard run: an audit trail (tests read it)
    work/version.json             the job's result, once its outputs exist (finish_once)

A shard whose marker exists is never run again, so a job killed halfway and started again
redoes only the rest; a crash between a shard's outputs and its marker only redoes that shard.
The skeleton decides nothing about how shards run: label and eval pass them to run_shards (a
plain loop in the job's thread, because their work queues on one engine replica), cleaning maps
them on Ray Data and calls mark_done from its map function. Progress and cancellation stay
with the caller's `report` (the runner's, which raises errors.Cancelled): run_shards calls
`on_shard` between shards, where a job reports and may be stopped.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from rixin.store.artifacts import atomic_write


def shard_name(index: int) -> str:
    """The name of input shard `index`: its files sort in input order."""
    return f"{index:05d}"


def shard_path(work: Path, name: str) -> Path:
    """work/shards/<name>, to which a job adds its own suffixes (.in.jsonl, .out.jsonl, ...)."""
    return work / "shards" / name


def split_records(records: Iterable[dict], work: Path, size: int) -> int:
    """Write the input shards of `size` records once (marker `shards/split.done`); returns their
    number. A split cut short is started over: only the marker says the shards are whole."""
    shards = work / "shards"
    marker = shards / "split.done"
    if marker.exists():
        return int(marker.read_text())
    shutil.rmtree(shards, ignore_errors=True)
    shards.mkdir(parents=True)
    count, out = 0, None
    for n, record in enumerate(records):
        if n % size == 0:
            if out:
                out.close()
            out = shard_path(work, shard_name(count)).with_suffix(".in.jsonl").open("w", encoding="utf-8")
            count += 1
        out.write(json.dumps(record, ensure_ascii=False) + "\n")
    if out:
        out.close()
    atomic_write(marker, str(count).encode())
    return count


@dataclass(frozen=True)
class Resume:
    """Where a job stands: the shards already done (name → item count) and the rest, in order."""

    done: dict[str, int]
    todo: list[str]


def resume(work: Path, names: Iterable[str]) -> Resume:
    done: dict[str, int] = {}
    todo: list[str] = []
    for name in names:
        marker = shard_path(work, name).with_suffix(".done")
        if marker.exists():
            done[name] = int(marker.read_text() or 0)  # markers of older cleaning jobs are empty
        else:
            todo.append(name)
    return Resume(done, todo)


def mark_done(work: Path, name: str, items: int) -> None:
    """The shard's outputs are written: leave its marker, then a line in the audit trail."""
    atomic_write(shard_path(work, name).with_suffix(".done"), str(items).encode())
    with (work / "processed.log").open("a") as log:
        log.write(f"{name} {os.getpid()}\n")


def run_shards(work: Path, state: Resume, do_shard: Callable[[str], int],
               on_shard: Callable[[int], None] | None = None) -> None:
    """Run the shards left, in order: do_shard(name) writes the shard's outputs and returns its
    item count, then its marker is left; on_shard(shards done so far) follows each."""
    for finished, name in enumerate(state.todo, start=len(state.done) + 1):
        mark_done(work, name, do_shard(name))
        if on_shard is not None:
            on_shard(finished)


def finished(work: Path) -> dict | None:
    """The job's result when finish_once has made it (its shards may be gone), else None."""
    created = work / "version.json"
    return json.loads(created.read_text()) if created.exists() else None


def finish_once(work: Path, make: Callable[[], dict]) -> dict:
    """The job's result: make() once (it writes the job's outputs), kept in work/version.json so
    that a job resumed after its outputs exist only reports them."""
    done = finished(work)
    if done is None:
        atomic_write(work / "version.json", json.dumps(make()).encode())
    return finished(work)  # type: ignore[return-value]


def remove_shards(work: Path) -> None:
    """The shards are merged into the job's outputs: free their space (the result stays)."""
    shutil.rmtree(work / "shards", ignore_errors=True)
