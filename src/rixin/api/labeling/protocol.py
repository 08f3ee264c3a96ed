"""Labeling a dataset (rixin extension): the request body; the answer is a job object."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from rixin.api.sampling import Lenient


class LabelDataset(Lenient):
    version: Annotated[StrictInt, Field(ge=1)] | None = None
    task: dict
    shard_size: Annotated[StrictInt, Field(ge=1, le=1_000_000)] = 100
