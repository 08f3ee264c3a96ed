"""free_form: a text answer from a chat model, unconstrained."""

from __future__ import annotations

from typing import Any

from rixin.label.labelers import Fail, LabelerSpec, LabelTask
from rixin.label.labelers._llm import LLMLabeler


def accept(task: LabelTask, value: Any) -> Any:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(": a free-form label is a non-empty string.")
    return value


def check(task: LabelTask, fail: Fail) -> LabelTask:
    return task  # nothing beyond the fields every task has


LABELER = LabelerSpec(
    name="free_form", engine="chat", build=LLMLabeler, uses=frozenset({"few_shot", "max_tokens"}),
    summary="free_form: a text answer", instruction="Answer the request in the text.",
    check=check, accept=accept)
