"""Health, metrics and the engines' state."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from rixin import __version__, metrics
from rixin.api.pages import page
from rixin.api.deps import get_admin, get_platform
from rixin.api.system.cluster import cluster as cluster_state
from rixin.platform import Platform

router = APIRouter()


@router.get("/health")
async def health(platform: Platform = Depends(get_platform)):
    """200 once the bundled chat model answers and the store takes writes (readiness); 503
    while the model is loading, or while the disk is full or the database refuses writes
    (`code` says which; a write probe, at most every 2 s, notices the recovery)."""
    if not platform.ready:
        return JSONResponse({"status": "starting", "version": __version__, "detail": platform.ready_error},
                            status_code=503)
    store = await run_in_threadpool(platform.storage.check)
    if store.code is not None:
        return JSONResponse({"status": "unavailable", "version": __version__, "code": store.code,
                             "detail": store.detail}, status_code=503)
    return {"status": "ok", "version": __version__}


async def metrics_reader(request: Request, platform: Platform = Depends(get_platform)) -> None:
    """GET /metrics names fine-tuned models (which name projects) and their usage: an admin key
    or the metrics token (RIXIN_METRICS_TOKEN, for a Prometheus scraper) may read it."""
    token = platform.settings.metrics_token
    header = request.headers.get("authorization", "")
    scheme, _, key = header.partition(" ")
    key = key.strip() if scheme.lower() == "bearer" else ""
    if token and key and hmac.compare_digest(key.encode(), token.encode()):
        return
    await get_admin(request)


@router.get("/metrics", dependencies=[Depends(metrics_reader)], response_class=PlainTextResponse)
async def prometheus_metrics():
    """Prometheus metrics (admin key or RIXIN_METRICS_TOKEN as a Bearer token)."""
    return Response(generate_latest(metrics.REGISTRY), media_type=CONTENT_TYPE_LATEST)


@router.get("/v1/engines")
async def engines(platform: Platform = Depends(get_platform), _admin=Depends(get_admin)):
    """Engine replicas with process id, state and queue depth (rixin extension, admin only)."""
    return page(await platform.pool.describe(), has_more=None)


@router.get("/v1/cluster")
async def cluster(platform: Platform = Depends(get_platform), _admin=Depends(get_admin)):
    """Ray nodes with their CPUs, GPUs and accelerator types, active jobs per project and the
    limits in force (rixin extension, admin only)."""
    return await run_in_threadpool(cluster_state, platform)
