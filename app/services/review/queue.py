"""The review queue: filters, ``claim_next``, ``claim_batch`` and ``claim_ahead``.

Claiming is the hot path: a reviewer waits on every claim, so it must not slow down as
pairs grow to millions. The leases themselves, and how concurrent claims stay apart on
Postgres and SQLite, are ``leases.lease_next``'s; this module says which pairs the queue
hands out.

k reviews per pair (settings.reviews_per_pair, or the pair's own ``reviews_needed``): a
pair is handed out while its standing reviews plus other reviewers' open leases are
fewer than k, never twice to one reviewer. About one claim in ``gold_every`` serves a gold
pair the reviewer has not seen yet instead.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import random
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import exists, func, or_, select
from sqlalchemy.orm import Session

from app.models import Assignment, GoldAnswer, Pair, PairStatus, User, Video, utcnow
from app.services.review.errors import ReviewError
from app.services.review.leases import (
    held_leases,
    holds_any_lease,
    lease_next,
    passed_by,
    renew_lease,
)
from app.settings import get_settings

_rng = random.Random()


@dataclasses.dataclass(frozen=True)
class QueueFilters:
    """What a reviewer asked to see. None means any. ``status`` applies to listings
    (grid, search); the queue itself only ever hands out pending pairs."""

    channel_id: int | None = None
    video_id: int | None = None
    source_kind: str | None = None  # file | upload | http | youtube
    magnification: int | None = None
    status: str | None = None

    def clauses(self) -> list[Any]:
        out: list[Any] = []
        if self.video_id is not None:
            out.append(Pair.video_id == self.video_id)
        if self.channel_id is not None or self.source_kind is not None:
            videos = select(Video.id)
            if self.channel_id is not None:
                videos = videos.where(Video.channel_id == self.channel_id)
            if self.source_kind is not None:
                videos = videos.where(Video.source_kind == self.source_kind)
            out.append(Pair.video_id.in_(videos))
        if self.magnification is not None:
            out.append(Pair.magnification == self.magnification)
        if self.status is not None:
            out.append(Pair.status == self.status)
        return out


NO_FILTERS = QueueFilters()


def _slots(k: int) -> Any:
    """How many more reviewers may hold the pair: the reviews it still lacks."""
    return func.coalesce(Pair.reviews_needed, k) - Pair.review_count


def _gold_coin(rng: random.Random | None, gold_every: int) -> bool:
    return bool(gold_every) and (rng or _rng).random() * gold_every < 1


def _with_defaults(
    lease_s: int | None,
    now: dt.datetime | None,
    filters: QueueFilters | None,
    reviews_per_pair: int | None,
    gold_every: int | None,
) -> tuple[int, dt.datetime, QueueFilters, int, int]:
    """A claim's arguments with the settings' values where the caller left them None:
    (lease_s, now, filters, k, gold_every)."""
    settings = get_settings()
    return (
        settings.lease_s if lease_s is None else lease_s,
        now or utcnow(),
        filters or NO_FILTERS,
        reviews_per_pair or settings.reviews_per_pair,
        settings.gold_every if gold_every is None else gold_every,
    )


def claim_next(
    *,
    session: Session,
    reviewer: User,
    lease_s: int | None = None,
    now: dt.datetime | None = None,
    filters: QueueFilters | None = None,
    reviews_per_pair: int | None = None,
    gold_every: int | None = None,
    rng: random.Random | None = None,
) -> Pair | None:
    """Lease the next pair to ``reviewer`` (or refresh the lease they already hold).

    Order: priority ascending (the pipeline confidence by default: least sure first), then
    id. A pair is handed out while its reviews plus other reviewers' open leases are fewer
    than k (``reviews_per_pair``, default settings.reviews_per_pair); a pair this
    reviewer decided or skipped is never handed to them again. About one claim in
    ``gold_every`` serves a gold pair they have not seen yet instead. ``filters`` narrow
    the queue (channel, video, source, magnification); a held pair outside them is let go.
    Defaults (None) come from the settings.

    The usual claim, by a reviewer who holds no lease, is ``lease_next`` alone: two
    statements and one commit. Everything else (a held lease, a gold pair) goes the way
    of ``claim_batch``.
    """
    lease_s, now, filters, k, gold_every = _with_defaults(
        lease_s, now, filters, reviews_per_pair, gold_every
    )
    gold = _gold_coin(rng, gold_every)
    if not gold and filters.status in (None, PairStatus.pending):
        pairs = lease_next(
            session=session,
            reviewer=reviewer,
            status=PairStatus.pending,
            where=[
                ~holds_any_lease(reviewer.id, now),
                ~passed_by(reviewer.id),
                *filters.clauses(),
            ],
            slots=_slots(k),
            lease_s=lease_s,
            now=now,
        )
        if pairs:
            session.commit()
            return pairs[0]
        session.rollback()
    got = _claim(
        session=session,
        reviewer=reviewer,
        limit=1,
        lease_s=lease_s,
        now=now,
        filters=filters,
        k=k,
        gold=lambda: gold,
    )
    return got[0] if got else None


def claim_batch(
    *,
    session: Session,
    reviewer: User,
    limit: int,
    lease_s: int | None = None,
    now: dt.datetime | None = None,
    filters: QueueFilters | None = None,
    reviews_per_pair: int | None = None,
    gold_every: int | None = None,
    rng: random.Random | None = None,
) -> list[Pair]:
    """Lease up to ``limit`` pairs at once (grid triage): the held ones, topped up with new
    ones; returned in queue order. Same guarantees as ``claim_next``."""
    lease_s, now, filters, k, every = _with_defaults(
        lease_s, now, filters, reviews_per_pair, gold_every
    )
    return _claim(
        session=session,
        reviewer=reviewer,
        limit=limit,
        lease_s=lease_s,
        now=now,
        filters=filters,
        k=k,
        gold=lambda: _gold_coin(rng, every),
    )


def claim_ahead(
    *,
    session: Session,
    reviewer: User,
    exclude: Collection[int],
    filters: QueueFilters | None = None,
) -> Pair | None:
    """Lease one more pair to ``reviewer`` besides the ones in ``exclude`` (the pair on
    screen and those whose decisions are still being saved): the review page prefetches
    the next pair while the current one is shown.

    ``claim_batch`` hands out the held pairs first, then new ones, with the queue's
    guarantees; asking for one more than ``exclude`` holds gives the pair after them.
    """
    skip = {int(i) for i in exclude}
    pairs = claim_batch(session=session, reviewer=reviewer, limit=len(skip) + 1, filters=filters)
    return next((p for p in pairs if p.id not in skip), None)


def _claim(
    *,
    session: Session,
    reviewer: User,
    limit: int,
    lease_s: int,
    now: dt.datetime,
    filters: QueueFilters,
    k: int,
    gold: Callable[[], bool],
) -> list[Pair]:
    """The held leases, a gold pair if ``gold()`` says so, new leases up to ``limit``;
    one commit."""
    if filters.status not in (None, PairStatus.pending):
        raise ReviewError("the queue hands out pending pairs only")
    wanted = filters.clauses()
    limit = max(1, min(limit, 200))
    expires = now + dt.timedelta(seconds=lease_s)

    is_gold = Pair.id.in_(select(GoldAnswer.pair_id))
    held = held_leases(
        session=session,
        reviewer=reviewer,
        now=now,
        where=[or_(Pair.status == PairStatus.pending, is_gold)],
    )
    pairs: list[Pair] = []
    for lease, pair in held:
        matches = not wanted or session.scalar(
            select(func.count()).select_from(Pair).where(Pair.id == pair.id, *wanted)
        )
        if matches and len(pairs) < limit:
            lease.expires_at = expires
            pairs.append(pair)
        elif not matches:
            lease.expires_at = now  # outside the new filters: back to the queue at once
    if len(pairs) >= limit:
        session.commit()
        return pairs

    if gold():
        gold_pair = session.scalars(
            select(Pair)
            .join(GoldAnswer, GoldAnswer.pair_id == Pair.id)
            .where(
                ~exists().where(
                    Assignment.pair_id == Pair.id, Assignment.reviewer_id == reviewer.id
                ),
                *wanted,
            )
            .order_by(Pair.id)
            .limit(1)
            .execution_options(populate_existing=True)
        ).first()
        if gold_pair is not None:
            renew_lease(
                session=session,
                pair_id=gold_pair.id,
                reviewer_id=reviewer.id,
                now=now,
                expires=expires,
            )
            pairs.append(gold_pair)

    pairs += lease_next(
        session=session,
        reviewer=reviewer,
        status=PairStatus.pending,
        where=[~passed_by(reviewer.id), *wanted],
        slots=_slots(k),
        count=limit - len(pairs),
        lease_s=lease_s,
        now=now,
        exclude=[p.id for p in pairs],
    )
    session.commit()
    pairs.sort(key=lambda p: (p.priority, p.id))
    return pairs
