"""The reconciler: finds pipeline work whose task is gone and makes it due again.

It runs on a schedule (the ``quilt.reconcile`` task under Celery beat; exactly one beat
per deployment) and looks for:

- a stage run ``running`` whose lease expired: its worker died (kill -9, OOM, a machine
  lost) without recording anything. It is queued again, unless it has used up
  ``settings.stage_max_attempts``: then the video fails with the reason;
- a video still processing with no stage due or running, for longer than a lease: the
  first stage not done is queued (a crash between one stage's end and the next being
  made due; a video queued before the outbox existed);
- a channel with a re-crawl interval whose last listing is that old
  (app.services.channels): its listing is queued again (new videos only);
- then, through the outbox (app.services.dispatch), every queued run or listing whose
  message was never sent, and every one sent longer ago than
  ``settings.stage_resend_after_s`` that never started (a message lost with a broker
  restart).

Everything it does is safe to do twice: the worker's atomic claim turns a duplicate
message into a no-op.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import StageRun, StageStatus, Video, VideoStatus, utcnow
from app.pipeline import FIRST_STAGE, STAGE_NAMES
from app.services.channels import queue_due_crawls
from app.services.dispatch import mark_queued, send_due
from app.services.stage_runs import fail_video, stage_run
from app.settings import get_settings

_logger = logging.getLogger(__name__)


@dataclasses.dataclass
class Reconciled:
    lost_requeued: int = 0
    lost_failed: int = 0
    successors_queued: int = 0
    videos_started: int = 0
    channels_due: int = 0  # listed again: their re-crawl interval passed
    sent: int = 0
    broker_down: str | None = None


def reconcile(*, session: Session, now: dt.datetime | None = None, limit: int = 500) -> Reconciled:
    settings = get_settings()
    now = now or utcnow()
    report = Reconciled()

    lost = session.scalars(
        select(StageRun)
        .where(StageRun.status == StageStatus.running, StageRun.lease_expires_at < now)
        .limit(limit)
    ).all()
    for run in lost:
        holder = run.worker or "a worker"
        if run.attempts >= settings.stage_max_attempts:
            reason = f"gave up after {run.attempts} attempts: {holder} stopped answering"
            fail_video(session=session, run=run, reason=reason)
            report.lost_failed += 1
        else:
            mark_queued(run)
            run.error = f"requeued: {holder} stopped answering"
            report.lost_requeued += 1
        _logger.warning("video %s stage %s: lease expired (%s)", run.video_id, run.stage, holder)

    # A video at rest for less than a lease may be between two stages of an in-process
    # run (``quilt ingest --inline``), which claims the next stage itself.
    at_rest = now - dt.timedelta(seconds=settings.stage_lease_s)
    processing = session.scalars(
        select(Video)
        .where(
            Video.status.in_((VideoStatus.queued, VideoStatus.processing)),
            Video.updated_at < at_rest,
        )
        .limit(limit)
    ).all()
    for video in processing:
        runs = {run.stage: run for run in video.stage_runs}
        if any(run.status in (StageStatus.queued, StageStatus.running) for run in runs.values()):
            continue
        due = _first_not_done(runs)
        if due is None:
            continue
        mark_queued(stage_run(session, video.id, due))
        if due == FIRST_STAGE.name:
            report.videos_started += 1
        else:
            report.successors_queued += 1
    report.channels_due = queue_due_crawls(session=session, now=now, limit=limit)
    session.commit()

    resend_before = now - dt.timedelta(seconds=settings.stage_resend_after_s)
    dispatch = send_due(session=session, resend_before=resend_before, limit=limit)
    report.sent, report.broker_down = dispatch.sent, dispatch.broker_down
    return report


def _first_not_done(runs: dict[str, StageRun]) -> str | None:
    """The stage to run next for a video whose runs are all at rest: the first one not
    done, provided nothing before it failed or was skipped."""
    for name in STAGE_NAMES:
        run = runs.get(name)
        if run is None or run.status == StageStatus.pending:
            return name
        if run.status != StageStatus.done:
            return None  # failed, skipped or cancelled: settled, nothing to resume
    return None
