"""project quotas on the shared compute: guarantees, borrowing limits, running jobs, storage, budget

Revision ID: 0009
Revises: 0007 (0008, metering, lands from another branch; the merge makes this revise 0008)
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_quotas",
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), primary_key=True),
        sa.Column("guaranteed", sa.JSON, nullable=False),
        sa.Column("borrow_limit", sa.JSON, nullable=False),
        sa.Column("running_jobs", sa.Integer),
        sa.Column("storage_bytes", sa.BigInteger),
        sa.Column("budget", sa.Float),
        sa.Column("updated_at", sa.DateTime(timezone=True)),
    )


def downgrade() -> None:
    op.drop_table("project_quotas")
