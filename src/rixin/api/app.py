"""The HTTP gateway: one FastAPI app, one router per resource, errors mapped in errors.py."""

from __future__ import annotations

import asyncio
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI

from rixin import __version__
from rixin.api import errors, openapi
from rixin.api.batches.dispatch import Dispatcher
from rixin.api.batches.router import router as batches_router
from rixin.api.chat.router import router as chat_router
from rixin.api.completions.router import router as completions_router
from rixin.api.datasets.router import router as datasets_router
from rixin.api.deployments.router import router as deployments_router
from rixin.api.embeddings.router import router as embeddings_router
from rixin.api.feedback.router import router as feedback_router
from rixin.api.flywheel.router import router as flywheel_router
from rixin.api.evals.router import router as evals_router
from rixin.api.files.router import router as files_router
from rixin.api.gate import Gate
from rixin.api.fine_tuning.router import router as fine_tuning_router
from rixin.api.jobs.router import router as jobs_router
from rixin.api.labeling.router import router as labeling_router
from rixin.api.logs.router import router as logs_router
from rixin.api.models.router import router as models_router
from rixin.api.organization.router import router as organization_router
from rixin.api.organization.usage import own_router as own_usage_router
from rixin.api.organization.usage import router as usage_router
from rixin.api.organization.quota import router as quota_router
from rixin.api.organization.compute import router as compute_router
from rixin.api.projects.router import router as projects_router
from rixin.api.recipes.router import router as recipes_router
from rixin.api.review.router import router as review_router
from rixin.api.system.router import router as system_router
from rixin.api.system.service import warm_up
from rixin.api.uploads.router import router as uploads_router
from rixin.console.router import router as console_router
from rixin.flywheel.turn import TurnDriver
from rixin.jobs.runner import JobRunner
from rixin.platform import Platform

log = logging.getLogger("rixin.api")


def create_app(platform: Platform) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI):
        platform.batching.dispatch = Dispatcher(platform, asyncio.get_running_loop())  # before the runner
        tasks = [asyncio.create_task(warm_up(platform)),
                 asyncio.create_task(JobRunner(platform.jobs, platform.events, platform.job_handlers(),
                                               concurrency=platform.settings.job_slots,
                                               per_project=platform.settings.max_running_jobs_per_project,
                                               preempters=platform.job_preempters()).loop())]
        tasks.append(asyncio.create_task(TurnDriver(platform.turns).loop()))  # flywheel turns: state in their rows
        yield
        platform.batching.dispatch = None  # running batches stop sending; they resume at the next start
        for task in tasks:
            task.cancel()
        await asyncio.to_thread(platform.log_writer.close)  # no acknowledged request log is lost

    app = FastAPI(title="rixin", version=__version__, lifespan=lifespan, docs_url="/docs",
                  redoc_url=None)
    app.state.platform = platform
    errors.install(app)
    openapi.install(app)

    for router in (system_router, models_router, chat_router, completions_router,
                   embeddings_router, files_router, datasets_router, jobs_router, fine_tuning_router,
                   projects_router, labeling_router, review_router, evals_router, console_router):
        app.include_router(router)
    for router in (deployments_router, logs_router, feedback_router, flywheel_router):  # the flywheel
        app.include_router(router)
    app.include_router(recipes_router)
    for router in (organization_router, usage_router, own_usage_router):  # the Admin API (issue 12)
        app.include_router(router)
    app.include_router(quota_router)
    app.include_router(compute_router)
    app.include_router(uploads_router)
    app.include_router(batches_router)
    app.add_middleware(Gate, platform=platform, limit=platform.settings.max_body_bytes,
                       upload_limit=platform.settings.max_file_bytes,
                       read_timeout_s=platform.settings.read_timeout_s)
    return app
