"""Eval sets: JSONL, one item a line (docs/evals.md).

    {"input": "What is 2+2?", "ideal": "4"}
    {"input": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Capital of France?"}],
     "ideal": ["Paris", "paris"]}
    {"input": "Give a JSON object with a name.", "schema": {"type": "object", "required": ["name"]}}

`input` (required): a prompt string (sent as one user message) or a list of chat messages.
`ideal` (optional): the reference answer, or a list of acceptable ones.
`schema` (optional): a JSON schema the output should satisfy (the json_schema grader).
`id` (optional): a string naming the item; default its 1-based line number.
Any other key is kept and ignored (metadata). Blank lines are skipped but counted, so line
numbers match the user's editor; every problem names its line.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rixin.errors import InvalidRequest
from rixin.schemas import SchemaProblem, check

MAX_PROBLEMS = 20
ROLES = ("system", "developer", "user", "assistant")


@dataclass
class EvalItem:
    index: int
    """0-based position among the set's items."""
    id: str
    messages: list[dict]
    ideal: list[str] = field(default_factory=list)
    schema: dict | None = None

    def to_dict(self) -> dict:
        return {"index": self.index, "id": self.id, "messages": self.messages, "ideal": self.ideal,
                "schema": self.schema}


def _messages(value: Any, line: int) -> list[dict]:
    if isinstance(value, str):
        if not value.strip():
            raise ValueError("'input' is an empty string; give the prompt text")
        return [{"role": "user", "content": value}]
    if not isinstance(value, list) or not value:
        raise ValueError("'input' must be a prompt string or a non-empty list of chat messages")
    out = []
    for i, m in enumerate(value):
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise ValueError(f"input[{i}] must be {{\"role\": one of {list(ROLES)}, \"content\": a string}}")
        out.append({"role": m["role"], "content": m["content"]})
    if out[-1]["role"] == "assistant":
        raise ValueError("the last input message is the assistant's; end with the user's turn")
    return out


def _ideal(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str | int | float) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise ValueError("'ideal' must be a string or a non-empty list of strings")


def parse_item(obj: Any, line: int, index: int) -> EvalItem:
    """One line's object as an EvalItem; ValueError says what is wrong."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if "input" not in obj:
        raise ValueError("missing required key 'input' (a prompt string or a list of chat messages)")
    schema = obj.get("schema")
    if schema is not None:
        try:
            check(schema)
        except SchemaProblem as e:
            raise ValueError(f"invalid 'schema': {e}") from None
    item_id = obj.get("id", str(line))
    if not isinstance(item_id, str | int) or isinstance(item_id, bool):
        raise ValueError("'id' must be a string")
    return EvalItem(index, str(item_id), _messages(obj["input"], line), _ideal(obj.get("ideal")), schema)


def parse_lines(lines, source: str) -> list[EvalItem]:
    """Items from JSONL lines (bytes or str); InvalidRequest listing up to 20 problems by line."""
    items, problems = [], []
    for number, raw in enumerate(lines, start=1):
        try:
            text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
            if not text.strip():
                continue
            items.append(parse_item(json.loads(text), number, len(items)))
        except (ValueError, RecursionError) as e:  # JSONDecodeError, UnicodeDecodeError; a line nested past the stack
            problems.append(f"Line {number}: {e}")
            if len(problems) >= MAX_PROBLEMS:
                break
    if not problems and not items:
        problems.append("the eval set has no items")
    if problems:
        raise InvalidRequest(f"Invalid eval set {source}: " + "; ".join(problems), param="eval_file_id",
                             code="invalid_eval_set")
    return items


def load_items(path: Path, source: str) -> list[EvalItem]:
    with path.open("rb") as f:
        return parse_lines(f, source)
