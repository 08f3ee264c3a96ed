"""/v1/datasets (rixin extension): create from files, versions, paged records, cleaning."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.datasets.protocol import CleanDataset, CreateDataset, dataset_object, version_object
from rixin.api.params import offset_query, version_path
from rixin.api.deps import get_caller, get_platform
from rixin.api.jobs.protocol import job_object
from rixin.data.clean import submit_clean
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/datasets")
async def create_dataset(body: CreateDataset, platform: Platform = Depends(get_platform),
                         caller: Caller = Depends(get_caller)):
    dataset, version = await run_in_threadpool(platform.datasets.create, caller, body.name, body.files,
                                               text_split=body.text_split)
    return dataset_object(dataset, [version])


@router.get("/datasets")
async def list_datasets(platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    def load():
        return [dataset_object(d, platform.datasets.versions(caller, d.id)) for d in platform.datasets.list(caller)]

    return page(await run_in_threadpool(load), has_more=None)


@router.get("/datasets/{dataset_id}")
async def retrieve_dataset(dataset_id: str, platform: Platform = Depends(get_platform),
                           caller: Caller = Depends(get_caller)):
    dataset = await run_in_threadpool(platform.datasets.get, caller, dataset_id)
    return dataset_object(dataset, await run_in_threadpool(platform.datasets.versions, caller, dataset_id))


@router.get("/datasets/{dataset_id}/versions/{version}")
async def retrieve_version(dataset_id: str, version: int = version_path(),
                           platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    return version_object(await run_in_threadpool(platform.datasets.version, caller, dataset_id, version))


@router.get("/datasets/{dataset_id}/versions/{version}/records")
async def version_records(dataset_id: str, version: int = version_path(), offset: int = offset_query(),
                          limit: int = Query(20, ge=1, le=1000), platform: Platform = Depends(get_platform),
                          caller: Caller = Depends(get_caller)):
    v = await run_in_threadpool(platform.datasets.version, caller, dataset_id, version)
    data = await run_in_threadpool(platform.datasets.records, v, offset, limit)
    return page(data, has_more=None, offset=offset, limit=limit, total=v.records)


@router.post("/datasets/{dataset_id}/clean")
async def clean_dataset(dataset_id: str, body: CleanDataset, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    job = await run_in_threadpool(lambda: submit_clean(platform.cleaning, caller, dataset_id, body.version, body.recipe,
                                                       shard_size=body.shard_size))
    return job_object(job)
