"""Pause, resume and cancel of fine-tuning jobs, and the names the job and its workers share.

Two files in the job's work dir connect the gateway and the Ray Train workers:

    <work>/control         the stop flag: "pause", "preempt" or "cancel", written by the gateway
                           (or by the job's driver when the runner cancels it), read by rank 0
                           between steps; every rank then stops at the same step
    <work>/metrics.jsonl   one JSON line per worker event, written by the recipe (log_line)
                           and turned into job events, checkpoints and progress by the
                           driver (job.MetricsTail); `event` is one of the names below

This module is the one place that spells them; it imports nothing heavy, so the workers load it.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING

from rixin.errors import Conflict
from rixin.jobs.store import FINAL

if TYPE_CHECKING:
    from rixin.store.schema import Job
    from rixin.train.services import TrainServices

# the stop flag's values; PAUSE and PREEMPT stop with a checkpoint at the step they are read
PAUSE, PREEMPT, CANCEL = "pause", "preempt", "cancel"
AT_CHECKPOINT = (PAUSE, PREEMPT)
# metrics.jsonl events
STEP, CHECKPOINT, WORKER = "step", "checkpoint", "worker"
STARTED, RESUMED, FINISHED = "started", "resumed", "finished"
PAUSED, PREEMPTED, CANCELLED = "paused", "preempted", "cancelled"
STOPPED = {PAUSE: PAUSED, PREEMPT: PREEMPTED, CANCEL: CANCELLED}  # the flag -> the event the stop is logged as
# validation (train/validation.py): the recipe's own stop, and the best weights kept at the end
EARLY, EARLY_STOP, BEST_KEPT = "early", "early_stop", "best_kept"
# the type of the job events that carry a step's metrics (OpenAI's fine-tuning event type)
METRICS_EVENT = "metrics"


# ---------------------------------------------------------------------- the files


def flag_path(work: Path) -> Path:
    return work / "control"


def request_stop(work: Path, value: str) -> None:
    """Ask the workers to stop (PAUSE or PREEMPT at a checkpoint, or CANCEL) at their next step."""
    work.mkdir(parents=True, exist_ok=True)
    flag_path(work).write_text(value)


def stop_requested(work: Path) -> str | None:
    """PAUSE, PREEMPT or CANCEL when the job was asked to stop, else None."""
    flag = flag_path(work)
    return flag.read_text().strip() if flag.exists() else None


def clear_stop(work: Path) -> None:
    flag_path(work).unlink(missing_ok=True)


def metrics_path(work: Path) -> Path:
    return work / "metrics.jsonl"


def log_line(work: Path, event: str, **values) -> None:
    """One metrics.jsonl line (rank 0 of the recipe; every rank for WORKER)."""
    with metrics_path(work).open("a") as f:
        f.write(json.dumps({"time": time.time(), "event": event, **values}) + "\n")


# ---------------------------------------------------------------------- the requests


def cancel(services: TrainServices, job: Job) -> Job:
    if job.status in FINAL:
        raise Conflict(f"Job {job.id} already {job.status}; it cannot be cancelled.", param="fine_tuning_job_id")
    if job.status == "running":
        request_stop(services.work_dir / job.id, CANCEL)
    services.events.add(job.id, "Job cancelled by request")
    return services.jobs.finish(job.id, "cancelled")


def pause(services: TrainServices, job: Job) -> Job:
    if job.status != "running":
        raise Conflict(f"Only a running job can be paused; {job.id} is {job.status}.", param="fine_tuning_job_id")
    request_stop(services.work_dir / job.id, PAUSE)
    services.events.add(job.id, "Pause requested: stopping at the next step with a checkpoint")
    return services.jobs.get(None, job.id)


def preempt(services: TrainServices, job: Job) -> None:
    """The scheduler's preempt hook (bound by the platform): checkpoint at the next step and
    stop; the driver then raises Preempted and the runner queues the job again. Idempotent (the
    runner repeats it while the job runs), and a flag left by a gateway killed meanwhile is
    cleared when the job is next claimed, so nothing is stopped twice."""
    if job.status == "running":
        request_stop(services.work_dir / job.id, PREEMPT)


def resume(services: TrainServices, job: Job) -> Job:
    if job.status != "paused":
        raise Conflict(f"Only a paused job can be resumed; {job.id} is {job.status}.", param="fine_tuning_job_id")
    clear_stop(services.work_dir / job.id)
    services.jobs.set_status(job.id, "queued")
    services.events.add(job.id, "Job resumed: queued to continue from its last checkpoint")
    return services.jobs.get(None, job.id)
