"""Per-document cleaning blocks: their shared shape and the small text blocks.

A block is an object with one method: `block(doc) -> Verdict`. The verdict says keep or drop,
WHY (a short, stable reason code that the report counts: "too_short", "language:fr",
"blocked_word", ...), the text after the block (blocks may rewrite it) and counters (for
example redactions per PII type). Blocks hold only their config and compiled patterns, so
they pickle cheaply to Ray workers; heavy state (the language model) loads lazily per process.

The blocks live in small modules: Normalize and WordList here, QualityFilter in quality.py,
PiiRedactor in pii.py, LanguageFilter in langid.py. Deduplication needs the whole dataset and
is a set of pure functions in dedup.py; the report accumulator is in report.py.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rixin.data.recipe import NormalizeConfig, WordsConfig

# Scripts written without spaces between words: each character counts as a word, and word
# list terms in them match without word boundaries. Hangul is absent: Korean uses spaces.
CJK_RANGES = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
CJK_CHAR = re.compile(f"[{CJK_RANGES}]")


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


# Invisible characters that only break matching: zero-width space, word joiner, byte-order
# mark, soft hyphen. Zero-width (non-)joiners stay: emoji sequences and Persian need them.
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u2060\ufeff\u00ad"), None)
_CONTROL = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f]")
_LINE_BREAKS = re.compile(r"\r\n?|[\x0b\x0c\x85\u2028\u2029]")
_HSPACE = "[ \t\u00a0\u1680\u2000-\u200a\u202f\u205f\u3000]"
_INNER_SPACES = re.compile(f"(?<=\\S){_HSPACE}+(?=\\S)")
_TRAILING_SPACES = re.compile(f"{_HSPACE}+$", re.MULTILINE)


class Normalize:
    """Unicode normalisation and whitespace repair; drops a document only if nothing is left
    (reason "empty")."""

    name = "normalize"

    def __init__(self, config: NormalizeConfig | None = None):
        self.config = config or NormalizeConfig()
        self._newlines = re.compile(f"\n{{{self.config.max_consecutive_newlines + 1},}}")

    def __call__(self, doc: Doc) -> Verdict:
        cfg, text = self.config, doc.text
        if cfg.fix_mojibake:
            text = _fix_mojibake(text)
        text = unicodedata.normalize(cfg.form, text)
        text = _LINE_BREAKS.sub("\n", text)
        if cfg.remove_control_chars:
            text = _CONTROL.sub("", text.translate(_INVISIBLE))
        if cfg.collapse_spaces:
            text = _TRAILING_SPACES.sub("", _INNER_SPACES.sub(" ", text))
        text = self._newlines.sub("\n" * cfg.max_consecutive_newlines, text).strip("\n")
        if not text.strip():
            return Verdict.dropped("empty", text)
        return Verdict.passed(text)


@functools.cache
def _ftfy_config() -> Any:
    import ftfy

    # Keep quotes and character widths as written: curly quotes and full-width punctuation
    # (，！？) are correct typography, in Chinese especially. Normalisation is ours.
    return ftfy.TextFixerConfig(
        uncurl_quotes=False, fix_character_width=False, normalization=None, explain=False
    )


def _fix_mojibake(text: str) -> str:
    import ftfy

    return ftfy.fix_text(text, _ftfy_config())


def fold(text: str) -> str:
    """The form used for matching: NFKC (full-width letters fold to ASCII) and case-folded."""
    return unicodedata.normalize("NFKC", text).casefold()


def _trie_regex(terms: Sequence[str]) -> str:
    """An alternation of `terms` as a character trie ("cat|car" -> "ca(?:r|t)"), so a long
    list costs one pass over the text instead of one attempt per term at every position."""
    trie: dict = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}  # a term ends here

    def build(node: dict) -> str:
        branches = [re.escape(ch) + build(child) for ch, child in sorted(node.items()) if ch]
        if not branches:
            return ""
        if "" in node:  # a term ends here and longer ones go on: the rest is optional
            return "(?:" + "|".join(branches) + ")?"
        return branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"

    return build(trie)


def terms_pattern(terms: Sequence[str]) -> re.Pattern[str] | None:
    """One regex matching any of `terms` in folded text. Terms with a CJK character match
    anywhere; others only between non-word characters (a CJK neighbour counts as a boundary,
    since Chinese text puts no spaces around embedded English words)."""
    folded = {fold(t.strip()) for t in terms}
    cjk = [t for t in folded if CJK_CHAR.search(t)]
    other = [t for t in folded if not CJK_CHAR.search(t)]
    word_char = f"[^\\W{CJK_RANGES}]"  # a word character that is not CJK
    parts = [f"(?<!{word_char})(?:{_trie_regex(other)})(?!{word_char})"] if other else []
    parts += [f"(?:{_trie_regex(cjk)})"] if cjk else []
    return re.compile("|".join(parts)) if parts else None


class WordList:
    """A user word list: drop documents with a blocked term ("blocked_word"); when an allow
    list is given, drop documents with none of its terms ("no_allowed_word")."""

    name = "words"

    def __init__(self, config: WordsConfig | None = None):
        self.config = config or WordsConfig()
        self._block = terms_pattern(self.config.block)
        self._allow = terms_pattern(self.config.allow)

    def __call__(self, doc: Doc) -> Verdict:
        if self._block is None and self._allow is None:
            return Verdict.passed(doc.text)
        folded = fold(doc.text)
        if self._block is not None and self._block.search(folded):
            return Verdict.dropped("blocked_word", doc.text)
        if self._allow is not None and not self._allow.search(folded):
            return Verdict.dropped("no_allowed_word", doc.text)
        return Verdict.passed(doc.text)
