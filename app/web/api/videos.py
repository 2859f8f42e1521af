"""Videos and their pipeline progress; admins queue new sources."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, Query

from app.db import SessionDep
from app.models import Channel, Role, User, Video
from app.services import control, ingest, redact
from app.web import queries
from app.web.api.schemas import QueuedOut, QueueIn, StageRunOut, VideoDetailOut, VideoList, VideoOut
from app.web.deps import AdminUser, CurrentUser

router = APIRouter(prefix="/videos", tags=["videos"])

VideoId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def video_out(video: Video, user: User) -> VideoOut:
    """A video as the caller may see it: admins get the source's path and the stored error
    as they are; reviewers a local source's file name and a one-line error in words
    (app/services/redact.py)."""
    out = VideoOut.model_validate(video)
    if user.role == Role.admin:
        return out
    return out.model_copy(
        update={
            "source_url": redact.source_name(video.source_kind, video.source_url),
            "error": redact.error_line(video.error),
        }
    )


@router.get("", response_model=VideoList)
def list_videos(
    session: SessionDep,
    user: CurrentUser,
    limit: int = Query(100, ge=1, le=1000),
    offset: int = Query(0, ge=0, le=2**31 - 1),
    status: str | None = Query(None, max_length=16),
) -> VideoList:
    total, videos = queries.list_videos(session=session, limit=limit, offset=offset, status=status)
    return VideoList(total=total, items=[video_out(v, user) for v in videos])


@router.get("/{video_id}", response_model=VideoDetailOut)
def get_video(video_id: VideoId, session: SessionDep, user: CurrentUser) -> VideoDetailOut:
    video = queries.video_or_404(session, video_id)
    return VideoDetailOut(
        **video_out(video, user).model_dump(),
        stage_runs=[
            StageRunOut.model_validate(r)
            if user.role == Role.admin
            else StageRunOut.model_validate(r).model_copy(
                update={"error": redact.error_line(r.error)}
            )
            for r in video.stage_runs
        ],
        pair_counts=queries.pair_counts_for_video(session=session, video_id=video_id),
        segment_count=queries.segment_count(session=session, video_id=video_id),
    )


@router.post("", response_model=QueuedOut, status_code=201)
def queue_video(body: QueueIn, session: SessionDep, user: AdminUser) -> QueuedOut:
    """Queue a video URL, or a channel/playlist that expands into videos."""
    queued = ingest.queue_url(session=session, url=body.url, user=user, kind=body.kind)
    return QueuedOut(kind="channel" if isinstance(queued, Channel) else "video", id=queued.id)


@router.post("/{video_id}/cancel", response_model=VideoOut)
def cancel(video_id: VideoId, session: SessionDep, user: AdminUser) -> VideoOut:
    """Stop the video's processing: what the running stage made is not kept."""
    try:
        video = control.cancel_video(
            session=session, video=queries.video_or_404(session, video_id), user=user
        )
    except control.ControlError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return VideoOut.model_validate(video)


@router.post("/{video_id}/requeue", response_model=VideoOut)
def requeue(video_id: VideoId, session: SessionDep, user: AdminUser) -> VideoOut:
    video = ingest.requeue_video(
        session=session, video=queries.video_or_404(session, video_id), user=user
    )
    return VideoOut.model_validate(video)
