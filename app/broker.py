"""Celery configuration shared by the web app and the workers, and enqueue-by-name.

The web app never imports the worker code (and so never torch or faster-whisper): it
sends tasks by name. Queues are named by kind of work: ``cpu`` and ``gpu``; each stage's
task name and queue come from the pipeline table (app/pipeline.py).
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery

from app.pipeline import LONGEST_STAGE_S, PIPELINE, QUEUE_CPU, QUEUE_GPU
from app.settings import Settings, get_settings

# Tasks that are not stages of one video; the stages' tasks come from the table.
TASK_EXPAND_SOURCE = "quilt.expand_source"
TASK_RECONCILE = "quilt.reconcile"
TASK_HOUSEKEEPING = "quilt.housekeeping"
# CLIP_benchmark on a checkpoint (app/services/evaluation.py, workers/evaluation.py).
TASK_EVALUATE = "quilt.evaluate"
# Training runs (app/services/training.py): the fine-tune on the gpu queue, and the pass
# that finds runs whose worker died.
TASK_TRAIN = "quilt.train"
TASK_TRAINING_RECONCILE = "quilt.training_reconcile"

TASK_ROUTES: dict[str, dict[str, str]] = {
    TASK_EXPAND_SOURCE: {"queue": QUEUE_CPU},
    TASK_RECONCILE: {"queue": QUEUE_CPU},
    TASK_HOUSEKEEPING: {"queue": QUEUE_CPU},
    TASK_EVALUATE: {"queue": QUEUE_GPU},
    TASK_TRAIN: {"queue": QUEUE_GPU},
    TASK_TRAINING_RECONCILE: {"queue": QUEUE_CPU},
    **{stage.task_name: {"queue": stage.queue} for stage in PIPELINE},
}


def celery_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.broker_url,
        "task_routes": TASK_ROUTES,
        "task_default_queue": QUEUE_CPU,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        # One long video at a time per process: no prefetching of a second long task.
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
        # The reconciler's pass (app.services.reconcile), under exactly one Celery beat:
        # `quilt worker --beat` embeds it (as `quilt demo` does), or run `celery beat`.
        "beat_schedule": {
            "reconcile": {"task": TASK_RECONCILE, "schedule": settings.reconcile_every_s},
            "housekeeping": {"task": TASK_HOUSEKEEPING, "schedule": 3600.0},
            "training-reconcile": {
                "task": TASK_TRAINING_RECONCILE,
                "schedule": settings.reconcile_every_s,
            },
        },
    }
    if settings.broker_url.startswith(("redis://", "rediss://")):
        # Redis hands an unacknowledged task to another worker after the visibility
        # timeout; it must outlast the longest stage or a running stage is run twice.
        # Celery reads it in three places (the transport, the result backend and its own
        # setting), so it is set in all three.
        timeout = LONGEST_STAGE_S + 600
        config["broker_transport_options"] = {"visibility_timeout": timeout}
        config["result_backend_transport_options"] = {"visibility_timeout": timeout}
        config["visibility_timeout"] = timeout
    if settings.broker_url.startswith("filesystem://"):
        folder = settings.broker_dir
        for sub in ("out", "processed", "control"):
            (folder / sub).mkdir(parents=True, exist_ok=True)
        # The filesystem transport is a shared folder: what one process writes to
        # data_folder_out another reads from data_folder_in, so both are the same folder.
        config["broker_transport_options"] = {
            "data_folder_in": str(folder / "out"),
            "data_folder_out": str(folder / "out"),
            "processed_folder": str(folder / "processed"),
            # Without this kombu writes its exchange table into the working directory.
            "control_folder": str(folder / "control"),
            "store_processed": False,
        }
    return config


@functools.lru_cache
def client() -> Celery:
    app = Celery("quilt")
    app.conf.update(celery_config(get_settings()))
    return app


# A broker that is down must fail the send within seconds, not hold a request or a
# worker: what was not sent stays due in the outbox (app.services.dispatch).
_PUBLISH_RETRY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}


def enqueue(task_name: str, *args: Any) -> None:
    client().send_task(
        task_name,
        args=list(args),
        retry=True,
        retry_policy=_PUBLISH_RETRY,
        **TASK_ROUTES.get(task_name, {}),
    )
