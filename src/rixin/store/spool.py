"""A small on-disk spool of rows that could not be written to the database yet: one JSON file
per row, written atomically (a reader never sees half a row), replayed oldest first once the
database takes writes again. Replaying is idempotent: a row whose id is already stored (the
write did land after all) is skipped."""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from sqlalchemy import DateTime, null

from rixin.store.artifacts import atomic_write
from rixin.store.db import Database


class RowSpool:
    def __init__(self, directory: Path, model):
        self.directory, self.model = Path(directory), model
        self.columns = list(model.__table__.columns)
        try:  # now, while the data directory takes writes: later it may be the thing failing
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError:
            pass

    def put(self, row) -> None:
        """Keep `row` (raises the storage fault when even the spool cannot be written)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        values = {}
        for col in self.columns:
            value = getattr(row, col.key)
            if isinstance(value, datetime):
                value = value.isoformat()
            elif value is not None and not isinstance(value, (str, int, float, bool, list, dict)):
                value = None  # SQL NULL (sqlalchemy's null()), the only expression rows carry
            values[col.key] = value
        name = f"{time.time_ns():020d}-{row.id}.json"
        atomic_write(self.directory / name, json.dumps(values, ensure_ascii=False).encode())

    def paths(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.iterdir() if p.suffix == ".json")

    def _load(self, path: Path):
        values = json.loads(path.read_text())
        for col in self.columns:
            value = values.get(col.key)
            if value is None:
                values[col.key] = null()
            elif isinstance(col.type, DateTime):
                values[col.key] = datetime.fromisoformat(value)
        return self.model(**values)

    def replay(self, db: Database, limit: int = 256) -> int:
        """Write up to `limit` kept rows in one transaction and drop their files; raises (and
        keeps every file) when the database still refuses."""
        paths = self.paths()[:limit]
        if not paths:
            return 0
        rows = {}
        for path in paths:
            try:
                row = self._load(path)
            except (OSError, ValueError):  # unreadable: set aside for an operator, not retried
                path.rename(path.with_suffix(".bad"))
                continue
            rows[path] = row
        with db.session() as s:
            for row in rows.values():
                if s.get(self.model, row.id) is None:
                    s.add(row)
        for path in rows:
            path.unlink(missing_ok=True)
        return len(rows)
