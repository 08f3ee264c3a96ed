"""the flywheel and evaluations: deployments and their changes, request logs, feedback,
eval runs, flywheel turns

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def _project() -> sa.Column:
    return sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "deployments",
        sa.Column("id", sa.String(64), primary_key=True),
        _project(),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("logging", sa.String(16), nullable=False),
        sa.Column("redact_pii", sa.Boolean, nullable=False),
        sa.Column("flywheel", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("created_at", TS),
        sa.Column("updated_at", TS),
        sa.UniqueConstraint("project_id", "name", name="uq_deployments_name"),
    )
    op.create_index("ix_deployments_project_id", "deployments", ["project_id"])
    op.create_table(
        "deployment_changes",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("deployment_id", sa.String(64), sa.ForeignKey("deployments.id"), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("from_model", sa.String(255)),
        sa.Column("to_model", sa.String(255), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("actor", sa.String(128), nullable=False),
        sa.Column("reason", sa.String(1024)),
        sa.Column("created_at", TS),
    )
    op.create_index("ix_deployment_changes_deployment_id", "deployment_changes", ["deployment_id"])
    op.create_table(
        "request_logs",
        sa.Column("id", sa.String(64), primary_key=True),
        _project(),
        sa.Column("deployment_id", sa.String(64)),
        sa.Column("model_id", sa.String(255), nullable=False),
        sa.Column("endpoint", sa.String(32), nullable=False),
        sa.Column("policy", sa.String(16), nullable=False),
        sa.Column("request", sa.JSON),
        sa.Column("response", sa.JSON),
        sa.Column("text", sa.Text),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("user", sa.String(256)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("latency_ms", sa.Float, nullable=False),
        sa.Column("prompt_tokens", sa.Integer, nullable=False),
        sa.Column("completion_tokens", sa.Integer, nullable=False),
        sa.Column("created_at", TS),
    )
    for column in ("project_id", "deployment_id", "created_at"):
        op.create_index(f"ix_request_logs_{column}", "request_logs", [column])
    op.create_table(
        "feedback",
        sa.Column("id", sa.String(64), primary_key=True),
        _project(),
        sa.Column("log_id", sa.String(64), sa.ForeignKey("request_logs.id"), nullable=False),
        sa.Column("thumb", sa.String(8)),
        sa.Column("score", sa.Integer),
        sa.Column("comment", sa.Text),
        sa.Column("correction", sa.Text),
        sa.Column("preferred", sa.Text),
        sa.Column("created_by", sa.String(64)),
        sa.Column("created_at", TS),
    )
    for column in ("project_id", "log_id", "created_at"):
        op.create_index(f"ix_feedback_{column}", "feedback", [column])
    op.create_table(
        "eval_runs",
        sa.Column("id", sa.String(64), primary_key=True),
        _project(),
        sa.Column("job_id", sa.String(64)),
        sa.Column("name", sa.String(128)),
        sa.Column("eval_file_id", sa.String(64)),
        sa.Column("models", sa.JSON, nullable=False),
        sa.Column("graders", sa.JSON, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        sa.Column("results_sha256", sa.String(64)),
        sa.Column("created_at", TS),
        sa.Column("finished_at", TS),
    )
    for column in ("project_id", "job_id", "eval_file_id", "created_at"):
        op.create_index(f"ix_eval_runs_{column}", "eval_runs", [column])
    op.create_table(
        "flywheel_turns",
        sa.Column("id", sa.String(64), primary_key=True),
        _project(),
        sa.Column("deployment_id", sa.String(64), sa.ForeignKey("deployments.id"), nullable=False),
        sa.Column("job_id", sa.String(64)),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("feedback_since", TS),
        sa.Column("feedback_until", TS),
        sa.Column("current_model", sa.String(255)),
        sa.Column("candidate_model", sa.String(255)),
        sa.Column("dataset_version_id", sa.String(64)),
        sa.Column("fine_tune_job_id", sa.String(64)),
        sa.Column("eval_run_id", sa.String(64)),
        sa.Column("decision", sa.JSON, nullable=False),
        sa.Column("created_at", TS),
        sa.Column("finished_at", TS),
    )
    for column in ("project_id", "deployment_id", "job_id", "created_at"):
        op.create_index(f"ix_flywheel_turns_{column}", "flywheel_turns", [column])


def downgrade() -> None:
    for table in ("flywheel_turns", "eval_runs", "feedback", "request_logs", "deployment_changes", "deployments"):
        op.drop_table(table)
