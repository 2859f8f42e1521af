"""Channels (YouTube channels and playlists, feeds): which listed videos to take, when to
list a channel again, what a listing found, and what a channel has yielded.

- Filters (``Channel.filters``, a JSON object; ``ChannelFilters``): a duration range, title
  keywords (take a title with any of ``include_keywords``, none of ``exclude_keywords``;
  case-insensitive, whole words or phrases: "live" is not in "Liver"), an upload date (on or after ``uploaded_after``), and ``skip_seen``
  (default on): a URL that is already a video anywhere, in another channel or queued on
  its own, is not taken again. A channel never gets the same URL twice whatever the
  filters. A listing that does not say a video's duration or date lets it through those
  two filters: the listing is all there is to go on before the download (an RSS item
  without ``itunes:duration``, a YouTube entry without a date). The filters are applied
  by ``app.services.ingest.add_listed_videos`` to each listing, so a change applies to
  the next one; what they turned away is not made into videos, only counted and named,
  with the reason, in the listing's record.
- Re-crawl: with ``recrawl_every_s`` set, the reconciler (app.services.reconcile) queues a
  listing once the last one (the later of ``crawled_at``, the last success, and
  ``enqueued_at``, the last send: a listing that failed is tried again an interval
  later, not at every pass) is that old; the outbox (app.services.dispatch) sends it. A
  channel whose queue an admin cancelled is not listed again until they ask.
- A listing's record is an audit event ``channel.listed`` (no user: the worker) with the
  counts and the first ``FILTERED_KEPT`` entries turned away, so that the channel page
  can say what the last listing did without a table of its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Mapping
from typing import Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models import AuditEvent, Channel, Pair, User, Video, VideoStatus, utcnow
from app.services import audit, dispatch

LISTED_ACTION = "channel.listed"
FILTERED_KEPT = 200  # entries turned away that a listing's record names (all are counted)
MIN_RECRAWL_S = 600  # ten minutes: a channel listing is one request per page of videos
MAX_RECRAWL_S = 366 * 86400
MAX_DURATION_S = 7 * 86400.0
MAX_KEYWORDS = 50
MAX_KEYWORD_LEN = 100
RECRAWLABLE = ("done", "failed")  # queued: already due; cancelled: until an admin asks


class ChannelError(ValueError):
    pass


class ListedEntry(Protocol):
    """What the filters read of a listed video (workers.types.SourceEntry)."""

    url: str
    title: str | None
    duration_s: float | None
    upload_date: str | None  # YYYY-MM-DD


def _hms(seconds: float) -> str:
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


@dataclasses.dataclass(frozen=True)
class ChannelFilters:
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    include_keywords: tuple[str, ...] = ()
    exclude_keywords: tuple[str, ...] = ()
    uploaded_after: dt.date | None = None  # on or after
    skip_seen: bool = True

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None) -> ChannelFilters:
        """Filters from an admin's input (the JSON form); ``ChannelError`` says what is
        wrong. Missing keys take their defaults."""
        data = dict(data or {})
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ChannelError(f"unknown filter: {', '.join(map(str, unknown))[:200]}")
        low = _seconds(data.get("min_duration_s"), "min_duration_s")
        high = _seconds(data.get("max_duration_s"), "max_duration_s")
        if low is not None and high is not None and low > high:
            raise ChannelError("min_duration_s is more than max_duration_s")
        skip_seen = data.get("skip_seen", True)
        if not isinstance(skip_seen, bool):
            raise ChannelError("skip_seen must be true or false")
        return cls(
            min_duration_s=low,
            max_duration_s=high,
            include_keywords=_keywords(data.get("include_keywords"), "include_keywords"),
            exclude_keywords=_keywords(data.get("exclude_keywords"), "exclude_keywords"),
            uploaded_after=_date(data.get("uploaded_after")),
            skip_seen=skip_seen,
        )

    @classmethod
    def stored(cls, data: Mapping[str, Any] | None) -> ChannelFilters:
        """The filters a channel row holds (written by ``parse``; defaults if unreadable)."""
        try:
            return cls.parse(data)
        except ChannelError:
            return cls()

    def to_json(self) -> dict[str, Any]:
        return {
            "min_duration_s": self.min_duration_s,
            "max_duration_s": self.max_duration_s,
            "include_keywords": list(self.include_keywords),
            "exclude_keywords": list(self.exclude_keywords),
            "uploaded_after": self.uploaded_after.isoformat() if self.uploaded_after else None,
            "skip_seen": self.skip_seen,
        }

    def rejects(self, entry: ListedEntry) -> str | None:
        """Why the filters turn the entry away (one line), or None when it passes. An
        unknown duration or date passes those filters."""
        duration = entry.duration_s
        if duration is not None:
            if self.min_duration_s is not None and duration < self.min_duration_s:
                return f"shorter than {_hms(self.min_duration_s)} ({_hms(duration)})"
            if self.max_duration_s is not None and duration > self.max_duration_s:
                return f"longer than {_hms(self.max_duration_s)} ({_hms(duration)})"
        title = entry.title or ""
        if self.include_keywords and not any(_says(title, k) for k in self.include_keywords):
            return f"title has none of: {', '.join(self.include_keywords)}"
        for keyword in self.exclude_keywords:
            if _says(title, keyword):
                return f"title has an excluded keyword: {keyword}"
        if self.uploaded_after is not None and entry.upload_date:
            uploaded = _listed_date(entry.upload_date)
            if uploaded is not None and uploaded < self.uploaded_after:
                return f"uploaded {uploaded.isoformat()}, before {self.uploaded_after.isoformat()}"
        return None

    @property
    def active(self) -> bool:
        """Any filter beyond the default (skip_seen on)."""
        return self != ChannelFilters()


def _says(title: str, keyword: str) -> bool:
    """The title has the keyword as a whole word or phrase, whatever the case."""
    pattern = rf"(?<!\w){re.escape(keyword.casefold())}(?!\w)"
    return re.search(pattern, title.casefold()) is not None


def _seconds(value: Any, name: str) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChannelError(f"{name} must be a number of seconds")
    if not 0 <= value <= MAX_DURATION_S:
        raise ChannelError(f"{name} must be between 0 and {int(MAX_DURATION_S)} seconds")
    return float(value)


def _keywords(value: Any, name: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str) or not isinstance(value, (list, tuple)):
        raise ChannelError(f"{name} must be a list of words")
    words: list[str] = []
    for item in value:
        if not isinstance(item, str):
            raise ChannelError(f"{name} must be a list of words")
        word = " ".join(item.split())  # control characters and runs of spaces: one space
        if not word:
            continue
        if len(word) > MAX_KEYWORD_LEN or not word.isprintable():
            raise ChannelError(f"a keyword is at most {MAX_KEYWORD_LEN} printable characters")
        if word.casefold() not in {w.casefold() for w in words}:
            words.append(word)
    if len(words) > MAX_KEYWORDS:
        raise ChannelError(f"{name}: at most {MAX_KEYWORDS} keywords")
    return tuple(words)


def _date(value: Any) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise ChannelError("uploaded_after must be a date, YYYY-MM-DD")


def _listed_date(value: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        return None


def check_recrawl(value: Any) -> int | None:
    """A re-crawl interval in seconds (None: only when asked); ``ChannelError`` if out of
    range."""
    if value is None or value == "":
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ChannelError("recrawl_every_s must be a whole number of seconds")
    if not MIN_RECRAWL_S <= value <= MAX_RECRAWL_S:
        raise ChannelError(
            f"recrawl_every_s must be between {MIN_RECRAWL_S} and {MAX_RECRAWL_S} seconds"
        )
    return value


# --- settings and listing on demand ---------------------------------------------------


_UNSET: Any = object()


def update_settings(
    *,
    session: Session,
    channel: Channel,
    user: User | None,
    filters: Mapping[str, Any] | None = _UNSET,
    recrawl_every_s: int | None = _UNSET,
) -> Channel:
    """Replace the channel's filters and/or re-crawl interval (what is not passed stays).
    The next listing applies them. Commits."""
    changed: dict[str, Any] = {}
    if filters is not _UNSET:
        channel.filters = ChannelFilters.parse(filters).to_json()
        changed["filters"] = channel.filters
    if recrawl_every_s is not _UNSET:
        channel.recrawl_every_s = check_recrawl(recrawl_every_s)
        changed["recrawl_every_s"] = channel.recrawl_every_s
    audit.record(
        session=session,
        user=user,
        action="channel.update",
        target=f"channel:{channel.id}",
        **changed,
    )
    session.commit()
    return channel


def mark_listing_due(channel: Channel) -> None:
    """Make the channel's listing due: sent after this transaction commits (the outbox)."""
    channel.status, channel.error, channel.enqueued_at = "queued", None, None


def crawl_now(*, session: Session, channel: Channel, user: User | None) -> dispatch.Dispatch:
    """List the channel again now (new videos only). Commits, then sends the listing."""
    if channel.status == "queued" and channel.enqueued_at is not None:
        raise ChannelError("a listing of this channel is already queued")
    mark_listing_due(channel)
    audit.record(session=session, user=user, action="channel.crawl", target=f"channel:{channel.id}")
    session.commit()
    return dispatch.send_listing(session=session, channel=channel)


# --- re-crawl -------------------------------------------------------------------------


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is not None and value.tzinfo is None:  # SQLite gives back naive UTC
        return value.replace(tzinfo=dt.UTC)
    return value


def last_attempt(channel: Channel) -> dt.datetime | None:
    """When the channel was last listed, or its listing last sent: the later one."""
    times = [t for t in (_aware(channel.crawled_at), _aware(channel.enqueued_at)) if t]
    return max(times) if times else None


def next_crawl_at(channel: Channel) -> dt.datetime | None:
    """When the reconciler lists the channel again; None when it will not by itself
    (no interval, a listing already queued, or the queue cancelled)."""
    if not channel.recrawl_every_s or channel.status not in RECRAWLABLE:
        return None
    since = last_attempt(channel) or _aware(channel.created_at) or utcnow()
    return since + dt.timedelta(seconds=channel.recrawl_every_s)


def queue_due_crawls(*, session: Session, now: dt.datetime, limit: int = 500) -> int:
    """Mark every channel whose re-crawl is due as queued (the caller commits and the
    outbox sends). Returns how many."""
    now = _aware(now) or utcnow()
    candidates = session.scalars(
        select(Channel)
        .where(Channel.recrawl_every_s.is_not(None), Channel.status.in_(RECRAWLABLE))
        .order_by(Channel.id)
    )
    queued = 0
    for channel in candidates:
        due = next_crawl_at(channel)
        if due is None or due > now:
            continue
        mark_listing_due(channel)
        queued += 1
        if queued >= limit:
            break
    return queued


# --- what a listing did ---------------------------------------------------------------


@dataclasses.dataclass
class FilteredEntry:
    title: str | None
    url: str
    reason: str


@dataclasses.dataclass
class Listing:
    """One listing of a channel: how many entries, how many became videos, how many were
    its videos already, and those the filters turned away (``filtered`` counts them all,
    ``filtered_entries`` names the first ``FILTERED_KEPT``)."""

    at: dt.datetime | None = None
    listed: int = 0
    added: int = 0
    known: int = 0
    filtered: int = 0
    filtered_entries: list[FilteredEntry] = dataclasses.field(default_factory=list)

    def turn_away(self, entry: ListedEntry, reason: str) -> None:
        self.filtered += 1
        if len(self.filtered_entries) < FILTERED_KEPT:
            self.filtered_entries.append(FilteredEntry(entry.title, entry.url, reason))


def record_listing(*, session: Session, channel: Channel, listing: Listing) -> None:
    details = dataclasses.asdict(listing)
    details.pop("at")
    audit.record(
        session=session, user=None, action=LISTED_ACTION, target=f"channel:{channel.id}", **details
    )


def last_listing(*, session: Session, channel_id: int) -> Listing | None:
    event = session.scalar(
        select(AuditEvent)
        .where(AuditEvent.action == LISTED_ACTION, AuditEvent.target == f"channel:{channel_id}")
        .order_by(AuditEvent.id.desc())
        .limit(1)
    )
    if event is None:
        return None
    details = event.details or {}
    return Listing(
        at=_aware(event.created_at),
        listed=int(details.get("listed", 0)),
        added=int(details.get("added", 0)),
        known=int(details.get("known", 0)),
        filtered=int(details.get("filtered", 0)),
        filtered_entries=[
            FilteredEntry(e.get("title"), e.get("url", ""), e.get("reason", ""))
            for e in details.get("filtered_entries", [])
        ],
    )


# --- what a channel yielded -----------------------------------------------------------


@dataclasses.dataclass
class ChannelYield:
    """Videos and pairs of one channel. ``video_hours``: hours of its processed (done)
    videos; the rates are pairs (all, approved) per such hour, None before any."""

    videos_by_status: dict[str, int]
    pairs_by_status: dict[str, int]
    video_hours: float
    pairs_per_hour: float | None
    approved_per_hour: float | None


def channel_yield(*, session: Session, channel_id: int) -> ChannelYield:
    videos = dict(
        session.execute(
            select(Video.status, func.count())
            .where(Video.channel_id == channel_id)
            .group_by(Video.status)
        ).all()
    )
    pairs = dict(
        session.execute(
            select(Pair.status, func.count())
            .join(Video, Video.id == Pair.video_id)
            .where(Video.channel_id == channel_id)
            .group_by(Pair.status)
        ).all()
    )
    seconds = session.scalar(
        select(func.coalesce(func.sum(Video.duration_s), 0.0)).where(
            Video.channel_id == channel_id, Video.status == VideoStatus.done
        )
    )
    hours = float(seconds or 0.0) / 3600
    total = sum(pairs.values())
    return ChannelYield(
        videos_by_status={str(k): int(v) for k, v in videos.items()},
        pairs_by_status={str(k): int(v) for k, v in pairs.items()},
        video_hours=round(hours, 3),
        pairs_per_hour=round(total / hours, 2) if hours else None,
        approved_per_hour=round(pairs.get("approved", 0) / hours, 2) if hours else None,
    )


def list_channels(*, session: Session) -> list[tuple[Channel, int]]:
    """Every channel, newest first, with its number of videos."""
    counts = dict(
        session.execute(
            select(Video.channel_id, func.count())
            .where(Video.channel_id.is_not(None))
            .group_by(Video.channel_id)
        ).all()
    )
    channels = session.scalars(select(Channel).order_by(Channel.id.desc())).all()
    return [(channel, int(counts.get(channel.id, 0))) for channel in channels]


def channel_videos(*, session: Session, channel_id: int, limit: int = 500) -> list[Video]:
    return list(
        session.scalars(
            select(Video)
            .where(Video.channel_id == channel_id)
            .order_by(Video.id.desc())
            .limit(limit)
        )
    )
