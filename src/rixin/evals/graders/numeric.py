"""numeric: the output's number (thousands commas, units, currency signs, a unicode minus are
tolerated) is within abs_tol or rel_tol of the ideal's number."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import Field

from rixin.evals.evalset import EvalItem
from rixin.evals.graders import Grade, GraderConfig, GraderSpec, numbers


class NumericConfig(GraderConfig):
    """1 if the output's number is within tolerance of the ideal's number."""

    type: Literal["numeric"]
    abs_tol: float = Field(0.0, ge=0, description="Pass when |output − ideal| ≤ abs_tol ...")
    rel_tol: float = Field(0.0, ge=0, description="... or ≤ rel_tol × |ideal|.")
    pick: Literal["first", "last"] = Field("last", description="Which number of the output counts.")


class Numeric:
    def __init__(self, config: NumericConfig):
        self.config, self.name = config, config.label

    def grade(self, item: EvalItem, output: str) -> Grade:
        wanted = [n[-1] for n in (numbers(i) for i in item.ideal) if n]
        if not wanted:
            return Grade(0.0, "no_ideal_number")
        found = numbers(output)
        if not found:
            return Grade(0.0, "no_number")
        got = found[-1] if self.config.pick == "last" else found[0]
        for want in wanted:
            if math.isclose(got, want, rel_tol=self.config.rel_tol, abs_tol=self.config.abs_tol):
                return Grade(1.0, "within_tolerance")
        return Grade(0.0, "out_of_tolerance")


GRADER = GraderSpec(config=NumericConfig, build=Numeric)
