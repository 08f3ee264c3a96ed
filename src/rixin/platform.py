"""The control plane's services, wired once: store, tenancy, registry, engine pool.

The CLI uses the store-side services directly (no gateway needed); the gateway adds Ray.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Callable

from rixin.batches.job import BatchServices, run_batch
from rixin.compute.controls import Controls
from rixin.config import Settings
from rixin.data.clean import CleanServices, run_clean
from rixin.data.datasets import Datasets
from rixin.data.recipe_store import RecipeStore
from rixin.evals.job import EvalServices, run_eval
from rixin.flywheel.export import ExportServices
from rixin.flywheel.feedback import FeedbackStore
from rixin.flywheel.logs import LogWriter, RequestLogs
from rixin.flywheel.turn import Turns
from rixin.jobs.runner import Handler, Preempter
from rixin.jobs.store import JobStore
from rixin.label.job import LabelServices, run_label
from rixin.label.review import ReviewQueue
from rixin.models.registry import Registry
from rixin.serving.deployments import Deployments
from rixin.store.artifacts import ArtifactStore, sweep_unowned
from rixin.store.db import Database
from rixin.store.files import Files
from rixin.store.health import StoreHealth
from rixin.store.schema import Job
from rixin.store.tenancy import Tenancy
from rixin.store.uploads import Uploads
from rixin.train.control import preempt as preempt_training
from rixin.train.events import JobEvents
from rixin.train.job import run_fine_tune
from rixin.train.services import TrainServices

if TYPE_CHECKING:  # imported when Ray starts (start_compute): the CLI never loads Ray
    from rixin.serving.pool import EnginePool

log = logging.getLogger("rixin")
SWEEP_EVERY_S = 300  # while running: leftovers of job workers or CLI writers killed meanwhile

# Job kind → its handler, handed its room's services by the platform: the one table of kinds,
# kept here at the composition root so that jobs/ (generic machinery: rows, claiming, the
# runner) imports no domain room and no domain room sees the platform. A new kind is one line
# here; the gateway's runner reads this table through Platform.job_handlers.
JOB_KINDS: dict[str, Callable[[Platform, Job, Callable[..., None]], dict]] = {
    "batch": lambda p, job, report: run_batch(p.batching, job, report),
    "clean": lambda p, job, report: run_clean(p.cleaning, job, report),
    "eval": lambda p, job, report: run_eval(p.evals, job, report),
    "fine_tune": lambda p, job, report: run_fine_tune(p.training, job, report),
    "label": lambda p, job, report: run_label(p.labeling, job, report),
}
# Job kind → its preempt hook (checkpoint and stop; the runner requeues it): only kinds that
# resume from a checkpoint are here, and only they are ever the scheduler's victims.
JOB_PREEMPT: dict[str, Callable[[Platform, Job], None]] = {
    "fine_tune": lambda p, job: preempt_training(p.training, job),
}


@dataclass
class Platform:
    settings: Settings
    db: Database
    tenancy: Tenancy
    registry: Registry
    artifacts: ArtifactStore
    files: Files
    datasets: Datasets
    jobs: JobStore
    events: JobEvents
    deployments: Deployments
    log_writer: LogWriter  # background thread, started by start_compute
    request_logs: RequestLogs
    feedback: FeedbackStore
    recipes: RecipeStore
    storage: StoreHealth  # whether the store takes writes (for /health)
    # The services built from the above, set by open() right after the rest; built once, like
    # every other service here. The *Services are a room's collaborators grouped: its domain
    # functions take these, never the platform.
    review: ReviewQueue = field(init=False)
    uploads: Uploads = field(init=False)  # multipart uploads, assembled into files
    batching: BatchServices = field(init=False)  # its `dispatch` is bound by the gateway
    turns: Turns = field(init=False)
    controls: Controls = field(init=False)  # metering, rate limits, budgets, audit log (compute/)
    exports: ExportServices = field(init=False)
    evals: EvalServices = field(init=False)
    cleaning: CleanServices = field(init=False)
    labeling: LabelServices = field(init=False)
    training: TrainServices = field(init=False)
    pool: EnginePool | None = None  # once Ray is up (start_compute)
    ready: bool = False
    ready_error: str | None = None
    _stop: threading.Event = field(default_factory=threading.Event)

    @classmethod
    def open(cls, settings: Settings) -> "Platform":
        """Connect to the store and bring its schema up to date."""
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        db = Database(settings.resolved_database_url)
        db.migrate()
        artifacts = ArtifactStore(settings.data_dir / "artifacts")
        files = Files(db, artifacts)
        registry, writer = Registry(db), LogWriter(db, spool_dir=settings.data_dir / "spool" / "request_logs")
        logs = RequestLogs(db, writer)
        platform = cls(settings, db, Tenancy(db), registry, artifacts, files, Datasets(db, artifacts, files),
                       JobStore(db), JobEvents(db), Deployments(db, registry), writer, logs,
                       FeedbackStore(db, logs), RecipeStore(db), StoreHealth(db, settings.data_dir))
        jobs, datasets, work_dir = platform.jobs, platform.datasets, platform.work_dir
        platform.uploads = Uploads(db, artifacts, files)
        platform.batching = BatchServices(jobs, files, artifacts, platform.tenancy, work_dir,
                                          concurrency=settings.engine_batch_slots)
        platform.review = ReviewQueue(db, datasets, jobs, artifacts)
        platform.exports = ExportServices(db, writer, artifacts, files, datasets)
        platform.evals = EvalServices(settings, db, registry, artifacts, files, jobs, work_dir)
        platform.cleaning = CleanServices(datasets, platform.recipes, artifacts, jobs, work_dir)
        platform.labeling = LabelServices(settings, db, registry, artifacts, datasets, jobs, platform.review, work_dir)
        platform.training = TrainServices(settings, platform.tenancy, registry, artifacts, files, jobs,
                                          platform.events, work_dir)
        platform.turns = Turns(db, platform.deployments, platform.exports, platform.training, platform.evals)
        platform.controls = Controls(db, spool_dir=settings.data_dir / "spool" / "usage")
        return platform

    def job_handlers(self) -> dict[str, Handler]:
        """JOB_KINDS bound to this platform: what the job runner calls."""
        return {kind: partial(handler, self) for kind, handler in JOB_KINDS.items()}

    def job_preempters(self) -> dict[str, Preempter]:
        """JOB_PREEMPT bound to this platform: how the job runner preempts a running job."""
        return {kind: partial(hook, self) for kind, hook in JOB_PREEMPT.items()}

    @property
    def work_dir(self):
        """Where jobs keep their resumable state (shards, markers, checkpoints)."""
        return self.settings.data_dir / "jobs"

    def start_compute(self) -> None:
        """Start (or join) Ray and the engine pool, after sweeping what killed writers left;
        then keep sweeping in the background and start the request-log and usage writers (which
        replay rows a previous run had to spool)."""
        from rixin.serving.pool import EnginePool

        self.sweep_partial()
        threading.Thread(target=self._housekeeping, name="rixin-sweep", daemon=True).start()
        self.log_writer.start()
        self.controls.meter.start()
        self.start_ray()
        self.pool = EnginePool(self.settings)

    def sweep_partial(self) -> int:
        """Remove partial files no live process owns: artifact uploads and writes cut short
        (artifacts/tmp), jobs' half-written outputs and spooled rows (`*.tmp` files, written by
        store.artifacts.atomic_write). Ownership is
        the writer's flock, so a live upload of this process or of a CLI stays untouched."""
        removed = self.artifacts.sweep_tmp()
        for root in (self.work_dir, self.settings.data_dir / "spool"):
            if root.is_dir():
                removed += sweep_unowned(p for p in root.rglob("*.tmp") if p.is_file())
        if removed:
            log.info("removed %d partial files left by interrupted writers", removed)
        return removed

    def _housekeeping(self) -> None:
        while not self._stop.wait(SWEEP_EVERY_S):
            try:
                self.sweep_partial()
            except OSError as e:  # a full or failing disk: the next round tries again
                log.warning("sweeping partial files failed: %s", e)

    def start_ray(self) -> None:
        """Join --ray-address, or start a local Ray whose every port binds 127.0.0.1."""
        import ray

        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        if not ray.is_initialized():
            if self.settings.ray_address:
                ray.init(address=self.settings.ray_address, namespace="rixin",
                         log_to_driver=False, logging_level=logging.WARNING)
            else:
                # Ray turns 127.0.0.1 into the host's external address and binds its servers
                # there; a local, single-machine Ray (like on macOS) keeps them on loopback.
                os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
                from ray._private import ray_constants

                ray_constants.ENABLE_RAY_CLUSTER = False
                ray.init(_node_ip_address="127.0.0.1", include_dashboard=False, namespace="rixin",
                         log_to_driver=False, logging_level=logging.WARNING)

    def close(self) -> None:
        import ray

        self._stop.set()
        if self.log_writer is not None:
            self.log_writer.close()  # acknowledged request logs reach the database first
        self.controls.close()
        if ray.is_initialized():
            ray.shutdown()
        self.db.dispose()
