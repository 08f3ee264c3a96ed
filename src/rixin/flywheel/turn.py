"""One flywheel turn as a resumable state machine, and the gateway's driver that advances it.

    export ──▶ training ──▶ evaluating ──▶ promoted | kept
      └─▶ skipped (too little feedback)          (failed from any stage)

A turn never occupies a job slot: it creates a fine-tune job and an eval job and the driver
looks at them on each tick (docs/decisions/0005). The stage lives in the row
(`decision["stage"]`), so a gateway restart resumes every running turn where it was.
"""

from __future__ import annotations

import asyncio
import logging
import re
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select

from rixin.errors import Conflict, InvalidRequest, NotFound, RixinError
from rixin.evals.job import EvalServices
from rixin.flywheel.export import ExportServices, export, store
from rixin.jobs.loop import every
from rixin.serving.deployments import Deployments, FlywheelSettings
from rixin.store.db import Database
from rixin.store.schema import Deployment, FlywheelTurn, utcnow
from rixin.store.tenancy import Caller, Tenancy, new_id
from rixin.train.services import TrainServices

log = logging.getLogger("rixin.flywheel")
FINAL = ("promoted", "kept", "failed", "skipped")
CONSUMED = ("promoted", "kept")  # turns whose feedback window is spent; the next starts after it
DEFAULT_HP = {"n_epochs": 3, "batch_size": 8, "packing": False}


def turn_caller(tenancy: Tenancy, turn: FlywheelTurn) -> Caller:
    """The identity a turn acts as: its project, recorded as "flywheel:<turn>"."""
    return Caller(turn.project_id, tenancy.project_name(turn.project_id), f"flywheel:{turn.id}", False)


class Turns:
    """A turn's sub-jobs are a fine-tune job and an eval run: `training` and `evals` are their
    rooms' services (the fine-tune job, the turn's caller and the eval file are read through
    `training`'s jobs, tenancy and files)."""

    def __init__(self, db: Database, deployments: Deployments, exports: ExportServices, training: TrainServices,
                 evals: EvalServices):
        self.db, self.deployments, self.exports, self.training, self.evals = db, deployments, exports, training, evals

    def start(self, caller: Caller, deployment: Deployment) -> FlywheelTurn:
        settings = FlywheelSettings.model_validate(deployment.flywheel or {})
        if not settings.eval_file_id or not settings.graders:
            raise InvalidRequest(f"Deployment {deployment.name!r} has no eval set: set flywheel.eval_file_id "
                                 "and flywheel.graders (POST /v1/deployments/{name}) before a turn.",
                                 param="flywheel.eval_file_id", code="no_eval_set")
        self.training.files.get(caller, settings.eval_file_id)  # 404 now rather than mid-turn
        with self.db.session() as s:
            running = s.scalar(select(FlywheelTurn.id).where(FlywheelTurn.deployment_id == deployment.id,
                                                             FlywheelTurn.status == "running"))
            if running is not None:
                raise Conflict(f"Turn {running} of {deployment.name!r} is still running; wait for it.",
                               param="deployment")
            turn = FlywheelTurn(id=new_id("turn"), project_id=deployment.project_id, deployment_id=deployment.id,
                                status="running", current_model=deployment.model_id,
                                decision={"stage": "export", "started_by": caller.key_id})
            s.add(turn)
        return turn

    def list(self, caller: Caller, deployment: Deployment, limit: int = 100) -> list[FlywheelTurn]:
        with self.db.session() as s:
            q = select(FlywheelTurn).where(FlywheelTurn.deployment_id == deployment.id,
                                           FlywheelTurn.project_id == caller.project_id)
            return list(s.scalars(q.order_by(FlywheelTurn.created_at.desc()).limit(limit)))

    def get(self, caller: Caller, turn_id: str) -> FlywheelTurn:
        with self.db.session() as s:
            row = s.get(FlywheelTurn, turn_id)
        if row is None or row.project_id != caller.project_id:
            raise NotFound(f"No such flywheel turn: {turn_id}", param="turn_id")
        return row

    def running(self) -> list[FlywheelTurn]:
        with self.db.session() as s:
            return list(s.scalars(select(FlywheelTurn).where(FlywheelTurn.status == "running")
                                  .order_by(FlywheelTurn.created_at)))

    def save(self, turn_id: str, *, decision: dict | None = None, **values) -> FlywheelTurn:
        with self.db.session() as s:
            row = s.get(FlywheelTurn, turn_id)
            for key, value in values.items():
                setattr(row, key, value)
            if decision:
                row.decision = {**(row.decision or {}), **decision}
            if values.get("status") in FINAL:
                row.finished_at = utcnow()
        return row

    def window_start(self, turn: FlywheelTurn):
        """Feedback after this was not used by an earlier finished turn."""
        with self.db.session() as s:
            return s.scalar(select(func.max(FlywheelTurn.feedback_until))
                            .where(FlywheelTurn.deployment_id == turn.deployment_id,
                                   FlywheelTurn.status.in_(CONSUMED)))

    # ------------------------------------------------------------------ the state machine

    def advance(self, turn: FlywheelTurn) -> FlywheelTurn:
        """Take the turn one stage further if its sub-job allows; failures end the turn."""
        stage = (turn.decision or {}).get("stage")
        try:
            step = {"export": self._export, "training": self._training, "evaluating": self._evaluating}[stage]
            return step(turn)
        except RixinError as e:
            return self.save(turn.id, status="failed", decision={"why": f"{stage}: {e.message}"})

    def _export(self, turn: FlywheelTurn) -> FlywheelTurn:
        deployment = self.deployments.by_id(turn.deployment_id)
        settings = FlywheelSettings.model_validate(deployment.flywheel or {})
        caller = turn_caller(self.training.tenancy, turn)
        since = self.window_start(turn)
        out = export(self.exports, caller, deployment, since=since, write=False)
        if len(out.supervised) < settings.min_examples:
            return self.save(turn.id, status="skipped", feedback_since=since, feedback_until=out.until,
                             decision={"stage": "done", "export": out.report, "why":
                                       f"{len(out.supervised)} supervised examples from feedback; the turn "
                                       f"needs at least min_examples={settings.min_examples}."})
        store(self.exports, caller, deployment, out)
        from rixin.train.job import create_job

        hp = {**DEFAULT_HP, **settings.hyperparameters}
        suffix = re.sub(r"[^A-Za-z0-9_-]", "-", f"fw-{deployment.name}")[:64]
        job = create_job(self.training, caller, model=turn.current_model,
                         training_file_id=out.supervised_file_id, validation_file_id=None, suffix=suffix, seed=0,
                         method={"type": "supervised", "supervised": {"hyperparameters": hp}},
                         hyperparameters=None, metadata={"flywheel_turn": turn.id})
        return self.save(turn.id, feedback_since=since, feedback_until=out.until, job_id=job.id,
                         fine_tune_job_id=job.id, dataset_version_id=out.dataset_version_id,
                         decision={"stage": "training", "export": out.object()})

    def _training(self, turn: FlywheelTurn) -> FlywheelTurn:
        from rixin.evals.service import start_run

        job = self.training.jobs.get(None, turn.fine_tune_job_id)
        if job.status in ("failed", "cancelled"):
            why = (job.error or {}).get("message") or job.status
            return self.save(turn.id, status="failed", decision={"stage": "done", "why": f"fine-tune {job.status}: {why}"})
        if job.status != "succeeded":
            return turn
        candidate = (job.result or {})["fine_tuned_model"]
        deployment = self.deployments.by_id(turn.deployment_id)
        settings = FlywheelSettings.model_validate(deployment.flywheel or {})
        run = start_run(self.evals, turn_caller(self.training.tenancy, turn),
                        models=[turn.current_model, candidate], eval_file_id=settings.eval_file_id,
                        graders=settings.graders, name=f"flywheel {turn.id}", max_tokens=settings.eval_max_tokens)
        return self.save(turn.id, candidate_model=candidate, eval_run_id=run.id, job_id=run.job_id,
                         decision={"stage": "evaluating"})

    def _evaluating(self, turn: FlywheelTurn) -> FlywheelTurn:
        from rixin.evals.service import get_run

        run = get_run(self.evals, turn_caller(self.training.tenancy, turn), turn.eval_run_id)
        if run.status in ("failed", "cancelled"):
            return self.save(turn.id, status="failed", decision={"stage": "done", "why": f"eval run {run.status}"})
        if run.status != "succeeded":
            return turn
        deployment = self.deployments.by_id(turn.deployment_id)
        settings = FlywheelSettings.model_validate(deployment.flywheel or {})
        verdict = gate(run.summary, settings)
        if not verdict["promote"]:
            return self.save(turn.id, status="kept", decision={"stage": "done", **verdict})
        try:
            self.deployments.switch(deployment.id, turn.candidate_model, action="promote",
                                    actor=f"flywheel:{turn.id}", reason=verdict["why"],
                                    expect_model=turn.current_model)
        except Conflict as e:
            return self.save(turn.id, status="kept", decision={"stage": "done", **verdict, "promote": False,
                                                               "why": e.message})
        return self.save(turn.id, status="promoted", decision={"stage": "done", **verdict})


def gate(summary: dict, settings: FlywheelSettings) -> dict:
    """Promote only if candidate − current ≥ margin (and, if required, the CI excludes 0)."""
    diff = summary.get("diff") or {}
    models = summary.get("models") or {}
    mean, low = diff.get("mean"), diff.get("ci_low")
    scores = {m: v.get("mean") for m, v in models.items()}
    base = {"scores": scores, "diff": diff, "margin": settings.margin, "require_ci": settings.require_ci}
    if mean is None:
        return {**base, "promote": False, "why": "the eval run has no difference between the two models"}
    if mean < settings.margin:
        return {**base, "promote": False,
                "why": f"candidate - current = {mean:+.3f} < margin {settings.margin:+.3f}"}
    if settings.require_ci and not (low is not None and low > 0):
        return {**base, "promote": False, "why": f"the 95% CI's lower bound {low} is not above 0"}
    return {**base, "promote": True, "why": f"candidate - current = {mean:+.3f} >= margin {settings.margin:+.3f}"
            + (f", CI low {low:+.3f} > 0" if settings.require_ci else "")}


class TurnDriver:
    """Advances running turns and starts scheduled ones; a small loop in the gateway."""

    def __init__(self, turns: Turns, poll_s: float = 2.0):
        self.turns, self.poll_s = turns, poll_s

    async def loop(self) -> None:
        await every(self.poll_s, lambda: asyncio.to_thread(self.tick), name="flywheel driver", logger=log)

    def tick(self) -> None:
        for turn in self.turns.running():
            self.turns.advance(turn)
        self.start_due()

    def start_due(self) -> None:
        now = utcnow()
        for deployment in self.turns.deployments.scheduled():
            settings = FlywheelSettings.model_validate(deployment.flywheel)
            if not settings.eval_file_id:
                continue  # start() would refuse it on every tick
            every = settings.every_s()
            with self.turns.db.session() as s:
                last = s.scalar(select(func.max(FlywheelTurn.created_at))
                                .where(FlywheelTurn.deployment_id == deployment.id))
            if last is not None and _aware(last) + timedelta(seconds=every) > now:
                continue
            caller = Caller(deployment.project_id, "", "flywheel:schedule", False)
            try:
                self.turns.start(caller, deployment)
            except RixinError as e:
                log.warning("scheduled turn of %s not started: %s", deployment.name, e.message)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)  # SQLite drops the zone
