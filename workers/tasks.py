"""Celery tasks: one per stage of the pipeline table, the listing of a channel, and the
reconciler's periodic pass.

A stage task takes a video id, runs the stage through the bookkeeping of
workers.stage_runner and, when it is done, enqueues the next stage of the table. Name,
queue, time limits and retry policy come from the table entry (app/pipeline.py); nothing
here knows the order of the stages. Every task is idempotent: running it again replaces
what it wrote before.
"""

from __future__ import annotations

import dataclasses

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded

from app import broker
from app.db import session_scope
from app.models import Channel
from app.pipeline import FIRST_STAGE, PIPELINE, Stage
from app.services import ingest, logins
from app.services.dispatch import send_due
from app.services.reconcile import reconcile as reconcile_pipeline
from app.settings import get_settings
from workers.celery_app import celery_app
from workers.stage_runner import Outcome, run_stage
from workers.types import StageError


def _stage_task(stage: Stage) -> Task:
    @celery_app.task(
        name=stage.task_name,
        queue=stage.queue,
        bind=True,
        acks_late=True,
        soft_time_limit=stage.soft_time_limit_s,
        time_limit=stage.time_limit_s,
        max_retries=stage.retry.max_attempts - 1,
    )
    def run(self: Task, video_id: int) -> str:
        may_retry = self.request.retries < stage.retry.max_attempts - 1
        try:
            outcome = run_stage(video_id, stage, may_retry=may_retry)
        except Exception as exc:
            if not (may_retry and stage.retry.covers(exc)):
                raise
            raise self.retry(
                exc=exc, countdown=stage.retry.delay_s(self.request.retries + 1)
            ) from exc
        if outcome == Outcome.done:
            # The next stage was made due with this one's outcome; send it now (if the
            # broker is down, the reconciler sends it later).
            with session_scope() as s:
                send_due(session=s, video_ids=[video_id])
        return outcome

    run.__doc__ = f"The {stage.name} stage of one video (app/pipeline.py)."
    return run


STAGE_TASKS: dict[str, Task] = {stage.name: _stage_task(stage) for stage in PIPELINE}


@celery_app.task(
    name=broker.TASK_EXPAND_SOURCE,
    queue=FIRST_STAGE.queue,
    acks_late=True,
    soft_time_limit=600,
    time_limit=660,
)
def expand_source(channel_id: int) -> int:
    """List a channel / playlist / feed; the ingest service records one video row per new
    entry that the channel's filters take (with what the listing said of it), and each
    starts the pipeline. A channel whose queue was cancelled is not listed."""
    from workers.stages import fetch  # noqa: PLC0415 - yt-dlp only where it runs

    with session_scope() as s:
        channel = s.get(Channel, channel_id)
        if channel is None or channel.status == "cancelled":
            return 0
        url = channel.url
    try:
        title, entries = fetch.expand(url, fetch.FetchOptions.from_settings(get_settings()))
    except (StageError, SoftTimeLimitExceeded) as exc:
        with session_scope() as s:
            ingest.listing_failed(
                session=s,
                channel=s.get(Channel, channel_id),
                reason=getattr(exc, "reason", "listing timed out"),
            )
        return 0
    with session_scope() as s:
        new_ids = ingest.add_listed_videos(
            session=s, channel=s.get(Channel, channel_id), title=title, entries=entries
        )
    with session_scope() as s:
        send_due(session=s, video_ids=new_ids)
    return len(new_ids)


@celery_app.task(
    name=broker.TASK_RECONCILE, queue=FIRST_STAGE.queue, soft_time_limit=300, time_limit=360
)
def reconcile() -> dict:
    """Celery beat's periodic pass (app.services.reconcile): lost work made due again."""
    with session_scope() as s:
        return dataclasses.asdict(reconcile_pipeline(session=s))


@celery_app.task(name=broker.TASK_HOUSEKEEPING, queue=FIRST_STAGE.queue, time_limit=600)
def housekeeping() -> dict:
    """Hourly: drop failed logins too old to count against any address."""
    with session_scope() as s:
        return {"login_failures_pruned": logins.prune_failures(s, get_settings())}


# --- training runs (app/services/training.py, workers/training.py) ------------------------


@celery_app.task(
    name=broker.TASK_TRAIN,
    queue=broker.TASK_ROUTES[broker.TASK_TRAIN]["queue"],
    # Acknowledged on receipt: a run lasts hours, longer than Redis' visibility timeout;
    # a lost worker is found by its run's lease (training_reconcile), not by redelivery.
    acks_late=False,
    soft_time_limit=get_settings().training_time_limit_s,
    time_limit=get_settings().training_time_limit_s + 120,
)
def train(run_id: int) -> str:
    """One attempt of a training run: open_clip's trainer in a process group of its own."""
    from workers.training import run_training  # noqa: PLC0415

    return run_training(run_id)


@celery_app.task(
    name=broker.TASK_TRAINING_RECONCILE,
    queue=FIRST_STAGE.queue,
    soft_time_limit=120,
    time_limit=180,
)
def training_reconcile() -> dict:
    """Celery beat's pass over training runs: expired leases queued again or failed."""
    from app.services.training import reconcile_runs  # noqa: PLC0415

    with session_scope() as s:
        return dataclasses.asdict(reconcile_runs(session=s))


@celery_app.task(
    name=broker.TASK_EVALUATE,
    queue=broker.TASK_ROUTES[broker.TASK_EVALUATE]["queue"],
    acks_late=True,
    soft_time_limit=get_settings().evaluation_time_limit_s,
    time_limit=get_settings().evaluation_time_limit_s + 60,
)
def evaluate(evaluation_id: int) -> str:
    """CLIP_benchmark on a checkpoint (workers/evaluation.py); the outcome is on the row."""
    from workers.evaluation import run_evaluation  # noqa: PLC0415 - torch on gpu workers only

    return run_evaluation(evaluation_id)
