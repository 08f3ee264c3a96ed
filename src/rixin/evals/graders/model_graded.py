"""model_graded: an LLM judge reads the rubric, the input, the reference and the answer and
picks a score from `choices` under a JSON-schema grammar; the score is the choice's position
scaled to [0, 1]."""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field

from rixin.engines.base import GenerateRequest, SamplingParams
from rixin.evals.evalset import EvalItem
from rixin.evals.graders import Grade, GraderConfig, GraderSpec
from rixin.models.registry import CHAT_MODEL


class ModelGradedConfig(GraderConfig):
    """An LLM judge picks one of `choices` (worst first) under a JSON-schema grammar; score =
    the choice's position / (choices − 1)."""

    type: Literal["model_graded"]
    model: str = Field(CHAT_MODEL, description="The judge: a chat model id.")
    rubric: str = Field(min_length=1, description="What a good answer is; the judge's instruction.")
    choices: list[str] = Field(default_factory=lambda: ["1", "2", "3", "4", "5"], min_length=2,
                               description="Scores the judge picks from, worst first.")
    max_tokens: int = Field(32, ge=8, le=256, description="Most tokens of the judge's answer (the JSON "
                            "around the choice takes ~8).")


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


GRADER = GraderSpec(config=ModelGradedConfig, build=ModelGraded, engine="chat")
