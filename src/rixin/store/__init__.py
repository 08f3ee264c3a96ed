"""Metadata store (SQLAlchemy 2 + Alembic) and the artifact store."""
