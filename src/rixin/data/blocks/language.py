"""The language block: language identification and the language filter.

The model is py3langid's (a maintained fork of langid.py: naive Bayes over byte n-grams,
140 languages), shipped inside the PyPI package, so nothing is downloaded at run time. It
loads once per process (about 0.6 s) on the first document, not when the block is built, so
blocks pickle cheaply to Ray workers. Probabilities are normalised (norm_probs=True), so
`min_confidence` is a probability in [0, 1].
"""

from __future__ import annotations

import functools
from typing import Any

from pydantic import Field, field_validator

from rixin.data.blocks import BlockSpec, Doc, StrictConfig, Verdict

# The labels of the model that py3langid ships (data/model.npz.xz); a test checks that they
# match the model, so that recipe validation needs no model load.
LANGUAGE_CODES = frozenset(
    "ace af am an ar ary arz as az ba bcl be bg bn br bs ca crh cs cy da de dz el en eo es et "
    "eu ext fa fi fo fr fuv fy ga gcf gcr gd gl gom grc gu gug guw ha hbo he hi hr ht hu hy id "
    "ig is it ja jv ka kab kik kk km kn ko ku ky la lb lg lij ln lo lt ltg lv mg mk ml mn mr ms "
    "mt my ne nl nn no nso oc om or pa pcm pl ps pt qu ro ru rw sa sdh se si sk sl sn so sq sr "
    "st sv sw ta te tg th tk tl tr tt ug uk ur uz uzs vec vi vo wa wuu xh yo yue zh zu zxx".split()
)


class LanguageConfig(StrictConfig):
    """Offline language identification (py3langid's bundled model) and a language filter."""

    allow: list[str] | None = Field(
        None,
        description="ISO 639 codes to keep (e.g. [en, zh]); other languages are dropped with "
        "reason 'language:<code>'. Null keeps every language and only records it in meta.",
    )
    min_confidence: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Below this probability the language counts as unknown ('und'), which an "
        "allow list drops.",
    )
    max_chars: int = Field(
        2000, ge=50, description="Only the first max_chars characters are classified (speed)."
    )

    @field_validator("allow")
    @classmethod
    def _known_codes(cls, value: list[str] | None) -> list[str] | None:
        if value is None:
            return None
        codes = [code.strip().lower() for code in value]
        unknown = [code for code in codes if code not in LANGUAGE_CODES]
        if unknown:
            raise ValueError(
                f"unknown language code(s) {unknown}; use ISO 639 codes such as en, zh, fr, de"
            )
        return codes


@functools.cache
def _identifier() -> Any:
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    return LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)


def model_languages() -> list[str]:
    """The ISO 639 codes the bundled model knows (LANGUAGE_CODES mirrors them)."""
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


def _explain(reason: str, config: LanguageConfig) -> str | None:
    return f"language.allow = {config.allow}" if reason.startswith("language:") else None


BLOCK = BlockSpec(name="language", config=LanguageConfig, build=LanguageFilter, position=30, explain=_explain)
