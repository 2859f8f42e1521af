"""The review queue: filters, leases, ``claim_next`` and ``claim_batch``.

Claiming is the hot path (DESIGN.md, "Scale": the claim must not slow down as pairs grow
to millions): it walks the ``(status, priority, id)`` index in order and stops at the
first pair that nobody else holds, so its cost depends on the number of open leases, not
on the number of pairs.

Concurrency:
- Postgres: ``SELECT ... FOR UPDATE SKIP LOCKED`` makes two reviewers claiming at the same
  moment take different rows. Because the lease lives in another table (assignments), a
  row we lock may have been leased by a transaction that committed after our statement's
  snapshot was taken; so after taking the row lock we look again, in a new statement (READ
  COMMITTED gives it a fresh snapshot), and move on if someone else holds it. The usual
  claim (``claim_next`` by a reviewer who holds no lease) takes two statements and one
  commit: the walk and the lease in one (``_claim_one_postgres``), then that re-check.
- SQLite has no row locks, but it has a single writer. ``claim_batch`` issues a write
  first (it drops the caller's expired leases), which starts the transaction *and* takes
  SQLite's write lock before anything is read, the equivalent of ``BEGIN IMMEDIATE``.
  Every other claim then waits (busy_timeout) until this one commits, and reads what it
  wrote. pysqlite only opens a transaction on the first DML statement, so the reads before
  it (loading the user) hold no stale snapshot.

k reviews per pair (settings.reviews_per_pair, or the pair's own ``reviews_needed``): a
pair is handed out while its standing reviews plus other reviewers' open leases are
fewer than k, never twice to one reviewer.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import random
from typing import Any

from sqlalchemy import DateTime, Integer, delete, exists, func, literal, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    GoldAnswer,
    Pair,
    PairStatus,
    User,
    Video,
    utcnow,
)
from app.services.review.errors import ReviewError
from app.settings import get_settings

_logger = logging.getLogger(__name__)


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


def _open_leases_by_others(pair_id_col: Any, reviewer_id: int, now: dt.datetime) -> Any:
    return (
        select(func.count())
        .select_from(Assignment)
        .where(
            Assignment.pair_id == pair_id_col,
            Assignment.reviewer_id != reviewer_id,
            Assignment.completed_at.is_(None),
            Assignment.expires_at > now,
        )
        .scalar_subquery()
    )


def _has_room(reviewer_id: int, now: dt.datetime, k: int) -> Any:
    """The pair still lacks reviews that nobody holds a lease for: k reviews per pair."""
    return Pair.review_count + _open_leases_by_others(Pair.id, reviewer_id, now) < func.coalesce(
        Pair.reviews_needed, k
    )


def _passed_by(reviewer_id: int) -> Any:
    """This reviewer decided or skipped the pair already: never hand it to them again."""
    return exists().where(
        Assignment.pair_id == Pair.id,
        Assignment.reviewer_id == reviewer_id,
        Assignment.completed_at.is_not(None),
    )


def renew_lease(
    session: Session, pair_id: int, reviewer_id: int, now: dt.datetime, expires: dt.datetime
) -> None:
    lease = session.scalar(
        select(Assignment).where(
            Assignment.pair_id == pair_id, Assignment.reviewer_id == reviewer_id
        )
    )
    if lease is None:
        session.add(
            Assignment(pair_id=pair_id, reviewer_id=reviewer_id, leased_at=now, expires_at=expires)
        )
    else:
        lease.leased_at, lease.expires_at, lease.completed_at = now, expires, None


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
    """
    settings = get_settings()
    rng = rng or _rng
    gold_every = settings.gold_every if gold_every is None else gold_every
    if session.get_bind().dialect.name == "postgresql" and (
        filters is None or filters.status in (None, PairStatus.pending)
    ):
        # Draw the gold coin once, here; the general path below must not draw again.
        gold = bool(gold_every) and rng.random() * gold_every < 1
        if not gold:
            pair = _claim_one_postgres(
                session=session,
                reviewer=reviewer,
                lease_s=settings.lease_s if lease_s is None else lease_s,
                now=now or utcnow(),
                filters=filters or NO_FILTERS,
                k=reviews_per_pair or settings.reviews_per_pair,
            )
            if pair is not None:
                return pair
        rng = _Drawn(gold)
        gold_every = 1
    got = claim_batch(
        session=session,
        reviewer=reviewer,
        limit=1,
        lease_s=lease_s,
        now=now,
        filters=filters,
        reviews_per_pair=reviews_per_pair,
        gold_every=gold_every,
        rng=rng,
    )
    return got[0] if got else None


class _Drawn(random.Random):
    """A coin already tossed: ``random()`` says gold (0.0) or not (1.0)."""

    def __init__(self, gold: bool) -> None:
        super().__init__(0)
        self._value = 0.0 if gold else 1.0

    def random(self) -> float:
        return self._value


def _claim_one_postgres(
    *,
    session: Session,
    reviewer: User,
    lease_s: int,
    now: dt.datetime,
    filters: QueueFilters,
    k: int,
) -> Pair | None:
    """The hot path on Postgres: a new lease for a reviewer who holds none, in two
    statements and one commit (the general path takes five statements).

    1. One statement walks the queue with ``FOR UPDATE SKIP LOCKED`` and writes the lease
       (``INSERT ... ON CONFLICT``, which also renews an expired lease of the caller's
       own on that pair), RETURNING the pair's id. It does nothing if the reviewer holds
       an open lease: a reload keeps the held pair, which the general path hands back.
    2. The re-check of the module docstring, in a new statement (a fresh snapshot, taken
       while the row lock is ours), also loads the pair. If someone else's lease committed
       after statement 1's snapshot, the lease is taken back and the walk goes on.

    None means "use the general path" (a held lease, an empty queue, or a contended one).
    """
    expires = now + dt.timedelta(seconds=lease_s)
    holds_one = exists().where(
        Assignment.reviewer_id == reviewer.id,
        Assignment.completed_at.is_(None),
        Assignment.expires_at > now,
    )
    for _ in range(3):
        candidate = (
            select(Pair.id)
            .where(
                ~holds_one,
                Pair.status == PairStatus.pending,
                _has_room(reviewer.id, now, k),
                ~_passed_by(reviewer.id),
                *filters.clauses(),
            )
            .order_by(Pair.priority, Pair.id)
            .limit(1)
            .with_for_update(skip_locked=True, of=Pair)
            .cte("candidate")
        )
        lease = pg_insert(Assignment).from_select(
            ["pair_id", "reviewer_id", "leased_at", "expires_at"],
            select(
                candidate.c.id,
                literal(reviewer.id, Integer),
                literal(now, DateTime(timezone=True)),
                literal(expires, DateTime(timezone=True)),
            ),
        )
        pair_id = session.scalar(
            lease.on_conflict_do_update(
                index_elements=[Assignment.pair_id, Assignment.reviewer_id],
                set_={
                    "leased_at": lease.excluded.leased_at,
                    "expires_at": lease.excluded.expires_at,
                    "completed_at": None,
                },
            ).returning(Assignment.pair_id)
        )
        if pair_id is None:
            session.rollback()
            return None
        pair = session.scalars(
            select(Pair)
            .where(
                Pair.id == pair_id,
                Pair.status == PairStatus.pending,
                _has_room(reviewer.id, now, k),
            )
            .execution_options(populate_existing=True)
        ).first()
        if pair is not None:
            session.commit()
            return pair
        # Leased by others after our snapshot: give it back and walk on (a new snapshot).
        session.execute(
            delete(Assignment).where(
                Assignment.pair_id == pair_id, Assignment.reviewer_id == reviewer.id
            )
        )
    session.rollback()
    return None


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
    settings = get_settings()
    lease_s = settings.lease_s if lease_s is None else lease_s
    k = reviews_per_pair or settings.reviews_per_pair
    gold_every = settings.gold_every if gold_every is None else gold_every
    filters = filters or NO_FILTERS
    if filters.status not in (None, PairStatus.pending):
        raise ReviewError("the queue hands out pending pairs only")
    wanted = filters.clauses()
    limit = max(1, min(limit, 200))
    now = now or utcnow()
    expires = now + dt.timedelta(seconds=lease_s)
    postgres = session.get_bind().dialect.name == "postgresql"

    # The write that comes first (see the module docstring): on SQLite it takes the write
    # lock before any read of this transaction.
    session.execute(
        delete(Assignment).where(
            Assignment.reviewer_id == reviewer.id,
            Assignment.completed_at.is_(None),
            Assignment.expires_at <= now,
        )
    )

    is_gold = Pair.id.in_(select(GoldAnswer.pair_id))
    # A reviewer who reloads the page keeps the pairs they were looking at.
    held_rows = session.execute(
        select(Assignment, Pair)
        .join(Pair, Pair.id == Assignment.pair_id)
        .where(
            Assignment.reviewer_id == reviewer.id,
            Assignment.completed_at.is_(None),
            Assignment.expires_at > now,
            or_(Pair.status == PairStatus.pending, is_gold),
        )
        .order_by(Pair.priority, Pair.id)
        .execution_options(populate_existing=True)
    ).all()
    pairs: list[Pair] = []
    for lease, pair in held_rows:
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

    rng = rng or _rng
    if gold_every and rng.random() * gold_every < 1:
        gold = session.scalars(
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
        if gold is not None:
            renew_lease(session, gold.id, reviewer.id, now, expires)
            pairs.append(gold)

    seen: list[int] = [p.id for p in pairs]
    while len(pairs) < limit:
        query = (
            select(Pair)
            .where(
                Pair.status == PairStatus.pending,
                _has_room(reviewer.id, now, k),
                ~_passed_by(reviewer.id),
                ~exists().where(
                    Assignment.pair_id == Pair.id,
                    Assignment.reviewer_id == reviewer.id,
                    Assignment.completed_at.is_(None),
                    Assignment.expires_at > now,
                ),
                *wanted,
            )
            .order_by(Pair.priority, Pair.id)
            .limit(limit - len(pairs))
            .execution_options(populate_existing=True)
        )
        if seen:
            query = query.where(Pair.id.not_in(seen))
        if postgres:
            query = query.with_for_update(skip_locked=True, of=Pair)
        found = list(session.scalars(query))
        if not found:
            break
        for pair in found:
            seen.append(pair.id)
            if postgres:
                # Re-check in a new statement: its snapshot sees leases and reviews
                # committed after the first statement started (the row lock guarantees
                # they are committed now).
                room = session.scalar(
                    select(func.count())
                    .select_from(Pair)
                    .where(
                        Pair.id == pair.id,
                        Pair.status == PairStatus.pending,
                        _has_room(reviewer.id, now, k),
                    )
                )
                if not room:
                    continue
            # No row of this reviewer's can exist for it: not passed, no open lease, and
            # their expired leases were deleted above.
            session.add(
                Assignment(
                    pair_id=pair.id, reviewer_id=reviewer.id, leased_at=now, expires_at=expires
                )
            )
            pairs.append(pair)
    session.commit()
    pairs.sort(key=lambda p: (p.priority, p.id))
    return pairs
