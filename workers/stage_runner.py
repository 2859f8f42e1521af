"""Bookkeeping around one stage of one video: claim, lease, progress, outcome, retries.

Every way of running a stage in the database goes through ``run_stage``: the Celery
tasks (workers.tasks) and ``quilt ingest --inline`` (``run_all_inline``).

1. Claim, atomically: one UPDATE takes the stage run if it is pending or queued, or
   running under a lease that expired (its worker died). A delivery that finds the run
   done, running under a live lease, or settled (failed, skipped) does nothing, so a
   redelivered or duplicated message never runs finished work twice.
2. Run the declared stage against the video's ``DatabaseStore`` (workers.runner.execute)
   while a heartbeat thread renews the lease every quarter lease.
3. Record the outcome in one transaction:
   - done: stats saved; with ``chain`` the next stage of the table is made due in the
     same transaction (the outbox, app.services.dispatch), and the caller sends it;
   - bad input (``StageError``): the video ends ``failed`` or ``skipped`` with a one-line
     reason, and the stages after it are marked as not run;
   - a fault the stage's retry policy covers (a database restart, a dropped connection)
     while attempts are left: the row goes back to ``queued`` with the reason and the
     exception goes up for the caller to retry after the policy's backoff;
   - anything else: the video fails with the exception's type; the traceback goes to the
     log for operators, never to users, and never escapes into the worker, so one bad
     video never stops the queue.
"""

from __future__ import annotations

import datetime as dt
import enum
import logging
import os
import socket
import threading
import time
import traceback
from collections.abc import Callable

from sqlalchemy import or_, update

from app.db import session_scope
from app.models import StageRun, StageStatus, Video, VideoStatus, utcnow
from app.pipeline import PIPELINE, Stage, next_stage
from app.services.dispatch import mark_queued
from app.services.stage_runs import ensure_stage_rows, fail_video, stage_run
from app.settings import get_settings
from workers.persist import DatabaseStore
from workers.runner import execute
from workers.types import StageError, TransientError

_logger = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    done = "done"
    failed = "failed"
    skipped = "skipped"
    gone = "gone"  # the video was deleted meanwhile
    cancelled = "cancelled"  # an admin cancelled it while it ran: nothing it made is kept
    # Not run: another delivery already did the work, is doing it, or it is settled.
    already_done = "already_done"
    busy = "busy"
    settled = "settled"


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _lease_until(now: dt.datetime) -> dt.datetime:
    return now + dt.timedelta(seconds=get_settings().stage_lease_s)


def _claim(video_id: int, stage: Stage, holder: str) -> Outcome | None:
    """Take the stage run for ``holder``; None when taken, else why it was not."""
    with session_scope() as s:
        video = s.get(Video, video_id)
        if video is None:
            _logger.warning("video %s is gone; skipping %s", video_id, stage.name)
            return Outcome.gone
        ensure_stage_rows(s, video)
    now = utcnow()
    with session_scope() as s:
        taken = s.execute(
            update(StageRun)
            .where(
                StageRun.video_id == video_id,
                StageRun.stage == stage.name,
                or_(
                    StageRun.status.in_((StageStatus.pending, StageStatus.queued)),
                    (StageRun.status == StageStatus.running)
                    & or_(StageRun.lease_expires_at.is_(None), StageRun.lease_expires_at < now),
                ),
            )
            .values(
                status=StageStatus.running,
                attempts=StageRun.attempts + 1,
                lease_expires_at=_lease_until(now),
                worker=holder,
                error=None,
                progress=0.0,
                started_at=now,
                finished_at=None,
                duration_s=None,
                pipeline_version=stage.version_for(get_settings()),
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if taken:
            video = s.get(Video, video_id)
            video.status, video.error = VideoStatus.processing, None
            return None
        status = stage_run(s, video_id, stage.name).status
    if status == StageStatus.done:
        return Outcome.already_done
    if status == StageStatus.running:
        return Outcome.busy
    return Outcome.settled


class ClaimLost(Exception):
    """The stage run is no longer this worker's: cancelled by an admin, or taken over
    after the lease ran out. What the stage produced must not be kept."""


def _still_holds(session, video_id: int, stage: str, holder: str) -> bool:  # noqa: ANN001
    run = stage_run(session, video_id, stage)
    session.refresh(run)
    return run.status == StageStatus.running and run.worker == holder


class _Heartbeat:
    """Renews the lease while the stage runs, from a thread of its own."""

    def __init__(self, video_id: int, stage: str, holder: str) -> None:
        self.video_id, self.stage, self.holder = video_id, stage, holder
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name=f"lease-{stage}", daemon=True)

    def __enter__(self) -> _Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        every = get_settings().stage_lease_s / 4
        while not self._stop.wait(every):
            try:
                with session_scope() as s:
                    s.execute(
                        update(StageRun)
                        .where(
                            StageRun.video_id == self.video_id,
                            StageRun.stage == self.stage,
                            StageRun.worker == self.holder,
                            StageRun.status == StageStatus.running,
                        )
                        .values(lease_expires_at=_lease_until(utcnow()))
                        .execution_options(synchronize_session=False)
                    )
            except Exception as exc:  # a database blip: the next beat tries again
                _logger.warning(
                    "lease of video %s %s not renewed: %r", self.video_id, self.stage, exc
                )


def _progress_writer(video_id: int, stage: str, holder: str) -> Callable[[float], None]:
    """Records progress, and stops the stage (``ClaimLost``, raised inside the core) when
    the run is no longer this worker's."""
    last = [0.0]

    def write(fraction: float) -> None:
        now = time.monotonic()
        if now - last[0] < 1.0 and fraction < 1.0:
            return  # at most one write a second: progress is for humans
        last[0] = now
        with session_scope() as s:
            if not _still_holds(s, video_id, stage, holder):
                raise ClaimLost(stage)
            stage_run(s, video_id, stage).progress = max(0.0, min(1.0, float(fraction)))

    return write


def run_stage(
    video_id: int, stage: Stage, *, may_retry: bool = False, chain: bool = True
) -> Outcome:
    """Run ``stage`` of the video and record it. With ``may_retry``, a fault the stage's
    retry policy covers is re-raised (the row says it will be retried) instead of failing
    the video. With ``chain``, a done stage makes the next one due (the caller sends it)."""
    holder = worker_name()
    refused = _claim(video_id, stage, holder)
    if refused is not None:
        if refused != Outcome.gone:
            _logger.info("video %s %s not run: %s", video_id, stage.name, refused)
        return refused

    started = time.monotonic()
    outcome, error, stats = Outcome.done, None, {}
    store: DatabaseStore | None = None
    try:
        with _Heartbeat(video_id, stage.name, holder), session_scope() as s:
            store = DatabaseStore(s, s.get(Video, video_id))
            stats = execute(
                stage,
                store,
                settings=get_settings(),
                progress=_progress_writer(video_id, stage.name, holder),
            )
            # The last look before the outputs are committed: a run cancelled (or taken
            # over) while the core worked keeps nothing.
            if not _still_holds(s, video_id, stage.name, holder):
                raise ClaimLost(stage.name)
        if store.settled is not None:
            raise store.settled
    except ClaimLost:
        if store is not None:
            store.discard(stage.name)
        with session_scope() as s:
            status = stage_run(s, video_id, stage.name).status
        _logger.info("video %s %s stopped: the run is %s", video_id, stage.name, status)
        return Outcome.cancelled if status == StageStatus.cancelled else Outcome.busy
    except TransientError as exc:
        if may_retry and stage.retry.covers(exc):
            _record_retry(video_id, stage, exc)
            raise
        outcome, error = Outcome.failed, f"{exc.reason} (gave up after retries)"
        _logger.info("video %s %s: %s", video_id, outcome, error)
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
    seconds = round(time.monotonic() - started, 3)
    if not _record_outcome(video_id, stage, holder, outcome, error, stats, seconds, chain=chain):
        return Outcome.cancelled  # cancelled after the core stopped on its own
    return outcome


def _record_retry(video_id: int, stage: Stage, exc: Exception) -> None:
    _logger.warning("video %s stage %s will be retried: %r", video_id, stage.name, exc)
    try:
        with session_scope() as s:
            run = stage_run(s, video_id, stage.name)
            mark_queued(run)
            # The retry is Celery's own message: nothing for the outbox to send.
            run.enqueued_at = utcnow()
            run.error = f"will retry: {type(exc).__name__}: {str(exc)[:200]}"
    except Exception:  # the database itself may be what is down; the retry still happens
        _logger.warning("could not record the retry of video %s %s", video_id, stage.name)


def _record_outcome(
    video_id: int,
    stage: Stage,
    holder: str,
    outcome: Outcome,
    error: str | None,
    stats: dict,
    seconds: float,
    *,
    chain: bool,
) -> bool:
    """Record how the stage ended; False (and nothing written) when the run is no longer
    this worker's: an admin's cancel stands over whatever the stage made of it."""
    with session_scope() as s:
        if not _still_holds(s, video_id, stage.name, holder):
            return False
        run = stage_run(s, video_id, stage.name)
        run.finished_at = utcnow()
        run.duration_s = seconds
        run.stats = stats
        run.lease_expires_at = None
        if outcome != Outcome.done:
            fail_video(session=s, run=run, reason=error or "", status=outcome.value)
            return True
        run.status, run.error, run.progress = StageStatus.done, None, 1.0
        following = next_stage(stage.name)
        if following is None:
            s.get(Video, video_id).status = VideoStatus.done
        elif chain:
            mark_queued(stage_run(s, video_id, following.name))
    return True


def run_all_inline(video_id: int) -> str:
    """Run every stage of the table on a video in this process, in order, with each
    stage's retry policy (the CLI's ``--inline``). Returns the video's final status."""
    for stage in PIPELINE:
        outcome = run_with_retries(video_id, stage)  # cancelled, busy or settled: stop
        if outcome not in (Outcome.done, Outcome.already_done):
            break
    with session_scope() as s:
        video = s.get(Video, video_id)
        return video.status if video else Outcome.gone


def run_with_retries(video_id: int, stage: Stage) -> Outcome:
    attempt = 1
    while True:
        last = attempt >= stage.retry.max_attempts
        try:
            return run_stage(video_id, stage, may_retry=not last, chain=False)
        except Exception as exc:
            if last or not stage.retry.covers(exc):
                raise
            time.sleep(stage.retry.delay_s(attempt))
            attempt += 1
