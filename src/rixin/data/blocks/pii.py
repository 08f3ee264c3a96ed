"""The pii block: redaction with typed placeholders (the detectors are in data/pii.py)."""

from __future__ import annotations

from pydantic import Field

from rixin.data.blocks import BlockSpec, Doc, StrictConfig, Verdict
from rixin.data.pii import PII_TYPES, PiiType, redact


class PiiConfig(StrictConfig):
    """PII redaction: each found item is replaced by a typed placeholder (<EMAIL>, <PHONE>,
    <IP_ADDRESS>, <CREDIT_CARD>, <CN_ID>, <IBAN>) and counted; the values are never logged."""

    types: list[PiiType] = Field(
        default_factory=lambda: list(PII_TYPES), description="Which PII types to redact."
    )


class PiiRedactor:
    """Replaces PII with typed placeholders; counts per type go to Verdict.counts. Never drops."""

    name = "pii"

    def __init__(self, config: PiiConfig | None = None):
        self.config = config or PiiConfig()
        self._types = tuple(self.config.types)

    def __call__(self, doc: Doc) -> Verdict:
        text, counts = redact(doc.text, self._types)
        return Verdict(True, None, text, dict(counts))


BLOCK = BlockSpec(name="pii", config=PiiConfig, build=PiiRedactor, position=50, rewrites_text=True)
