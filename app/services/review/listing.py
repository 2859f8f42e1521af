"""Reads for the grid, search and dashboards: ``list_pairs``, ``filter_options``,
``queue_counts``. Nothing here leases or writes.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from sqlalchemy import and_, exists, func, select
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    Channel,
    Pair,
    PairStatus,
    Video,
    utcnow,
)
from app.services import redact
from app.services.review.queue import NO_FILTERS, QueueFilters


@dataclasses.dataclass(frozen=True)
class QueueCounts:
    pending: int
    approved: int
    rejected: int
    leased: int  # pending pairs someone holds an unexpired lease on
    disputed: int = 0  # waiting for adjudication

    @property
    def total(self) -> int:
        return self.pending + self.approved + self.rejected + self.disputed


def queue_counts(*, session: Session, now: dt.datetime | None = None) -> QueueCounts:
    now = now or utcnow()
    by_status = dict(session.execute(select(Pair.status, func.count()).group_by(Pair.status)).all())
    leased = session.scalar(
        select(func.count(func.distinct(Assignment.pair_id)))
        .join(Pair, Pair.id == Assignment.pair_id)
        .where(
            and_(
                Pair.status == PairStatus.pending,
                Assignment.completed_at.is_(None),
                Assignment.expires_at > now,
            )
        )
    )
    return QueueCounts(
        pending=by_status.get(PairStatus.pending, 0),
        approved=by_status.get(PairStatus.approved, 0),
        rejected=by_status.get(PairStatus.rejected, 0),
        leased=leased or 0,
        disputed=by_status.get(PairStatus.disputed, 0),
    )


def list_pairs(
    *,
    session: Session,
    filters: QueueFilters | None = None,
    limit: int = 48,
    offset: int = 0,
) -> tuple[int, list[Pair]]:
    """(total, page) of pairs matching ``filters``, in queue order (priority, id): the
    grid's listing and the admin's search. Reads only; leases are ``claim_batch``'s."""
    wanted = (filters or NO_FILTERS).clauses()
    limit = max(1, min(limit, 500))
    total = session.scalar(select(func.count()).select_from(Pair).where(*wanted)) or 0
    page = session.scalars(
        select(Pair)
        .where(*wanted)
        .order_by(Pair.priority, Pair.id)
        .limit(limit)
        .offset(max(0, offset))
    ).all()
    return total, list(page)


@dataclasses.dataclass(frozen=True)
class FilterOptions:
    """The values the queue's filters can take (for the filter controls)."""

    channels: list[tuple[int, str]]  # (id, title or url)
    videos: list[tuple[int, str]]  # (id, title or source url)
    sources: list[str]
    magnifications: list[int]
    statuses: list[str]


def filter_options(*, session: Session) -> FilterOptions:
    channels = session.execute(
        select(Channel.id, Channel.title, Channel.url).order_by(Channel.id)
    ).all()
    videos = session.execute(
        select(Video.id, Video.title, Video.source_url)
        .where(exists().where(Pair.video_id == Video.id))
        .order_by(Video.id)
    ).all()
    sources = session.scalars(
        select(Video.source_kind).distinct().order_by(Video.source_kind)
    ).all()
    mags = session.scalars(
        select(Pair.magnification)
        .where(Pair.magnification.is_not(None))
        .distinct()
        .order_by(Pair.magnification)
    ).all()
    return FilterOptions(
        channels=[(i, t or u) for i, t, u in channels],
        # An untitled local video by its file name: the listing is every reviewer's.
        videos=[(i, t or redact.source_name(None, u)) for i, t, u in videos],
        sources=list(sources),
        magnifications=list(mags),
        statuses=[s.value for s in PairStatus],
    )
