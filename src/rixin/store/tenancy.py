"""Projects and API keys: who may call, and whose resources they see.

Keys look like `rx-<43 url-safe chars>`; only their sha256 is stored. Every resource
belongs to a project; services receive a `Caller` and filter by its project.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

from sqlalchemy import select

from rixin.errors import InvalidRequest, NotFound, Unauthenticated
from rixin.store.db import Database
from rixin.store.schema import ApiKey, Project, utcnow

DEFAULT_PROJECT = "default"
PROJECT_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


@dataclass(frozen=True)
class Caller:
    project_id: str
    project_name: str
    key_id: str
    is_admin: bool
    read_only: bool = False  # may only read (GET); api/gate.py refuses every other method


@dataclass(frozen=True)
class NewKey:
    id: str
    key: str
    project: str
    is_admin: bool
    read_only: bool = False


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def check_project_name(name: str) -> str:
    if not PROJECT_NAME.match(name or ""):
        raise InvalidRequest(
            f"Invalid project name {name!r}: use 1-63 lowercase letters, digits and '-', "
            "starting with a letter or digit.",
            param="name",
        )
    return name


class Tenancy:
    def __init__(self, db: Database):
        self.db = db

    def ensure_project(self, name: str) -> Project:
        check_project_name(name)
        with self.db.session() as s:
            project = s.scalar(select(Project).where(Project.name == name))
            if project is None:
                project = Project(id=new_id("proj"), name=name)
                s.add(project)
            return project

    def list_projects(self) -> list[Project]:
        with self.db.session() as s:
            return list(s.scalars(select(Project).order_by(Project.created_at, Project.id)))

    def project_name(self, project_id: str) -> str:
        with self.db.session() as s:
            return s.get(Project, project_id).name

    def get_project(self, name: str) -> Project:
        with self.db.session() as s:
            project = s.scalar(select(Project).where(Project.name == name))
        if project is None:
            raise NotFound(f"No project named {name!r}.", param="project")
        return project

    def find_project(self, project: str) -> Project:
        """A project by id (OpenAI's Admin API names projects by id) or by name."""
        with self.db.session() as s:
            row = s.get(Project, project)
        return row if row is not None else self.get_project(project)

    def create_key(self, project: str, *, name: str | None = None, admin: bool = False,
                   key: str | None = None, read_only: bool = False) -> NewKey:
        """Create a key for `project` (created if missing). `key` imports a known secret;
        a `read_only` key may only read (an admin one too: it reads admin routes)."""
        proj = self.ensure_project(project)
        secret = key or "rx-" + secrets.token_urlsafe(32)
        with self.db.session() as s:
            row = ApiKey(id=new_id("key"), project_id=proj.id, key_hash=hash_key(secret),
                         prefix=secret[:7], name=name, is_admin=admin, read_only=read_only)
            s.add(row)
        return NewKey(id=row.id, key=secret, project=proj.name, is_admin=admin, read_only=read_only)

    def ensure_admin_key(self, key: str) -> bool:
        """Make `key` an admin key of the default project; True if it was new."""
        with self.db.session() as s:
            if s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key))) is not None:
                return False
        self.create_key(DEFAULT_PROJECT, name="bootstrap admin", admin=True, key=key)
        return True

    def has_admin_key(self) -> bool:
        with self.db.session() as s:
            q = select(ApiKey.id).where(ApiKey.is_admin.is_(True), ApiKey.revoked_at.is_(None))
            return s.scalar(q.limit(1)) is not None

    def list_keys(self, project: str) -> list[ApiKey]:
        proj = self.get_project(project)
        with self.db.session() as s:
            q = select(ApiKey).where(ApiKey.project_id == proj.id).order_by(ApiKey.created_at)
            return list(s.scalars(q))

    def revoke_key(self, project: str, key_id: str) -> ApiKey:
        proj = self.get_project(project)
        with self.db.session() as s:
            row = s.get(ApiKey, key_id)
            if row is None or row.project_id != proj.id:
                raise NotFound(f"No API key {key_id!r} in project {project!r}.", param="key_id")
            if row.revoked_at is None:
                row.revoked_at = utcnow()
            return row

    def authenticate(self, key: str | None) -> Caller:
        if not key:
            raise Unauthenticated(
                "Missing API key: send it as 'Authorization: Bearer KEY' "
                "(create one with `rixin keys create --project NAME`)."
            )
        with self.db.session() as s:
            row = s.scalar(select(ApiKey).where(ApiKey.key_hash == hash_key(key)))
            project = s.get(Project, row.project_id) if row is not None else None
        if row is None or project is None:
            raise Unauthenticated(f"Incorrect API key provided: {key[:7]}…. Check the key or create a new one.")
        if row.revoked_at is not None:
            raise Unauthenticated(f"The API key {row.prefix}… was revoked; create a new one.")
        return Caller(project_id=project.id, project_name=project.name, key_id=row.id,
                      is_admin=row.is_admin, read_only=row.read_only)
