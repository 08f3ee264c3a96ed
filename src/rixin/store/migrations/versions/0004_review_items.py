"""review items: labeled items below the confidence threshold, waiting for review

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "review_items",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("job_id", sa.String(64), sa.ForeignKey("jobs.id"), nullable=False),
        sa.Column("dataset_id", sa.String(64), sa.ForeignKey("datasets.id"), nullable=False),
        sa.Column("source_version_id", sa.String(64), nullable=False),
        sa.Column("record", sa.JSON, nullable=False),
        sa.Column("proposed_label", sa.JSON),
        sa.Column("confidence", sa.Float, nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("final_label", sa.JSON),
        sa.Column("created_at", TS),
        sa.Column("reviewed_at", TS),
    )
    for column in ("project_id", "job_id", "dataset_id", "status"):
        op.create_index(f"ix_review_items_{column}", "review_items", [column])


def downgrade() -> None:
    op.drop_table("review_items")
