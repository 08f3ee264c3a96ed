"""The "eval" job: generate with each model over the eval set's items, grade, store.

    eval file ─parse─▶ work/items.jsonl (a copy: the file may be deleted mid-run)
      for each model m, shard s:  greedy generation → graders → shards/m{m}-{s}.jsonl + .done
      ─merge─▶ results JSONL artifact (one line per item, every model's output and scores,
               the per-item difference b − a) ─▶ summary on the EvalRun row

Resumable like the label job, on the same skeleton (jobs/shards.py): a shard with its `.done`
marker is skipped when the job runs again after a crash; writes are atomic; the results are
stored once (finish_once), then the shards are removed. A plain loop, not
Ray Data: generation happens inside one engine replica (a Ray actor that serialises
requests), so parallel tasks would only queue on it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from rixin.config import Settings
from rixin.engines.base import GenerateRequest, SamplingParams
from rixin.errors import ContextLengthExceeded
from rixin.evals.compare import summarise
from rixin.evals.evalset import EvalItem, load_items
from rixin.evals.graders import build_grader, parse_graders
from rixin.data.records import iter_jsonl, write_jsonl
from rixin.jobs.shards import finish_once, finished, remove_shards, resume, run_shards, shard_name, shard_path
from rixin.jobs.store import JobStore
from rixin.models.registry import Registry
from rixin.store.artifacts import ArtifactStore, atomic_write
from rixin.store.db import Database
from rixin.store.files import Files
from rixin.store.schema import EvalRun, Job, utcnow
from rixin.store.tenancy import Caller

SHARD_SIZE = 25  # items per (model, shard): the unit of resume


@dataclass(frozen=True)
class EvalServices:
    """What eval runs and their job use; built once in platform.py. `work_dir`: where jobs
    keep their resumable shards; `registry` and `settings` start the engines."""

    settings: Settings
    db: Database
    registry: Registry
    artifacts: ArtifactStore
    files: Files
    jobs: JobStore
    work_dir: Path


def model_shard(m: int, s: int) -> str:
    """The name of model m's shard s: model a's shards sort before model b's."""
    return f"m{m}-{shard_name(s)}"


def generate(engine, item: EvalItem, max_tokens: int, system: str = "") -> tuple[str, str]:
    """(output text, finish reason) of one greedy generation; an over-long prompt scores as empty."""
    params = SamplingParams(max_tokens=max_tokens, temperature=0.0, seed=0)
    messages = ([{"role": "system", "content": system}] if system else []) + item.messages
    try:
        chunks = engine.generate(GenerateRequest(params, messages=messages))
    except ContextLengthExceeded:
        return "", "context_length_exceeded"
    return "".join(c.text for c in chunks), chunks[-1].finish_reason or "stop"


def grade_item(graders, item: EvalItem, output: str) -> dict:
    grades = {g.name: g.grade(item, output) for g in graders}
    scores = {name: float(min(max(g.score, 0.0), 1.0)) for name, g in grades.items()}
    return {"scores": scores, "reasons": {name: g.reason for name, g in grades.items()},
            "mean": sum(scores.values()) / len(scores)}


def run_shard(path: Path, items: list[EvalItem], engine, graders, max_tokens: int, system: str,
              progress) -> int:
    """Generate and grade one (model, shard) into its `.jsonl`; returns its items."""
    lines = []
    for item in items:
        output, finish = generate(engine, item, max_tokens, system)
        lines.append(json.dumps({"index": item.index, "output": output, "finish_reason": finish,
                                 **grade_item(graders, item, output)}, ensure_ascii=False))
        progress(1)
    atomic_write(path.with_suffix(".jsonl"), ("\n".join(lines) + "\n").encode())
    return len(items)


def _items(files: Files, params: dict, caller: Caller, work: Path) -> list[EvalItem]:
    copy = work / "items.jsonl"
    if not copy.exists():
        row = files.get(caller, params["eval_file_id"])
        items = load_items(files.path(row), f"file {row.id}")
        atomic_write(copy, "".join(json.dumps(i.to_dict(), ensure_ascii=False) + "\n" for i in items).encode())
    return [EvalItem(**d) for d in iter_jsonl(copy)]


def _set_run(db: Database, run_id: str, **values) -> None:
    with db.session() as s:
        run = s.get(EvalRun, run_id)
        for key, value in values.items():
            setattr(run, key, value)


def run_eval(services: EvalServices, job: Job, report) -> dict:
    """Job handler (see module doc)."""
    params = job.params
    caller = Caller(job.project_id, "", "", False)
    work = services.work_dir / job.id
    done = finished(work)
    if done is not None:  # resumed after the results were stored (and the shards removed)
        return done
    (work / "shards").mkdir(parents=True, exist_ok=True)
    _set_run(services.db, params["run_id"], status="running")
    items = _items(services.files, params, caller, work)
    variants, configs = params["models"], parse_graders(params["graders"])
    shard_count = generate_shards(services, caller, params, work, items, configs, report)

    def create_outputs() -> dict:
        report(stage="summarise")
        models = [v["name"] for v in variants]
        merged = merge(work, items, models, shard_count)
        summary = summarise(merged, models, [c.label for c in configs])
        with services.artifacts.writer() as sink:
            write_jsonl(merged, sink)
            sha256, _ = sink.commit()
        _set_run(services.db, params["run_id"], status="succeeded", summary=summary, results_sha256=sha256,
                 finished_at=utcnow())
        return {"eval_run_id": params["run_id"], "results_sha256": sha256, "n": len(items)}

    result = finish_once(work, create_outputs)
    report(stage="done")
    remove_shards(work)
    return result


def generate_shards(services, caller: Caller, params: dict, work: Path, items: list[EvalItem], configs,
                    report) -> int:
    """Generate and grade every (model, shard) not done yet; returns the shards per model."""
    from rixin.serving.client import connect

    variants = params["models"]
    shards = [items[i:i + SHARD_SIZE] for i in range(0, len(items), SHARD_SIZE)]
    plan = {model_shard(m, s): (m, s) for m in range(len(variants)) for s in range(len(shards))}
    state = resume(work, plan)
    done = sum(state.done.values())
    report(stage="generate", items_total=len(items) * len(variants), items_done=done,
           shards_skipped=len(state.done))
    if not state.todo:
        return len(shards)
    engines: dict[tuple[str, str], object] = {}

    def engine(model_id: str, kind: str):
        if (model_id, kind) not in engines:
            engines[model_id, kind] = connect(services.registry, services.settings, model_id, caller, kind)
        return engines[model_id, kind]

    graders = [build_grader(c, engine) for c in configs]

    def progress(n: int) -> None:
        nonlocal done
        done += n
        report(items_done=done)

    def do_shard(name: str) -> int:
        m, s = plan[name]
        return run_shard(shard_path(work, name), shards[s], engine(variants[m]["model"], "chat"), graders,
                         params["max_tokens"], variants[m]["system"], progress)

    run_shards(work, state, do_shard)
    return len(shards)


def merge(work: Path, items: list[EvalItem], models: list[str], shard_count: int) -> list[dict]:
    """One record per item: its input, ideal, each model's output and scores, diff b − a."""
    merged = [{"index": it.index, "id": it.id, "input": it.messages, "ideal": it.ideal, "outputs": {}}
              for it in items]
    for m, model in enumerate(models):
        for s in range(shard_count):
            for line in iter_jsonl(shard_path(work, model_shard(m, s)).with_suffix(".jsonl")):
                merged[line.pop("index")]["outputs"][model] = line
    for record in merged:
        record["diff"] = (record["outputs"][models[1]]["mean"] - record["outputs"][models[0]]["mean"]
                          if len(models) == 2 else None)
    return merged
