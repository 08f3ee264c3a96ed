"""/v1/deployments (rixin extension): request bodies and the deployment objects."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from rixin.serving.deployments import NAME
from rixin.jobs.store import ts
from rixin.store.schema import Deployment, DeploymentChange


class Strict(BaseModel):
    """rixin's own resources: an unknown field is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class CreateDeployment(Strict):
    name: StrictStr = Field(pattern=NAME.pattern, description="1-128 letters, digits, '.', '_', '-', "
                            "starting with a letter or digit.")
    model: StrictStr
    logging: Literal["full", "metadata-only", "off"] = "full"
    redact_pii: StrictBool = False
    flywheel: dict | None = None


class UpdateDeployment(Strict):
    model: StrictStr | None = None
    logging: Literal["full", "metadata-only", "off"] | None = None
    redact_pii: StrictBool | None = None
    flywheel: dict | None = None
    reason: StrictStr | None = None


class Rollback(Strict):
    reason: StrictStr | None = None


def deployment_object(row: Deployment) -> dict:
    return {"id": row.id, "object": "deployment", "name": row.name, "model": row.model_id,
            "logging": row.logging, "redact_pii": row.redact_pii, "flywheel": row.flywheel or {},
            "version": row.version, "created_at": ts(row.created_at), "updated_at": ts(row.updated_at)}


def change_object(row: DeploymentChange) -> dict:
    return {"id": row.id, "object": "deployment.change", "version": row.version,
            "from_model": row.from_model, "to_model": row.to_model, "action": row.action,
            "actor": row.actor, "reason": row.reason, "created_at": ts(row.created_at)}
