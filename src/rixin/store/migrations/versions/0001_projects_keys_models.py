"""projects, api keys and the model registry

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "projects",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", TS),
    )
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id"), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("name", sa.String(128)),
        sa.Column("is_admin", sa.Boolean, nullable=False),
        sa.Column("created_at", TS),
        sa.Column("revoked_at", TS),
    )
    op.create_index("ix_api_keys_project_id", "api_keys", ["project_id"])
    op.create_table(
        "models",
        sa.Column("id", sa.String(255), primary_key=True),
        sa.Column("project_id", sa.String(64), sa.ForeignKey("projects.id")),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("engine", sa.String(32), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("path", sa.String(1024), nullable=False),
        sa.Column("size_bytes", sa.BigInteger, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("owned_by", sa.String(64), nullable=False),
        sa.Column("parent_id", sa.String(255)),
        sa.Column("context_length", sa.Integer),
        sa.Column("meta", sa.JSON, nullable=False),
        sa.Column("created_at", TS),
    )
    op.create_index("ix_models_project_id", "models", ["project_id"])


def downgrade() -> None:
    op.drop_table("models")
    op.drop_table("api_keys")
    op.drop_table("projects")
