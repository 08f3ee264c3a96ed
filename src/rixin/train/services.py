"""The collaborators of fine-tuning (job creation, the job handler, pause/resume/cancel), grouped
once in platform.py so that train/ takes what it uses, not the platform."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from rixin.config import Settings
from rixin.jobs.store import JobStore
from rixin.models.registry import Registry
from rixin.store.artifacts import ArtifactStore
from rixin.store.files import Files
from rixin.store.tenancy import Tenancy
from rixin.train.events import JobEvents


@dataclass(frozen=True)
class TrainServices:
    """`work_dir`: where jobs keep their checkpoints and the stop flag; `settings.data_dir`:
    where fine-tuned weights are kept."""

    settings: Settings
    tenancy: Tenancy
    registry: Registry
    artifacts: ArtifactStore
    files: Files
    jobs: JobStore
    events: JobEvents
    work_dir: Path
