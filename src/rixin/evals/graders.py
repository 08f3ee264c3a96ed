"""Graders: small blocks with one method, `grade(item, output) -> Grade`; a grade is a score
in [0, 1] AND a reason (a short code, counted in the run's summary).

    exact_match     output == an ideal answer, after normalisation (NFC, trimmed, spaces
                    collapsed, case-folded unless case_sensitive)
    includes        an ideal answer occurs in the output (same normalisation)
    regex           the pattern matches the output (search, or fullmatch)
    json_schema     the output parses as JSON (a ``` fence around it is allowed) and is valid
                    against the grader's schema or else the item's `schema`
    numeric         the output's number (thousands commas, units, currency signs, a unicode
                    minus are tolerated) is within abs_tol or rel_tol of the ideal's number
    embedding       cosine similarity of output and ideal embeddings (best ideal), clipped to
                    [0, 1]; with a threshold: 1 at or above it, else 0
    model_graded    an LLM judge reads the rubric, the input, the reference and the answer and
                    picks a score from `choices` under a JSON-schema grammar; the score is the
                    choice's position scaled to [0, 1]

Config is typed: `{"type": "regex", "pattern": "...", "name": "..."}`; an unknown key or type
is a 400 naming the field (`graders[1].patern`).
"""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import dataclass
from typing import Annotated, Any, Callable, Literal, Protocol, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, field_validator

from rixin.engines.base import GenerateRequest, SamplingParams
from rixin.errors import InvalidRequest
from rixin.evals.evalset import EvalItem
from rixin.models.registry import CHAT_MODEL, EMBEDDING_MODEL
from rixin.schemas import check, first_error


@dataclass
class Grade:
    score: float
    """In [0, 1]."""
    reason: str
    """Why, as a short code (e.g. 'match', 'no_match', 'invalid_json')."""


class Grader(Protocol):
    name: str

    def grade(self, item: EvalItem, output: str) -> Grade: ...


# ---------------------------------------------------------------------- config


class _Config(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field("", max_length=64, description="Name in the summary; default: the type.")

    @property
    def label(self) -> str:
        return self.name or self.type  # type: ignore[attr-defined]


class ExactMatchConfig(_Config):
    type: Literal["exact_match"]
    normalize: bool = Field(True, description="NFC, trim, collapse whitespace before comparing.")
    case_sensitive: bool = Field(False, description="Compare case too (otherwise case-folded).")


class IncludesConfig(_Config):
    type: Literal["includes"]
    case_sensitive: bool = Field(False, description="Compare case too (otherwise case-folded).")


class RegexConfig(_Config):
    type: Literal["regex"]
    pattern: str = Field(min_length=1, description="A Python regular expression.")
    ignore_case: bool = Field(False, description="Match regardless of case.")
    full_match: bool = Field(False, description="The whole (trimmed) output must match, not a part.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return value


class JsonSchemaConfig(_Config):
    type: Literal["json_schema"]
    json_schema: dict | None = Field(None, alias="schema",
                                     description="The schema; default: each item's own `schema`.")

    @field_validator("json_schema")
    @classmethod
    def _valid(cls, value: dict | None) -> dict | None:
        # local references only, bounded size: a SchemaProblem is a ValueError, so the 400
        # names graders[i].schema
        return None if value is None else check(value)


class NumericConfig(_Config):
    type: Literal["numeric"]
    abs_tol: float = Field(0.0, ge=0, description="Pass when |output − ideal| ≤ abs_tol ...")
    rel_tol: float = Field(0.0, ge=0, description="... or ≤ rel_tol × |ideal|.")
    pick: Literal["first", "last"] = Field("last", description="Which number of the output counts.")


class EmbeddingConfig(_Config):
    type: Literal["embedding"]
    model: str = Field(EMBEDDING_MODEL, description="An embedding model id.")
    threshold: float | None = Field(None, ge=-1, le=1, description="Score 1 at or above, else 0; "
                                    "default: the similarity itself.")


class ModelGradedConfig(_Config):
    type: Literal["model_graded"]
    model: str = Field(CHAT_MODEL, description="The judge: a chat model id.")
    rubric: str = Field(min_length=1, description="What a good answer is; the judge's instruction.")
    choices: list[str] = Field(default_factory=lambda: ["1", "2", "3", "4", "5"], min_length=2,
                               description="Scores the judge picks from, worst first.")
    max_tokens: int = Field(32, ge=8, le=256, description="Most tokens of the judge's answer (the JSON "
                            "around the choice takes ~8).")


GraderConfig = Annotated[Union[ExactMatchConfig, IncludesConfig, RegexConfig, JsonSchemaConfig, NumericConfig,
                               EmbeddingConfig, ModelGradedConfig], Field(discriminator="type")]
_ADAPTER = TypeAdapter(list[GraderConfig])
TYPES = ("exact_match", "includes", "regex", "json_schema", "numeric", "embedding", "model_graded")


def _path(loc: tuple) -> str:
    parts = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        elif item not in TYPES:  # pydantic puts the union tag in the location: drop it
            parts.append(f".{item}")
    return "graders" + "".join(parts)


def parse_graders(data: Any) -> list[GraderConfig]:
    """Typed grader configs; InvalidRequest naming the field (graders[i].key) otherwise."""
    if not isinstance(data, list) or not data:
        raise InvalidRequest("'graders' must be a non-empty list of grader objects, e.g. "
                             '[{"type": "includes"}].', param="graders")
    try:
        configs = _ADAPTER.validate_python(data)
    except ValidationError as e:
        first = next((x for x in e.errors() if x["type"] == "extra_forbidden"), e.errors()[0])
        path = _path(tuple(first["loc"]))
        if first["type"] == "extra_forbidden":
            message = f"Unknown key '{path}'; check the spelling or remove it."
        elif first["type"] in ("union_tag_invalid", "union_tag_not_found"):
            message = f"Invalid '{path}.type': use one of {', '.join(TYPES)}."
            path += ".type"
        else:
            message = f"Invalid '{path}': {first['msg'].removeprefix('Value error, ')}."
        raise InvalidRequest(message, param=path) from e
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


# ---------------------------------------------------------------------- text


def normalise(text: str, *, case_sensitive: bool = False) -> str:
    text = " ".join(unicodedata.normalize("NFC", text).split())
    return text if case_sensitive else text.casefold()


_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.S)
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


# ---------------------------------------------------------------------- graders


class ExactMatch:
    def __init__(self, config: ExactMatchConfig):
        self.config, self.name = config, config.label

    def _norm(self, text: str) -> str:
        if not self.config.normalize:
            return text if self.config.case_sensitive else text.casefold()
        return normalise(text, case_sensitive=self.config.case_sensitive)

    def grade(self, item: EvalItem, output: str) -> Grade:
        if not item.ideal:
            return Grade(0.0, "no_ideal")
        got = self._norm(output)
        return Grade(1.0, "match") if any(got == self._norm(i) for i in item.ideal) else Grade(0.0, "no_match")


class Includes:
    def __init__(self, config: IncludesConfig):
        self.config, self.name = config, config.label

    def grade(self, item: EvalItem, output: str) -> Grade:
        if not item.ideal:
            return Grade(0.0, "no_ideal")
        got = normalise(output, case_sensitive=self.config.case_sensitive)
        for ideal in item.ideal:
            want = normalise(ideal, case_sensitive=self.config.case_sensitive)
            if want and want in got:
                return Grade(1.0, "included")
        return Grade(0.0, "not_included")


class Regex:
    def __init__(self, config: RegexConfig):
        self.config, self.name = config, config.label
        self.pattern = re.compile(config.pattern, re.IGNORECASE if config.ignore_case else 0)

    def grade(self, item: EvalItem, output: str) -> Grade:
        text = unicodedata.normalize("NFC", output)
        found = self.pattern.fullmatch(text.strip()) if self.config.full_match else self.pattern.search(text)
        return Grade(1.0, "match") if found else Grade(0.0, "no_match")


class JsonSchemaValid:
    def __init__(self, config: JsonSchemaConfig):
        self.config, self.name = config, config.label

    def grade(self, item: EvalItem, output: str) -> Grade:
        schema = self.config.json_schema or item.schema
        if schema is None:
            return Grade(0.0, "no_schema")
        text = output.strip()
        fenced = _FENCE.match(text)
        try:
            value = json.loads(fenced.group(1) if fenced else text)
        except (ValueError, RecursionError):  # RecursionError: JSON nested past Python's stack
            return Grade(0.0, "empty_output" if not text else "invalid_json")
        if first_error(schema, value) is not None:
            return Grade(0.0, "schema_mismatch")
        return Grade(1.0, "valid")


class Numeric:
    def __init__(self, config: NumericConfig):
        self.config, self.name = config, config.label

    def grade(self, item: EvalItem, output: str) -> Grade:
        wanted = [n[-1] for n in (numbers(i) for i in item.ideal) if n]
        if not wanted:
            return Grade(0.0, "no_ideal_number")
        found = numbers(output)
        if not found:
            return Grade(0.0, "no_number")
        got = found[-1] if self.config.pick == "last" else found[0]
        for want in wanted:
            if math.isclose(got, want, rel_tol=self.config.rel_tol, abs_tol=self.config.abs_tol):
                return Grade(1.0, "within_tolerance")
        return Grade(0.0, "out_of_tolerance")


class EmbeddingSimilarity:
    """Engine: anything with `embed(texts) -> (n, dim)` L2-normalised vectors."""

    def __init__(self, config: EmbeddingConfig, engine):
        self.config, self.name, self.engine = config, config.label, engine

    def grade(self, item: EvalItem, output: str) -> Grade:
        if not item.ideal:
            return Grade(0.0, "no_ideal")
        if not output.strip():
            return Grade(0.0, "empty_output")
        vectors = np.asarray(self.engine.embed([output, *item.ideal]), dtype=np.float32)  # (1 + ideals, dim)
        similarity = float(np.max(vectors[1:] @ vectors[0]))
        if self.config.threshold is not None:
            return Grade(1.0, "similar") if similarity >= self.config.threshold else Grade(0.0, "dissimilar")
        return Grade(min(max(similarity, 0.0), 1.0), "similarity")


JUDGE_SYSTEM = ("You are a strict grader. Read the rubric, the question, the reference answer and the "
                "answer to grade. Reply with a JSON object {\"score\": ...} choosing one of: {choices} "
                "(worst first).\nRubric: {rubric}")


class ModelGraded:
    """Engine: anything with `generate(GenerateRequest) -> [Chunk]` (a chat model)."""

    def __init__(self, config: ModelGradedConfig, engine):
        self.config, self.name, self.engine = config, config.label, engine
        self.schema = {"type": "object", "properties": {"score": {"enum": config.choices}},
                       "required": ["score"], "additionalProperties": False}
        self.system = (JUDGE_SYSTEM.replace("{choices}", ", ".join(config.choices))
                       .replace("{rubric}", config.rubric))

    def prompt(self, item: EvalItem, output: str) -> list[dict]:
        question = "\n".join(f"{m['role']}: {m['content']}" for m in item.messages)
        reference = " | ".join(item.ideal) if item.ideal else "(none)"
        return [{"role": "system", "content": self.system},
                {"role": "user", "content": f"Question:\n{question}\n\nReference answer:\n{reference}\n\n"
                                            f"Answer to grade:\n{output}"}]

    def grade(self, item: EvalItem, output: str) -> Grade:
        if not output.strip():
            return Grade(0.0, "empty_output")
        params = SamplingParams(max_tokens=self.config.max_tokens, temperature=0.0, json_schema=self.schema,
                                seed=0)
        chunks = self.engine.generate(GenerateRequest(params, messages=self.prompt(item, output)))
        return self.parse("".join(c.text for c in chunks), truncated=chunks[-1].finish_reason == "length")

    def parse(self, text: str, truncated: bool = False) -> Grade:
        """The judge's reply → a grade: the choice's position scaled to [0, 1]."""
        try:
            value = json.loads(text)
        except ValueError:
            # under the grammar only a reply cut by max_tokens fails to parse
            return Grade(0.0, "judge_truncated" if truncated else "judge_unparseable")
        choice = value.get("score") if isinstance(value, dict) else None
        if isinstance(choice, int | float) and not isinstance(choice, bool):
            choice = str(choice).removesuffix(".0")
        if choice not in self.config.choices:
            return Grade(0.0, "judge_choice_outside_set")
        return Grade(self.config.choices.index(choice) / (len(self.config.choices) - 1), f"judge_{choice}")


# ---------------------------------------------------------------------- building


def engine_models(configs: list[GraderConfig]) -> list[tuple[str, str]]:
    """(model id, kind) each grader needs an engine for."""
    return [(c.model, "embedding" if c.type == "embedding" else "chat") for c in configs
            if c.type in ("embedding", "model_graded")]


def build_grader(config: GraderConfig, connect: Callable[[str, str], Any] | None = None) -> Grader:
    """`connect(model_id, kind)` gives an engine (serving/client.ActorEngine in jobs)."""
    plain = {"exact_match": ExactMatch, "includes": Includes, "regex": Regex, "json_schema": JsonSchemaValid,
             "numeric": Numeric}
    if config.type in plain:
        return plain[config.type](config)
    engine = connect(config.model, "embedding" if config.type == "embedding" else "chat")
    return EmbeddingSimilarity(config, engine) if config.type == "embedding" else ModelGraded(config, engine)
