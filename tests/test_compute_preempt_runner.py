"""The job runner's preemption hand-over in process, against a real database (both backends):
a job kind standing in for training (it counts steps, checkpoints every CHECKPOINT steps and
stops at a checkpoint when its preempt hook is called) lets the runner's loop be driven in
seconds. The real thing, on Ray with real training and a gateway kill -9, is
tests/test_compute_preempt.py (slow)."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from test_compute_admission import db  # noqa: F401 - the fixture: a migrated database per backend
from rixin.compute.quotas import QuotaBody, Quotas
from rixin.errors import Preempted
from rixin.jobs.runner import JobRunner
from rixin.jobs.store import JobStore
from rixin.store.tenancy import Tenancy
from rixin.train.events import JobEvents

pytestmark = pytest.mark.timeout(120)
STEPS, CHECKPOINT = 40, 5


class Counting:
    """A resumable job kind: steps from its last checkpoint (read from its record), checkpoints
    every CHECKPOINT steps and when asked to stop. `runs` lists (job id, step it started at,
    step it ended at)."""

    def __init__(self):
        self.stop: dict[str, threading.Event] = {}
        self.runs: list[tuple[str, int, int]] = []

    def handler(self, job, report) -> dict:
        flag = self.stop.setdefault(job.id, threading.Event())
        start = step = int((job.progress or {}).get("checkpoint_step") or 0)
        while step < STEPS:
            if flag.is_set():
                flag.clear()
                report(checkpoint_step=step)
                self.runs.append((job.id, start, step))
                raise Preempted(job.id)
            step += 1
            report(step=step, **({"checkpoint_step": step} if step % CHECKPOINT == 0 else {}))
            time.sleep(0.02)
        self.runs.append((job.id, start, step))
        return {"steps": step}

    def preempt(self, job) -> None:
        self.stop.setdefault(job.id, threading.Event()).set()


def contend(db, preempters_for):
    """Project `owner` is guaranteed the one job slot; `borrower` may only borrow it. The
    borrower's job runs first; once past its first checkpoint the owner submits. Returns the
    two jobs' final rows, the borrower's events and the kind's runs."""
    tenancy, jobs, events, kind = Tenancy(db), JobStore(db), JobEvents(db), Counting()
    owner = tenancy.authenticate(tenancy.create_key("owner").key)
    borrower = tenancy.authenticate(tenancy.create_key("borrower").key)
    Quotas(db).put("owner", QuotaBody(guaranteed={"job_slot": 1}, borrow_limit={"job_slot": 0}))
    Quotas(db).put("borrower", QuotaBody(borrow_limit={"job_slot": 1}))
    preempters = {"counting": kind.preempt} if preempters_for else {}
    runner = JobRunner(jobs, events, {"counting": kind.handler}, poll_s=0.05, preempters=preempters)

    async def scenario():
        loop = asyncio.create_task(runner.loop())
        try:
            victim = jobs.create(borrower, "counting", {})
            await until(lambda: (jobs.get(None, victim.id).progress or {}).get("step", 0) >= CHECKPOINT + 2)
            claim = jobs.create(owner, "counting", {})
            await until(lambda: {jobs.status(victim.id), jobs.status(claim.id)} == {"succeeded"})
            return jobs.get(None, victim.id), jobs.get(None, claim.id)
        finally:
            loop.cancel()

    victim, claim = asyncio.run(scenario())
    return victim, claim, events.page(victim.id, limit=100)[0], kind.runs


async def until(predicate, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(predicate):
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


def test_the_owner_preempts_borrowed_work_which_resumes_from_its_checkpoint(db):
    victim, claim, events, runs = contend(db, preempters_for=True)
    preempted = [e for e in events if (e.data or {}).get("reason") == "preempted"]
    assert len(preempted) == 1 and preempted[0].data["preempted_by"] == claim.id
    # the victim stopped, the owner ran to the end, then the victim resumed where it stopped
    (v1, start1, stopped), (c, _, _), (v2, resumed, end) = runs
    assert (v1, c, v2) == (victim.id, claim.id, victim.id) and start1 == 0 and end == STEPS
    assert resumed == stopped and 0 < stopped < STEPS  # no step lost (≤ one interval, here none)
    assert victim.attempts == 2 and claim.attempts == 1
    waits = [e.message for e in events if e.message.startswith("Waiting in queue")]
    assert waits, "the requeued victim says why it waits"


def test_work_without_a_preempt_hook_is_not_preempted_and_the_owner_waits(db):
    victim, claim, events, runs = contend(db, preempters_for=False)
    assert not [e for e in events if (e.data or {}).get("reason") == "preempted"]
    assert [(r[0], r[1], r[2]) for r in runs] == [(victim.id, 0, STEPS), (claim.id, 0, STEPS)]
    assert victim.attempts == 1


def test_a_resumed_job_records_its_earlier_runs_lines_once(db, tmp_path):
    """metrics.jsonl keeps every run's lines (the results file needs them all); a run that
    resumes after a preemption reads them again but records only the new ones as events and
    checkpoints (the offset recorded so far is in the job's progress)."""
    from rixin.train.control import CHECKPOINT as CKPT
    from rixin.train.control import PREEMPTED, RESUMED, STEP, log_line
    from rixin.train.job import MetricsTail

    jobs, events = JobStore(db), JobEvents(db)
    caller = Tenancy(db).authenticate(Tenancy(db).create_key("tail").key)
    job = jobs.create(caller, "fine_tune", {})

    def step(n: int) -> None:
        log_line(tmp_path, STEP, step=n, total_steps=4, train_loss=0.5, learning_rate=1e-4,
                 tokens_per_second=1.0, trained_tokens=n * 10)

    def run() -> MetricsTail:  # one run of the job's driver: a fresh tail over the job's record
        tail = MetricsTail(events, jobs.get(None, job.id), tmp_path, lambda **v: jobs.progress(job.id, **v))
        tail.poll()
        return tail

    step(1), step(2), log_line(tmp_path, CKPT, step=2, path="p2", train_loss=0.5, valid_loss=0.4)
    log_line(tmp_path, PREEMPTED, step=2)
    first = run()
    log_line(tmp_path, RESUMED, step=2, checkpoint="step-000002")
    step(3), step(4)
    second = run()
    messages = [e.message for e in events.page(job.id, limit=100)[0]]
    assert sum(m.startswith("Step ") for m in messages) == 4 and len(events.checkpoints(job.id)[0]) == 1
    assert sum(m.startswith("Training stopped at a checkpoint") for m in messages) == 1
    assert [r["step"] for r in second.rows] == [1, 2, 2, 3, 4] and len(first.rows) == 3  # (2: its valid_loss)
    assert jobs.get(None, job.id).progress["checkpoint_step"] == 2
