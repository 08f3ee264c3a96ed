"""The words block: a user word list, matched on folded text (NFKC, case-folded)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence

from pydantic import Field, field_validator

from rixin.data.blocks import BlockSpec, Doc, StrictConfig, Verdict
from rixin.data.text import CJK_CHAR, CJK_RANGES


class WordsConfig(StrictConfig):
    """A user word list. Matching is case-insensitive and on word boundaries for words in
    alphabetic scripts; CJK terms match anywhere (those scripts put no spaces between words)."""

    block: list[str] = Field(
        default_factory=list, description="Drop documents containing any of these (blocked_word)."
    )
    allow: list[str] = Field(
        default_factory=list,
        description="When not empty, keep only documents containing at least one of these "
        "(otherwise reason no_allowed_word).",
    )

    @field_validator("block", "allow")
    @classmethod
    def _no_blank_terms(cls, value: list[str]) -> list[str]:
        if any(not term.strip() for term in value):
            raise ValueError("terms must not be empty or blank")
        if any(len(term) > 200 for term in value):
            raise ValueError("terms must be at most 200 characters long")
        return value


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


BLOCK = BlockSpec(
    name="words", config=WordsConfig, build=WordList, position=40,
    reasons={"blocked_word": "words.block", "no_allowed_word": "words.allow"},
)
