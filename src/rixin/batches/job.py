"""The `batch` job: read the input file, send its requests through the online serving path
(`dispatch`, bound by the gateway) a bounded number at a time, log each answer as it comes
(resumable: a restarted job sends only what is unanswered), then write the output and error
files. Cancelled: what was answered is still written. Past the completion window: expired,
the unanswered lines go to the error file."""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Protocol

from rixin.batches.lines import Answers, Request, error_line, output_line, read_requests
from rixin.errors import Cancelled, EngineUnavailable, InvalidRequest, Paused
from rixin.jobs.store import JobStore
from rixin.store.artifacts import ArtifactStore
from rixin.store.files import Files
from rixin.store.schema import Job
from rixin.store.tenancy import Caller, Tenancy



class Dispatch(Protocol):
    """Send one request as an online one would go (validation, serving, metering); a future of
    (HTTP status, JSON body). api/batches/dispatch.py is the one the gateway binds."""

    def __call__(self, caller: Caller, url: str, body: dict) -> Future: ...


@dataclass
class BatchServices:
    jobs: JobStore
    files: Files
    artifacts: ArtifactStore
    tenancy: Tenancy
    work_dir: Path
    dispatch: Dispatch | None = None  # bound when the gateway serves (it owns the event loop)
    # requests in flight: the platform gives the sequences one engine replica decodes together,
    # enough to fill an idle engine; interactive requests of other projects still get their
    # turns (engines/fair.py admits waiting work round-robin across projects)
    concurrency: int = 4


def caller_of(services: BatchServices, job: Job) -> Caller:
    """The batch's requests are the project's, made with the key that created the batch."""
    return Caller(job.project_id, services.tenancy.project_name(job.project_id), job.params["key_id"], False)


def run_batch(services: BatchServices, job: Job, report: Callable[..., None]) -> dict:
    if services.dispatch is None:  # bound by the gateway before its job runner starts
        raise EngineUnavailable("Batches are answered by a running gateway (rixin up).")
    params, caller = job.params, caller_of(services, job)
    report(phase="validating")
    source = services.files.get(caller, params["input_file_id"])
    try:
        requests, invalid = read_requests(services.files.path(source), params["endpoint"])
    except ValueError as e:
        raise InvalidRequest(str(e), param="input_file_id") from e
    total = len(requests) + len(invalid)
    if not total:
        raise InvalidRequest("The input file holds no requests.", param="input_file_id", code="empty_file")
    answers = Answers(services.work_dir / job.id / "answers.jsonl")
    try:
        return _answer_all(services, job, caller, requests, invalid, answers, report)
    except Cancelled:  # what was answered still makes the output file
        _finish(services, job, caller, answers, total, report, "cancelled")
        raise
    finally:
        answers.close()


def _answer_all(services: BatchServices, job: Job, caller: Caller, requests: list[Request],
                invalid: dict[int, dict], answers: Answers, report: Callable[..., None]) -> dict:
    total = len(requests) + len(invalid)
    for index, line in invalid.items():
        if index not in answers.done:
            answers.add(index, False, line)
    todo = [r for r in requests if r.index not in answers.done]
    report(phase="in_progress", in_progress_at=(job.progress or {}).get("in_progress_at") or int(time.time()),
           request_counts=answers.counts(total))
    expired = _send(services, caller, job.params, todo, answers, total, report)
    if expired:
        for r in todo:
            if r.index not in answers.done:
                answers.add(r.index, False, error_line(r.custom_id, "batch_expired", "This request could not be "
                                                       "executed before the completion window expired."))
    return _finish(services, job, caller, answers, total, report, "expired" if expired else "completed")


def _send(services: BatchServices, caller: Caller, params: dict, todo: list[Request], answers: Answers,
          total: int, report: Callable[..., None]) -> bool:
    """Send the requests, at most `concurrency` in flight; True if the window expired first."""
    queue, flight = list(reversed(todo)), {}
    try:
        while queue or flight:
            if services.dispatch is None:  # the gateway is stopping: its next start resumes the batch
                raise Paused("the gateway is stopping")
            if time.time() >= params["expires_at"]:
                return True
            while queue and len(flight) < services.concurrency:
                r = queue.pop()
                flight[services.dispatch(caller, params["endpoint"], r.body)] = r
            done, _ = wait(flight, timeout=1.0, return_when=FIRST_COMPLETED)
            for future in done:
                r = flight.pop(future)
                if future.cancelled():  # stopped with the gateway's loop: sent again
                    queue.append(r)
                    continue
                status, body = future.result()
                if status == 200:
                    answers.add(r.index, True, output_line(r.custom_id, status, body))
                else:
                    answers.add(r.index, False, error_line(r.custom_id, "request_failed", "", status=status,
                                                           body=body))
            report(request_counts=answers.counts(total))  # raises Cancelled once the batch is cancelled
        return False
    finally:
        for future in flight:  # cancelled or failed: what is in flight is dropped, answered again on resume
            future.cancel()


def _finish(services: BatchServices, job: Job, caller: Caller, answers: Answers, total: int,
            report: Callable[..., None], outcome: str) -> dict:
    """Write the output and error files (batch_output) from the answers log."""
    ended = {"completed": "completed_at", "expired": "expired_at", "cancelled": "cancelled_at"}[outcome]
    values = {"request_counts": answers.counts(total)}
    if outcome != "cancelled":
        report(phase="finalizing", finalizing_at=int(time.time()))
    for ok, key, name in ((True, "output_file_id", "output"), (False, "error_file_id", "errors")):
        writer = services.artifacts.writer()
        for line in answers.lines(ok):
            writer.write(line)
        if writer.size:
            row = services.files.add(caller, writer, filename=f"{job.id}_{name}.jsonl", purpose="batch_output")
            values[key] = row.id
        else:
            writer.abort()
    values.update({"phase": outcome, ended: int(time.time())})
    services.jobs.progress(job.id, **values)  # not report(): a cancelled batch still records its files
    return values
