"""Typed settings of a rixin gateway. Unknown keys are errors; every field says what it does."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Field(Path(".rixin"), description="Where the database, artifacts and logs live.")
    database_url: str | None = Field(
        None,
        description="SQLAlchemy URL of the metadata store; default is SQLite in data_dir. "
        "PostgreSQL: postgresql+psycopg://user:pass@host/db.",
    )
    host: str = Field("127.0.0.1", description="Address the HTTP gateway binds to.")
    port: int = Field(8000, ge=1, le=65535, description="Port of the HTTP gateway.")
    ray_address: str | None = Field(
        None, description="Address of an existing Ray cluster; None starts a local Ray on 127.0.0.1."
    )
    admin_key: str | None = Field(None, description="Bootstrap admin API key (RIXIN_ADMIN_KEY).")
    max_body_bytes: int = Field(
        8 * 1024 * 1024, ge=1024, description="Largest JSON request body accepted; larger gets 413."
    )
    read_timeout_s: float = Field(
        30, gt=0, description="Seconds a client may pause while sending a request's headers or body; "
        "longer: the connection is closed (headers) or answered 408 (body).")
    metrics_token: str | None = Field(
        None, description="Bearer token that may read GET /metrics besides admin keys (RIXIN_METRICS_TOKEN), "
        "for a Prometheus scraper.")
    max_file_bytes: int = Field(
        512 * 2**20, ge=1024, description="Largest file accepted by POST /v1/files; larger gets 413."
    )
    max_n: int = Field(8, ge=1, description="Largest `n` (choices per request) accepted.")
    engine_queue_size: int = Field(
        64, ge=1, description="Requests waiting per engine replica before 429 with retry-after."
    )
    engine_queue_per_project: int = Field(
        16, ge=1, description="Requests one project may have in flight per engine replica (its share of "
        "engine_queue_size); beyond it that project gets 429 with retry-after while others still get in. "
        "Waiting requests are admitted round-robin across projects.")
    engine_num_cpus: float = Field(
        0, ge=0, description="Ray CPUs reserved per engine replica (0: engines share the node)."
    )
    engine_threads: int = Field(
        max(1, os.cpu_count() or 1), ge=1, description="Threads llama.cpp uses per replica."
    )
    job_slots: int = Field(1, ge=1, le=64, description="Jobs (cleaning, labeling, training) running at once.")
    max_running_jobs_per_project: int = Field(
        1, ge=1, le=64, description="Quota: a project's jobs beyond this wait in 'queued' (by priority, then FIFO).")
    chat_context: int = Field(2048, ge=128, description="Context window (tokens) of llama.cpp engines.")
    engine_replicas: int = Field(
        1, ge=1, le=64, description="Replicas per chat/completion model; the gateway sends each request to "
        "the least-loaded one and places them on distinct Ray nodes where it can.")
    engine_batch_slots: int = Field(
        8, ge=1, le=64, description="Sequences a llama.cpp replica decodes together (continuous batching); "
        "its KV cache holds this many full contexts.")
    engine_requantize: bool = Field(
        False, description="Serve GGUFs whose weights are Q4_1/Q5_0/Q5_1 from a Q8_0 copy made once under "
        "data_dir/cache/gguf: prompts and many-sequence steps run faster, a single stream slower, and greedy "
        "output may differ between a cold and a prompt-cached request (docs/decisions/0006).")

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'rixin.db').resolve()}"

    @classmethod
    def from_env(cls, **overrides) -> "Settings":
        """Settings from RIXIN_<FIELD> environment variables (e.g. RIXIN_DATABASE_URL,
        RIXIN_ADMIN_KEY, RIXIN_MAX_N), then explicit overrides (CLI flags)."""
        values = {name: os.environ[f"RIXIN_{name.upper()}"] for name in cls.model_fields
                  if os.environ.get(f"RIXIN_{name.upper()}")}
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)
