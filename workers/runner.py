"""Running one declared stage against a store: the one way every runner calls a core.

A store keeps the artifacts between stages (``load``/``save`` by the names the pipeline
table gives in ``reads``/``writes``) and gives each stage a folder for its files. The
workers' store is the database plus the media folder (workers.persist.DatabaseStore);
``quilt pipeline run`` keeps them in memory and an output folder (workers.oneshot). The
stats a stage reports are its core's, plus what the store counted while saving (corpus
duplicates, inserted or kept pairs): assembled here, once, for both.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from app.pipeline import Stage
from workers.types import StageJob, StageOutput

if TYPE_CHECKING:
    from app.settings import Settings

StageCore = Callable[[StageJob], StageOutput]


class ArtifactStore(Protocol):
    def load(self, name: str) -> Any: ...

    def save(self, name: str, value: Any) -> dict[str, Any]:
        """Keep ``value`` as artifact ``name``; returns counts to add to the stage's stats."""
        ...

    def files_for(self, stage: str) -> Path | None:
        """A fresh folder for the files ``stage`` writes, or None where it writes none."""
        ...


def load_core(stage: Stage) -> StageCore:
    """Import a stage's core from its ``module:function`` name (lazily: the cores pull in
    PyAV, faster-whisper, OpenCV and scispacy)."""
    module_name, _, function = stage.core.partition(":")
    return getattr(importlib.import_module(module_name), function)


def execute(
    stage: Stage,
    store: ArtifactStore,
    *,
    settings: Settings,
    progress: Callable[[float], None] | None = None,
) -> dict[str, Any]:
    """Run ``stage`` on what ``store`` holds, save what it writes; returns its stats."""
    core = load_core(stage)
    job = StageJob(
        inputs={name: store.load(name) for name in stage.reads},
        settings=settings,
        progress=progress,
        files=store.files_for(stage.name),
    )
    output = core(job)
    stats = dict(output.stats)
    for name in stage.writes:
        stats.update(store.save(name, output.artifacts[name]))
    return stats
