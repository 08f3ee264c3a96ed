"""regex: the pattern matches the output (search, or fullmatch)."""

from __future__ import annotations

import re
import unicodedata
from typing import Literal

from pydantic import Field, field_validator

from rixin.evals.evalset import EvalItem
from rixin.evals.graders import Grade, GraderConfig, GraderSpec


class RegexConfig(GraderConfig):
    """1 if the pattern matches the output (search, or the whole trimmed output)."""

    type: Literal["regex"]
    pattern: str = Field(min_length=1, description="A Python regular expression.")
    ignore_case: bool = Field(False, description="Match regardless of case.")
    full_match: bool = Field(False, description="The whole (trimmed) output must match, not a part.")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as e:
            raise ValueError(f"not a valid regular expression: {e}") from None
        return value


class Regex:
    def __init__(self, config: RegexConfig):
        self.config, self.name = config, config.label
        self.pattern = re.compile(config.pattern, re.IGNORECASE if config.ignore_case else 0)

    def grade(self, item: EvalItem, output: str) -> Grade:
        text = unicodedata.normalize("NFC", output)
        found = self.pattern.fullmatch(text.strip()) if self.config.full_match else self.pattern.search(text)
        return Grade(1.0, "match") if found else Grade(0.0, "no_match")


GRADER = GraderSpec(config=RegexConfig, build=Regex)
