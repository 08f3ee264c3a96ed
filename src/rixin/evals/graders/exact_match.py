"""exact_match: the output equals an ideal answer, after normalisation."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rixin.evals.evalset import EvalItem
from rixin.evals.graders import Grade, GraderConfig, GraderSpec, normalise


class ExactMatchConfig(GraderConfig):
    """1 if the output equals an ideal answer (NFC, trimmed, spaces collapsed, case-folded
    unless case_sensitive)."""

    type: Literal["exact_match"]
    normalize: bool = Field(True, description="NFC, trim, collapse whitespace before comparing.")
    case_sensitive: bool = Field(False, description="Compare case too (otherwise case-folded).")


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


GRADER = GraderSpec(config=ExactMatchConfig, build=ExactMatch)
