"""Datasets (rixin extension): requests and response objects."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, StrictStr

from rixin.api.params import Integer
from rixin.api.sampling import Lenient
from rixin.store.schema import Dataset, DatasetVersion


class CreateDataset(Lenient):
    name: StrictStr
    files: Annotated[list[StrictStr], Field(min_length=1, max_length=1000)]
    text_split: Literal["paragraph", "line", "file"] = "paragraph"


class CleanDataset(Lenient):
    version: Annotated[Integer, Field(ge=1)] | None = None
    # A packaged name, the id or name of a recipe stored in the project, or a recipe object;
    # omitted: chosen from the dataset's kind (rixin.data.recipe_store.choose_recipe).
    recipe: StrictStr | dict | None = None
    shard_size: Annotated[Integer, Field(ge=10, le=1_000_000)] = 2000


def version_object(v: DatasetVersion) -> dict:
    return {"id": v.id, "object": "dataset.version", "dataset_id": v.dataset_id, "version": v.version,
            "parent_id": v.parent_id, "operation": v.operation, "params": v.params, "records": v.records,
            "format": v.format, "sha256": v.sha256, "report": v.report,
            "created_at": int(v.created_at.timestamp()) if v.created_at else 0}


def dataset_object(d: Dataset, versions: list[DatasetVersion]) -> dict:
    return {"id": d.id, "object": "dataset", "name": d.name,
            "created_at": int(d.created_at.timestamp()) if d.created_at else 0,
            "versions": [version_object(v) for v in versions]}
