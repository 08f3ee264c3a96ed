"""The quality block: Gopher-style quality heuristics (Rae et al. 2021, "Scaling Language Models", appendix A).

Words are runs of letters and digits; runs of CJK characters (Chinese, Japanese kana) are cut
into words by rjieba (jieba's dictionary segmenter in Rust, ~20 µs per 300 characters), so
the word-count and word n-gram rules mean for Chinese what they mean for English. Counting
every character as a word instead made 18% of clean generated Chinese documents fail
dup_5gram: a repeated 5-character phrase is only two or three words. The mean word length
rule only applies when most words are not CJK.

The rules run cheapest first and the first failing one is the reason:

    too_short / too_long           word count outside [min_words, max_words]
    mean_word_length               mean length of non-CJK words outside its range
    symbol_ratio                   '#' and ellipses per word
    alpha_words / alnum_chars      too few words with a letter / letters+digits among chars
    unique_words                   too few distinct words among the first 200 (not Gopher)
    stop_words                     too few English stop words (off by default)
    gibberish_words                too many implausible Latin-script words (random letters)
    bullet_lines / ellipsis_lines  too many lines starting with a bullet / ending in '...'
    dup_line_fraction, dup_paragraph_fraction, dup_line_chars, dup_paragraph_chars
    top_{n}gram                    the most frequent word n-gram covers too many characters
    dup_{n}gram                    repeated word n-grams cover too many characters

The n-gram limits are Gopher's for texts of `ngram_reference_words` (1000) words or more and
scale with sqrt(1000 / words) below that. Gopher tuned them on web pages; with fixed limits
5.3% of clean 60-170-word licence, README and docstring paragraphs were dropped, because
one clause said twice ("the Modified Version") crosses 15% of a short text. Spam repeats a
phrase many times and stays far above the scaled limits (dup_5gram ~0.85).
"""

from __future__ import annotations

import re

import numpy as np
from pydantic import Field, field_validator

from rixin.data.blocks import BlockSpec, Doc, StrictConfig, Verdict
from rixin.data.text import CJK_RANGES, LATIN_WORD, split_words


class QualityConfig(StrictConfig):
    """Gopher-style quality heuristics (Rae et al. 2021, appendix A). A null threshold turns
    its rule off. Each CJK character counts as one word, so Chinese text is measured sensibly."""

    min_words: int | None = Field(50, ge=0, description="Fewest words; fewer -> reason too_short.")
    max_words: int | None = Field(
        100_000, ge=1, description="Most words; more -> reason too_long."
    )
    min_mean_word_length: float | None = Field(
        3.0, ge=0, description="Shortest mean length of non-CJK words (skipped for CJK text)."
    )
    max_mean_word_length: float | None = Field(
        10.0, ge=0, description="Longest mean length of non-CJK words (skipped for CJK text)."
    )
    max_symbol_word_ratio: float | None = Field(
        0.1, ge=0, description="Most '#' and ellipses ('...', '…') per word -> symbol_ratio."
    )
    max_bullet_line_fraction: float | None = Field(
        0.9, ge=0, le=1, description="Most lines starting with a bullet (•, -, *, ...)."
    )
    max_ellipsis_line_fraction: float | None = Field(
        0.3, ge=0, le=1, description="Most lines ending with an ellipsis."
    )
    min_alpha_word_fraction: float | None = Field(
        0.8, ge=0, le=1, description="Fewest words holding at least one letter (CJK counts)."
    )
    min_alnum_char_fraction: float | None = Field(
        0.5,
        ge=0,
        le=1,
        description="Fewest letters or digits among non-space characters (not in Gopher; catches "
        "symbol soup whose 'words' still contain a letter).",
    )
    min_unique_word_fraction: float | None = Field(
        0.15,
        ge=0,
        le=1,
        description="Fewest distinct words among the first 200 words (not in Gopher; catches "
        "keyword stuffing that shuffles a few words; natural text is above 0.4).",
    )
    max_gibberish_word_fraction: float | None = Field(
        0.3,
        ge=0,
        le=1,
        description="Most implausible words among the Latin-script words (a letter pair that no "
        "common Latin-script language writes, four consonants in a row, no vowel) -> "
        "gibberish_words. Applies when most words are Latin-script; CJK text is never judged by "
        "it. Documentation prose, identifiers included, stays below 0.2; random-letter 'words' "
        "score 0.55-0.8.",
    )
    min_stop_words: int | None = Field(
        None,
        ge=0,
        description="Fewest English stop words (the, be, to, of, and, that, have, with). Gopher uses "
        "2 for English-only corpora; off by default because it drops every other language.",
    )
    max_duplicate_line_fraction: float | None = Field(
        0.3, ge=0, le=1, description="Most lines that repeat an earlier line."
    )
    max_duplicate_paragraph_fraction: float | None = Field(
        0.3, ge=0, le=1, description="Most paragraphs that repeat an earlier paragraph."
    )
    max_duplicate_line_char_fraction: float | None = Field(
        0.2, ge=0, le=1, description="Most characters inside repeated lines."
    )
    max_duplicate_paragraph_char_fraction: float | None = Field(
        0.2, ge=0, le=1, description="Most characters inside repeated paragraphs."
    )
    max_top_ngram_char_fraction: dict[int, float] = Field(
        default_factory=lambda: {2: 0.2, 3: 0.18, 4: 0.16},
        description="n -> most characters covered by the single most frequent word n-gram.",
    )
    max_duplicate_ngram_char_fraction: dict[int, float] = Field(
        default_factory=lambda: {5: 0.15, 6: 0.14, 7: 0.13, 8: 0.12, 9: 0.11, 10: 0.10},
        description="n -> most characters covered by word n-grams that occur more than once.",
    )

    ngram_reference_words: int | None = Field(
        1000,
        ge=1,
        description="Length-aware n-gram limits: a text of fewer words gets each top/duplicate "
        "n-gram limit scaled by sqrt(ngram_reference_words / words) (a phrase said twice covers a "
        "large share of a 70-word licence paragraph, not of a web page). Null: fixed limits.",
    )

    @field_validator("max_top_ngram_char_fraction", "max_duplicate_ngram_char_fraction")
    @classmethod
    def _ngram_table(cls, value: dict[int, float]) -> dict[int, float]:
        for n, limit in value.items():
            if not 1 <= n <= 20 or not 0 <= limit <= 1:
                raise ValueError(f"n must be 1..20 and the fraction 0..1, got {n}: {limit}")
        return value


_SPACE_TOKEN = re.compile(f"[{CJK_RANGES}]|[^\\s{CJK_RANGES}]+")
_LETTER = re.compile(r"[^\W\d_]")
_NOT_ALNUM = re.compile(r"[\W_]+")
_SPACES = re.compile(r"\s+")
_PARAGRAPH_BREAK = re.compile(r"\n\s*\n")
_BULLETS = ("•", "●", "○", "■", "□", "▪", "▫", "◦", "‣", "⁃", "➢", "→", "·", "-", "*", "–")
_ELLIPSES = ("...", "…")
_DIVERSITY_WINDOW = 200  # words; longer texts repeat words naturally, so look at a prefix
_STOP_WORDS = frozenset("the be to of and that have with".split())
# Letter pairs that English, German, French, Spanish, Italian, Dutch and Hanyu Pinyin do not
# write inside a word (q not before u; j, v, x, z before most consonants; ...). Written from
# the orthographies, then checked: 0 of 944 documentation paragraphs (tests/data_corpus.py
# real_prose) has more than 15% of its words hit, random-letter words ~60% (any 5-letter
# random word holds one with p ~0.5). A word with no vowel (aeiouy) is implausible too.
_RARE_PAIRS = frozenset(
    "bq bx cj cx dq dx fq fx fz gq gx hq hx jb jc jd jf jg jh jj jk jl jm jn jp jq jr jt jv jw jx "
    "jy jz kq kx kz lq lx mq mx pq px qb qc qd qe qf qg qh qj qk ql qm qn qo qp qq qr qs qt qv qw "
    "qx qy qz sx tq vb vc vd vf vg vh vj vk vm vn vp vq vt vw vx vz wq wx xj xk xq xz yq zb zc zf "
    "zg zj zk zp zq zr zx".split()
)
_VOWELS = frozenset("aeiouy")
# Four consonants in a row start no syllable in these languages; where one runs over a
# syllable boundary (German "Deutschland", English "strengths") it is a rare word.
_CONSONANT_RUN = re.compile(r"[^aeiouy]{4}")
_ASCII_LETTERS = re.compile(r"[A-Za-z]+")
_ADDRESS = re.compile(r"(?:[a-z][a-z0-9+.-]*://|www\.)\S+|\S+@\S+", re.IGNORECASE)  # not words
_MIN_JUDGED_WORDS = 8  # fewer Latin words say too little about a text to call it gibberish
# Odd 64-bit multiplier for rolling n-gram keys; wrap-around collisions are ~2^-64 per pair.
_MIX = np.uint64(0x9E3779B97F4A7C15)


class QualityFilter:
    """Drops low-quality documents; the reason names the first rule that failed."""

    name = "quality"

    def __init__(self, config: QualityConfig | None = None):
        self.config = config or QualityConfig()

    def __call__(self, doc: Doc) -> Verdict:
        reason = quality_reason(doc.text, self.config)
        if reason:
            return Verdict.dropped(reason, doc.text)
        return Verdict.passed(doc.text)


def quality_reason(text: str, cfg: QualityConfig) -> str | None:
    """The reason code of the first failing rule, or None when `text` passes them all."""
    words = split_words(text.lower())
    return (
        _word_rules(text, words, cfg)
        or _line_rules(text, cfg)
        or _repetition_rules(text, cfg)
        or _ngram_rules(words, cfg)
    )


def _word_rules(text: str, words: list[str], cfg: QualityConfig) -> str | None:
    n_words = len(words)
    if cfg.min_words is not None and n_words < cfg.min_words:
        return "too_short"
    if cfg.max_words is not None and n_words > cfg.max_words:
        return "too_long"
    latin = LATIN_WORD.findall(text)
    if latin and len(latin) * 2 >= n_words:  # mostly non-CJK: word length means something
        mean = sum(map(len, latin)) / len(latin)
        if cfg.min_mean_word_length is not None and mean < cfg.min_mean_word_length:
            return "mean_word_length"
        if cfg.max_mean_word_length is not None and mean > cfg.max_mean_word_length:
            return "mean_word_length"
    if cfg.max_symbol_word_ratio is not None:
        symbols = text.count("#") + text.count("...") + text.count("…")
        if symbols > cfg.max_symbol_word_ratio * max(n_words, 1):
            return "symbol_ratio"
    if cfg.min_alpha_word_fraction is not None:
        tokens = _SPACE_TOKEN.findall(text)
        alpha = sum(1 for t in tokens if _LETTER.search(t))
        if alpha < cfg.min_alpha_word_fraction * len(tokens):
            return "alpha_words"
    if cfg.min_alnum_char_fraction is not None:
        visible = len(_SPACES.sub("", text))
        if len(_NOT_ALNUM.sub("", text)) < cfg.min_alnum_char_fraction * visible:
            return "alnum_chars"
    if cfg.min_unique_word_fraction is not None and words:
        window = words[:_DIVERSITY_WINDOW]
        if len(set(window)) < cfg.min_unique_word_fraction * len(window):
            return "unique_words"
    if cfg.min_stop_words is not None:
        if sum(1 for w in words if w in _STOP_WORDS) < cfg.min_stop_words:
            return "stop_words"
    if cfg.max_gibberish_word_fraction is not None and latin and len(latin) * 2 >= n_words:
        if gibberish_word_fraction(LATIN_WORD.findall(_ADDRESS.sub(" ", text))) > cfg.max_gibberish_word_fraction:
            return "gibberish_words"
    return None


def implausible_word(word: str) -> bool:
    """A lower-case ASCII word that no common Latin-script orthography writes."""
    if not _VOWELS.intersection(word) or _CONSONANT_RUN.search(word):
        return True
    return any(word[i : i + 2] in _RARE_PAIRS for i in range(len(word) - 1))


def gibberish_word_fraction(latin_words: list[str]) -> float:
    """Share of implausible words among the judged ones: words of 3+ ASCII letters that are
    not all capitals (acronyms such as GPL or HTTP have no vowel by nature). Words with other
    letters (café, straße) or digits are not judged, so other scripts and languages with
    diacritics are never counted against; under 8 judged words the share is 0."""
    judged = [w.lower() for w in latin_words
              if len(w) >= 3 and w.isascii() and w.isalpha() and not w.isupper()]
    if len(judged) < _MIN_JUDGED_WORDS:
        return 0.0
    return sum(map(implausible_word, judged)) / len(judged)


def _line_rules(text: str, cfg: QualityConfig) -> str | None:
    lines = [line.strip() for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines:
        return None
    if cfg.max_bullet_line_fraction is not None:
        bullets = sum(1 for line in lines if line.startswith(_BULLETS))
        if bullets > cfg.max_bullet_line_fraction * len(lines):
            return "bullet_lines"
    if cfg.max_ellipsis_line_fraction is not None:
        ellipses = sum(1 for line in lines if line.endswith(_ELLIPSES))
        if ellipses > cfg.max_ellipsis_line_fraction * len(lines):
            return "ellipsis_lines"
    return None


def _duplicates(parts: list[str]) -> tuple[int, int]:
    """(number of parts equal to an earlier part, their total characters)."""
    seen: set[str] = set()
    count = chars = 0
    for part in parts:
        if part in seen:
            count += 1
            chars += len(part)
        else:
            seen.add(part)
    return count, chars


def _repetition_rules(text: str, cfg: QualityConfig) -> str | None:
    total = max(len(text), 1)
    checks = (
        ([s for s in (x.strip() for x in text.split("\n")) if s], "line"),
        ([s for s in (x.strip() for x in _PARAGRAPH_BREAK.split(text)) if s], "paragraph"),
    )
    for parts, kind in checks:
        if not parts:
            continue
        count, chars = _duplicates(parts)
        max_fraction = getattr(cfg, f"max_duplicate_{kind}_fraction")
        if max_fraction is not None and count > max_fraction * len(parts):
            return f"dup_{kind}_fraction"
        max_chars = getattr(cfg, f"max_duplicate_{kind}_char_fraction")
        if max_chars is not None and chars > max_chars * total:
            return f"dup_{kind}_chars"
    return None


def _ngram_rules(words: list[str], cfg: QualityConfig) -> str | None:
    """Top n-gram and duplicated n-gram character fractions over the word sequence.

    Words become int ids; the key of the n-gram starting at i is built from the (n-1)-gram
    key by one multiply-add (keys: int64[len(words) - n + 1]), so each n costs one np.unique.
    """
    top, dup = cfg.max_top_ngram_char_fraction, cfg.max_duplicate_ngram_char_fraction
    if len(words) < 2 or not (top or dup):
        return None
    if cfg.ngram_reference_words and len(words) < cfg.ngram_reference_words:
        # Length-aware: one phrase said twice is a large share of a short text, not spam.
        scale = (cfg.ngram_reference_words / len(words)) ** 0.5
        top = {n: min(1.0, limit * scale) for n, limit in top.items()}
        dup = {n: min(1.0, limit * scale) for n, limit in dup.items()}
    vocab: dict[str, int] = {}
    ids = np.fromiter((vocab.setdefault(w, len(vocab)) for w in words), np.uint64, len(words))
    lengths = np.fromiter(map(len, words), np.int64, len(words))
    total = int(lengths.sum())
    # chars_from[i] = characters in words[:i]; an n-gram at i covers chars_from[i+n]-chars_from[i]
    chars_from = np.concatenate([[0], np.cumsum(lengths)])
    keys = ids.copy()
    for n in range(2, max([*top, *dup]) + 1):
        if len(words) < n:
            break
        keys = keys[:-1] * _MIX + ids[n - 1 :]
        if n in top and _top_ngram_fraction(keys, chars_from, n, total) > top[n]:
            return f"top_{n}gram"
        if n in dup and _dup_ngram_fraction(keys, lengths, n, total) > dup[n]:
            return f"dup_{n}gram"
    return None


def _top_ngram_fraction(keys: np.ndarray, chars_from: np.ndarray, n: int, total: int) -> float:
    uniq, first, counts = np.unique(keys, return_index=True, return_counts=True)
    best = int(counts.argmax())
    if counts[best] < 2:
        return 0.0
    start = int(first[best])
    return int(counts[best]) * int(chars_from[start + n] - chars_from[start]) / total


def _dup_ngram_fraction(keys: np.ndarray, lengths: np.ndarray, n: int, total: int) -> float:
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    repeats = np.flatnonzero(first[inverse] < np.arange(len(keys)))
    if len(repeats) == 0:
        return 0.0
    # Mark the words covered by every repeated occurrence with a +1/-1 difference array.
    cover = np.zeros(len(lengths) + 1, np.int64)
    np.add.at(cover, repeats, 1)
    np.add.at(cover, repeats + n, -1)
    covered = np.cumsum(cover[:-1]) > 0
    return int(lengths[covered].sum()) / total



def _explain(reason: str, config: QualityConfig) -> str | None:
    """The n-gram reasons: "dup_5gram" -> quality.max_duplicate_ngram_char_fraction[5] = 0.15."""
    for kind, table in (("top", "max_top_ngram_char_fraction"), ("dup", "max_duplicate_ngram_char_fraction")):
        if reason.startswith(f"{kind}_") and reason.endswith("gram") and reason[len(kind) + 1 : -4].isdigit():
            n = int(reason[len(kind) + 1 : -4])
            return f"quality.{table}[{n}] = {getattr(config, table).get(n)}"
    return None


BLOCK = BlockSpec(
    name="quality", config=QualityConfig, build=QualityFilter, position=20, explain=_explain,
    reasons={
        "too_short": "quality.min_words", "too_long": "quality.max_words",
        "mean_word_length": "quality.min_mean_word_length / max_mean_word_length",
        "symbol_ratio": "quality.max_symbol_word_ratio", "alpha_words": "quality.min_alpha_word_fraction",
        "alnum_chars": "quality.min_alnum_char_fraction", "unique_words": "quality.min_unique_word_fraction",
        "stop_words": "quality.min_stop_words", "gibberish_words": "quality.max_gibberish_word_fraction",
        "bullet_lines": "quality.max_bullet_line_fraction",
        "ellipsis_lines": "quality.max_ellipsis_line_fraction",
        "dup_line_fraction": "quality.max_duplicate_line_fraction",
        "dup_paragraph_fraction": "quality.max_duplicate_paragraph_fraction",
        "dup_line_chars": "quality.max_duplicate_line_char_fraction",
        "dup_paragraph_chars": "quality.max_duplicate_paragraph_char_fraction",
    },
)
