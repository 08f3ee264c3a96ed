"""The normalize block: Unicode normalisation and whitespace repair (the text is transformed,
never dropped unless nothing is left)."""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any, Literal

from pydantic import Field

from rixin.data.blocks import BlockSpec, Doc, StrictConfig, Verdict


class NormalizeConfig(StrictConfig):
    """Unicode normalisation and whitespace repair (the text is transformed, never dropped
    unless nothing is left)."""

    form: Literal["NFC", "NFKC"] = Field(
        "NFC",
        description="Unicode normal form. NFC (default) is lossless: it only unifies canonically "
        "equivalent sequences. NFKC also folds compatibility forms, which turns Chinese "
        "full-width punctuation (，！？) into ASCII and x² into x2; use it for ASCII-only corpora.",
    )
    fix_mojibake: bool = Field(
        True,
        description="Repair text decoded with the wrong codec (cafÃ© -> café) and HTML entities "
        "with ftfy; quotes and character widths are left as written.",
    )
    remove_control_chars: bool = Field(
        True,
        description="Remove C0/C1 control characters (except tab and newline) and invisible "
        "zero-width spaces, word joiners, byte-order marks and soft hyphens.",
    )
    collapse_spaces: bool = Field(
        True,
        description="Collapse runs of spaces and tabs inside a line to one space and trim trailing "
        "spaces; leading indentation is kept (it carries meaning in code and lists).",
    )
    max_consecutive_newlines: int = Field(
        2, ge=1, le=10, description="Longest run of newlines kept; longer runs are shortened."
    )


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


BLOCK = BlockSpec(
    name="normalize", config=NormalizeConfig, build=Normalize, position=10, rewrites_text=True,
    reasons={"empty": "normalize (nothing left after normalisation)"},
)
