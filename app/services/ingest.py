"""Ingest requests: turn what an admin queued into channel and video rows, then enqueue.

Sources: a local file (CLI, or the admin page within settings.import_dirs), an upload, an
http(s) URL to a media file, a YouTube video URL, or a channel/playlist URL (YouTube or
any feed yt-dlp understands) that a worker lists; ``add_listed_videos`` then makes one
video row per new entry that the channel's filters take (app.services.channels). The
worker only lists: which rows exist is decided here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, BinaryIO, Literal, Protocol
from urllib.parse import parse_qs, urlparse

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.media import UnsafePathError, media_root, new_upload_path, resolve_inside, safe_filename
from app.models import Channel, StageStatus, User, Video, VideoStatus, utcnow
from app.pipeline import FIRST_STAGE, STAGE_NAMES
from app.services import audit, channels, dispatch
from app.services.stage_runs import ensure_stage_rows, reset_stage_rows, stage_run
from app.settings import get_settings

YOUTUBE_HOSTS = {"youtube.com", "www.youtube.com", "m.youtube.com", "youtu.be", "music.youtube.com"}
SourceKind = Literal["auto", "video", "channel"]


class IngestError(ValueError):
    pass


class ListedVideo(Protocol):
    """One entry of a channel or playlist listing, as the fetch stage's lister gives it."""

    url: str
    title: str | None
    duration_s: float | None
    upload_date: str | None  # YYYY-MM-DD

    def source_info(self) -> dict[str, Any]:
        """What the listing said of the video, for ``Video.source_info``."""
        ...


def classify_url(url: str) -> tuple[str, bool]:
    """(source_kind, expands) for a URL: expands is True for channels and playlists."""
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise IngestError("only http(s) URLs can be queued")
    host = parsed.hostname or ""
    if host in YOUTUBE_HOSTS:
        path = parsed.path
        query = parse_qs(parsed.query)
        if path.startswith(("/@", "/channel/", "/c/", "/user/", "/playlist")):
            return "youtube", True
        if "list" in query and "v" not in query:
            return "youtube", True
        return "youtube", False
    return "http", False


def queue_url(
    *,
    session: Session,
    url: str,
    user: User | None,
    kind: SourceKind = "auto",
    enqueue: bool = True,
    filters: Mapping[str, Any] | None = None,
    recrawl_every_s: int | None = None,
) -> Channel | Video:
    """Queue a video URL, or a channel / playlist / feed to be listed. For a channel,
    ``filters`` (app.services.channels.ChannelFilters; None keeps a queued-again
    channel's own) and ``recrawl_every_s`` (None: list again only when asked) apply."""
    url = url.strip()
    source_kind, expands = classify_url(url)
    # An internal address written into the URL is refused now; a host name is checked
    # when it is fetched (app.netguard): its DNS may change until then.
    from app import netguard  # noqa: PLC0415

    if netguard.literal_host_refused(url, netguard.allow_list(get_settings().fetch_allow_networks)):
        raise IngestError(netguard.REFUSED)
    if kind == "channel":
        expands = True
    elif kind == "video":
        expands = False
    if expands:
        try:
            rules = channels.ChannelFilters.parse(filters) if filters is not None else None
            every = channels.check_recrawl(recrawl_every_s)
        except channels.ChannelError as exc:
            raise IngestError(str(exc)) from exc
        channel = session.scalar(select(Channel).where(Channel.url == url))
        if channel is None:
            channel = Channel(url=url, filters=channels.ChannelFilters().to_json())
            session.add(channel)
        if rules is not None:
            channel.filters = rules.to_json()
        if every is not None:
            channel.recrawl_every_s = every
        channels.mark_listing_due(channel)
        session.flush()
        audit.record(
            session=session,
            user=user,
            action="channel.queue",
            target=f"channel:{channel.id}",
            url=url,
            filters=channel.filters,
            recrawl_every_s=channel.recrawl_every_s,
        )
        session.commit()
        if enqueue:
            dispatch.send_listing(session=session, channel=channel)
        return channel
    video = Video(
        source_kind=source_kind, source_url=url, title=url, created_by_id=user.id if user else None
    )
    return _add_and_enqueue(session=session, video=video, user=user, enqueue=enqueue)


def queue_file(
    *,
    session: Session,
    path: Path,
    user: User | None,
    trusted: bool = False,
    enqueue: bool = True,
) -> Video:
    """Queue a file on this machine. Untrusted callers (the web) must stay inside import_dirs."""
    path = Path(path).expanduser()
    if not trusted:
        resolved = path.resolve()
        allowed = [Path(d).resolve() for d in get_settings().import_dirs]
        if not any(resolved == d or d in resolved.parents for d in allowed):
            raise IngestError("that path is outside the import folders")
        path = resolved
    if not path.is_file():
        raise IngestError(f"no such file: {path.name}")
    video = Video(
        source_kind="file",
        source_url=str(path.resolve()),
        title=path.name,
        created_by_id=user.id if user else None,
    )
    return _add_and_enqueue(session=session, video=video, user=user, enqueue=enqueue)


def queue_upload(*, session: Session, filename: str, stream: BinaryIO, user: User | None) -> Video:
    limit = get_settings().max_upload_mb * 1024 * 1024
    dest = new_upload_path(filename)
    written = 0
    with dest.open("wb") as out:
        while chunk := stream.read(1024 * 1024):
            written += len(chunk)
            if written > limit:
                out.close()
                dest.unlink(missing_ok=True)
                raise IngestError(f"upload larger than {get_settings().max_upload_mb} MB")
            out.write(chunk)
    if written == 0:
        dest.unlink(missing_ok=True)
        raise IngestError("the uploaded file is empty")
    video = Video(
        source_kind="upload",
        source_url=str(dest),
        title=safe_filename(filename, default="upload"),
        created_by_id=user.id if user else None,
    )
    return _add_and_enqueue(session=session, video=video, user=user)


def add_listed_videos(
    *, session: Session, channel: Channel, title: str | None, entries: Iterable[ListedVideo]
) -> list[int]:
    """Record a channel's listing: one queued video row per entry not seen before in this
    channel that the channel's filters take (with ``skip_seen``, not one that is a video
    elsewhere either), its first stage due; the others are counted, and the filtered ones
    named with the reason, in the listing's record (app.services.channels). Sets
    ``crawled_at``. Returns the new videos' ids, for the caller to send once this session
    commits (``dispatch.send_due``). A channel cancelled meanwhile gets nothing."""
    # One listing of a channel at a time (Postgres: the row lock waits for another
    # listing's commit, and then this one sees its videos as known).
    session.refresh(channel, with_for_update=True)
    if channel.status == "cancelled":
        return []
    channel.title = title or channel.title
    rules = channels.ChannelFilters.stored(channel.filters)
    entries = list(entries)
    known = set(session.scalars(select(Video.source_url).where(Video.channel_id == channel.id)))
    elsewhere = _videos_by_url(session, [e.url for e in entries if e.url not in known])
    listing = channels.Listing()
    new_ids: list[int] = []
    for entry in entries:
        listing.listed += 1
        url = entry.url
        if url in known:
            listing.known += 1
            continue
        known.add(url)
        try:
            source_kind, _ = classify_url(url)
        except IngestError:
            # A feed may list things that are not http(s) media: nothing to fetch.
            listing.turn_away(entry, "not an http(s) URL")
            continue
        reason = rules.rejects(entry)
        if reason is None and rules.skip_seen and url in elsewhere:
            reason = f"already seen: video #{elsewhere[url]}"
        if reason is not None:
            listing.turn_away(entry, reason)
            continue
        video = Video(
            channel_id=channel.id,
            source_kind=source_kind,
            source_url=url,
            title=entry.title or url,
            duration_s=entry.duration_s,
            source_info=entry.source_info(),
        )
        session.add(video)
        session.flush()
        ensure_stage_rows(session, video)
        dispatch.mark_queued(stage_run(session, video.id, FIRST_STAGE.name))
        new_ids.append(video.id)
    listing.added = len(new_ids)
    channel.status, channel.error = "done", None
    channel.crawled_at = utcnow()
    channels.record_listing(session=session, channel=channel, listing=listing)
    return new_ids


def _videos_by_url(session: Session, urls: list[str], chunk: int = 500) -> dict[str, int]:
    """{url: id of the first video with that source URL} for those of ``urls`` that are."""
    found: dict[str, int] = {}
    unique = sorted(set(urls))
    for i in range(0, len(unique), chunk):
        rows = session.execute(
            select(Video.source_url, func.min(Video.id))
            .where(Video.source_url.in_(unique[i : i + chunk]))
            .group_by(Video.source_url)
        )
        found.update({url: int(video_id) for url, video_id in rows})
    return found


def listing_failed(*, session: Session, channel: Channel, reason: str) -> None:
    """The listing could not be made: the channel says why (a cancelled one stays so).
    With a re-crawl interval it is tried again an interval after it was sent."""
    if channel is None or channel.status == "cancelled":
        return
    channel.status, channel.error = "failed", reason


def requeue_video(
    *,
    session: Session,
    video: Video,
    user: User | None,
    from_stage: str | None = None,
    send: bool = True,
) -> Video:
    """Run the video's pipeline again, from ``from_stage`` (the first stage by default, or
    an earlier stage that is not done: a stage needs what the ones before it made).
    Re-running replaces each stage's outputs; pairs a reviewer touched are kept."""
    start = _first_needed(session=session, video=video, wanted=from_stage or FIRST_STAGE.name)
    video.status, video.error = VideoStatus.queued, None
    reset_stage_rows(session, video, from_stage=start)
    dispatch.mark_queued(stage_run(session, video.id, start))
    audit.record(
        session=session, user=user, action="video.requeue", target=f"video:{video.id}", stage=start
    )
    session.commit()
    if send:
        dispatch.send_due(session=session, video_ids=[video.id])
    return video


def _first_needed(*, session: Session, video: Video, wanted: str) -> str:
    for name in STAGE_NAMES[: STAGE_NAMES.index(wanted)]:
        if stage_run(session, video.id, name).status != StageStatus.done:
            return name
    if wanted != FIRST_STAGE.name and not _source_on_disk(video):
        return FIRST_STAGE.name  # its source was deleted (quilt gc): fetch it again first
    return wanted


def _source_on_disk(video: Video) -> bool:
    if not video.media_path:
        return False
    try:
        return resolve_inside(media_root(), video.media_path).is_file()
    except UnsafePathError:
        return False


def _add_and_enqueue(
    *, session: Session, video: Video, user: User | None, enqueue: bool = True
) -> Video:
    session.add(video)
    session.flush()
    ensure_stage_rows(session, video)
    if enqueue:
        dispatch.mark_queued(stage_run(session, video.id, FIRST_STAGE.name))
    audit.record(
        session=session,
        user=user,
        action="video.queue",
        target=f"video:{video.id}",
        source=video.source_kind,
    )
    session.commit()
    if enqueue:
        dispatch.send_due(session=session, video_ids=[video.id])
    return video
