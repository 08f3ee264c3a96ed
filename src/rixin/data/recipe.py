"""Cleaning recipes: typed YAML that says which blocks run, in which order, with what thresholds.

A recipe file is a mapping; every section is optional and has defaults, but an unknown key
anywhere is an error that names its dotted path and lists the keys allowed there:

    name: support-tickets
    steps: [normalize, quality, language, words, pii, exact_dedup, near_dedup]
    quality: {min_words: 20}
    language: {allow: [en, zh], min_confidence: 0.5}
    near_dedup: {threshold: 0.85}

`packaged_recipe("default")` is the packaged `recipes/default.yaml`; a recipe is never read
from a path a request names (recipes of a project are stored in the database, see
recipe_store.py). `parse_recipe(mapping)` validates an already-parsed mapping (JSON bodies of
the HTTP API), `recipe_from_yaml(text)` YAML text.
`build_blocks(recipe)` returns the per-document blocks in order; exact and near deduplication
need the whole dataset and are run by the orchestrator after them (see dedup.py).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rixin.errors import InvalidRequest

PiiType = Literal["email", "phone", "ip_address", "credit_card", "cn_id", "iban"]
PII_TYPES: tuple[PiiType, ...] = ("email", "phone", "ip_address", "credit_card", "cn_id", "iban")

Step = Literal["normalize", "quality", "language", "words", "pii", "exact_dedup", "near_dedup"]
DOC_STEPS = ("normalize", "quality", "language", "words", "pii")
DEDUP_STEPS = ("exact_dedup", "near_dedup")

# The labels of the model that py3langid ships (data/model.npz.xz); a test checks that they
# match the model, so that recipe validation needs no model load.
LANGUAGE_CODES = frozenset(
    "ace af am an ar ary arz as az ba bcl be bg bn br bs ca crh cs cy da de dz el en eo es et "
    "eu ext fa fi fo fr fuv fy ga gcf gcr gd gl gom grc gu gug guw ha hbo he hi hr ht hu hy id "
    "ig is it ja jv ka kab kik kk km kn ko ku ky la lb lg lij ln lo lt ltg lv mg mk ml mn mr ms "
    "mt my ne nl nn no nso oc om or pa pcm pl ps pt qu ro ru rw sa sdh se si sk sl sn so sq sr "
    "st sv sw ta te tg th tk tl tr tt ug uk ur uz uzs vec vi vo wa wuu xh yo yue zh zu zxx".split()
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class NormalizeConfig(_Strict):
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


class QualityConfig(_Strict):
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


class LanguageConfig(_Strict):
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


class WordsConfig(_Strict):
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


class PiiConfig(_Strict):
    """PII redaction: each found item is replaced by a typed placeholder (<EMAIL>, <PHONE>,
    <IP_ADDRESS>, <CREDIT_CARD>, <CN_ID>, <IBAN>) and counted; the values are never logged."""

    types: list[PiiType] = Field(
        default_factory=lambda: list(PII_TYPES), description="Which PII types to redact."
    )


class NearDedupConfig(_Strict):
    """Near-duplicate removal: MinHash LSH proposes candidate pairs, the exact Jaccard
    similarity of their shingle sets decides."""

    threshold: float = Field(
        0.8, gt=0, lt=1, description="Jaccard similarity (exact, of the shingle sets) at or above "
        "which a later document is removed as a near duplicate of an earlier one.",
    )
    num_perm: int = Field(
        128, ge=16, le=1024, description="MinHash permutations: more is more exact and slower."
    )
    ngram: int = Field(5, ge=1, le=32, description="Shingle length, in units of `shingle`.")
    shingle: Literal["word", "char"] = Field(
        "word",
        description="Shingle unit: word n-grams (default; Chinese is cut into words by jieba) or "
        "character n-grams.",
    )
    seed: int = Field(42, ge=0, description="Seed of the MinHash permutations (determinism).")


class Recipe(_Strict):
    """A cleaning recipe: the steps in order, then the settings of each step."""

    name: str = Field("custom", description="A name for people; shown in reports.")
    description: str = Field("", description="What this recipe is for.")
    steps: list[Step] = Field(
        default_factory=lambda: [*DOC_STEPS[:4], "pii", *DEDUP_STEPS],
        description="Steps to run, in order. Per-document steps first; exact_dedup and "
        "near_dedup, when listed, come after all of them (they need the whole dataset).",
    )
    normalize: NormalizeConfig = Field(default_factory=NormalizeConfig, description="See NormalizeConfig.")
    quality: QualityConfig = Field(default_factory=QualityConfig, description="See QualityConfig.")
    language: LanguageConfig = Field(default_factory=LanguageConfig, description="See LanguageConfig.")
    words: WordsConfig = Field(default_factory=WordsConfig, description="See WordsConfig.")
    pii: PiiConfig = Field(default_factory=PiiConfig, description="See PiiConfig.")
    near_dedup: NearDedupConfig = Field(
        default_factory=NearDedupConfig, description="See NearDedupConfig."
    )
    samples_per_reason: int = Field(
        5, ge=0, le=100, description="Removed documents kept as examples per reason in the report."
    )

    @field_validator("steps")
    @classmethod
    def _steps_in_order(cls, steps: list[str]) -> list[str]:
        if len(set(steps)) != len(steps):
            raise ValueError("a step is listed twice")
        seen_dedup = False
        for step in steps:
            if step in DEDUP_STEPS:
                seen_dedup = True
            elif seen_dedup:
                raise ValueError(f"'{step}' comes after a dedup step; list exact_dedup/near_dedup last")
        return steps

    @property
    def doc_steps(self) -> list[str]:
        return [s for s in self.steps if s in DOC_STEPS]

    @property
    def runs_exact_dedup(self) -> bool:
        return "exact_dedup" in self.steps

    @property
    def runs_near_dedup(self) -> bool:
        return "near_dedup" in self.steps


def _model_at(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    """The config model that holds the last key of `loc` (for listing its allowed keys)."""
    model: type[BaseModel] = Recipe
    for part in loc[:-1]:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _recipe_error(exc: ValidationError, source: str) -> InvalidRequest:
    first = exc.errors()[0]
    loc = tuple(p for p in first["loc"] if p != "[key]")  # "[key]": the error is in a dict key
    path = ".".join(str(p) for p in loc) or "(top level)"
    if first["type"] == "extra_forbidden":
        model = _model_at(loc)
        where = ".".join(str(p) for p in loc[:-1]) or "the top level"
        allowed = ", ".join(model.model_fields) if model else "(none)"
        message = (
            f"{source}: unknown key '{path}'. Allowed keys at {where}: {allowed}. "
            "Check the spelling or remove the key."
        )
    else:
        got = first.get("input")
        shown = f" (got {got!r})" if not isinstance(got, dict | list) else ""
        reason = first["msg"].removeprefix("Value error, ")
        message = f"{source}: invalid value at '{path}': {reason}{shown}."
    more = len(exc.errors()) - 1
    if more:
        message += f" ({more} more problem{'s' if more > 1 else ''} after fixing this one.)"
    return InvalidRequest(message, param=path)


def parse_recipe(data: Any, *, source: str = "recipe") -> Recipe:
    """Validate a parsed mapping into a Recipe; any problem raises InvalidRequest whose param
    is the dotted path of the offending field."""
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise InvalidRequest(
            f"{source}: a recipe must be a mapping of keys to settings, got {type(data).__name__}",
            param="recipe",
        )
    try:
        return Recipe.model_validate(data)
    except ValidationError as e:
        raise _recipe_error(e, source) from e


@functools.cache
def _packaged() -> dict[str, str]:
    """name -> YAML text of every recipe shipped in rixin/data/recipes/ (read once)."""
    folder = resources.files("rixin.data") / "recipes"
    return {p.name[: -len(".yaml")]: p.read_text(encoding="utf-8")
            for p in folder.iterdir() if p.name.endswith(".yaml")}


def packaged_recipes() -> list[str]:
    """Names of the recipes shipped in rixin/data/recipes/."""
    return sorted(_packaged())


def packaged_recipe(name: str) -> Recipe | None:
    """The packaged recipe called `name`, or None. `name` is only ever a key into the table
    read at first use: no file is opened or looked up because of what a caller sent."""
    text = _packaged().get(name)
    return None if text is None else recipe_from_yaml(text, source=f"recipe '{name}'")


def _no_aliases(text: str) -> None:
    """YAML anchors and aliases can expand a small text into a huge structure (a "billion
    laughs" document); a recipe never needs them."""
    for event in yaml.parse(text, Loader=yaml.SafeLoader):
        if isinstance(event, yaml.AliasEvent):
            raise InvalidRequest("recipe YAML must not use aliases (*name); write the value out.",
                                 param="recipe")


def recipe_from_yaml(text: str, *, source: str = "recipe") -> Recipe:
    """Validate recipe YAML text (a packaged file, a request body, a file the CLI read on the
    user's own machine). Errors quote only `text` itself, never anything else."""
    try:
        _no_aliases(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise InvalidRequest(f"{source} is not valid YAML: {e}", param="recipe") from e
    except RecursionError as e:
        raise InvalidRequest(f"{source} is nested too deeply to be a recipe.", param="recipe") from e
    return parse_recipe(data, source=source)


# reason code -> the recipe setting that decides it (for the report: "which rule removed what")
_RULES = {
    "empty": "normalize (nothing left after normalisation)",
    "too_short": "quality.min_words", "too_long": "quality.max_words",
    "mean_word_length": "quality.min_mean_word_length / max_mean_word_length",
    "symbol_ratio": "quality.max_symbol_word_ratio", "alpha_words": "quality.min_alpha_word_fraction",
    "alnum_chars": "quality.min_alnum_char_fraction", "unique_words": "quality.min_unique_word_fraction",
    "stop_words": "quality.min_stop_words", "gibberish_words": "quality.max_gibberish_word_fraction",
    "bullet_lines": "quality.max_bullet_line_fraction", "ellipsis_lines": "quality.max_ellipsis_line_fraction",
    "dup_line_fraction": "quality.max_duplicate_line_fraction",
    "dup_paragraph_fraction": "quality.max_duplicate_paragraph_fraction",
    "dup_line_chars": "quality.max_duplicate_line_char_fraction",
    "dup_paragraph_chars": "quality.max_duplicate_paragraph_char_fraction",
    "blocked_word": "words.block", "no_allowed_word": "words.allow",
    "exact_duplicate": "exact_dedup", "near_duplicate": "near_dedup.threshold",
}


def rule_for(reason: str, recipe: Recipe) -> str:
    """The recipe setting behind a removal reason, with its value: "quality.min_words = 50"."""
    if reason.startswith("language:"):
        return f"language.allow = {recipe.language.allow}"
    for kind, table in (("top", "max_top_ngram_char_fraction"), ("dup", "max_duplicate_ngram_char_fraction")):
        if reason.startswith(f"{kind}_") and reason.endswith("gram") and reason[len(kind) + 1 : -4].isdigit():
            n = int(reason[len(kind) + 1 : -4])
            return f"quality.{table}[{n}] = {getattr(recipe.quality, table).get(n)}"
    setting = _RULES.get(reason)
    if setting is None:
        return "unknown"
    if setting.startswith(("quality.", "words.", "near_dedup.")) and " " not in setting:
        section, field = setting.split(".")
        return f"{setting} = {getattr(getattr(recipe, section), field)}"
    return setting


def build_blocks(recipe: Recipe) -> list:
    """The per-document blocks of `recipe`, in its order (dedup steps are not blocks)."""
    # Imported here: the block modules import their config classes from this module.
    from rixin.data.blocks import Normalize, WordList
    from rixin.data.langid import LanguageFilter
    from rixin.data.pii import PiiRedactor
    from rixin.data.quality import QualityFilter

    makers = {
        "normalize": lambda: Normalize(recipe.normalize),
        "quality": lambda: QualityFilter(recipe.quality),
        "language": lambda: LanguageFilter(recipe.language),
        "words": lambda: WordList(recipe.words),
        "pii": lambda: PiiRedactor(recipe.pii),
    }
    return [makers[step]() for step in recipe.doc_steps]
