"""/v1/deployments/{name}/flywheel: start and follow turns; export feedback as training data."""

from __future__ import annotations

from datetime import datetime, timezone

from fastapi import APIRouter, Body, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.deps import get_caller, get_platform
from rixin.api.flywheel.protocol import ExportRequest, turn_object
from rixin.errors import NotFound
from rixin.flywheel.export import export
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/deployments/{name}/flywheel/turns")
async def start_turn(name: str, platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    def start():
        return platform.turns.start(caller, platform.deployments.get(caller, name))

    return turn_object(await run_in_threadpool(start))


@router.get("/deployments/{name}/flywheel/turns")
async def list_turns(name: str, platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    def rows():
        return platform.turns.list(caller, platform.deployments.get(caller, name))

    return page([turn_object(r) for r in await run_in_threadpool(rows)])


@router.get("/deployments/{name}/flywheel/turns/{turn_id}")
async def get_turn(name: str, turn_id: str, platform: Platform = Depends(get_platform),
                   caller: Caller = Depends(get_caller)):
    def row():
        deployment = platform.deployments.get(caller, name)
        turn = platform.turns.get(caller, turn_id)
        if turn.deployment_id != deployment.id:
            raise NotFound(f"No such flywheel turn of {name!r}: {turn_id}", param="turn_id")
        return turn

    return turn_object(await run_in_threadpool(row))


@router.post("/deployments/{name}/flywheel/export")
async def export_feedback(name: str, body: ExportRequest | None = Body(None),
                          platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    since = datetime.fromtimestamp(body.since, timezone.utc) if body and body.since is not None else None

    def run():
        return export(platform.exports, caller, platform.deployments.get(caller, name), since=since)

    return (await run_in_threadpool(run)).object()
