"""Celery configuration shared by the web app and the workers, and enqueue-by-name.

The web app never imports the worker code (and so never torch or faster-whisper): it
sends tasks by name. Queues are named by kind of work: ``cpu`` and ``gpu``.
"""

from __future__ import annotations

import functools
from typing import Any

from celery import Celery

from app.settings import Settings, get_settings

# Task names: the contract between app/ and workers/.
TASK_EXPAND_SOURCE = "quilt.expand_source"
TASK_FETCH = "quilt.fetch"
TASK_ASR = "quilt.asr"
TASK_FRAMES = "quilt.frames"
TASK_TEXT = "quilt.text"
TASK_ALIGN = "quilt.align"

QUEUE_CPU = "cpu"
QUEUE_GPU = "gpu"

TASK_ROUTES = {
    TASK_EXPAND_SOURCE: {"queue": QUEUE_CPU},
    TASK_FETCH: {"queue": QUEUE_CPU},
    TASK_ASR: {"queue": QUEUE_GPU},
    TASK_FRAMES: {"queue": QUEUE_CPU},
    TASK_TEXT: {"queue": QUEUE_CPU},
    TASK_ALIGN: {"queue": QUEUE_CPU},
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
    }
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


def enqueue(task_name: str, *args: Any) -> None:
    client().send_task(task_name, args=list(args), **TASK_ROUTES.get(task_name, {}))
