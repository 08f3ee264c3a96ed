"""Language identification and the language filter.

The model is py3langid's (a maintained fork of langid.py: naive Bayes over byte n-grams,
140 languages), shipped inside the PyPI package, so nothing is downloaded at run time. It
loads once per process (about 0.6 s) on the first document, not when the block is built, so
blocks pickle cheaply to Ray workers. Probabilities are normalised (norm_probs=True), so
`min_confidence` is a probability in [0, 1].
"""

from __future__ import annotations

import functools
from typing import Any

from rixin.data.blocks import Doc, Verdict
from rixin.data.recipe import LanguageConfig


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def model_languages() -> list[str]:
    """The ISO 639 codes the bundled model knows (recipe.LANGUAGE_CODES mirrors them)."""
    return list(_identifier().labels)


def identify(text: str, max_chars: int = 2000) -> tuple[str, float]:
    """(ISO 639 code, probability) of the language of the first `max_chars` characters."""
    code, score = _identifier().classify(text[:max_chars])
    return code, float(score)


class LanguageFilter:
    """Records the language in meta ("language", "language_score"); with an allow list, drops
    other languages with reason "language:<code>" ("language:und" below min_confidence)."""

    name = "language"

    def __init__(self, config: LanguageConfig | None = None):
        self.config = config or LanguageConfig()
        self._allow = frozenset(self.config.allow) if self.config.allow is not None else None

    def __call__(self, doc: Doc) -> Verdict:
        code, score = identify(doc.text, self.config.max_chars)
        if score < self.config.min_confidence:
            code = "und"
        meta = {"language": code, "language_score": round(score, 4)}
        if self._allow is not None and code not in self._allow:
            return Verdict.dropped(f"language:{code}", doc.text, **meta)
        return Verdict.passed(doc.text, **meta)
