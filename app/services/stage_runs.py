"""Stage-run rows: one per (video, stage of the pipeline table), made when a video is
queued, and how a stage's outcome settles the video."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import StageRun, StageStatus, Video, VideoStatus
from app.pipeline import STAGE_NAMES, stages_after


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


def reset_stage_rows(session: Session, video: Video, *, from_stage: str | None = None) -> None:
    """Before a re-run: the stages from ``from_stage`` on (all by default) back to
    pending; attempt counts are kept."""
    names = STAGE_NAMES[STAGE_NAMES.index(from_stage) :] if from_stage else STAGE_NAMES
    for stage in names:
        run = stage_run(session, video.id, stage)
        run.status, run.progress, run.error = StageStatus.pending, 0.0, None
        run.enqueued_at = run.lease_expires_at = run.worker = None


def fail_video(*, session: Session, run: StageRun, reason: str, status: str = "failed") -> None:
    """A stage ended the video (``failed``: unusable input or given up; ``skipped``: out
    of scope): the run and the video say why, and the stages after it will not run."""
    run.status, run.error = status, reason
    run.lease_expires_at = None
    video = session.get(Video, run.video_id)
    video.status, video.error = VideoStatus(status), f"{run.stage}: {reason}"
    for later in stages_after(run.stage):
        later_run = stage_run(session, run.video_id, later.name)
        if later_run.status in (StageStatus.pending, StageStatus.queued, StageStatus.running):
            later_run.status = StageStatus.skipped
            later_run.error = f"not run: {run.stage} {status}"
