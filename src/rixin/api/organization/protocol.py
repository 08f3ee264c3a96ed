"""OpenAI's Admin API objects (https://platform.openai.com/docs/api-reference/administration)
for rixin's projects, keys, rate limits, prices and budgets. Creating a project or a key takes
the bodies of /v1/projects (api/projects/protocol.py)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from rixin.compute.budget import Rates
from rixin.compute.ratelimit import Limits
from rixin.store.schema import ApiKey, Project


MAX_USD = 1e12  # finite: JSON has no Infinity, and no budget is larger
MODEL_ID = 255  # the longest model id the store keeps (schema.py)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class UpdateRateLimit(Strict):
    max_requests_per_1_minute: int | None = Field(None, ge=1, le=10**9)
    max_tokens_per_1_minute: int | None = Field(None, ge=1, le=10**12)


class SetPrice(Strict):
    input_per_1m: float = Field(ge=0, le=MAX_USD, description="USD per 1M input tokens.")
    cached_input_per_1m: float | None = Field(None, ge=0, le=MAX_USD, description="USD per 1M cached "
                                              "input tokens (default: the input price).")
    output_per_1m: float = Field(0, ge=0, le=MAX_USD, description="USD per 1M output tokens.")


class SetBudget(Strict):
    monthly_usd: float | None = Field(ge=0, le=MAX_USD, description="The project's monthly budget in USD; "
                                      "null removes it.")


def _ts(value) -> int | None:
    return int(value.timestamp()) if value else None


def project_object(p: Project) -> dict:
    return {"object": "organization.project", "id": p.id, "name": p.name,
            "created_at": _ts(p.created_at) or 0, "archived_at": None, "status": "active"}


def key_object(k: ApiKey, secret: str | None = None) -> dict:
    out = {"object": "organization.project.api_key", "id": k.id, "name": k.name,
           "redacted_value": f"{k.prefix}…", "created_at": _ts(k.created_at) or 0,
           "last_used_at": None, "revoked_at": _ts(k.revoked_at), "admin": k.is_admin,
           "read_only": k.read_only, "owner": {"type": "service_account", "service_account": None}}
    if secret is not None:
        out["value"] = secret  # shown once, at creation
    return out


def rate_limit_object(model: str, limits: Limits) -> dict:
    return {"object": "project.rate_limit", "id": f"rl-{model}", "model": model,
            "max_requests_per_1_minute": limits.requests, "max_tokens_per_1_minute": limits.tokens}


def price_object(model: str, rates: Rates) -> dict:
    return {"object": "organization.price", "id": model, "model": model, "currency": "usd",
            "input_per_1m": rates.input_per_1m, "cached_input_per_1m": rates.cached_input_per_1m,
            "output_per_1m": rates.output_per_1m}


def budget_object(project_id: str, monthly_usd: float | None) -> dict:
    return {"object": "organization.project.budget", "id": project_id, "monthly_usd": monthly_usd}
