"""classification: one label of `labels`, by a chat model constrained to {"label": {"enum": labels}}."""

from __future__ import annotations

from rixin.label.labelers import Fail, LabelerSpec, LabelTask, check_label_set, one_of_labels
from rixin.label.labelers._llm import LLMLabeler


def check(task: LabelTask, fail: Fail) -> LabelTask:
    check_label_set(task, fail)
    return task


LABELER = LabelerSpec(
    name="classification", engine="chat", build=LLMLabeler, uses=frozenset({"labels", "few_shot", "max_tokens"}),
    summary="classification: one label of `labels`", instruction="Classify the text.",
    check=check, accept=one_of_labels)
