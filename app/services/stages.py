"""Stage-run rows: one per (video, stage of the pipeline table), made when a video is queued."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import StageRun, StageStatus, Video
from app.pipeline import STAGE_NAMES


def stage_run(session: Session, video_id: int, stage: str) -> StageRun:
    run = session.scalar(
        select(StageRun).where(StageRun.video_id == video_id, StageRun.stage == stage)
    )
    if run is None:
        run = StageRun(
            video_id=video_id,
            stage=stage,
            status=StageStatus.pending,
            attempts=0,
            progress=0.0,
            stats={},
        )
        session.add(run)
        session.flush()
    return run


def ensure_stage_rows(session: Session, video: Video) -> None:
    """Create the pending stage-run rows of a video so the UI shows the whole plan."""
    for stage in STAGE_NAMES:
        stage_run(session, video.id, stage)


def reset_stage_rows(session: Session, video: Video) -> None:
    """Before a re-run: every stage back to pending (attempt counts are kept)."""
    for stage in STAGE_NAMES:
        run = stage_run(session, video.id, stage)
        run.status, run.progress, run.error = StageStatus.pending, 0.0, None
