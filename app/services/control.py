"""Operator controls over pipeline runs: cancel a video or a channel's queue, and re-run
what an older pipeline version produced.

Cancelling marks the video and its unfinished stage runs ``cancelled``. A stage that is
running notices at its next progress report (at most a second apart) or, at the latest,
when it is about to save: it stops, and nothing it produced is kept (its transaction is
rolled back, its files removed). A cancelled video is left alone by workers and by the
reconciler until an admin requeues it.

Versions: every stage run records the stage's code version and a digest of the settings
that stage reads (``app.pipeline.Stage.version_for``). ``rerun_outdated`` queues the
stage again, from that stage on, for every video whose run of it was made by another
version; pairs a reviewer touched are never rewritten by a re-run (workers.persist).
"""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.models import Channel, StageRun, StageStatus, User, Video, VideoStatus
from app.pipeline import stage as declared_stage
from app.services import audit, dispatch
from app.services.ingest import requeue_video
from app.settings import get_settings

UNFINISHED = (StageStatus.pending, StageStatus.queued, StageStatus.running)
ACTIVE_VIDEO = (VideoStatus.queued, VideoStatus.processing)


class ControlError(ValueError):
    pass


def _who(user: User | None) -> str:
    return user.username if user else "an admin"


def cancel_video(*, session: Session, video: Video, user: User | None) -> Video:
    if video.status not in ACTIVE_VIDEO:
        raise ControlError(f"nothing to cancel: the video is {video.status}")
    _cancel(session=session, video=video, reason=f"cancelled by {_who(user)}")
    audit.record(session=session, user=user, action="video.cancel", target=f"video:{video.id}")
    session.commit()
    return video


def cancel_channel(*, session: Session, channel: Channel, user: User | None) -> int:
    """Cancel the listing and every queued or processing video of the channel."""
    if channel.status == "queued":
        channel.status, channel.error = "cancelled", f"cancelled by {_who(user)}"
    videos = session.scalars(
        select(Video).where(Video.channel_id == channel.id, Video.status.in_(ACTIVE_VIDEO))
    ).all()
    for video in videos:
        _cancel(session=session, video=video, reason=f"cancelled by {_who(user)}")
    audit.record(
        session=session,
        user=user,
        action="channel.cancel",
        target=f"channel:{channel.id}",
        videos=len(videos),
    )
    session.commit()
    return len(videos)


def _cancel(*, session: Session, video: Video, reason: str) -> None:
    video.status, video.error = VideoStatus.cancelled, reason
    for run in video.stage_runs:
        if run.status in UNFINISHED:
            run.status, run.error = StageStatus.cancelled, reason
            run.lease_expires_at = None


def outdated_runs(*, session: Session, stage: str, channel_id: int | None = None) -> list[StageRun]:
    """Finished runs of ``stage`` made by another version than the current one."""
    current = declared_stage(stage).version_for(get_settings())
    query = (
        select(StageRun)
        .join(Video, Video.id == StageRun.video_id)
        .where(
            StageRun.stage == stage,
            StageRun.status == StageStatus.done,
            or_(StageRun.pipeline_version.is_(None), StageRun.pipeline_version != current),
            Video.status.not_in(ACTIVE_VIDEO),
        )
        .order_by(StageRun.video_id)
    )
    if channel_id is not None:
        query = query.where(Video.channel_id == channel_id)
    return list(session.scalars(query))


def rerun_outdated(
    *, session: Session, stage: str, user: User | None, channel_id: int | None = None
) -> list[int]:
    """Queue ``stage`` (and the stages after it) again for every video whose run of it
    is outdated. Returns the videos' ids."""
    ids = [
        run.video_id for run in outdated_runs(session=session, stage=stage, channel_id=channel_id)
    ]
    for video_id in ids:
        requeue_video(
            session=session,
            video=session.get(Video, video_id),
            user=user,
            from_stage=stage,
            send=False,
        )
    dispatch.send_due(session=session, video_ids=ids)
    return ids
