"""Graders: small blocks with one method, `grade(item, output) -> Grade`; a grade is a score
in [0, 1] AND a reason (a short code, counted in the run's summary).

Every module of this package is one grader and says everything about it in one place, a
module-level `GRADER = GraderSpec(...)`: its typed config (whose `type` literal is the grader's
name and whose docstring describes it), how to build it and which kind of engine, if any, it
needs. `registered()` collects them (rixin/extensions.py, the mechanism the cleaning blocks
use too); the config union, the error paths, the engines a run needs and the list that
`GET /v1/evals/graders` serves (the console's hint) all come from that table. Adding a grader
is a new module here (and its test and docs), nothing else.

Config is typed: `{"type": "regex", "pattern": "...", "name": "..."}`; an unknown key or type
is a 400 naming the field (`graders[1].patern`).
"""

from __future__ import annotations

import functools
import re
import typing
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Protocol, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from rixin.errors import InvalidRequest, invalid_from
from rixin.evals.evalset import EvalItem
from rixin.extensions import collect


@dataclass
class Grade:
    score: float
    """In [0, 1]."""
    reason: str
    """Why, as a short code (e.g. 'match', 'no_match', 'invalid_json')."""


class Grader(Protocol):
    name: str

    def grade(self, item: EvalItem, output: str) -> Grade: ...


class GraderConfig(BaseModel):
    """Base of every grader's config: a `type` literal (the grader's name), an optional name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("", max_length=64, description="Name in the summary; default: the type.")

    @property
    def label(self) -> str:
        return self.name or self.type  # type: ignore[attr-defined]


@dataclass(frozen=True)
class GraderSpec:
    """Everything a run needs to know about one grader.

    config: its typed settings; `type: Literal["<name>"]` names the grader, the class docstring
        and the field descriptions are its documentation in the catalogue.
    build: (config) -> the grader, or (config, engine) -> the grader when `engine` is set.
    engine: the kind of model the grader calls ("chat", "embedding"; its config then has a
        `model` field), or None for graders that only read text.
    """

    config: type[GraderConfig]
    build: Callable[..., Grader]
    engine: Literal["chat", "embedding"] | None = None

    @property
    def name(self) -> str:
        return typing.get_args(self.config.model_fields["type"].annotation)[0]


@functools.cache
def registered() -> dict[str, GraderSpec]:
    """name -> spec of every grader module in this package."""
    specs = collect(__name__, "GRADER", GraderSpec)
    for spec in specs:
        if spec.engine and "model" not in spec.config.model_fields:
            raise TypeError(f"grader {spec.name} needs a {spec.engine} engine but its config has no 'model'")
    return {spec.name: spec for spec in specs}


@functools.cache
def _adapter() -> TypeAdapter:
    configs = tuple(spec.config for spec in registered().values())
    return TypeAdapter(list[Annotated[Union[configs], Field(discriminator="type")]])  # type: ignore[valid-type]


def parse_graders(data: Any) -> list[GraderConfig]:
    """Typed grader configs; InvalidRequest naming the field (graders[i].key) otherwise."""
    if not isinstance(data, list) or not data:
        raise InvalidRequest("'graders' must be a non-empty list of grader objects, e.g. "
                             '[{"type": "includes"}].', param="graders")
    specs = registered()
    try:
        configs = _adapter().validate_python(data)
    except ValidationError as e:
        first = next((x for x in e.errors() if x["type"] == "extra_forbidden"), e.errors()[0])
        if first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            path = f"graders[{first['loc'][0]}].type"
            raise InvalidRequest(f"Invalid '{path}': use one of {', '.join(specs)}.", param=path) from e
        item = data[first["loc"][0]]
        spec = specs.get(item.get("type")) if isinstance(item, dict) else None
        raise invalid_from(e, prefix_param="graders", model=spec.config if spec else None,
                           tags=tuple(specs)) from e
    i = duplicate_at([c.label for c in configs])
    if i is not None:
        raise InvalidRequest(f"Two graders are named '{configs[i].label}'; give one a different 'name'.",
                             param=f"graders[{i}].name")
    return configs


def duplicate_at(names: list[str]) -> int | None:
    """The index of the first name seen before, if any (names key the summary: they must differ)."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            return i
        seen.add(name)
    return None


def engine_models(configs: list[GraderConfig]) -> list[tuple[str, str]]:
    """(model id, kind) each grader needs an engine for."""
    specs = registered()
    return [(c.model, specs[c.type].engine) for c in configs if specs[c.type].engine]  # type: ignore[attr-defined]


def build_grader(config: GraderConfig, connect: Callable[[str, str], Any] | None = None) -> Grader:
    """`connect(model_id, kind)` gives an engine (the serving room's client in jobs)."""
    spec = registered()[config.type]  # type: ignore[attr-defined]
    if spec.engine is None:
        return spec.build(config)
    return spec.build(config, connect(config.model, spec.engine))  # type: ignore[attr-defined, misc]


# ---------------------------------------------------------------------- text, shared by graders


def normalise(text: str, *, case_sensitive: bool = False) -> str:
    text = " ".join(unicodedata.normalize("NFC", text).split())
    return text if case_sensitive else text.casefold()


# A number as people write it: signs (incl. the unicode minus), thousands commas, decimals, exponents.
_NUMBER = re.compile(r"[-−+]?(?:\d{1,3}(?:,\d{3})+|\d+)?(?:\.\d+)?(?:[eE][-+]?\d+)?")


def numbers(text: str) -> list[float]:
    """Every number in `text`: '1,234.5 kg' → [1234.5]; '$-3' → [-3.0]; '½' → []."""
    out = []
    for m in _NUMBER.finditer(unicodedata.normalize("NFKC", text)):
        token = m.group(0)
        if not any(ch.isdigit() for ch in token):
            continue
        try:
            out.append(float(token.replace(",", "").replace("−", "-")))
        except ValueError:
            continue
    return out
