"""The "label" job: label a dataset version shard by shard, resumably, then split the items
into a new dataset version (confidence ≥ threshold) and the review queue (below it).

    version JSONL ─split─▶ shards/NNNNN.in.jsonl ─labeler (engine actor on Ray)─▶
    shards/NNNNN.out.jsonl + .done ─driver─▶ review items (deterministic ids) + new version
    (operation "label", the label in record[output_field], meta.label_confidence) + report

A plain loop over shards in the job's thread, not Ray Data: the work happens inside ONE engine
replica (a Ray actor that serialises generations behind a lock, shared with the gateway's chat
traffic), so Ray Data's parallel map would only add tasks queueing on that actor, and the
model would have to be loaded again in each worker if we bypassed it. The shards, their `.done`
markers (holding the item count), resume and the loop are jobs/shards.py's skeleton, as for
cleaning; progress goes through `report` (which also stops the job when it was cancelled).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select

from rixin.config import Settings
from rixin.data.clean import shard_source
from rixin.data.datasets import Datasets
from rixin.data.records import iter_jsonl, write_jsonl
from rixin.errors import InvalidRequest, ModelNotFound
from rixin.jobs.shards import finish_once, remove_shards, run_shards, shard_name, shard_path
from rixin.jobs.store import JobStore
from rixin.label.labelers import Verdict, build_labeler, input_text
from rixin.label.review import ReviewQueue, labeled_record
from rixin.label.spec import LabelTask, load_task, parse_task
from rixin.models.registry import Registry
from rixin.store.artifacts import ArtifactStore, atomic_write
from rixin.store.db import Database
from rixin.store.schema import DatasetVersion, Job
from rixin.store.tenancy import Caller

SHARD_SIZE = 100  # items per shard: the unit of resume (an LLM labels a few items a second on CPU)
REPORT_EVERY = 8  # items between progress reports (each is one database write)


@dataclass(frozen=True)
class LabelServices:
    """What labeling jobs use; built once in platform.py. `registry` and `settings` start the
    labeler's engine; `work_dir`: where jobs keep their shards."""

    settings: Settings
    db: Database
    registry: Registry
    artifacts: ArtifactStore
    datasets: Datasets
    jobs: JobStore
    review: ReviewQueue
    work_dir: Path


def resolve_task(task: str | dict | LabelTask) -> LabelTask:
    if isinstance(task, LabelTask):
        return task
    return parse_task(task) if isinstance(task, dict) else load_task(task)


def submit_label(services: LabelServices, caller: Caller, dataset_id: str, version: int | None,
                 task: str | dict | LabelTask, *, shard_size: int = SHARD_SIZE) -> Job:
    """Validate the task (and that its model exists for the caller), then queue the job."""
    source = services.datasets.version(caller, dataset_id, version)
    parsed = resolve_task(task)
    try:
        services.registry.get(parsed.model, caller, kind=parsed.engine)
    except (ModelNotFound, InvalidRequest) as e:
        raise type(e)(e.message, param="task.model", code=e.code) from e
    params = {"dataset_id": dataset_id, "version": source.version, "task": parsed.model_dump(mode="json"),
              "shard_size": shard_size}
    return services.jobs.create(caller, "label", params)


# ---------------------------------------------------------------------- one shard


def label_shard(shard: Path, first_index: int, task: LabelTask, labeler, progress) -> int:
    """Label one input shard into its `.out.jsonl`; returns its items (the skeleton leaves the
    marker)."""
    records = list(iter_jsonl(shard.with_suffix(".in.jsonl")))
    texts = [input_text(r, task.input_field) for r in records]
    verdicts: list[Verdict | None] = [None] * len(records)
    todo = [i for i, t in enumerate(texts) if t is not None]
    for start in range(0, len(todo), REPORT_EVERY):
        batch = todo[start:start + REPORT_EVERY]
        for i, verdict in zip(batch, labeler.label([texts[i] for i in batch])):
            verdicts[i] = verdict
        progress(len(batch))
    lines = []
    for n, (record, verdict) in enumerate(zip(records, verdicts)):
        verdict = verdict or Verdict(None, 0.0, "no_input_text")
        lines.append(json.dumps({"index": first_index + n, "record": record, "label": verdict.label,
                                 "confidence": verdict.confidence, "reason": verdict.reason},
                                ensure_ascii=False))
    atomic_write(shard.with_suffix(".out.jsonl"), ("\n".join(lines) + "\n" if lines else "").encode())
    return len(records)


# ---------------------------------------------------------------------- the job


def run_label(services: LabelServices, job: Job, report) -> dict:
    """Job handler: label every shard not done yet, then write the version and review items."""
    from rixin.serving.client import connect

    params = job.params
    task = parse_task(params["task"])
    caller = Caller(job.project_id, "", "", False)
    source, work, total, state = shard_source(services.datasets, services.artifacts, services.work_dir, job)
    items_done = sum(state.done.values())
    report(stage="label", shards_total=total, shards_done=len(state.done), shards_skipped=len(state.done),
           items_total=source.records, items_done=items_done)
    if state.todo:
        report(stage="loading model")
        labeler = build_labeler(task, connect(services.registry, services.settings, task.model, caller, task.engine))
        report(stage="label")

        def progress(n: int) -> None:
            nonlocal items_done
            items_done += n
            report(items_done=items_done)

        def do_shard(name: str) -> int:  # an input shard's name is its index
            return label_shard(shard_path(work, name), int(name) * params["shard_size"], task, labeler, progress)

        run_shards(work, state, do_shard, lambda finished: report(shards_done=finished))

    def create_outputs() -> dict:
        report(stage="write")
        return write_outputs(services, job, task, source, work, total)

    result = finish_once(work, create_outputs)
    report(stage="done")
    remove_shards(work)
    return {"dataset_id": source.dataset_id, "items_in": source.records, **result}


def write_outputs(services: LabelServices, job: Job, task: LabelTask, source: DatasetVersion, work: Path,
                  total: int) -> dict:
    """Items ≥ threshold → a new version; the others → the review queue. Idempotent: review
    ids are deterministic and a version this job already made is found, not made again."""
    queue = services.review
    stats = LabelStats(task)
    kept = 0
    with services.artifacts.writer() as sink:
        for i in range(total):
            out, review = [], []
            for item in iter_jsonl(shard_path(work, shard_name(i)).with_suffix(".out.jsonl")):
                stats.add(item)
                if item["label"] is not None and item["confidence"] >= task.confidence_threshold:
                    out.append(labeled_record(item["record"], task.output_field, item["label"], item["confidence"]))
                else:
                    review.append(item)
            kept += write_jsonl(out, sink)
            queue.add(job, source, review)
        sha256, _ = sink.commit()
    version = _version_of_job(services.db, source, job.id)
    if version is None:
        version = services.datasets.add_version(
            source.dataset_id, source, "label",
            {"job_id": job.id, "task": task.model_dump(mode="json"), "source_version": source.version},
            sha256, kept, source.format, stats.to_dict())
    return {"version": version.version, "version_id": version.id, "labeled": kept,
            "to_review": stats.items - kept}


def _version_of_job(db: Database, source: DatasetVersion, job_id: str) -> DatasetVersion | None:
    """The label version `job_id` made, if a run was interrupted right after making it."""
    with db.session() as s:
        rows = s.scalars(select(DatasetVersion).where(DatasetVersion.dataset_id == source.dataset_id,
                                                      DatasetVersion.operation == "label"))
        return next((v for v in rows if (v.params or {}).get("job_id") == job_id), None)


class LabelStats:
    """The version's report: labels and reasons counted, confidences summarised."""

    def __init__(self, task: LabelTask):
        self.task = task
        self.items, self.kept = 0, 0
        self.labels: Counter = Counter()
        self.reasons: Counter = Counter()
        self.histogram = [0] * 10  # confidence in [0, 0.1), ..., [0.9, 1.0]
        self.sum = 0.0

    def add(self, item: dict) -> None:
        self.items += 1
        confidence = item["confidence"]
        self.sum += confidence
        self.histogram[min(int(confidence * 10), 9)] += 1
        self.reasons[item["reason"]] += 1
        if item["label"] is not None and confidence >= self.task.confidence_threshold:
            self.kept += 1
        if isinstance(item["label"], str) and "labels" in self.task.labeler.uses:  # a closed label set
            self.labels[item["label"]] += 1

    def to_dict(self) -> dict:
        return {"items_in": self.items, "labeled": self.kept, "to_review": self.items - self.kept,
                "confidence_threshold": self.task.confidence_threshold,
                "labels": dict(self.labels), "reasons": dict(self.reasons),
                "confidence": {"mean": self.sum / self.items if self.items else None,
                               "histogram": self.histogram}}
