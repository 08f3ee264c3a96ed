"""POST /v1/datasets/{id}/label (rixin extension): queue a labeling job over a version."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.deps import get_caller, get_platform
from rixin.api.jobs.protocol import job_object
from rixin.api.labeling.protocol import LabelDataset
from rixin.label.job import submit_label
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/datasets/{dataset_id}/label")
async def label_dataset(dataset_id: str, body: LabelDataset, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    job = await run_in_threadpool(lambda: submit_label(platform.labeling, caller, dataset_id, body.version, body.task,
                                                       shard_size=body.shard_size))
    return job_object(job)
