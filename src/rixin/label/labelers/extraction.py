"""extraction: a JSON object valid against the task's `json_schema`, by a chat model
constrained to that schema."""

from __future__ import annotations

import json
from typing import Any

from rixin.grammar import check_decodable
from rixin.label.labelers import Fail, LabelerSpec, LabelTask
from rixin.label.labelers._llm import LLMLabeler
from rixin.schemas import SchemaProblem, first_error


def check(task: LabelTask, fail: Fail) -> LabelTask:
    if task.json_schema is None:
        fail("json_schema", "an extraction task needs a JSON schema of its answer")
    try:  # it constrains the labeler's decoding: a grammar llama.cpp can use, local refs only
        check_decodable(task.json_schema)
    except SchemaProblem as e:
        fail("json_schema", str(e))
    if task.json_schema.get("type") != "object":
        fail("json_schema.type", "the answer must be an object: set \"type\": \"object\"")
    return task


def accept(task: LabelTask, value: Any) -> Any:
    if isinstance(value, str):  # an extraction's answer is an object; a string may hold its JSON
        try:
            value = json.loads(value)
        except (ValueError, RecursionError) as e:
            raise ValueError(f": not a JSON object ({e}).") from e
    error = first_error(task.json_schema, value)
    if error is not None:
        raise ValueError(f": not valid against the task's json_schema at {error[0]}: {error[1]}")
    return value


LABELER = LabelerSpec(
    name="extraction", engine="chat", build=LLMLabeler, uses=frozenset({"json_schema", "few_shot", "max_tokens"}),
    summary="extraction: a JSON object valid against `json_schema`",
    instruction="Extract the requested fields from the text.", check=check, accept=accept)
