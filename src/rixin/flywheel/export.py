"""Logs + feedback → training data: a dataset version and fine-tune files.

    correction             → supervised chat example (the prompt, then the corrected answer)
    preferred              → preference pair (preferred vs the logged answer), the DPO format
    score ≥ threshold / up → supervised chat example with the logged answer

Every example goes through the cleaning blocks (normalisation, PII redaction: data/blocks/,
data/pii.py, applied field by field as data/clean.py does) and exact deduplication
(data/dedup.py); the counts of each stage are the version's report.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select

from rixin.data.blocks import Doc, apply_blocks
from rixin.data.datasets import Datasets
from rixin.data.dedup import exact_duplicates, normalized_hash
from rixin.data.recipe import Recipe, build_blocks
from rixin.data.records import write_jsonl
from rixin.flywheel.logs import LogWriter
from rixin.serving.deployments import FlywheelSettings
from rixin.store.artifacts import ArtifactStore
from rixin.store.db import Database
from rixin.store.files import Files
from rixin.store.schema import Dataset, Deployment, Feedback, RequestLog, utcnow
from rixin.store.tenancy import Caller, new_id

RECIPE = Recipe(name="flywheel-export", steps=["normalize", "pii", "exact_dedup"])
ROLES = ("system", "user", "assistant")


@dataclass(frozen=True)
class ExportServices:
    """What an export reads (acknowledged logs, feedback) and writes (files, a dataset
    version); built once in platform.py."""

    db: Database
    log_writer: LogWriter
    artifacts: ArtifactStore
    files: Files
    datasets: Datasets


@dataclass
class Exported:
    """What one export made; ids are None when there was nothing of that kind."""

    supervised: list[dict] = field(default_factory=list)
    preference: list[dict] = field(default_factory=list)
    report: dict = field(default_factory=dict)
    dataset_id: str | None = None
    dataset_version_id: str | None = None
    supervised_file_id: str | None = None
    preference_file_id: str | None = None
    until: datetime | None = None

    def object(self) -> dict:
        return {"object": "flywheel.export", "dataset_id": self.dataset_id,
                "dataset_version_id": self.dataset_version_id, "supervised_file_id": self.supervised_file_id,
                "preference_file_id": self.preference_file_id, "supervised_examples": len(self.supervised),
                "preference_pairs": len(self.preference), "report": self.report}


def prompt_messages(log: RequestLog) -> list[dict] | None:
    """The conversation a logged request answered, as plain {role, content} messages."""
    request = log.request or {}
    if log.endpoint == "completions":
        prompt = request.get("prompt")
        return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else None
    out = []
    for m in request.get("messages") or []:
        role = "system" if m.get("role") == "developer" else m.get("role")
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text") or "" for p in content if isinstance(p, dict))
        if role not in ROLES or not isinstance(content, str):
            return None  # tool calls and other shapes are not training data here
        out.append({"role": role, "content": content})
    return out or None


def logged_answer(log: RequestLog) -> str | None:
    choices = (log.response or {}).get("choices") or []
    if not choices:
        return None
    first = choices[0]
    return (first.get("message") or {}).get("content") if "message" in first else first.get("text")


def examples(pairs: list[tuple[Feedback, RequestLog]], settings: FlywheelSettings, counts: Counter
             ) -> tuple[list[dict], list[dict]]:
    """(supervised, preference) examples from feedback, in feedback order."""
    supervised, preference = [], []
    for fb, log in pairs:
        messages, answer = prompt_messages(log), logged_answer(log)
        if messages is None:
            counts["skipped_no_text"] += 1
            continue
        if fb.correction:
            supervised.append({"messages": messages + [{"role": "assistant", "content": fb.correction}]})
            counts["corrections"] += 1
        elif fb.preferred and answer:
            preference.append({"input": {"messages": messages},
                               "preferred_output": [{"role": "assistant", "content": fb.preferred}],
                               "non_preferred_output": [{"role": "assistant", "content": answer}]})
            counts["preferences"] += 1
        elif answer and ((fb.score or 0) >= settings.score_threshold
                         or (settings.thumbs_up_is_good and fb.thumb == "up")):
            supervised.append({"messages": messages + [{"role": "assistant", "content": answer}]})
            counts["well_rated"] += 1
        else:
            counts["not_usable"] += 1  # a thumb down or a low score with no better answer
    return supervised, preference


def _fields(example: dict) -> list[dict]:
    messages = example.get("messages") or example["input"]["messages"]
    return [*messages, *example.get("preferred_output", []), *example.get("non_preferred_output", [])]


def clean(rows: list[dict], counts: Counter) -> list[dict]:
    """Normalise and redact every message; drop emptied examples and exact duplicates."""
    blocks, kept, hashes = build_blocks(RECIPE), [], []
    for i, example in enumerate(rows):
        fields = _fields(example)
        verdicts = [apply_blocks(blocks, Doc(str(i), m["content"])) for m in fields]
        if not all(v.keep for v in verdicts):
            counts["removed_empty"] += 1
            continue
        for message, verdict in zip(fields, verdicts):
            message["content"] = verdict.text
            counts.update({f"redacted_{k}": n for k, n in verdict.counts.items()})
        kept.append(example)
        hashes.append(normalized_hash("\x1f".join(f"{m['role']}:{m['content']}" for m in fields)))
    dropped = exact_duplicates(list(range(len(kept))), hashes)
    counts["removed_duplicates"] += len(dropped)
    return [e for i, e in enumerate(kept) if i not in dropped]


def feedback_pairs(db: Database, log_writer: LogWriter, caller: Caller, deployment: Deployment,
                   since: datetime | None, until: datetime) -> list[tuple[Feedback, RequestLog]]:
    log_writer.flush()
    with db.session() as s:
        q = (select(Feedback, RequestLog).join(RequestLog, RequestLog.id == Feedback.log_id)
             .where(Feedback.project_id == caller.project_id, RequestLog.project_id == caller.project_id,
                    RequestLog.deployment_id == deployment.id, Feedback.created_at <= until))
        if since is not None:
            q = q.where(Feedback.created_at > since)
        return [(fb, log) for fb, log in s.execute(q.order_by(Feedback.created_at, Feedback.id))]


def export(services: ExportServices, caller: Caller, deployment: Deployment, *, since: datetime | None = None,
           until: datetime | None = None, write: bool = True) -> Exported:
    """Export feedback given in (since, until] on `deployment`'s logs; with `write`, store a
    dataset version (dataset `flywheel-<name>`) and fine-tune files of what is left."""
    settings = FlywheelSettings.model_validate(deployment.flywheel or {})
    until = until or utcnow()
    counts: Counter = Counter()
    pairs = feedback_pairs(services.db, services.log_writer, caller, deployment, since, until)
    counts["feedback"] = len(pairs)
    supervised, preference = examples(pairs, settings, counts)
    out = Exported(clean(supervised, counts), clean(preference, counts), until=until)
    out.report = {"counts": dict(counts), "since": since.isoformat() if since else None,
                  "until": until.isoformat(), "recipe": RECIPE.model_dump(mode="json", include={"name", "steps"})}
    if write:
        store(services, caller, deployment, out)
    return out


def store(services: ExportServices, caller: Caller, deployment: Deployment, out: Exported) -> None:
    """Write the fine-tune files and the dataset version of `out` (nothing when it is empty)."""
    if not (out.supervised or out.preference):
        return
    stamp = out.until.strftime("%Y%m%dT%H%M%S")
    for kind, rows in (("supervised", out.supervised), ("preference", out.preference)):
        if rows:
            sha256, size = services.artifacts.put_bytes(b"".join(_line(r) for r in rows))
            row = services.files.record(caller, filename=f"{deployment.name}-{kind}-{stamp}.jsonl",
                                        purpose="fine-tune", sha256=sha256, size=size)
            setattr(out, f"{kind}_file_id", row.id)
    records = [{"id": f"{deployment.name}:{stamp}:{i}", **r, "meta": {"kind": kind}}
               for i, (kind, r) in enumerate([("supervised", r) for r in out.supervised]
                                             + [("preference", r) for r in out.preference])]
    dataset = _dataset(services.db, caller, f"flywheel-{deployment.name}")
    versions = services.datasets.versions(caller, dataset.id)
    with services.artifacts.writer() as sink:
        count = write_jsonl(records, sink)
        sha256, _ = sink.commit()
    fmt = "chat" if not out.preference else ("preference" if not out.supervised else "mixed")
    version = services.datasets.add_version(
        dataset.id, versions[-1] if versions else None, "flywheel-export",
        {"deployment": deployment.name, "files": [f for f in (out.supervised_file_id, out.preference_file_id) if f]},
        sha256, count, fmt, out.report)
    out.dataset_id, out.dataset_version_id = dataset.id, version.id


def _line(row: dict) -> bytes:
    return json.dumps(row, ensure_ascii=False).encode() + b"\n"


def _dataset(db: Database, caller: Caller, name: str) -> Dataset:
    with db.session() as s:
        row = s.scalar(select(Dataset).where(Dataset.project_id == caller.project_id, Dataset.name == name))
        if row is None:
            row = Dataset(id=new_id("ds"), project_id=caller.project_id, name=name)
            s.add(row)
        return row

