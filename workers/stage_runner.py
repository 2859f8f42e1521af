"""Bookkeeping around one stage of one video: the stage-run row, progress, errors.

Every task goes through ``run_stage``: it marks the stage running (attempts + 1), calls
the stage body, and records the outcome. Bad input (``StageError``) ends the video with a
status and a one-line reason; an unexpected exception does the same with the exception's
type, is logged with its traceback for operators, and never escapes into the worker, so
one bad video never stops the queue.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy.orm import Session

from app.db import session_scope
from app.models import STAGE_ORDER, StageName, StageStatus, Video, VideoStatus, utcnow
from app.services.stages import ensure_stage_rows, stage_run
from workers.types import StageError

_logger = logging.getLogger(__name__)

# A stage body gets the session, the video and a progress callback, and returns its stats.
StageBody = Callable[[Session, Video, Callable[[float], None]], dict[str, Any]]


def _progress_writer(video_id: int, stage: StageName) -> Callable[[float], None]:
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


def run_stage(video_id: int, stage: StageName, body: StageBody) -> bool:
    """Run ``body`` as ``stage`` of the video. True when the next stage should run."""
    with session_scope() as s:
        video = s.get(Video, video_id)
        if video is None:
            _logger.warning("video %s is gone; skipping %s", video_id, stage)
            return False
        ensure_stage_rows(s, video)
        run = stage_run(s, video_id, stage)
        run.status, run.error, run.progress = StageStatus.running, None, 0.0
        run.attempts += 1
        run.started_at, run.finished_at, run.duration_s = utcnow(), None, None
        video.status, video.error = VideoStatus.processing, None

    started = time.monotonic()
    outcome, error, stats = StageStatus.done, None, {}
    video_status: str | None = None
    try:
        with session_scope() as s:
            video = s.get(Video, video_id)
            stats = body(s, video, _progress_writer(video_id, stage)) or {}
    except StageError as exc:
        outcome = StageStatus.skipped if exc.status == "skipped" else StageStatus.failed
        video_status = VideoStatus.skipped if exc.status == "skipped" else VideoStatus.failed
        error = exc.reason
        _logger.info("video %s %s: %s", video_id, outcome, exc.reason)
    except Exception as exc:  # one bad video must never stop the worker
        outcome, video_status = StageStatus.failed, VideoStatus.failed
        error = f"internal error in {stage}: {type(exc).__name__}: {str(exc)[:300]}"
        _logger.error("video %s stage %s crashed:\n%s", video_id, stage, traceback.format_exc())

    with session_scope() as s:
        run = stage_run(s, video_id, stage)
        run.status, run.error = outcome, error
        run.progress = 1.0 if outcome == StageStatus.done else run.progress
        run.finished_at = utcnow()
        run.duration_s = round(time.monotonic() - started, 3)
        run.stats = stats
        video = s.get(Video, video_id)
        if video_status is not None:
            video.status, video.error = video_status, f"{stage}: {error}"
            for later in STAGE_ORDER[STAGE_ORDER.index(stage) + 1 :]:
                later_run = stage_run(s, video_id, later)
                if later_run.status in (StageStatus.pending, StageStatus.running):
                    later_run.status = StageStatus.skipped
                    later_run.error = f"not run: {stage} {outcome}"
        elif stage == STAGE_ORDER[-1]:
            video.status = VideoStatus.done
    return outcome == StageStatus.done
