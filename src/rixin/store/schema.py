"""ORM tables of the metadata store. Change them only together with a new migration."""

from __future__ import annotations

from datetime import datetime, timezone

from sqlalchemy import (JSON, BigInteger, Boolean, DateTime, Float, ForeignKey, Integer, String,
                        Text, UniqueConstraint)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Base(DeclarativeBase):
    pass


class Project(Base):
    __tablename__ = "projects"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    # sha256 of the whole key; the key itself is shown once and never stored.
    key_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    prefix: Mapped[str] = mapped_column(String(16), nullable=False)
    name: Mapped[str | None] = mapped_column(String(128))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    read_only: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)  # GET routes only
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Model(Base):
    """A servable model: bundled, added by a user, or (later) fine-tuned."""

    __tablename__ = "models"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    # None: visible to every project (bundled and admin-added models).
    project_id: Mapped[str | None] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # chat | embedding
    engine: Mapped[str] = mapped_column(String(32), nullable=False)  # llama.cpp | transformers | sentence
    format: Mapped[str] = mapped_column(String(16), nullable=False)  # gguf | hf
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    size_bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    source: Mapped[str] = mapped_column(String(16), nullable=False)  # bundled | user
    owned_by: Mapped[str] = mapped_column(String(64), nullable=False)
    parent_id: Mapped[str | None] = mapped_column(String(255))
    context_length: Mapped[int | None] = mapped_column(Integer)
    meta: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class File(Base):
    """An uploaded (or generated) file; its bytes are the artifact with this sha256."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    filename: Mapped[str] = mapped_column(String(512), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), index=True, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    status_details: Mapped[str | None] = mapped_column(String(4096))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Dataset(Base):
    """A named chain of immutable versions."""

    __tablename__ = "datasets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class DatasetVersion(Base):
    """One immutable version: records as a JSONL artifact, with how it was made."""

    __tablename__ = "dataset_versions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    parent_id: Mapped[str | None] = mapped_column(String(64))
    operation: Mapped[str] = mapped_column(String(32), nullable=False)  # create | clean | label
    params: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    records: Mapped[int] = mapped_column(Integer, nullable=False)
    format: Mapped[str] = mapped_column(String(32), nullable=False)  # chat | prompt_completion | text | ...
    report: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("dataset_id", "version", name="uq_dataset_versions_number"),)


class StoredRecipe(Base):
    """A cleaning recipe saved in a project (POST /v1/recipes); settings is the validated
    recipe (rixin.data.recipe.Recipe) as JSON."""

    __tablename__ = "recipes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    description: Mapped[str] = mapped_column(Text, default="", nullable=False)
    settings: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_recipes_name"),)


class Job(Base):
    """A long-running piece of work (cleaning, labeling, ...), resumable from its work dir."""

    __tablename__ = "jobs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)
    params: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    progress: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    result: Mapped[dict | None] = mapped_column(JSON)
    error: Mapped[dict | None] = mapped_column(JSON)
    owner: Mapped[str | None] = mapped_column(String(128))
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class JobEvent(Base):
    """A fine-tuning job's event (message or step metrics), listed newest first."""

    __tablename__ = "job_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    seq: Mapped[int] = mapped_column(Integer, nullable=False)
    level: Mapped[str] = mapped_column(String(8), nullable=False)
    type: Mapped[str] = mapped_column(String(16), nullable=False)  # message | metrics
    message: Mapped[str] = mapped_column(String(1024), nullable=False)
    data: Mapped[dict | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class JobCheckpoint(Base):
    """A checkpoint a fine-tuning job wrote (adapter or full weights + optimizer state)."""

    __tablename__ = "job_checkpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    step: Mapped[int] = mapped_column(Integer, nullable=False)
    path: Mapped[str] = mapped_column(String(1024), nullable=False)
    metrics: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ReviewItem(Base):
    """A labeled item below its job's confidence threshold, waiting for a person's verdict."""

    __tablename__ = "review_items"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    dataset_id: Mapped[str] = mapped_column(ForeignKey("datasets.id"), index=True)
    source_version_id: Mapped[str] = mapped_column(String(64), nullable=False)
    record: Mapped[dict] = mapped_column(JSON, nullable=False)  # the source record, unlabeled
    proposed_label: Mapped[object | None] = mapped_column(JSON)  # None: the labeler produced none
    confidence: Mapped[float] = mapped_column(Float, nullable=False)
    reason: Mapped[str] = mapped_column(String(64), nullable=False)  # the labeler's verdict reason
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)  # pending | accepted | corrected | rejected
    final_label: Mapped[object | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class Deployment(Base):
    """A stable name clients use as `model`, pointing at a concrete model id (rixin extension)."""

    __tablename__ = "deployments"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    name: Mapped[str] = mapped_column(String(128), nullable=False)
    model_id: Mapped[str] = mapped_column(String(255), nullable=False)
    logging: Mapped[str] = mapped_column(String(16), nullable=False)  # full | metadata-only | off
    redact_pii: Mapped[bool] = mapped_column(Boolean, default=False, nullable=False)
    # Flywheel settings: eval set, graders, promotion margin, feedback thresholds, schedule.
    flywheel: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)
    version: Mapped[int] = mapped_column(Integer, default=1, nullable=False)  # bumped on each switch
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    __table_args__ = (UniqueConstraint("project_id", "name", name="uq_deployments_name"),)


class DeploymentChange(Base):
    """One switch of a deployment's target: who, when, why (promotion, rollback, edit)."""

    __tablename__ = "deployment_changes"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    version: Mapped[int] = mapped_column(Integer, nullable=False)
    from_model: Mapped[str | None] = mapped_column(String(255))
    to_model: Mapped[str] = mapped_column(String(255), nullable=False)
    action: Mapped[str] = mapped_column(String(16), nullable=False)  # create | update | promote | rollback
    actor: Mapped[str] = mapped_column(String(128), nullable=False)  # api key id, or "flywheel:<turn>"
    reason: Mapped[str | None] = mapped_column(String(1024))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RequestLog(Base):
    """A logged chat/completions request through a deployment (or with `store=true`)."""

    __tablename__ = "request_logs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # the completion id (chatcmpl-…)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    deployment_id: Mapped[str | None] = mapped_column(String(64), index=True)
    model_id: Mapped[str] = mapped_column(String(255), nullable=False)  # the concrete model that answered
    endpoint: Mapped[str] = mapped_column(String(32), nullable=False)  # chat.completions | completions
    policy: Mapped[str] = mapped_column(String(16), nullable=False)  # full | metadata-only
    request: Mapped[dict | None] = mapped_column(JSON)  # None under metadata-only
    response: Mapped[dict | None] = mapped_column(JSON)  # None under metadata-only
    text: Mapped[str | None] = mapped_column(String)  # prompt + answer, for search; None under metadata-only
    meta: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # the request's `metadata`
    user: Mapped[str | None] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # completed | failed | cancelled
    latency_ms: Mapped[float] = mapped_column(Float, nullable=False)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Feedback(Base):
    """A person's (or a program's) judgement of one logged completion."""

    __tablename__ = "feedback"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    log_id: Mapped[str] = mapped_column(ForeignKey("request_logs.id"), index=True)
    thumb: Mapped[str | None] = mapped_column(String(8))  # up | down
    score: Mapped[int | None] = mapped_column(Integer)  # 1-5
    comment: Mapped[str | None] = mapped_column(String)
    correction: Mapped[str | None] = mapped_column(String)  # the answer it should have given
    preferred: Mapped[str | None] = mapped_column(String)  # an alternative preferred over the logged answer
    created_by: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class EvalRun(Base):
    """An evaluation of one or more models on an eval set with graders; items in an artifact."""

    __tablename__ = "eval_runs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    name: Mapped[str | None] = mapped_column(String(128))
    eval_file_id: Mapped[str | None] = mapped_column(String(64), index=True)
    models: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    graders: Mapped[list] = mapped_column(JSON, default=list, nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False)
    summary: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # per model, per grader; diff + CI
    results_sha256: Mapped[str | None] = mapped_column(String(64))  # per-item outputs and scores (JSONL)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class FlywheelTurn(Base):
    """One turn: feedback → dataset version → incremental fine-tune → eval → promote or not."""

    __tablename__ = "flywheel_turns"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    deployment_id: Mapped[str] = mapped_column(ForeignKey("deployments.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), nullable=False)  # running | promoted | kept | failed | skipped
    feedback_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    feedback_until: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_model: Mapped[str | None] = mapped_column(String(255))
    candidate_model: Mapped[str | None] = mapped_column(String(255))
    dataset_version_id: Mapped[str | None] = mapped_column(String(64))
    fine_tune_job_id: Mapped[str | None] = mapped_column(String(64))
    eval_run_id: Mapped[str | None] = mapped_column(String(64))
    decision: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # scores, margin, why
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UsageRecord(Base):
    """The tokens of one answered model request (chat, completion or embedding): written before
    the answer is sent, so every acknowledged request is counted once (its id is the key)."""

    __tablename__ = "usage_records"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(64), nullable=False)
    api_key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    model: Mapped[str] = mapped_column(String(255), nullable=False)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)  # completions | embeddings
    input_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    input_cached_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    output_tokens: Mapped[int] = mapped_column(Integer, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class RateLimit(Base):
    """A project's per-model limit per minute (None: the default)."""

    __tablename__ = "rate_limits"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    max_requests_per_1_minute: Mapped[int | None] = mapped_column(Integer)
    max_tokens_per_1_minute: Mapped[int | None] = mapped_column(Integer)


class Price(Base):
    """What a model costs in USD per 1M tokens (admin-set)."""

    __tablename__ = "prices"

    model: Mapped[str] = mapped_column(String(255), primary_key=True)
    input_per_1m: Mapped[float] = mapped_column(Float, nullable=False)
    cached_input_per_1m: Mapped[float] = mapped_column(Float, nullable=False)
    output_per_1m: Mapped[float] = mapped_column(Float, nullable=False)


class AuditLog(Base):
    """One admin action or deployment switch."""

    __tablename__ = "audit_logs"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    type: Mapped[str] = mapped_column(String(64), nullable=False)  # e.g. project.created
    project_id: Mapped[str | None] = mapped_column(String(64))
    api_key_id: Mapped[str] = mapped_column(String(64), nullable=False)
    details: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # method, path, status
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class ProjectQuota(Base):
    """What an admin granted a project on the shared compute (compute/quotas.py); a project
    without a row has no guarantee, borrows freely and runs the gateway's default number of jobs."""

    __tablename__ = "project_quotas"

    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), primary_key=True)
    guaranteed: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # class → amount
    borrow_limit: Mapped[dict] = mapped_column(JSON, default=dict, nullable=False)  # class → amount above
    running_jobs: Mapped[int | None] = mapped_column(Integer)
    storage_bytes: Mapped[int | None] = mapped_column(BigInteger)
    budget: Mapped[float | None] = mapped_column(Float)  # per calendar month, in the prices' currency
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)



class Upload(Base):
    """A multipart upload (OpenAI's Uploads API): parts arrive one request each, then
    `complete` assembles them, in the order the client names, into a File."""

    __tablename__ = "uploads"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("projects.id"), index=True)
    filename: Mapped[str] = mapped_column(String(512), nullable=False)
    purpose: Mapped[str] = mapped_column(String(32), nullable=False)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)  # what the client announced
    mime_type: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(16), nullable=False, index=True)  # pending | completed | cancelled | expired
    file_id: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)


class UploadPart(Base):
    """One part of an upload; its bytes are a file of their own until the upload completes."""

    __tablename__ = "upload_parts"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger, nullable=False)
    sha256: Mapped[str] = mapped_column(String(64), nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
