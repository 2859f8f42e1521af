"""Disk use of the media store, per video, and its upkeep (``quilt gc``).

Every video's files live in its folder ``media_root/videos/ID`` (app.media.video_dir):
the source media ``source.<ext>`` that fetch placed there, ``frames/`` from the frames
stage, and the rest (``text.json``, ...). Sizes are the files' own sizes (``st_size``),
read without following links: a link is neither counted nor followed, so a link to a
large file elsewhere never inflates a video. Hard links count in each place they appear
(an upload and its video's source are one file twice); ``media_disk_bytes`` counts each
file once, in allocated blocks.

What ``quilt gc`` deletes, and only that:

- the source media (the ``source.*`` files at the top of its folder) of a video that is
  ``done`` or ``skipped``, has no stage queued or running, and finished (its latest stage
  run's end, else its last update) more than ``settings.delete_source_after_s`` ago
  (unset: never). Never frames, text or release files; never a queued, processing,
  failed or cancelled video. The row keeps ``media_path`` (so the page can say "source
  deleted", and an audit event ``video.source_deleted`` says when); re-running fetch
  places the source again from ``source_url`` (a new download, or a new link to the
  local file or upload).
- folders ``media_root/videos/N`` whose video row no longer exists (audit event
  ``media.orphan_removed``).

Nothing outside media_root is ever touched: a path is deleted only when it passes
``app.media.resolve_inside`` *and* no part of it below the media root is a link, so a
link (wherever it points) is left alone, with everything reached through it. A folder
removed whole goes through ``shutil.rmtree``, which removes a link inside it, never the
link's target.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import stat
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.media import UnsafePathError, media_root, resolve_inside
from app.models import AuditEvent, StageRun, StageStatus, Video, VideoStatus, utcnow
from app.services import audit
from app.settings import get_settings

VIDEOS = "videos"
UPLOADS = "uploads"
FRAMES = "frames"
SOURCE_PREFIX = "source."

# Only these statuses are finished for good; a failed video's source is kept for a look
# (and a retry), a cancelled one's for a requeue.
RETAINED_STATUSES = (VideoStatus.done, VideoStatus.skipped)
BUSY_STAGES = (StageStatus.queued, StageStatus.running)

ACTION_SOURCE_DELETED = "video.source_deleted"
ACTION_ORPHAN_REMOVED = "media.orphan_removed"


# --- sizes ----------------------------------------------------------------------------


@dataclass
class Usage:
    """Bytes under one video's folder: its source media, its frames, everything else."""

    source_bytes: int = 0
    frames_bytes: int = 0
    other_bytes: int = 0

    @property
    def total_bytes(self) -> int:
        return self.source_bytes + self.frames_bytes + self.other_bytes

    def add(self, parts: tuple[str, ...], size: int) -> None:
        """Count a file by its path inside the video's folder."""
        if parts[0] == FRAMES and len(parts) > 1:
            self.frames_bytes += size
        elif len(parts) == 1 and parts[0].startswith(SOURCE_PREFIX):
            self.source_bytes += size
        else:
            self.other_bytes += size


@dataclass
class VideoStorage:
    """One video's disk use, as the admin page and ``GET /api/storage`` show it."""

    video_id: int
    title: str | None
    status: str
    source_bytes: int
    frames_bytes: int
    other_bytes: int
    total_bytes: int
    # The video was fetched (media_path is set) but its source file is gone.
    source_deleted: bool
    # When ``quilt gc`` deleted it (None: not gc, or not deleted).
    source_deleted_at: dt.datetime | None = None
    # The source file has other hard links (the upload, the imported file): deleting it
    # frees no space.
    source_shared: bool = False


@dataclass
class StorageReport:
    """Totals of the media store, and the videos that use the most of it."""

    video_count: int
    source_bytes: int
    frames_bytes: int
    other_bytes: int
    orphan_folders: int
    orphan_bytes: int
    uploads_bytes: int
    # Everything under media_root (each path's size), and what it takes on disk (each
    # file once, allocated blocks: hard links and sparse files counted as they are).
    media_bytes: int
    media_disk_bytes: int
    releases_bytes: int
    delete_source_after_s: int | None
    videos: list[VideoStorage] = field(default_factory=list)


def _root() -> Path:
    return media_root().resolve()


def _plain(root: Path, path: Path) -> bool:
    """``path`` lies below ``root`` (both resolved or built on a resolved root) and no
    part of it below the root is a link."""
    try:
        relative = path.relative_to(root)
    except ValueError:
        return False
    if not relative.parts or ".." in relative.parts:
        return False
    try:
        resolve_inside(root, str(relative))  # app.media's gate: no escape, no link out
    except UnsafePathError:
        return False
    current = root
    for part in relative.parts:
        current = current / part
        if current.is_symlink():
            return False
    return True


def _files(folder: Path) -> Iterator[tuple[Path, os.stat_result]]:
    """Regular files below ``folder``, never through a link (links, sockets and the like
    are skipped)."""
    stack = [folder]
    while stack:
        current = stack.pop()
        try:
            entries = list(os.scandir(current))
        except OSError:  # gone meanwhile, or not a folder
            continue
        for entry in entries:
            try:
                info = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            if stat.S_ISDIR(info.st_mode):
                stack.append(Path(entry.path))
            elif stat.S_ISREG(info.st_mode):
                yield Path(entry.path), info


def _tree_bytes(folder: Path) -> int:
    return sum(info.st_size for _, info in _files(folder))


def video_folder(video_id: int) -> Path:
    """``media_root/videos/ID`` (app.media.video_dir), without creating it."""
    return _root() / VIDEOS / str(int(video_id))


def folder_usage(video_id: int) -> Usage:
    """Bytes under the video's folder; nothing when it is missing or reached by a link."""
    root, usage = _root(), Usage()
    folder = video_folder(video_id)
    if not _plain(root, folder):
        return usage
    for path, info in _files(folder):
        usage.add(path.relative_to(folder).parts, info.st_size)
    return usage


def _source_deleted(video: Video, root: Path) -> bool:
    if not video.media_path:
        return False
    try:
        path = resolve_inside(root, video.media_path)
    except UnsafePathError:
        return False
    return not path.exists()


def _source_shared(video_id: int) -> bool:
    for path in _sources(video_folder(video_id)):
        info = path.lstat()
        if stat.S_ISREG(info.st_mode) and info.st_nlink > 1:
            return True
    return False


def _deleted_at(session: Session, video_ids: list[int]) -> dict[int, dt.datetime]:
    if not video_ids:
        return {}
    targets = {f"video:{i}": i for i in video_ids}
    rows = session.execute(
        select(AuditEvent.target, func.max(AuditEvent.created_at))
        .where(AuditEvent.action == ACTION_SOURCE_DELETED, AuditEvent.target.in_(targets))
        .group_by(AuditEvent.target)
    ).all()
    return {targets[target]: _utc(at) for target, at in rows if at is not None}


def _storage(
    video: Video, usage: Usage, root: Path, deleted_at: dict[int, dt.datetime]
) -> VideoStorage:
    deleted = _source_deleted(video, root)
    return VideoStorage(
        video_id=video.id,
        title=video.title,
        status=video.status,
        source_bytes=usage.source_bytes,
        frames_bytes=usage.frames_bytes,
        other_bytes=usage.other_bytes,
        total_bytes=usage.total_bytes,
        source_deleted=deleted,
        source_deleted_at=deleted_at.get(video.id) if deleted else None,
        source_shared=usage.source_bytes > 0 and _source_shared(video.id),
    )


def video_storage(session: Session, video: Video) -> VideoStorage:
    """One video's disk use (the admin video page)."""
    return _storage(video, folder_usage(video.id), _root(), _deleted_at(session, [video.id]))


def storage_report(session: Session, *, top: int = 20) -> StorageReport:
    """Totals over the media store and the ``top`` videos by bytes, one walk of the store."""
    settings = get_settings()
    root = _root()
    per_video: dict[int, Usage] = {}
    uploads = media_total = 0
    seen: set[tuple[int, int]] = set()
    disk = 0
    for path, info in _files(root):
        parts = path.relative_to(root).parts
        media_total += info.st_size
        if (info.st_dev, info.st_ino) not in seen:
            seen.add((info.st_dev, info.st_ino))
            disk += info.st_blocks * 512
        if len(parts) > 2 and parts[0] == VIDEOS and parts[1].isdigit():
            per_video.setdefault(int(parts[1]), Usage()).add(parts[2:], info.st_size)
        elif parts[0] == UPLOADS:
            uploads += info.st_size

    videos = {v.id: v for v in session.scalars(select(Video))}
    orphans = {vid: u for vid, u in per_video.items() if vid not in videos}
    kept = [u for vid, u in per_video.items() if vid in videos]
    ranked = sorted(videos, key=lambda vid: (-per_video.get(vid, Usage()).total_bytes, vid))
    shown = ranked[: max(0, top)]
    deleted_at = _deleted_at(session, shown)
    releases_root = settings.releases_root
    return StorageReport(
        video_count=len(videos),
        source_bytes=sum(u.source_bytes for u in kept),
        frames_bytes=sum(u.frames_bytes for u in kept),
        other_bytes=sum(u.other_bytes for u in kept),
        orphan_folders=len(orphans),
        orphan_bytes=sum(u.total_bytes for u in orphans.values()),
        uploads_bytes=uploads,
        media_bytes=media_total,
        media_disk_bytes=disk,
        releases_bytes=_tree_bytes(releases_root.resolve()) if releases_root.is_dir() else 0,
        delete_source_after_s=settings.delete_source_after_s,
        videos=[
            _storage(videos[vid], per_video.get(vid, Usage()), root, deleted_at) for vid in shown
        ],
    )


# --- gc -------------------------------------------------------------------------------


@dataclass
class GcItem:
    """Something ``quilt gc`` deleted (or, in a dry run, would delete)."""

    kind: str  # "source" | "orphan"
    path: str  # relative to media_root
    bytes: int
    video_id: int
    # Space given back: 0 where another hard link keeps the data (an upload, an imported
    # file on the same file system).
    freed_bytes: int


@dataclass
class GcSkip:
    path: str
    reason: str


@dataclass
class GcReport:
    dry_run: bool
    retention_s: int | None
    items: list[GcItem] = field(default_factory=list)
    skipped: list[GcSkip] = field(default_factory=list)

    @property
    def bytes(self) -> int:
        return sum(item.bytes for item in self.items)

    @property
    def freed_bytes(self) -> int:
        return sum(item.freed_bytes for item in self.items)


def _utc(value: dt.datetime) -> dt.datetime:
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)  # SQLite gives naive UTC


def _sources(folder: Path) -> list[Path]:
    """The ``source.*`` entries at the top of a video's folder (files and links alike)."""
    try:
        return sorted(Path(e.path) for e in os.scandir(folder) if e.name.startswith(SOURCE_PREFIX))
    except OSError:
        return []


def _retention_candidates(session: Session, cutoff: dt.datetime) -> list[int]:
    """Ids of done or skipped videos with nothing queued or running, finished before
    ``cutoff``."""
    finished = (
        select(StageRun.video_id, func.max(StageRun.finished_at).label("at"))
        .group_by(StageRun.video_id)
        .subquery()
    )
    busy = select(StageRun.video_id).where(StageRun.status.in_(BUSY_STAGES))
    rows = session.execute(
        select(Video.id, finished.c.at, Video.updated_at)
        .outerjoin(finished, finished.c.video_id == Video.id)
        .where(
            Video.status.in_(RETAINED_STATUSES),
            Video.media_path.is_not(None),
            Video.id.not_in(busy),
        )
        .order_by(Video.id)
    ).all()
    return [vid for vid, at, updated in rows if _utc(at or updated) <= cutoff]


def _locked_and_finished(session: Session, video_id: int) -> bool:
    """Lock the video's row (Postgres) and check again that it is still finished: an
    admin may have queued it again since the candidates were read."""
    video = session.scalar(
        select(Video)
        .where(Video.id == video_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if video is None or video.status not in RETAINED_STATUSES:
        return False
    busy = session.scalar(
        select(func.count())
        .select_from(StageRun)
        .where(StageRun.video_id == video_id, StageRun.status.in_(BUSY_STAGES))
    )
    return not busy


def _delete_sources(session: Session, report: GcReport, root: Path, cutoff: dt.datetime) -> None:
    for video_id in _retention_candidates(session, cutoff):
        folder = video_folder(video_id)
        if not folder.exists() and not folder.is_symlink():
            continue
        if not _plain(root, folder):
            report.skipped.append(GcSkip(f"{VIDEOS}/{video_id}", "a link: left alone"))
            continue
        files: list[tuple[Path, os.stat_result]] = []
        for path in _sources(folder):
            info = path.lstat()
            if not stat.S_ISREG(info.st_mode):
                what = "a link" if stat.S_ISLNK(info.st_mode) else "not a file"
                report.skipped.append(GcSkip(str(path.relative_to(root)), f"{what}: left alone"))
                continue
            files.append((path, info))
        if not files:
            continue
        items = [
            GcItem(
                kind="source",
                path=str(path.relative_to(root)),
                bytes=info.st_size,
                video_id=video_id,
                freed_bytes=info.st_size if info.st_nlink == 1 else 0,
            )
            for path, info in files
        ]
        if report.dry_run:
            report.items.extend(items)
            continue
        if not _locked_and_finished(session, video_id):
            session.rollback()
            continue
        for path, _ in files:
            path.unlink(missing_ok=True)
        audit.record(
            session=session,
            user=None,
            action=ACTION_SOURCE_DELETED,
            target=f"video:{video_id}",
            paths=[item.path for item in items],
            bytes=sum(item.bytes for item in items),
            retention_s=report.retention_s,
        )
        session.commit()
        report.items.extend(items)


def _remove_orphans(session: Session, report: GcReport, root: Path) -> None:
    videos = root / VIDEOS
    if not videos.exists():
        return
    if not _plain(root, videos):
        report.skipped.append(GcSkip(VIDEOS, "a link: left alone"))
        return
    known = set(session.scalars(select(Video.id)))
    try:
        entries = sorted(os.scandir(videos), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        if not entry.name.isdigit() or int(entry.name) in known:
            continue
        video_id, path = int(entry.name), Path(entry.path)
        relative = f"{VIDEOS}/{entry.name}"
        if entry.is_symlink():
            report.skipped.append(GcSkip(relative, "a link: left alone"))
            continue
        if not entry.is_dir(follow_symlinks=False):
            report.skipped.append(GcSkip(relative, "not a folder: left alone"))
            continue
        files = list(_files(path))
        size = sum(info.st_size for _, info in files)
        freed = sum(info.st_size for _, info in files if info.st_nlink == 1)
        item = GcItem("orphan", relative, size, video_id, freed)
        if report.dry_run:
            report.items.append(item)
            continue
        # A row made since the ids were read (a new video) keeps its folder.
        if session.get(Video, video_id) is not None or not _plain(root, path):
            continue
        shutil.rmtree(path)
        audit.record(
            session=session,
            user=None,
            action=ACTION_ORPHAN_REMOVED,
            target=f"video:{video_id}",
            path=relative,
            bytes=size,
        )
        session.commit()
        report.items.append(item)


def collect_garbage(
    session: Session, *, dry_run: bool = False, now: dt.datetime | None = None
) -> GcReport:
    """Delete the sources that are past retention and the orphan folders (see the module
    docstring); with ``dry_run``, only list them."""
    retention = get_settings().delete_source_after_s
    report = GcReport(dry_run=dry_run, retention_s=retention)
    root = _root()
    if retention is not None:
        cutoff = (now or utcnow()) - dt.timedelta(seconds=retention)
        _delete_sources(session, report, root, cutoff)
    _remove_orphans(session, report, root)
    return report


def as_dict(report: GcReport) -> dict[str, object]:
    return {
        **dataclasses.asdict(report),
        "bytes": report.bytes,
        "freed_bytes": report.freed_bytes,
    }
