"""includes: an ideal answer occurs in the output (same normalisation as exact_match)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from rixin.evals.evalset import EvalItem
from rixin.evals.graders import Grade, GraderConfig, GraderSpec, normalise


class IncludesConfig(GraderConfig):
    """1 if an ideal answer occurs in the output (NFC, spaces collapsed, case-folded unless
    case_sensitive)."""

    type: Literal["includes"]
    case_sensitive: bool = Field(False, description="Compare case too (otherwise case-folded).")


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


GRADER = GraderSpec(config=IncludesConfig, build=Includes)
