"""json_schema: the output parses as JSON (a ``` fence around it is allowed) and is valid
against the grader's schema or else the item's `schema`."""

from __future__ import annotations

import json
import re
from typing import Literal

from pydantic import Field, field_validator

from rixin.evals.evalset import EvalItem
from rixin.evals.graders import Grade, GraderConfig, GraderSpec
from rixin.schemas import check, first_error

_FENCE = re.compile(r"^```[A-Za-z0-9_-]*\s*\n?(.*?)\n?```$", re.S)


class JsonSchemaConfig(GraderConfig):
    """1 if the output (optionally in a ``` fence) parses as JSON and validates against the
    schema."""

    type: Literal["json_schema"]
    json_schema: dict | None = Field(None, alias="schema",
                                     description="The schema; default: each item's own `schema`.")

    @field_validator("json_schema")
    @classmethod
    def _valid(cls, value: dict | None) -> dict | None:
        # local references only, bounded size: a SchemaProblem is a ValueError, so the 400
        # names graders[i].schema
        return None if value is None else check(value)


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


GRADER = GraderSpec(config=JsonSchemaConfig, build=JsonSchemaValid)
