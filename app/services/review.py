"""The review queue: leases on pending pairs, decisions, caption edits, history.

Claiming is the hot path (DESIGN.md, "Scale": the claim must not slow down as pairs grow
to millions): it walks the ``(status, priority, id)`` index in order and stops at the
first pair that nobody else holds, so its cost depends on the number of open leases, not
on the number of pairs.

Concurrency:
- Postgres: ``SELECT ... FOR UPDATE SKIP LOCKED`` makes two reviewers claiming at the same
  moment take different rows. Because the lease lives in another table (assignments), a
  row we lock may have been leased by a transaction that committed after our statement's
  snapshot was taken; so after taking the row lock we look again, in a new statement (READ
  COMMITTED gives it a fresh snapshot), and move on if someone else holds it.
- SQLite has no row locks, but it has a single writer. ``claim_next`` issues a write
  first (it drops the caller's expired leases), which starts the transaction *and* takes
  SQLite's write lock before anything is read, the equivalent of ``BEGIN IMMEDIATE``.
  Every other claim then waits (busy_timeout) until this one commits, and reads what it
  wrote. pysqlite only opens a transaction on the first DML statement, so the reads before
  it (loading the user) hold no stale snapshot.
- Decisions and edits use optimistic concurrency: an ``UPDATE ... WHERE version = :seen``
  that changes no row means someone else wrote first, and ``ConflictError`` is raised.

Every function here commits its own unit of work: a lease that is not committed protects
nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
from typing import Any, Literal

from sqlalchemy import and_, delete, exists, func, select, update
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    Pair,
    PairRevision,
    PairStatus,
    RejectReason,
    Review,
    User,
    utcnow,
)
from app.services import audit

_logger = logging.getLogger(__name__)

Decision = Literal["approve", "reject"]
EDITABLE_FIELDS: tuple[str, ...] = ("caption", "medical_text", "roi_text")
MAX_TEXT_LEN = 20_000
MAX_COMMENT_LEN = 2_000


class ReviewError(ValueError):
    """The request itself is invalid (missing reason, unknown field, ...)."""


class PairNotFoundError(LookupError):
    pass


class ConflictError(Exception):
    """Someone else changed the pair since the caller read it."""

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


@dataclasses.dataclass(frozen=True)
class QueueCounts:
    pending: int
    approved: int
    rejected: int
    leased: int  # pending pairs someone holds an unexpired lease on

    @property
    def total(self) -> int:
        return self.pending + self.approved + self.rejected


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    kind: Literal["edit", "review"]
    created_at: dt.datetime
    username: str | None
    decision: str | None = None
    reason: str | None = None
    comment: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


def _open_lease_by_other(pair_id_col: Any, reviewer_id: int, now: dt.datetime) -> Any:
    return exists().where(
        Assignment.pair_id == pair_id_col,
        Assignment.reviewer_id != reviewer_id,
        Assignment.completed_at.is_(None),
        Assignment.expires_at > now,
    )


def claim_next(
    *, session: Session, reviewer: User, lease_s: int, now: dt.datetime | None = None
) -> Pair | None:
    """Lease the next pending pair to ``reviewer`` (or refresh the lease they already hold).

    Order: priority ascending, then id. A pair leased (unexpired, uncompleted) by another
    reviewer is never handed out; one this reviewer skipped is not handed to them again.
    """
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

    # A reviewer who reloads the page keeps the pair they were looking at.
    held = session.scalars(
        select(Assignment)
        .join(Pair, Pair.id == Assignment.pair_id)
        .where(
            Assignment.reviewer_id == reviewer.id,
            Assignment.completed_at.is_(None),
            Assignment.expires_at > now,
            Pair.status == PairStatus.pending,
        )
        .order_by(Pair.priority, Pair.id)
        .limit(1)
    ).first()
    if held is not None:
        held.expires_at = expires
        pair = session.get(Pair, held.pair_id)
        session.commit()
        return pair

    passed_by_me = exists().where(
        Assignment.pair_id == Pair.id,
        Assignment.reviewer_id == reviewer.id,
        Assignment.completed_at.is_not(None),
    )
    seen: list[int] = []
    while True:
        query = (
            select(Pair)
            .where(
                Pair.status == PairStatus.pending,
                ~_open_lease_by_other(Pair.id, reviewer.id, now),
                ~passed_by_me,
            )
            .order_by(Pair.priority, Pair.id)
            .limit(1)
        )
        if seen:
            query = query.where(Pair.id.not_in(seen))
        if postgres:
            query = query.with_for_update(skip_locked=True, of=Pair)
        pair = session.scalars(query).first()
        if pair is None:
            session.commit()
            return None
        if postgres:
            # Re-check in a new statement: its snapshot sees leases committed after the
            # first statement started (the row lock guarantees they are committed now).
            taken = session.scalar(select(_open_lease_by_other(pair.id, reviewer.id, now)))
            if taken:
                seen.append(pair.id)
                continue
        lease = session.scalar(
            select(Assignment).where(
                Assignment.pair_id == pair.id, Assignment.reviewer_id == reviewer.id
            )
        )
        if lease is None:
            session.add(
                Assignment(
                    pair_id=pair.id, reviewer_id=reviewer.id, leased_at=now, expires_at=expires
                )
            )
        else:
            lease.leased_at, lease.expires_at, lease.completed_at = now, expires, None
        session.commit()
        return pair


def skip(*, session: Session, pair_id: int, reviewer: User, now: dt.datetime | None = None) -> None:
    """Give a pair back without deciding: others may claim it, this reviewer won't get it again."""
    now = now or utcnow()
    lease = session.scalar(
        select(Assignment).where(
            Assignment.pair_id == pair_id, Assignment.reviewer_id == reviewer.id
        )
    )
    if lease is None:
        if session.get(Pair, pair_id) is None:
            raise PairNotFoundError(f"pair {pair_id} not found")
        lease = Assignment(pair_id=pair_id, reviewer_id=reviewer.id, leased_at=now)
        session.add(lease)
    lease.expires_at = now
    lease.completed_at = now
    session.commit()


def get_pair(*, session: Session, pair_id: int) -> Pair:
    pair = session.get(Pair, pair_id)
    if pair is None:
        raise PairNotFoundError(f"pair {pair_id} not found")
    return pair


def _bump(*, session: Session, pair_id: int, expected_version: int, values: dict[str, Any]) -> None:
    """Apply ``values`` and bump the version if nobody wrote since ``expected_version``."""
    result = session.execute(
        update(Pair)
        .where(Pair.id == pair_id, Pair.version == expected_version)
        .values(version=Pair.version + 1, updated_at=utcnow(), **values)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount == 1:
        return
    session.rollback()
    current = session.scalar(select(Pair.version).where(Pair.id == pair_id))
    if current is None:
        raise PairNotFoundError(f"pair {pair_id} not found")
    raise ConflictError(
        f"pair {pair_id} was changed by someone else (version {current}, you had {expected_version})",
        current_version=current,
    )


def validate_decision(
    *, decision: str, reason: RejectReason | str | None, comment: str | None
) -> tuple[RejectReason | None, str | None]:
    """Check a decision before anything is written: (reason, cleaned comment)."""
    if decision not in ("approve", "reject"):
        raise ReviewError("decision must be 'approve' or 'reject'")
    comment = (comment or "").strip() or None
    if comment and len(comment) > MAX_COMMENT_LEN:
        raise ReviewError(f"comment: at most {MAX_COMMENT_LEN} characters")
    if decision == "approve":
        return None, comment
    if not reason:
        raise ReviewError("a rejection needs a reason")
    try:
        reason_value = RejectReason(reason)
    except ValueError:
        raise ReviewError(f"unknown reject reason {reason!r}") from None
    if reason_value is RejectReason.other and not comment:
        raise ReviewError("reason 'other' needs a comment")
    return reason_value, comment


def decide(
    *,
    session: Session,
    pair_id: int,
    reviewer: User,
    decision: Decision | str,
    reason: RejectReason | str | None = None,
    comment: str | None = None,
    expected_version: int,
) -> Pair:
    """Approve or reject a pair: append a Review, set the status, bump the version."""
    reason_value, comment = validate_decision(decision=decision, reason=reason, comment=comment)
    now = utcnow()
    status = PairStatus.approved if decision == "approve" else PairStatus.rejected
    _bump(
        session=session,
        pair_id=pair_id,
        expected_version=expected_version,
        values={
            "status": status,
            "reject_reason": reason_value.value if reason_value else None,
            "reject_comment": comment if reason_value else None,
            "reviewed_by_id": reviewer.id,
            "reviewed_at": now,
        },
    )
    session.add(
        Review(
            pair_id=pair_id,
            reviewer_id=reviewer.id,
            decision=decision,
            reason=reason_value.value if reason_value else None,
            comment=comment,
            created_at=now,
        )
    )
    session.execute(
        update(Assignment)
        .where(
            Assignment.pair_id == pair_id,
            Assignment.reviewer_id == reviewer.id,
            Assignment.completed_at.is_(None),
        )
        .values(completed_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session=session,
        user=reviewer,
        action=f"pair.{decision}",
        target=f"pair:{pair_id}",
        reason=reason_value.value if reason_value else None,
        version=expected_version + 1,
    )
    session.commit()
    pair = get_pair(session=session, pair_id=pair_id)
    session.refresh(pair)
    return pair


def edit(
    *,
    session: Session,
    pair_id: int,
    user: User,
    fields: dict[str, Any],
    expected_version: int,
) -> Pair:
    """Change caption fields; append a PairRevision with the before and after values.

    Fields equal to their current value are ignored; when nothing changes, nothing is
    written (but a stale ``expected_version`` is still refused).
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ReviewError(f"not editable: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        if not isinstance(value, str):
            raise ReviewError(f"{name}: must be text")
        if len(value) > MAX_TEXT_LEN:
            raise ReviewError(f"{name}: at most {MAX_TEXT_LEN} characters")
    if "caption" in fields and not fields["caption"].strip():
        raise ReviewError("caption: must not be empty")
    pair = get_pair(session=session, pair_id=pair_id)
    session.refresh(pair)
    if pair.version != expected_version:
        raise ConflictError(
            f"pair {pair_id} was changed by someone else (version {pair.version}, "
            f"you had {expected_version})",
            current_version=pair.version,
        )
    before = {k: getattr(pair, k) for k, v in fields.items() if getattr(pair, k) != v}
    if not before:
        return pair
    after = {k: fields[k] for k in before}
    _bump(session=session, pair_id=pair_id, expected_version=expected_version, values=after)
    session.add(PairRevision(pair_id=pair_id, user_id=user.id, before=before, after=after))
    audit.record(
        session=session,
        user=user,
        action="pair.edit",
        target=f"pair:{pair_id}",
        fields=sorted(after),
        version=expected_version + 1,
    )
    session.commit()
    session.refresh(pair)
    return pair


def pair_history(*, session: Session, pair_id: int) -> list[HistoryEntry]:
    """Edits and decisions on a pair, oldest first."""
    get_pair(session=session, pair_id=pair_id)
    entries: list[HistoryEntry] = []
    revisions = session.execute(
        select(PairRevision, User.username)
        .outerjoin(User, User.id == PairRevision.user_id)
        .where(PairRevision.pair_id == pair_id)
        .order_by(PairRevision.id)
    ).all()
    for revision, username in revisions:
        entries.append(
            HistoryEntry(
                kind="edit",
                created_at=revision.created_at,
                username=username,
                before=revision.before,
                after=revision.after,
            )
        )
    reviews = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(Review.pair_id == pair_id)
        .order_by(Review.id)
    ).all()
    for review, username in reviews:
        entries.append(
            HistoryEntry(
                kind="review",
                created_at=review.created_at,
                username=username,
                decision=review.decision,
                reason=review.reason,
                comment=review.comment,
            )
        )
    # SQLite returns naive datetimes (all UTC); compare them as such.
    entries.sort(key=lambda e: e.created_at.replace(tzinfo=None))
    return entries


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
    )
