"""Bookkeeping around one stage of one video: the stage-run row, progress, errors, retries.

Every way of running a stage in the database goes through ``run_stage``: the Celery
tasks (workers.tasks) and ``quilt ingest --inline`` (``run_all_inline``). It marks the
stage running (attempts + 1), runs the declared stage against the video's
``DatabaseStore`` (workers.runner.execute) and records the outcome:

- done: stats saved, and the caller enqueues the next stage of the table;
- bad input (``StageError``): the video ends ``failed`` or ``skipped`` with a one-line
  reason, and the stages after it are marked as not run;
- a fault the stage's retry policy covers (a database restart, a dropped connection)
  while attempts are left: the row goes back to ``pending`` with the reason, and the
  exception goes up for the caller to retry after the policy's backoff;
- anything else: the video fails with the exception's type; the traceback goes to the
  log for operators, never to users, and never escapes into the worker, so one bad video
  never stops the queue.
"""

from __future__ import annotations

import enum
import logging
import time
import traceback
from collections.abc import Callable

from app.db import session_scope
from app.models import StageStatus, Video, VideoStatus, utcnow
from app.pipeline import PIPELINE, Stage, stages_after
from app.services.stages import ensure_stage_rows, stage_run
from app.settings import get_settings
from workers.persist import DatabaseStore
from workers.runner import execute
from workers.types import StageError

_logger = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    done = "done"
    failed = "failed"
    skipped = "skipped"
    gone = "gone"  # the video was deleted meanwhile


def _progress_writer(video_id: int, stage: str) -> Callable[[float], None]:
    last = [0.0]

    def write(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0 and fraction < 1.0:
            return  # at most one write a second: progress is for humans
        last[0] = now
        with session_scope() as s:
            run = stage_run(s, video_id, stage)
            run.progress = max(0.0, min(1.0, float(fraction)))

    return write


def run_stage(video_id: int, stage: Stage, *, may_retry: bool = False) -> Outcome:
    """Run ``stage`` of the video and record it. With ``may_retry``, a fault the stage's
    retry policy covers is re-raised (the row says it will be retried) instead of failing
    the video."""
    with session_scope() as s:
        video = s.get(Video, video_id)
        if video is None:
            _logger.warning("video %s is gone; skipping %s", video_id, stage.name)
            return Outcome.gone
        ensure_stage_rows(s, video)
        run = stage_run(s, video_id, stage.name)
        run.status, run.error, run.progress = StageStatus.running, None, 0.0
        run.attempts += 1
        run.started_at, run.finished_at, run.duration_s = utcnow(), None, None
        video.status, video.error = VideoStatus.processing, None

    started = time.monotonic()
    outcome, error, stats = Outcome.done, None, {}
    try:
        with session_scope() as s:
            store = DatabaseStore(s, s.get(Video, video_id))
            stats = execute(
                stage,
                store,
                settings=get_settings(),
                progress=_progress_writer(video_id, stage.name),
            )
    except StageError as exc:
        outcome = Outcome.skipped if exc.status == "skipped" else Outcome.failed
        error = exc.reason
        _logger.info("video %s %s: %s", video_id, outcome, exc.reason)
    except Exception as exc:
        if may_retry and stage.retry.covers(exc):
            _record_retry(video_id, stage, exc)
            raise
        outcome = Outcome.failed  # one bad video must never stop the worker
        error = f"internal error in {stage.name}: {type(exc).__name__}: {str(exc)[:300]}"
        _logger.error(
            "video %s stage %s crashed:\n%s", video_id, stage.name, traceback.format_exc()
        )
    _record_outcome(video_id, stage, outcome, error, stats, round(time.monotonic() - started, 3))
    return outcome


def _record_retry(video_id: int, stage: Stage, exc: Exception) -> None:
    _logger.warning("video %s stage %s will be retried: %r", video_id, stage.name, exc)
    try:
        with session_scope() as s:
            run = stage_run(s, video_id, stage.name)
            run.status = StageStatus.pending
            run.error = f"will retry: {type(exc).__name__}: {str(exc)[:200]}"
    except Exception:  # the database itself may be what is down; the retry still happens
        _logger.warning("could not record the retry of video %s %s", video_id, stage.name)


def _record_outcome(
    video_id: int, stage: Stage, outcome: Outcome, error: str | None, stats: dict, seconds: float
) -> None:
    with session_scope() as s:
        run = stage_run(s, video_id, stage.name)
        run.status, run.error = StageStatus(outcome), error
        run.progress = 1.0 if outcome == Outcome.done else run.progress
        run.finished_at = utcnow()
        run.duration_s = seconds
        run.stats = stats
        video = s.get(Video, video_id)
        if outcome != Outcome.done:
            video.status, video.error = VideoStatus(outcome), f"{stage.name}: {error}"
            for later in stages_after(stage.name):
                later_run = stage_run(s, video_id, later.name)
                if later_run.status in (StageStatus.pending, StageStatus.running):
                    later_run.status = StageStatus.skipped
                    later_run.error = f"not run: {stage.name} {outcome}"
        elif stage.name == PIPELINE[-1].name:
            video.status = VideoStatus.done


def run_all_inline(video_id: int) -> str:
    """Run every stage of the table on a video in this process, in order, with each
    stage's retry policy (the CLI's ``--inline``). Returns the video's final status."""
    for stage in PIPELINE:
        if run_with_retries(video_id, stage) != Outcome.done:
            break
    with session_scope() as s:
        video = s.get(Video, video_id)
        return video.status if video else Outcome.gone


def run_with_retries(video_id: int, stage: Stage) -> Outcome:
    attempt = 1
    while True:
        last = attempt >= stage.retry.max_attempts
        try:
            return run_stage(video_id, stage, may_retry=not last)
        except Exception as exc:
            if last or not stage.retry.covers(exc):
                raise
            time.sleep(stage.retry.delay_s(attempt))
            attempt += 1
