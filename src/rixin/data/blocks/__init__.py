"""Per-document cleaning blocks: their shared shape, and the registry that finds them.

A block is an object with one method: `block(doc) -> Verdict`. The verdict says keep or drop,
WHY (a short, stable reason code that the report counts: "too_short", "language:fr",
"blocked_word", ...), the text after the block (blocks may rewrite it) and counters (for
example redactions per PII type). Blocks hold only their config and compiled patterns, so
they pickle cheaply to Ray workers; heavy state (the language model) loads lazily per process.

Every module of this package is one block, and says everything about it in one place, a
module-level `BLOCK = BlockSpec(...)`: its step name (also the key of its section in a recipe),
its typed config, how to build it, where it runs in the default recipe, whether it rewrites
text, and which recipe setting decides each reason code it drops for. `registered()` collects
them (rixin/extensions.py: the mechanism the graders and labelers share); the recipe
(recipe.py) is built from that table and is the only place that builds blocks. Adding a block is a new module here (and its test and docs), nothing else.

Deduplication needs the whole dataset and is a set of pure functions in dedup.py; the report
accumulator is in report.py.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict

from rixin.extensions import collect


@dataclass(frozen=True, slots=True)
class Doc:
    """One document of a dataset version: its id, text and free-form metadata."""

    id: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Verdict:
    """What a block decided about a document.

    keep: False drops the document; reason then says why (a stable code, counted in the report).
    text: the document's text after the block (unchanged by pure filters).
    counts: counters this block produced, e.g. {"email": 2} redactions.
    meta: annotations for the document, e.g. {"language": "en", "language_score": 0.99}.
    """

    keep: bool
    reason: str | None
    text: str
    counts: dict[str, int] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def passed(cls, text: str, **meta: Any) -> Verdict:
        return cls(True, None, text, {}, meta)

    @classmethod
    def dropped(cls, reason: str, text: str, **meta: Any) -> Verdict:
        return cls(False, reason, text, {}, meta)


class Block(Protocol):
    """A per-document cleaning step."""

    name: str

    def __call__(self, doc: Doc) -> Verdict: ...


def apply_blocks(blocks: Sequence[Block], doc: Doc) -> Verdict:
    """Run `blocks` in order on `doc`; stop at the first drop. The result carries the final
    text, the counters of every block that ran and their merged meta annotations."""
    text, counts, meta = doc.text, Counter(), {}
    for block in blocks:
        verdict = block(Doc(doc.id, text, doc.meta))
        text = verdict.text
        counts.update(verdict.counts)
        meta.update(verdict.meta)
        if not verdict.keep:
            return Verdict(False, verdict.reason, text, dict(counts), meta)
    return Verdict(True, None, text, dict(counts), meta)


class StrictConfig(BaseModel):
    """Base of every recipe section: an unknown key is an error, and a config never changes."""

    model_config = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class BlockSpec:
    """Everything the recipe needs to know about one block.

    name: the step name in `steps`, and the key of the block's settings section in a recipe.
    config: the typed settings of that section (a StrictConfig; its field descriptions are the
        recipe's documentation).
    build: config -> the block.
    position: where the block sits in the default recipe and among the sections (lower first).
    rewrites_text: a transform (normalisation, redaction) rather than a filter; it is applied
        to every text field of a multi-field record separately.
    on_by_default: listed in the steps of a recipe that does not name its steps.
    reasons: reason code -> the recipe setting that decides it, shown in the report's
        removed_by_rule ("quality.min_words"; with the value appended when it names a field
        of `config`).
    explain: for reason codes made at run time ("language:fr", "dup_5gram"): (reason, config)
        -> the setting, or None when the reason is not this block's.
    """

    name: str
    config: type[StrictConfig]
    build: Callable[[Any], Block]
    position: int
    rewrites_text: bool = False
    on_by_default: bool = True
    reasons: Mapping[str, str] = field(default_factory=dict)
    explain: Callable[[str, Any], str | None] | None = None

    def rule_for(self, reason: str, config: StrictConfig) -> str | None:
        """The setting behind `reason` with its value ("quality.min_words = 50"), or None."""
        setting = self.reasons.get(reason)
        if setting is None:
            return self.explain(reason, config) if self.explain else None
        section, _, name = setting.partition(".")
        if section == self.name and name in type(config).model_fields:
            return f"{setting} = {getattr(config, name)}"
        return setting


@functools.cache
def registered() -> dict[str, BlockSpec]:
    """name -> spec of every block module in this package, in `position` order."""
    specs = collect(__name__, "BLOCK", BlockSpec, unique=("name", "position"))
    return {spec.name: spec for spec in sorted(specs, key=lambda spec: spec.position)}
