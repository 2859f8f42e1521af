"""The Celery application of the workers: the shared configuration plus the task modules.

Start a worker with ``quilt worker`` (both queues) or ``quilt worker -Q gpu``.
"""

from __future__ import annotations

from celery import Celery
from celery.signals import worker_process_init

from app.broker import celery_config
from app.settings import get_settings

celery_app = Celery("quilt", include=["workers.tasks"])
celery_app.conf.update(celery_config(get_settings()))


@worker_process_init.connect
def _fresh_db_pool(**_kwargs) -> None:
    # A forked pool process must not reuse the parent's database connections.
    from app.db import reset_engine

    reset_engine()
