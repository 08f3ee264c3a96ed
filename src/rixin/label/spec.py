"""Labeling tasks: typed YAML (or a JSON object in the HTTP API) saying what to label and how.

    type: classification            # classification | extraction | free_form | knn
    instruction: Classify the sentiment of the review.
    labels: [positive, negative]
    few_shot:
      - {input: "I loved it.", output: positive}
      - {input: "Awful.", output: negative}
    confidence_threshold: 0.6       # items below go to the review queue

    type: knn                       # embedding k-nearest neighbours from labeled seeds
    labels: [positive, negative]
    seeds:
      - {text: "Great, I love it.", label: positive}
      - {text: "Terrible, I hate it.", label: negative}
    k: 3

An unknown key anywhere is an error naming its dotted path and the keys allowed there; a
field that the task's type does not use (labels for extraction, seeds for an LLM task) is an
error too, so that a typo in `type` cannot silently change what runs. The types, the fields
each uses, their defaults and checks come from the labeler registry (labelers/__init__.py).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from rixin.errors import InvalidRequest, invalid_from
from rixin.label.labelers import LabelerSpec, registered
from rixin.models.registry import CHAT_MODEL, EMBEDDING_MODEL

LABELERS = registered()
TaskType = Literal[tuple(LABELERS)]  # type: ignore[valid-type]
InputField = Literal["auto", "text", "last_user_message", "prompt"]
# Fields a dataset record already uses for its format; a label may not overwrite them.
RECORD_FIELDS = ("id", "meta", "text", "messages", "tools", "prompt", "completion", "input",
                 "preferred_output", "non_preferred_output")
OUTPUT_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FewShot(_Strict):
    """One worked example, shown to the model as a prior user turn and its assistant answer."""

    input: str = Field(min_length=1, description="The example's text (what an item's text would be).")
    output: Any = Field(
        description="Its answer: a label from `labels` (classification), an object valid against "
        "`json_schema` (extraction), or a string (free_form).",
    )


class Seed(_Strict):
    """A labeled example for the kNN labeler."""

    text: str = Field(min_length=1, description="The seed's text; it is embedded once per job.")
    label: str = Field(min_length=1, description="Its label; one of `labels`.")


class LabelTask(_Strict):
    """What to label, with which model, and which items are confident enough to keep."""

    type: TaskType = Field(description="; ".join(spec.summary for spec in LABELERS.values()) + ".")
    name: str = Field("", description="A name for people; shown in job and version params.")
    model: str = Field(
        "",
        description="Model id. Default: smollm2-135m-instruct for LLM tasks, all-minilm-l6-v2 "
        "(an embedding model) for knn.",
    )
    instruction: str = Field("", description="What the model should do; the system message. "
                             "Default: a generic instruction for the task's type.")
    labels: list[str] | None = Field(
        None, description="The label set (classification, knn; for knn default: the seeds' labels)."
    )
    json_schema: dict | None = Field(
        None, description="JSON schema of an extraction's answer; must describe an object."
    )
    few_shot: list[FewShot] = Field(
        default_factory=list, description="Worked examples, shown before each item (LLM tasks)."
    )
    seeds: list[Seed] = Field(
        default_factory=list, description="Labeled examples, at least one per label (knn only)."
    )
    k: int = Field(3, ge=1, le=100, description="Neighbours that vote (knn only).")
    confidence_threshold: float = Field(
        0.5, ge=0, le=1, description="Items whose confidence is below this go to the review queue; "
        "the others are written to the new dataset version."
    )
    max_tokens: int = Field(64, ge=1, le=4096, description="Most tokens the model may generate per item.")
    input_field: InputField = Field(
        "auto",
        description="Which text of a record to label: 'text', 'last_user_message' (chat records), "
        "'prompt', or 'auto' (the first of those the record has).",
    )
    output_field: str = Field("label", description="Record field that receives the label.")

    @model_validator(mode="before")
    @classmethod
    def _default_model(cls, data: Any) -> Any:
        if isinstance(data, dict) and not data.get("model"):
            spec = LABELERS.get(data.get("type"))
            data = {**data, "model": EMBEDDING_MODEL if spec and spec.engine == "embedding" else CHAT_MODEL}
        return data

    @property
    def labeler(self) -> LabelerSpec:
        return LABELERS[self.type]

    @property
    def engine(self) -> str:
        """The kind of model the task's labeler calls: "chat" or "embedding"."""
        return self.labeler.engine

    @property
    def label_set(self) -> list[str]:
        return list(self.labels or [])

    @property
    def system_prompt(self) -> str:
        return self.instruction or self.labeler.instruction

    def check_label(self, value: Any, param: str = "label") -> Any:
        """`value` as a valid label of this task, or InvalidRequest naming `param`."""
        try:
            return self.labeler.accept(self, value)
        except ValueError as e:
            raise InvalidRequest(f"Invalid {param}{e}", param=param) from e


# ---------------------------------------------------------------------- validation


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    return prefix + ("" if path.startswith("[") else ".") + path


def _unused(task: LabelTask) -> list[str]:
    """Fields given a non-default value that the task's type does not use (a stored task,
    dumped with every field, parses again)."""
    typed = {"labels", "json_schema", "few_shot", "seeds", "k", "max_tokens"}
    given = {f for f in typed if getattr(task, f) != LabelTask.model_fields[f].get_default(call_default_factory=True)}
    return sorted(given - task.labeler.uses)


def _check_consistency(task: LabelTask, source: str, prefix: str) -> LabelTask:
    def fail(path: str, why: str):
        raise InvalidRequest(f"{source}: invalid value at '{path}': {why}.", param=_join(prefix, path))

    unused = _unused(task)
    if unused:
        fail(unused[0], f"a {task.type} task does not use '{unused[0]}'; remove it or change 'type'")
    task = task.labeler.check(task, fail)
    if task.output_field in RECORD_FIELDS or not OUTPUT_FIELD.match(task.output_field):
        fail("output_field", f"use an identifier that is not a record field ({', '.join(RECORD_FIELDS)})")
    for i, shot in enumerate(task.few_shot):
        try:
            task.check_label(shot.output, param=_join(prefix, f"few_shot[{i}].output"))
        except InvalidRequest as e:
            raise InvalidRequest(f"{source}: {e.message}", param=e.param) from None
    return task


def parse_task(data: Any, *, source: str = "task", prefix: str = "task") -> LabelTask:
    """Validate a parsed mapping into a LabelTask; any problem raises InvalidRequest whose
    param is the dotted path of the offending field (under `prefix`: the request field)."""
    if not isinstance(data, dict):
        raise InvalidRequest(f"{source}: a task must be a mapping of keys to settings, got "
                             f"{type(data).__name__}.", param=prefix or None)
    try:
        task = LabelTask.model_validate(data)
    except ValidationError as e:
        raise invalid_from(e, source=source, prefix_param=prefix, model=LabelTask) from e
    return _check_consistency(task, source, prefix)


def load_task(path: str | Path) -> LabelTask:
    """A task from a YAML (or JSON) file."""
    path = Path(path)
    if not path.is_file():
        raise InvalidRequest(f"No task file at '{path}'.", param="task")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        raise InvalidRequest(f"task file '{path}' is not valid YAML: {e}", param="task") from e
    return parse_task(data, source=f"task file '{path}'", prefix="")
