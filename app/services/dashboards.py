"""Figures for the dashboards: progress by channel and video, yield per channel,
throughput and agreement per reviewer. Read-only; aggregated in SQL where it counts rows
(pairs may be millions), in Python where it handles one row per reviewer or bucket."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import statistics

from sqlalchemy import case, func, select
from sqlalchemy.orm import Session

from app.models import Channel, Pair, PairStatus, Review, ReviewKind, User, Video, utcnow
from app.services import agreement, gold


@dataclasses.dataclass(frozen=True)
class Progress:
    """Pair counts of one channel or video. ``id`` None: videos without a channel."""

    id: int | None
    label: str
    pending: int
    approved: int
    rejected: int
    disputed: int

    @property
    def total(self) -> int:
        return self.pending + self.approved + self.rejected + self.disputed

    @property
    def done(self) -> float:
        """Share of pairs settled (approved or rejected)."""
        return (self.approved + self.rejected) / self.total if self.total else 0.0

    @property
    def yield_(self) -> float:
        """Approved / total: how much of what the pipeline proposed is kept."""
        return self.approved / self.total if self.total else 0.0


def _status_sums() -> list:
    return [
        func.sum(case((Pair.status == status, 1), else_=0)).label(status.value)
        for status in (
            PairStatus.pending,
            PairStatus.approved,
            PairStatus.rejected,
            PairStatus.disputed,
        )
    ]


def progress_by_channel(*, session: Session) -> list[Progress]:
    """One row per channel that has pairs (and one, id None, for videos without one)."""
    rows = session.execute(
        select(Video.channel_id, Channel.title, Channel.url, *_status_sums())
        .select_from(Pair)
        .join(Video, Video.id == Pair.video_id)
        .outerjoin(Channel, Channel.id == Video.channel_id)
        .group_by(Video.channel_id, Channel.title, Channel.url)
        .order_by(Video.channel_id)
    ).all()
    return [
        Progress(cid, (title or url) if cid is not None else "(no channel)", *map(int, sums))
        for cid, title, url, *sums in rows
    ]


def progress_by_video(*, session: Session, channel_id: int | None = None) -> list[Progress]:
    query = (
        select(Video.id, Video.title, Video.source_url, *_status_sums())
        .select_from(Pair)
        .join(Video, Video.id == Pair.video_id)
        .group_by(Video.id, Video.title, Video.source_url)
        .order_by(Video.id)
    )
    if channel_id is not None:
        query = query.where(Video.channel_id == channel_id)
    return [
        Progress(vid, title or url, *map(int, sums))
        for vid, title, url, *sums in session.execute(query).all()
    ]


@dataclasses.dataclass(frozen=True)
class ReviewerStats:
    reviewer_id: int
    username: str
    decisions: int  # standing and undone votes in the window
    approvals: int
    rejections: int
    undos: int
    adjudications: int
    # Decisions per hour of active time (gaps under BREAK_S summed, at least
    # MIN_ACTIVE_S); None with fewer than MIN_DECISIONS_FOR_RATE decisions (too few).
    per_hour: float | None
    median_s_between: float | None  # median gap between consecutive decisions (< 10 min)
    mean_kappa: float | None  # mean Cohen's kappa against the reviewers they share pairs with
    gold_answered: int
    gold_accuracy: float | None


# Throughput: a gap of BREAK_S or more between two decisions is a break, not review time.
# The rate is over the active time (the gaps under BREAK_S), never less than MIN_ACTIVE_S,
# and only from MIN_DECISIONS_FOR_RATE decisions on: two decisions a second apart are not
# 7,200 an hour.
BREAK_S = 600
MIN_ACTIVE_S = 600
MIN_DECISIONS_FOR_RATE = 5


def decisions_per_hour(times: list[dt.datetime]) -> float | None:
    """Decisions per hour of active time, or None when there are too few to say."""
    if len(times) < MIN_DECISIONS_FOR_RATE:
        return None
    active = sum(
        gap
        for a, b in zip(times, times[1:], strict=False)
        if (gap := (b - a).total_seconds()) < BREAK_S
    )
    return len(times) / (max(active, MIN_ACTIVE_S) / 3600)


def reviewer_stats(
    *, session: Session, since: dt.datetime | None = None, with_agreement: bool = True
) -> list[ReviewerStats]:
    """Throughput and agreement per reviewer over the window (default: the last 7 days)."""
    since = since or utcnow() - dt.timedelta(days=7)
    rows = session.execute(
        select(Review.reviewer_id, User.username, Review.kind, Review.decision, Review.created_at)
        .join(User, User.id == Review.reviewer_id)
        .where(Review.created_at >= since)
        .order_by(Review.reviewer_id, Review.id)
    ).all()
    per: dict[tuple[int, str], list] = collections.defaultdict(list)
    for rid, name, kind, decision, at in rows:
        per[(rid, name)].append((kind, decision, at.replace(tzinfo=None)))
    kappas: dict[str, list[float]] = collections.defaultdict(list)
    if with_agreement:
        for row in agreement.report(session=session).pairwise:
            if row.cohen_kappa is not None:
                kappas[row.reviewer_a].append(row.cohen_kappa)
                kappas[row.reviewer_b].append(row.cohen_kappa)
    scored = {g.reviewer_id: g for g in gold.gold_accuracy(session=session)}
    out = []
    for (rid, name), items in sorted(per.items(), key=lambda kv: kv[0][1]):
        votes = [i for i in items if i[0] == ReviewKind.review]
        times = [i[2] for i in items if i[0] != ReviewKind.undo]
        gaps = [
            (b - a).total_seconds()
            for a, b in zip(times, times[1:], strict=False)
            if (b - a).total_seconds() < BREAK_S  # longer gaps are breaks, not review time
        ]
        g = scored.get(rid)
        out.append(
            ReviewerStats(
                reviewer_id=rid,
                username=name,
                decisions=len(votes),
                approvals=sum(1 for v in votes if v[1] == "approve"),
                rejections=sum(1 for v in votes if v[1] == "reject"),
                undos=sum(1 for i in items if i[0] == ReviewKind.undo),
                adjudications=sum(1 for i in items if i[0] == ReviewKind.adjudication),
                per_hour=decisions_per_hour(times),
                median_s_between=statistics.median(gaps) if gaps else None,
                mean_kappa=statistics.fmean(kappas[name]) if kappas.get(name) else None,
                gold_answered=g.answered if g else 0,
                gold_accuracy=g.accuracy if g else None,
            )
        )
    return out


@dataclasses.dataclass(frozen=True)
class ThroughputBucket:
    start: dt.datetime
    username: str
    decisions: int


def throughput(
    *, session: Session, since: dt.datetime | None = None, bucket_s: int = 3600
) -> list[ThroughputBucket]:
    """Decisions per reviewer per time bucket (default hourly over the last 7 days)."""
    since = since or utcnow() - dt.timedelta(days=7)
    bucket_s = max(60, bucket_s)
    rows = session.execute(
        select(User.username, Review.created_at)
        .join(User, User.id == Review.reviewer_id)
        .where(Review.created_at >= since, Review.kind != ReviewKind.undo)
    ).all()
    counts: collections.Counter[tuple[dt.datetime, str]] = collections.Counter()
    for name, at in rows:
        at = at if at.tzinfo else at.replace(tzinfo=dt.UTC)
        start = dt.datetime.fromtimestamp(at.timestamp() // bucket_s * bucket_s, dt.UTC)
        counts[(start, name)] += 1
    return [ThroughputBucket(s, n, c) for (s, n), c in sorted(counts.items())]
