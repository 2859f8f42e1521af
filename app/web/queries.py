"""Read-only queries that both the pages and the API show (lists, counts, a video)."""

from __future__ import annotations

from pathlib import Path

from fastapi import HTTPException
from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from app.models import Pair, Release, TranscriptSegment, Video, VideoStatus
from app.services.releases import release_dir

ACTIVE_VIDEO_STATUSES = (VideoStatus.queued, VideoStatus.processing)


def list_videos(
    *, session: Session, limit: int = 100, offset: int = 0, status: str | None = None
) -> tuple[int, list[Video]]:
    query = select(Video)
    count = select(func.count()).select_from(Video)
    if status:
        query = query.where(Video.status == status)
        count = count.where(Video.status == status)
    videos = session.scalars(
        query.options(selectinload(Video.stage_runs))
        .order_by(Video.id.desc())
        .limit(limit)
        .offset(offset)
    ).all()
    return session.scalar(count) or 0, list(videos)


def video_or_404(session: Session, video_id: int) -> Video:
    video = session.get(Video, video_id)
    if video is None:
        raise HTTPException(404, f"video {video_id} not found")
    return video


def any_active(videos: list[Video]) -> bool:
    return any(v.status in ACTIVE_VIDEO_STATUSES for v in videos)


def pair_counts_for_video(*, session: Session, video_id: int) -> dict[str, int]:
    rows = session.execute(
        select(Pair.status, func.count()).where(Pair.video_id == video_id).group_by(Pair.status)
    ).all()
    return {status: n for status, n in rows}


def segment_count(*, session: Session, video_id: int) -> int:
    return session.scalar(select(func.count()).where(TranscriptSegment.video_id == video_id)) or 0


def video_counts(*, session: Session) -> dict[str, int]:
    rows = session.execute(select(Video.status, func.count()).group_by(Video.status)).all()
    return {status: n for status, n in rows}


def release_files(release: Release) -> list[str]:
    """Files of a release, relative to its folder (what the download route serves)."""
    if release.status != "ready":
        return []
    folder: Path = release_dir(release)
    if not folder.is_dir():
        return []
    return sorted(
        str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.is_symlink()
    )


def transcript_around(
    *, session: Session, video_id: int, start_s: float, end_s: float, limit: int = 60
) -> list[TranscriptSegment]:
    """Transcript segments that overlap [start_s, end_s], in time order."""
    return list(
        session.scalars(
            select(TranscriptSegment)
            .where(
                TranscriptSegment.video_id == video_id,
                TranscriptSegment.start_s < end_s,
                TranscriptSegment.end_s > start_s,
            )
            .order_by(TranscriptSegment.start_s)
            .limit(limit)
        ).all()
    )
