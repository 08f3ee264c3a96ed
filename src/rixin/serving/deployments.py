"""Deployments: a stable name clients send as `model`, pointing at a concrete model id.

A switch of the target (update, promotion, rollback) is one UPDATE of the row with a version
bump plus a DeploymentChange row, in one transaction. A request reads the row once (resolve),
so a concurrent switch gives it either the old or the new target, never a mix.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import delete, select

from rixin.errors import Conflict, InvalidRequest, ModelNotFound, NotFound, invalid_from
from rixin.store.db import Database
from rixin.store.schema import Deployment, DeploymentChange, FlywheelTurn, Model, utcnow
from rixin.store.tenancy import Caller, new_id

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
POLICIES = ("full", "metadata-only", "off")
EVERY = re.compile(r"^(\d+)([smhd])$")
UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


class FlywheelSettings(BaseModel):
    """How a deployment's flywheel turns: what to train on, how to judge, when to promote."""

    model_config = ConfigDict(extra="forbid")

    eval_file_id: str | None = Field(None, description="Eval set (a file with purpose 'evals') the gate runs.")
    graders: list[dict] = Field(default_factory=list, description="Graders of the eval run (evals/ shapes).")
    margin: float = Field(0.0, description="Promote only if candidate mean - current mean >= margin.")
    require_ci: bool = Field(False, description="Also require the bootstrap CI's lower bound > 0.")
    min_examples: int = Field(10, ge=1, description="Fewer exported examples than this: the turn is skipped.")
    score_threshold: int = Field(4, ge=1, le=5, description="A logged answer scored >= this is a good example.")
    thumbs_up_is_good: bool = Field(True, description="A thumb up makes the logged answer a good example.")
    hyperparameters: dict = Field(default_factory=dict, description="Fine-tuning hyperparameters of each turn.")
    eval_max_tokens: int = Field(64, ge=1, le=4096, description="Tokens each model may answer an eval item with.")
    every: str | None = Field(None, description="Schedule, e.g. '1d', '6h', '30m'; None: turns on demand.")

    def every_s(self) -> int | None:
        if self.every is None:
            return None
        number, unit = EVERY.match(self.every).groups()
        return int(number) * UNIT_S[unit]


def parse_flywheel(raw: dict | None) -> FlywheelSettings:
    try:
        settings = FlywheelSettings.model_validate(raw or {})
    except ValidationError as e:
        raise invalid_from(e, prefix_param="flywheel", model=FlywheelSettings) from e
    if settings.every is not None and not EVERY.match(settings.every):
        raise InvalidRequest(f"Invalid flywheel setting 'every': {settings.every!r}; use a number and "
                             "a unit s, m, h or d, e.g. '1d'.", param="flywheel.every", code="invalid_value")
    return settings


@dataclass(frozen=True)
class Resolved:
    """What one request runs on: the concrete model row and, if named so, the deployment."""

    model: Model
    deployment: Deployment | None


class Deployments:
    def __init__(self, db: Database, registry):
        self.db, self.registry = db, registry

    # ---------------------------------------------------------------- reading

    def find(self, caller: Caller, name: str) -> Deployment | None:
        with self.db.session() as s:
            return s.scalar(select(Deployment).where(Deployment.project_id == caller.project_id,
                                                     Deployment.name == name))

    def get(self, caller: Caller, name: str) -> Deployment:
        row = self.find(caller, name)
        if row is None:
            raise NotFound(f"No such deployment: {name!r}. List them with GET /v1/deployments.",
                           param="name")
        return row

    def by_id(self, deployment_id: str) -> Deployment:
        with self.db.session() as s:
            return s.get(Deployment, deployment_id)

    def list(self, caller: Caller) -> list[Deployment]:
        with self.db.session() as s:
            q = select(Deployment).where(Deployment.project_id == caller.project_id)
            return list(s.scalars(q.order_by(Deployment.created_at, Deployment.id)))

    def scheduled(self) -> list[Deployment]:
        """Every deployment (all projects) whose flywheel has a schedule; for the driver."""
        with self.db.session() as s:
            return [d for d in s.scalars(select(Deployment)) if (d.flywheel or {}).get("every")]

    def changes(self, caller: Caller, name: str) -> list[DeploymentChange]:
        row = self.get(caller, name)
        with self.db.session() as s:
            q = select(DeploymentChange).where(DeploymentChange.deployment_id == row.id)
            return list(s.scalars(q.order_by(DeploymentChange.version)))

    def resolve(self, caller: Caller, model: str) -> Resolved:
        """The model a request names: a deployment of the caller's project, else a model id."""
        deployment = self.find(caller, model) if isinstance(model, str) else None
        if deployment is None:
            return Resolved(self.registry.get(model, caller, kind="chat"), None)
        return Resolved(self.registry.get(deployment.model_id, caller, kind="chat"), deployment)

    # ---------------------------------------------------------------- writing

    def create(self, caller: Caller, *, name: str, model: str, logging: str = "full",
               redact_pii: bool = False, flywheel: dict | None = None) -> Deployment:
        if not NAME.match(name or ""):
            raise InvalidRequest(f"Invalid deployment name {name!r}: 1-128 letters, digits, '.', '_', "
                                 "'-', starting with a letter or digit.", param="name", code="invalid_value")
        self._check_not_a_model(caller, name)
        check_policy(logging)
        settings = parse_flywheel(flywheel)
        target = self._target(caller, model)
        row = Deployment(id=new_id("dep"), project_id=caller.project_id, name=name, model_id=target,
                         logging=logging, redact_pii=bool(redact_pii),
                         flywheel=settings.model_dump(mode="json"), version=1)
        with self.db.session() as s:
            if s.scalar(select(Deployment.id).where(Deployment.project_id == caller.project_id,
                                                    Deployment.name == name)) is not None:
                raise Conflict(f"A deployment named {name!r} already exists in this project.", param="name")
            s.add(row)
            s.add(DeploymentChange(id=new_id("dchg"), deployment_id=row.id, version=1, from_model=None,
                                   to_model=target, action="create", actor=caller.key_id, reason=None))
        return row

    def update(self, caller: Caller, name: str, *, model: str | None = None, logging: str | None = None,
               redact_pii: bool | None = None, flywheel: dict | None = None, reason: str | None = None
               ) -> Deployment:
        row = self.get(caller, name)
        if logging is not None:
            check_policy(logging)
        settings = parse_flywheel(flywheel) if flywheel is not None else None
        target = self._target(caller, model) if model is not None else None
        with self.db.session() as s:
            locked = s.scalar(select(Deployment).where(Deployment.id == row.id).with_for_update())
            if logging is not None:
                locked.logging = logging
            if redact_pii is not None:
                locked.redact_pii = redact_pii
            if settings is not None:
                locked.flywheel = settings.model_dump(mode="json")
            if target is not None and target != locked.model_id:
                self._switch(s, locked, target, "update", caller.key_id, reason)
            locked.updated_at = utcnow()
        return locked

    def switch(self, deployment_id: str, target: str, *, action: str, actor: str, reason: str | None,
               expect_model: str | None = None) -> Deployment:
        """Point the deployment at `target` (promotion); with `expect_model`, only if it still
        points where the caller last saw it (a person may have switched it meanwhile)."""
        with self.db.session() as s:
            locked = s.scalar(select(Deployment).where(Deployment.id == deployment_id).with_for_update())
            if expect_model is not None and locked.model_id != expect_model:
                raise Conflict(f"The deployment now points at {locked.model_id}, not {expect_model}; "
                               "not switched.", param="model")
            self._switch(s, locked, target, action, actor, reason)
        return locked

    def rollback(self, caller: Caller, name: str, *, reason: str | None = None) -> Deployment:
        """Back to the target before the latest switch."""
        row = self.get(caller, name)
        with self.db.session() as s:
            locked = s.scalar(select(Deployment).where(Deployment.id == row.id).with_for_update())
            last = s.scalar(select(DeploymentChange)
                            .where(DeploymentChange.deployment_id == row.id,
                                   DeploymentChange.from_model.is_not(None),
                                   DeploymentChange.to_model == locked.model_id)
                            .order_by(DeploymentChange.version.desc()).limit(1))
            if last is None:
                raise InvalidRequest(f"Deployment {name!r} has never been switched; there is nothing to "
                                     "roll back to.", param="name", code="nothing_to_roll_back")
            self._switch(s, locked, last.from_model, "rollback", caller.key_id, reason)
        return locked

    def delete(self, caller: Caller, name: str) -> Deployment:
        row = self.get(caller, name)
        with self.db.session() as s:
            s.execute(delete(DeploymentChange).where(DeploymentChange.deployment_id == row.id))
            s.execute(delete(FlywheelTurn).where(FlywheelTurn.deployment_id == row.id))
            s.execute(delete(Deployment).where(Deployment.id == row.id))
        return row

    # ---------------------------------------------------------------- helpers

    @staticmethod
    def _switch(s, locked: Deployment, target: str, action: str, actor: str, reason: str | None) -> None:
        previous = locked.model_id
        locked.model_id, locked.version, locked.updated_at = target, locked.version + 1, utcnow()
        s.add(DeploymentChange(id=new_id("dchg"), deployment_id=locked.id, version=locked.version,
                               from_model=previous, to_model=target, action=action, actor=actor,
                               reason=(reason or None) and reason[:1024]))

    def _target(self, caller: Caller, model: str) -> str:
        if not isinstance(model, str) or not model:
            raise InvalidRequest("Missing required parameter: 'model'.", param="model",
                                 code="missing_required_parameter")
        return self.registry.get(model, caller, kind="chat").id

    def _check_not_a_model(self, caller: Caller, name: str) -> None:
        try:
            self.registry.get(name, caller)
        except ModelNotFound:
            return
        raise InvalidRequest(f"The name {name!r} is a model id; a deployment name must differ from "
                             "every model id, or requests could not tell them apart.", param="name",
                             code="name_collides_with_model")


def check_policy(logging: str) -> str:
    if logging not in POLICIES:
        raise InvalidRequest(f"Invalid 'logging': {logging!r}. Supported values are: "
                             f"{', '.join(repr(p) for p in POLICIES)}.", param="logging", code="invalid_value")
    return logging
