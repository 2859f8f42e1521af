"""The pipeline, declared once: its stages in order, with what each needs to run.

Everything that runs stages iterates ``PIPELINE``: the Celery tasks (one per entry, named,
routed and limited from it; each enqueues the entry after it), ``quilt ingest --inline``
and ``quilt pipeline run``. The stage-run rows, the admin pages and the broker's routes
read it too. Adding a stage is one entry here plus its core.

A core is named by ``module:function`` rather than imported, because this module is part
of the web app and the web app must never load torch, faster-whisper or OpenCV; only a
worker resolves the name. A core takes a ``workers.types.StageJob`` (the artifacts named
in ``reads``, the settings, a progress callback, a folder for files) and returns a
``StageOutput`` holding the artifacts named in ``writes`` and its stats. Where artifacts
live (database rows, media files, or an output folder) is the runner's store's business.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.settings import Settings

QUEUE_CPU = "cpu"
QUEUE_GPU = "gpu"


@dataclass(frozen=True)
class RetryPolicy:
    """When a stage's failure is worth another try, and how long to wait first.

    Only faults that pass on their own are retried: a database restart, a dropped
    connection, a timeout. Bad input (``StageError``) never is: it would fail the same way.
    Exceptions are matched by class name over their MRO, so the policy stays data and this
    module imports neither SQLAlchemy's nor a library's exception types.
    """

    max_attempts: int = 3
    backoff_s: float = 10.0
    backoff_max_s: float = 600.0
    retry_on: tuple[str, ...] = (
        "OperationalError",
        "InterfaceError",
        "ConnectionError",
        "TimeoutError",
        "TransientError",  # workers.types: a stage's own verdict (a network fetch's 5xx)
    )

    def covers(self, exc: BaseException) -> bool:
        return any(cls.__name__ in self.retry_on for cls in type(exc).__mro__)

    def delay_s(self, attempt: int) -> float:
        """Exponential backoff after the ``attempt``-th failure (1-based)."""
        return min(self.backoff_max_s, self.backoff_s * 2 ** max(0, attempt - 1))


@dataclass(frozen=True)
class Stage:
    name: str
    core: str  # "module:function", resolved by the worker only
    queue: str
    reads: tuple[str, ...]
    writes: tuple[str, ...]
    # Hard limit; the soft limit (an exception the stage can record) comes a minute before.
    # They catch hangs: a CPU takes minutes per stage on an hours-long lecture.
    time_limit_s: int
    retry: RetryPolicy = RetryPolicy()
    # Bumped when a change to the core changes what it produces.
    version: int = 1
    # The settings whose values shape the stage's output (not its speed): with the
    # version, they make the pipeline version a stage run records, and a run made under
    # other values is outdated (app.services.control.rerun_outdated).
    settings: tuple[str, ...] = ()

    @property
    def task_name(self) -> str:
        return f"quilt.{self.name}"

    def version_for(self, settings: Settings) -> str:
        """``name@version+digest`` of the settings that shape the output."""
        values = {key: _settings_value(_read(settings, key)) for key in self.settings}
        digest = hashlib.sha256(json.dumps(values, sort_keys=True).encode()).hexdigest()
        return f"{self.name}@{self.version}+{digest[:10]}"

    @property
    def soft_time_limit_s(self) -> int:
        return self.time_limit_s - 60


PIPELINE: tuple[Stage, ...] = (
    Stage(
        name="fetch",
        core="workers.stages.fetch:run",
        queue=QUEUE_CPU,
        reads=("source",),
        writes=("media",),
        time_limit_s=2 * 3600,
        # A download may meet a flaky network: wait longer between tries.
        retry=RetryPolicy(max_attempts=3, backoff_s=60.0),
    ),
    Stage(
        name="asr",
        core="workers.stages.asr:run",
        queue=QUEUE_GPU,
        reads=("media",),
        writes=("transcript",),
        settings=(
            "resolved_asr_model",
            "asr_beam_size",
            "asr_language",
            "asr_hotwords",
            "resolved_kb_path",
        ),  # fmt: skip
        # faster-whisper runs at ~10x real time on two CPU cores (tiny.en, beam 5).
        time_limit_s=3 * 3600,
        retry=RetryPolicy(max_attempts=2),
    ),
    Stage(
        name="frames",
        core="workers.stages.frames:run",
        queue=QUEUE_CPU,
        reads=("media",),
        writes=("frames",),
        settings=(
            "frame_sample_s",
            "frame_cut_threshold",
            "frame_dedup_hamming",
            "frame_max_chunk_s",
            "frame_min_blur",
            "frame_min_resolution",
            "frame_min_tissue_frac",
            "histology_threshold",
            "max_images_per_chunk",
            "min_chunk_s",
            "histology_weights",
            "histology_weights_kind",
            "histology_ensemble_rule",
        ),  # fmt: skip
        time_limit_s=2 * 3600,
    ),
    Stage(
        name="text",
        core="workers.stages.text:run",
        queue=QUEUE_CPU,
        reads=("transcript",),
        writes=("text",),
        settings=("resolved_kb_path", "link_threshold", "llm_url", "llm_model"),
        time_limit_s=3600,
    ),
    Stage(
        name="align",
        core="workers.stages.align:run",
        queue=QUEUE_CPU,
        reads=("frames", "text"),
        writes=("pairs",),
        settings=("align_pad_s",),
        time_limit_s=1800,
    ),
)

STAGE_NAMES: tuple[str, ...] = tuple(stage.name for stage in PIPELINE)
FIRST_STAGE: Stage = PIPELINE[0]
# Longer than any stage may run: a broker that redelivers unacknowledged work after this
# long (Redis' visibility timeout) must never hand a still-running stage to a second worker.
LONGEST_STAGE_S: int = max(stage.time_limit_s for stage in PIPELINE)


def stage(name: str) -> Stage:
    for declared in PIPELINE:
        if declared.name == name:
            return declared
    raise KeyError(f"no stage named {name!r}")


def next_stage(name: str) -> Stage | None:
    index = STAGE_NAMES.index(name)
    return PIPELINE[index + 1] if index + 1 < len(PIPELINE) else None


def stages_after(name: str) -> tuple[Stage, ...]:
    return PIPELINE[STAGE_NAMES.index(name) + 1 :]


def _read(settings: Settings, key: str) -> object:
    value = getattr(settings, key)
    return value() if callable(value) else value  # resolved_asr_model() resolves a default


def _settings_value(value: object) -> object:
    """A setting as it enters the version digest: a file by its content (a knowledge base
    or a model that changes in place changes the version), anything else as text."""
    if isinstance(value, Path) and value.is_file():
        stat = value.stat()
        return _file_digest(str(value), stat.st_mtime_ns, stat.st_size)
    return str(value)


@functools.lru_cache(maxsize=64)
def _file_digest(path: str, _mtime_ns: int, _size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()
