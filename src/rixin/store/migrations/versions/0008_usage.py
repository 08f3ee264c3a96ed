"""metering, rate limits, prices, audit log and read-only keys (issue 12 item 5)

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("api_keys") as batch:
        batch.add_column(sa.Column("read_only", sa.Boolean, nullable=False, server_default=sa.false()))
    op.create_table(
        "usage_records",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("api_key_id", sa.String(64), nullable=False),
        sa.Column("model", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("input_tokens", sa.Integer, nullable=False),
        sa.Column("input_cached_tokens", sa.Integer, nullable=False),
        sa.Column("output_tokens", sa.Integer, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_usage_records_created_at", "usage_records", ["created_at"])
    op.create_table(
        "rate_limits",
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("max_requests_per_1_minute", sa.Integer),
        sa.Column("max_tokens_per_1_minute", sa.Integer),
    )
    op.create_table(
        "prices",
        sa.Column("model", sa.String(255), primary_key=True),
        sa.Column("input_per_1m", sa.Float, nullable=False),
        sa.Column("cached_input_per_1m", sa.Float, nullable=False),
        sa.Column("output_per_1m", sa.Float, nullable=False),
    )
    op.create_table(
        "audit_logs",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("project_id", sa.String(64)),
        sa.Column("api_key_id", sa.String(64), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True)),
    )
    op.create_index("ix_audit_logs_created_at", "audit_logs", ["created_at"])


def downgrade() -> None:
    for table in ("audit_logs", "prices", "rate_limits", "usage_records"):
        op.drop_table(table)
    with op.batch_alter_table("api_keys") as batch:
        batch.drop_column("read_only")
