"""Projects and API keys (rixin extension; admin only)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr

from rixin.store.schema import ApiKey, Project
from rixin.store.tenancy import PROJECT_NAME


class CreateProject(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: StrictStr = Field(description="1-63 lowercase letters, digits and '-'.", pattern=PROJECT_NAME.pattern)


class CreateKey(BaseModel):
    model_config = ConfigDict(extra="ignore")
    name: StrictStr | None = Field(None, description="A label to recognise the key by.")
    admin: StrictBool = Field(False, description="Whether the key may use admin routes.")
    read_only: StrictBool = Field(False, description="Whether the key may only read (GET routes).")


def project_object(p: Project) -> dict:
    return {"id": p.id, "object": "project", "name": p.name,
            "created_at": int(p.created_at.timestamp()) if p.created_at else 0}


def key_object(k: ApiKey, project: str, secret: str | None = None) -> dict:
    out = {"id": k.id, "object": "api_key", "project": project, "name": k.name,
           "prefix": k.prefix, "admin": k.is_admin, "read_only": k.read_only,
           "created_at": int(k.created_at.timestamp()) if k.created_at else 0,
           "revoked_at": int(k.revoked_at.timestamp()) if k.revoked_at else None}
    if secret is not None:
        out["key"] = secret  # shown once, at creation
    return out
