"""The cleaning report: documents in and out, removals per reason, redactions per PII type,
and a few removed documents per reason as examples.

Totals describe only what the output holds: redactions are counted in documents that are
kept, so a document removed later (as a duplicate, after its PII was redacted) takes its
redactions out of the totals again (`add_removed(..., redactions=...)`); every removed
document is counted once, under the reason that removed it.

Shards each fill a Report; `merge` adds them up (in a fixed shard order the samples are
deterministic). A sample stores the document id and the first 300 characters of its text
after PII redaction with every PII type, whatever the recipe redacts: a report is shown to
people and must never carry raw personal data.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from rixin.data.blocks import Doc, Verdict
from rixin.data.pii import redact

SAMPLE_CHARS = 300


@dataclass
class Report:
    """Counters of one cleaning run (or shard). docs_out = docs_in - all removals."""

    samples_per_reason: int = 5
    docs_in: int = 0
    removed: Counter = field(default_factory=Counter)
    redactions: Counter = field(default_factory=Counter)
    samples: dict[str, list[dict[str, str]]] = field(default_factory=dict)

    @property
    def docs_out(self) -> int:
        return self.docs_in - sum(self.removed.values())

    def add(self, doc: Doc, verdict: Verdict) -> None:
        """Count one document's verdict from the per-document blocks (apply_blocks)."""
        self.docs_in += 1
        if verdict.keep:
            self.redactions.update(verdict.counts)
        else:
            self.add_removed(doc.id, verdict.reason or "unknown", verdict.text)

    def add_removed(self, doc_id: str, reason: str, text: str, redactions: dict | None = None) -> None:
        """Count a removal decided outside the blocks (exact_duplicate, near_duplicate) or by
        them; the document must already be counted in docs_in. `redactions`: what was counted
        for it when it passed the blocks, taken out again (the output does not hold it)."""
        if redactions:
            self.redactions.subtract(redactions)
            self.redactions = +self.redactions  # drop the zero counts
        self.removed[reason] += 1
        kept = self.samples.setdefault(reason, [])
        if len(kept) < self.samples_per_reason:
            kept.append({"id": str(doc_id), "text": redact(text)[0][:SAMPLE_CHARS]})

    def merge(self, other: Report) -> Report:
        """Add `other` (a later shard) into this report; returns self."""
        self.docs_in += other.docs_in
        self.removed.update(other.removed)
        self.redactions.update(other.redactions)
        for reason, samples in other.samples.items():
            kept = self.samples.setdefault(reason, [])
            kept.extend(samples[: max(0, self.samples_per_reason - len(kept))])
        return self

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form; reasons and types sorted by count, largest first."""
        return {
            "documents_in": self.docs_in,
            "documents_out": self.docs_out,
            "removed": dict(self.removed.most_common()),
            "redactions": dict(self.redactions.most_common()),
            "samples": {reason: list(s) for reason, s in sorted(self.samples.items())},
            "samples_per_reason": self.samples_per_reason,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Report:
        return cls(
            samples_per_reason=int(data.get("samples_per_reason", 5)),
            docs_in=int(data["documents_in"]),
            removed=Counter(data.get("removed", {})),
            redactions=Counter(data.get("redactions", {})),
            samples={k: list(v) for k, v in data.get("samples", {}).items()},
        )
