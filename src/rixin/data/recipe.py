"""Cleaning recipes: typed YAML that says which blocks run, in which order, with what thresholds.

A recipe file is a mapping; every section is optional and has defaults, but an unknown key
anywhere is an error that names its dotted path and lists the keys allowed there:

    name: support-tickets
    steps: [normalize, quality, language, words, pii, exact_dedup, near_dedup]
    quality: {min_words: 20}
    language: {allow: [en, zh]}
    near_dedup: {threshold: 0.85}

The per-document steps and their sections come from the block registry (blocks/__init__.py:
every module of rixin/data/blocks declares its name, typed config and factory), so the
`Recipe` model is built from it here, and this is the only module that builds blocks. Exact
and near deduplication need the whole dataset; they are the orchestrator's steps (clean.py,
dedup.py) and their settings are defined here.

`packaged_recipe("default")` is the packaged `recipes/default.yaml`; a recipe is never read
from a path a request names (recipes of a project are stored in the database, see
recipe_store.py). `parse_recipe(mapping)` validates an already-parsed mapping (JSON bodies of
the HTTP API), `recipe_from_yaml(text)` YAML text.
`build_blocks(recipe)` returns the per-document blocks in order; `text_transforms` picks those
that rewrite text (applied to every field of a record).
"""

from __future__ import annotations

import functools
from importlib import resources
from typing import Any, Literal

import yaml
from pydantic import Field, ValidationError, create_model, field_validator

from rixin.data.blocks import Block, StrictConfig, registered
from rixin.errors import InvalidRequest, invalid_from

BLOCKS = registered()  # step name -> BlockSpec, in default-recipe order
DOC_STEPS = tuple(BLOCKS)
DEDUP_STEPS = ("exact_dedup", "near_dedup")
Step = Literal[DOC_STEPS + DEDUP_STEPS]  # type: ignore[valid-type]  # built from the registry


class NearDedupConfig(StrictConfig):
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


class _RecipeRules(StrictConfig):
    """The rules of a Recipe; its fields are added by `_recipe_model` (the blocks' sections
    come from the registry)."""

    @field_validator("steps", check_fields=False)
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


def _recipe_model() -> type[_RecipeRules]:
    """The Recipe model: name, description, steps, one section per registered block (in
    registry order), near_dedup, samples_per_reason."""
    default_steps = [name for name, spec in BLOCKS.items() if spec.on_by_default] + list(DEDUP_STEPS)
    sections: dict[str, Any] = {
        name: (spec.config, Field(default_factory=spec.config, description=f"See {spec.config.__name__}."))
        for name, spec in BLOCKS.items()
    }
    return create_model(
        "Recipe",
        __base__=_RecipeRules,
        __module__=__name__,
        __doc__="A cleaning recipe: the steps in order, then the settings of each step.",
        name=(str, Field("custom", description="A name for people; shown in reports.")),
        description=(str, Field("", description="What this recipe is for.")),
        steps=(list[Step], Field(
            default_factory=lambda: list(default_steps),
            description="Steps to run, in order. Per-document steps first; exact_dedup and "
            "near_dedup, when listed, come after all of them (they need the whole dataset).",
        )),
        **sections,
        near_dedup=(NearDedupConfig, Field(default_factory=NearDedupConfig, description="See NearDedupConfig.")),
        samples_per_reason=(int, Field(
            5, ge=0, le=100, description="Removed documents kept as examples per reason in the report."
        )),
    )


Recipe = _recipe_model()


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
        raise invalid_from(e, source=source, model=Recipe, dotted_index=True) from e


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


# The orchestrator's reasons; the blocks declare theirs (BlockSpec.reasons / explain).
_DEDUP_RULES = {"exact_duplicate": "exact_dedup", "near_duplicate": "near_dedup.threshold"}


def rule_for(reason: str, recipe: Recipe) -> str:
    """The recipe setting behind a removal reason, with its value: "quality.min_words = 50"."""
    if reason in _DEDUP_RULES:
        setting = _DEDUP_RULES[reason]
        return f"{setting} = {recipe.near_dedup.threshold}" if "." in setting else setting
    for name, spec in BLOCKS.items():
        rule = spec.rule_for(reason, getattr(recipe, name))
        if rule is not None:
            return rule
    return "unknown"


def build_blocks(recipe: Recipe) -> list[Block]:
    """The per-document blocks of `recipe`, in its order (dedup steps are not blocks)."""
    return [BLOCKS[step].build(getattr(recipe, step)) for step in recipe.doc_steps]


def text_transforms(recipe: Recipe, blocks: list[Block]) -> list[Block]:
    """Those of `blocks` (built by build_blocks) that rewrite text rather than filter it."""
    return [block for block, step in zip(blocks, recipe.doc_steps) if BLOCKS[step].rewrites_text]
