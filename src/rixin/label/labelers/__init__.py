"""Labelers: small blocks with one method, `label(texts) -> [Verdict]`; a verdict is the label
AND its confidence AND a reason (counted in the job's report).

Every public module of this package is one task type and says everything about it in one
place, a module-level `LABELER = LabelerSpec(...)`: its name (the task's `type`), how to build
the labeler, which kind of engine it calls (its default model follows), which task fields it
uses, its default instruction, the checks a task of this type must pass and what a valid label
is. `registered()` collects them (rixin/extensions.py, the mechanism of the cleaning blocks and
graders); the task model (spec.py) takes its `type` values, the unused-field rule and its checks
from that table. Adding a task type is a new module here (and its test and docs); one that
prompts a chat model reuses the LLM labeler of _llm.py.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from rixin.extensions import collect


class LabelTask(Protocol):
    """What a labeler reads of a task: spec.LabelTask, which imports this registry for its
    `type` values (so the labelers name it by this shape, not by import)."""

    type: str
    model: str
    labels: list[str] | None
    json_schema: dict | None
    few_shot: list[Any]
    seeds: list[Any]
    k: int
    max_tokens: int

    @property
    def label_set(self) -> list[str]: ...

    @property
    def system_prompt(self) -> str: ...

    def model_copy(self, *, update: dict) -> LabelTask: ...

Fail = Callable[[str, str], None]
"""fail(path, why): raises the task's InvalidRequest naming `path` (spec.py words it)."""


@dataclass
class Verdict:
    label: Any
    """The label (a string, or an object for extraction); None when none could be produced."""
    confidence: float
    """In [0, 1]; items below the task's threshold go to the review queue."""
    reason: str
    """Why this verdict, as a short code counted in the report (e.g. 'generated', 'truncated')."""


class Labeler(Protocol):
    def label(self, texts: list[str]) -> list[Verdict]: ...


@dataclass(frozen=True)
class LabelerSpec:
    """Everything the task model and the label job need to know about one task type.

    name: the task's `type`.
    summary: one line for the task's documentation (the `type` field's description).
    build: (task, engine) -> the labeler.
    engine: the kind of model it calls; a task that names no model gets the bundled one.
    uses: the type-specific task fields it reads (labels, json_schema, few_shot, seeds, k,
        max_tokens); a task of this type that sets another one is refused.
    instruction: the system message when the task gives none.
    check: (task, fail) -> the task, completed (e.g. knn's labels from its seeds); calls fail()
        for the first problem.
    accept: (task, value) -> value as a valid label (few-shot answers, reviewers'
        corrections); a ValueError when it is not one, whose text follows "Invalid <param>".
    """

    name: str
    summary: str
    build: Callable[[LabelTask, Any], Labeler]
    engine: Literal["chat", "embedding"]
    uses: frozenset[str]
    check: Callable[[LabelTask, Fail], LabelTask]
    accept: Callable[[LabelTask, Any], Any]
    instruction: str = ""


@functools.cache
def registered() -> dict[str, LabelerSpec]:
    """type -> spec of every labeler module in this package."""
    return {spec.name: spec for spec in collect(__name__, "LABELER", LabelerSpec)}


def build_labeler(task: LabelTask, engine) -> Labeler:
    return registered()[task.type].build(task, engine)


def check_label_set(task: LabelTask, fail: Fail) -> None:
    """A closed label set: at least two distinct, non-empty labels."""
    labels = task.label_set
    if len(labels) < 2 or len(set(labels)) != len(labels) or any(not x.strip() for x in labels):
        fail("labels", "needs at least two distinct, non-empty labels")


def one_of_labels(task: LabelTask, value: Any) -> Any:
    if value not in task.label_set:
        raise ValueError(f" {value!r}: use one of {task.label_set}.")
    return value


def input_text(record: dict, field: str) -> str | None:
    """The text of `record` to label: 'text', the last user message, 'prompt', or (auto) the
    first of those present; None when the record has none."""
    def last_user() -> str | None:
        users = [m.get("content") for m in record.get("messages") or [] if m.get("role") == "user"]
        content = users[-1] if users else None
        if isinstance(content, list):  # content parts
            content = "".join(p.get("text", "") for p in content if isinstance(p, dict))
        return content if isinstance(content, str) else None

    getters = {"text": lambda: record.get("text"), "last_user_message": last_user,
               "prompt": lambda: record.get("prompt")}
    order = list(getters) if field == "auto" else [field]
    for name in order:
        value = getters[name]()
        if isinstance(value, str):
            return value
    return None
