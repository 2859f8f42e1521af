"""Leases: which reviewer holds which pair for now. ``lease_next`` is the one place a pair
is leased from a queue; the review queue (``claim_next``), the grid (``claim_batch``) and
adjudication all go through it.

A lease is an Assignment row, open while ``completed_at`` is null and ``expires_at`` is
in the future; an expired one protects nothing. One row per (pair, reviewer): it is
completed when the reviewer decides or skips the pair, and stays as the record that they
passed it.

Concurrency, the same for every queue. ``lease_next`` walks the queue in one statement and
writes the leases in a second one, ``INSERT ... SELECT ... WHERE <the pair still has room>
ON CONFLICT DO UPDATE RETURNING``, which checks again, at the moment it writes, that
nobody filled the pair meanwhile; only the pairs it returns are leased.

- Postgres: the walk is ``SELECT ... FOR UPDATE SKIP LOCKED``, so two reviewers walking
  at the same moment take different rows. Because the leases live in another table, a
  row we lock may have been leased by a transaction that committed after the walk's
  snapshot was taken; the INSERT is a new statement, and READ COMMITTED gives it a fresh
  snapshot, taken while the row lock is ours, so it sees that lease.
- SQLite has no row locks, but a single writer: the INSERT, a write, takes the database's
  write lock before it reads anything (waiting, busy_timeout, for whoever holds it), so
  its check sees every lease committed before it. The walk before it may be stale; then
  the INSERT leases nothing and the walk goes on. pysqlite opens a transaction on the
  first write only, so no read before it holds an old snapshot. (``held_leases`` starts
  with a write of its own, dropping the caller's expired leases: from there on the whole
  claim runs under the write lock, and the walk is never stale.)

The walk orders by priority, then id, over pending pairs: the partial index
``ix_pairs_pending_queue``, so a claim costs what the open leases cost, not what the
number of pairs does (pairs may grow to millions).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import DateTime, Integer, delete, exists, func, literal, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.models import Assignment, Pair, PairStatus, User


def _open(now: dt.datetime) -> Any:
    return Assignment.completed_at.is_(None) & (Assignment.expires_at > now)


def holds_any_lease(reviewer_id: int, now: dt.datetime) -> Any:
    """The reviewer holds an open lease, on any pair."""
    return exists().where(Assignment.reviewer_id == reviewer_id, _open(now))


def passed_by(reviewer_id: int) -> Any:
    """This reviewer decided or skipped the pair already (a completed lease)."""
    return exists().where(
        Assignment.pair_id == Pair.id,
        Assignment.reviewer_id == reviewer_id,
        Assignment.completed_at.is_not(None),
    )


def _held_by(reviewer_id: int, now: dt.datetime) -> Any:
    return exists().where(
        Assignment.pair_id == Pair.id, Assignment.reviewer_id == reviewer_id, _open(now)
    )


def _has_room(reviewer_id: int, now: dt.datetime, slots: Any) -> Any:
    """Fewer than ``slots`` other reviewers hold an open lease on the pair."""
    others = (
        select(func.count())
        .select_from(Assignment)
        .where(Assignment.pair_id == Pair.id, Assignment.reviewer_id != reviewer_id, _open(now))
        .correlate(Pair)
        .scalar_subquery()
    )
    return others < slots


def renew_lease(
    *, session: Session, pair_id: int, reviewer_id: int, now: dt.datetime, expires: dt.datetime
) -> None:
    """Lease one given pair to the reviewer, outside any queue (a gold pair, an undone
    decision): their row is reopened if they have one."""
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


def held_leases(
    *, session: Session, reviewer: User, now: dt.datetime, where: Sequence[Any] = ()
) -> list[tuple[Assignment, Pair]]:
    """The reviewer's open leases on pairs that match ``where``, in queue order: a reviewer
    who reloads the page keeps what they were looking at.

    Their expired leases are dropped first: an expired lease protects nothing, and a gold
    pair whose lease lapsed may be served to them again."""
    session.execute(
        delete(Assignment).where(
            Assignment.reviewer_id == reviewer.id,
            Assignment.completed_at.is_(None),
            Assignment.expires_at <= now,
        )
    )
    rows = session.execute(
        select(Assignment, Pair)
        .join(Pair, Pair.id == Assignment.pair_id)
        .where(Assignment.reviewer_id == reviewer.id, _open(now), *where)
        .order_by(Pair.priority, Pair.id)
        .execution_options(populate_existing=True)
    ).all()
    return [(lease, pair) for lease, pair in rows]


def lease_next(
    *,
    session: Session,
    reviewer: User,
    status: PairStatus,
    where: Sequence[Any] = (),
    slots: Any = 1,
    count: int = 1,
    lease_s: int,
    now: dt.datetime,
    exclude: Collection[int] = (),
) -> list[Pair]:
    """Lease up to ``count`` pairs in ``status`` that match ``where`` to ``reviewer``,
    first in queue order (priority, then id); returned in that order.

    ``slots``: how many reviewers may hold a pair at once (a number, or an SQL expression
    over the pair). Pairs the reviewer holds already and those in ``exclude`` are passed
    over. Writes the leases and does not commit: the caller's transaction decides.
    """
    expires = now + dt.timedelta(seconds=lease_s)
    room = _has_room(reviewer.id, now, slots)
    insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    skip = set(exclude)
    leased: list[Pair] = []
    while len(leased) < count:
        walk = (
            select(Pair)
            .where(Pair.status == status, room, ~_held_by(reviewer.id, now), *where)
            .order_by(Pair.priority, Pair.id)
            .limit(count - len(leased))
            .with_for_update(skip_locked=True, of=Pair)  # SQLite leaves it out
            .execution_options(populate_existing=True)
        )
        if skip:
            walk = walk.where(Pair.id.not_in(skip))
        found = list(session.scalars(walk))
        if not found:
            break
        ids = [p.id for p in found]
        skip.update(ids)
        stmt = insert(Assignment).from_select(
            ["pair_id", "reviewer_id", "leased_at", "expires_at"],
            select(
                Pair.id,
                literal(reviewer.id, Integer),
                literal(now, DateTime(timezone=True)),
                literal(expires, DateTime(timezone=True)),
            ).where(Pair.id.in_(ids), Pair.status == status, room),
        )
        # The conflict is the reviewer's own row: an expired lease of theirs, or (an admin
        # adjudicating) the completed one of their vote. Either way it is theirs again.
        won = set(
            session.scalars(
                stmt.on_conflict_do_update(
                    index_elements=[Assignment.pair_id, Assignment.reviewer_id],
                    set_={
                        "leased_at": stmt.excluded.leased_at,
                        "expires_at": stmt.excluded.expires_at,
                        "completed_at": None,
                    },
                ).returning(Assignment.pair_id)
            )
        )
        leased.extend(p for p in found if p.id in won)
    leased.sort(key=lambda p: (p.priority, p.id))
    return leased
