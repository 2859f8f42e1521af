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
  A decision first locks the pair's row (``_lock_pair``: a no-op UPDATE ... RETURNING,
  which is also SQLite's first write) and then compares versions, so two votes on one
  pair are counted one after the other, never lost.

k reviews per pair (settings.reviews_per_pair, or the pair's own ``reviews_needed``): a
pair is handed out while its standing reviews plus other reviewers' open leases are
fewer than k, never twice to one reviewer; the k-th vote settles it (unanimous: approved
or rejected; otherwise disputed, for consensus.adjudicate). History is append-only:
decisions are Review rows (with the status before and after), edits PairRevision rows,
and an undo is a Review of its own that names the one it takes back.

Every function here commits its own unit of work: a lease that is not committed protects
nothing.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import logging
import random
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.orm import Session, aliased

from app.models import (
    SUBPATHOLOGIES,
    Assignment,
    Channel,
    GoldAnswer,
    Pair,
    PairRevision,
    PairStatus,
    RejectReason,
    Review,
    ReviewKind,
    User,
    Video,
    utcnow,
)
from app.services import audit
from app.settings import get_settings

_logger = logging.getLogger(__name__)
_rng = random.Random()

Decision = Literal["approve", "reject"]
TEXT_FIELDS: tuple[str, ...] = ("caption", "medical_text", "roi_text")
TAG_FIELDS: tuple[str, ...] = ("magnification", "subpathology", "not_histology")
EDITABLE_FIELDS: tuple[str, ...] = TEXT_FIELDS + TAG_FIELDS
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
    disputed: int = 0  # waiting for adjudication

    @property
    def total(self) -> int:
        return self.pending + self.approved + self.rejected + self.disputed


@dataclasses.dataclass(frozen=True)
class HistoryEntry:
    """One row of a pair's history. Decisions carry the pair's status before and after
    (``{"status": ...}``); edits the changed fields."""

    kind: Literal["edit", "review", "adjudication", "undo"]
    created_at: dt.datetime
    username: str | None
    decision: str | None = None
    reason: str | None = None
    comment: str | None = None
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None


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


def _lease(
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
            _lease(session, gold.id, reviewer.id, now, expires)
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


def _lock_pair(session: Session, pair_id: int) -> Any:
    """The write that comes first: lock the pair's row and read its current state.

    Postgres: the no-op UPDATE takes the row lock (waiting for whoever holds it) and
    RETURNING gives the row as last committed. SQLite: it is the first write, so it takes
    the database's write lock before anything of this transaction is read.
    """
    row = session.execute(
        update(Pair)
        .where(Pair.id == pair_id)
        .values(version=Pair.version)
        .returning(Pair.version, Pair.status, Pair.review_count, Pair.reviews_needed)
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        session.rollback()
        raise PairNotFoundError(f"pair {pair_id} not found")
    return row


def _active_reviews(pair_id: int) -> Any:
    """Votes on a pair that no undo has taken back."""
    undone = select(Review.undoes_id).where(
        Review.pair_id == pair_id, Review.undoes_id.is_not(None)
    )
    return select(Review).where(
        Review.pair_id == pair_id,
        Review.kind != ReviewKind.undo,
        Review.id.not_in(undone),
    )


def _conflict(pair_id: int, current: int, expected: int) -> ConflictError:
    return ConflictError(
        f"pair {pair_id} was changed by someone else (version {current}, you had {expected})",
        current_version=current,
    )


def _complete_lease(session: Session, pair_id: int, reviewer_id: int, now: dt.datetime) -> None:
    done = session.execute(
        update(Assignment)
        .where(Assignment.pair_id == pair_id, Assignment.reviewer_id == reviewer_id)
        .values(completed_at=func.coalesce(Assignment.completed_at, now))
        .execution_options(synchronize_session=False)
    )
    if done.rowcount == 0:
        # Decided without a lease (detail page, API): still never offer it to them again.
        session.add(
            Assignment(
                pair_id=pair_id,
                reviewer_id=reviewer_id,
                leased_at=now,
                expires_at=now,
                completed_at=now,
            )
        )


def _settle(votes: list[tuple[str, str | None, str | None]]) -> tuple[str, str | None, str | None]:
    """(status, reason, comment) once k votes are in: unanimous, else disputed."""
    decisions = {d for d, _, _ in votes}
    if decisions == {"approve"}:
        return PairStatus.approved, None, None
    if decisions == {"reject"}:
        reasons = collections.Counter(r for _, r, _ in votes)
        reason = reasons.most_common(1)[0][0]
        comment = next((c for _, r, c in reversed(votes) if r == reason and c), None)
        return PairStatus.rejected, reason, comment
    return PairStatus.disputed, None, None


def decide(
    *,
    session: Session,
    pair_id: int,
    reviewer: User,
    decision: Decision | str,
    reason: RejectReason | str | None = None,
    comment: str | None = None,
    expected_version: int,
    reviews_per_pair: int | None = None,
) -> Pair:
    """Approve or reject a pair: append a Review (the caller's vote) and settle the pair
    once it has k votes: unanimous votes set approved/rejected, others ``disputed`` (the
    adjudication queue). A vote that does not settle the pair leaves its version alone,
    so the k reviewers of one pair never conflict with each other; a stale
    ``expected_version`` (an edit since) is a ``ConflictError``, as is a second vote by
    the same reviewer on a pending pair. On a pair already settled, a decision overrides
    (audited); disputed pairs are settled by admins (``consensus.adjudicate``).
    Gold pairs keep their known answer: the vote is only recorded (for accuracy).
    """
    reason_value, comment = validate_decision(decision=decision, reason=reason, comment=comment)
    reason_str = reason_value.value if reason_value else None
    k = reviews_per_pair or get_settings().reviews_per_pair
    now = utcnow()
    row = _lock_pair(session, pair_id)
    if row.version != expected_version:
        session.rollback()
        raise _conflict(pair_id, row.version, expected_version)
    status_before = row.status
    status_after = status_before
    mine = session.scalar(
        _active_reviews(pair_id)
        .where(Review.reviewer_id == reviewer.id, Review.kind == ReviewKind.review)
        .limit(1)
    )
    gold = session.get(GoldAnswer, pair_id)
    if (gold is not None or status_before == PairStatus.pending) and mine is not None:
        session.rollback()
        raise ConflictError(
            f"you already reviewed pair {pair_id}; undo it to decide again",
            current_version=row.version,
        )
    if gold is not None:
        pass  # the known answer stands; the vote is scored against it
    elif status_before == PairStatus.pending:
        count = row.review_count + 1
        needed = row.reviews_needed or k
        values: dict[str, Any] = {"review_count": count}
        if count >= needed:
            votes = [
                (r.decision, r.reason, r.comment)
                for r in session.scalars(
                    _active_reviews(pair_id)
                    .where(Review.kind == ReviewKind.review)
                    .order_by(Review.id)
                )
            ]
            votes.append((decision, reason_str, comment))
            status_after, final_reason, final_comment = _settle(votes)
            values.update(
                status=status_after,
                reject_reason=final_reason,
                reject_comment=final_comment,
                reviewed_by_id=reviewer.id,
                reviewed_at=now,
                version=Pair.version + 1,
                updated_at=now,
            )
        session.execute(
            update(Pair)
            .where(Pair.id == pair_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    elif status_before == PairStatus.disputed:
        session.rollback()
        raise ReviewError(f"pair {pair_id} is disputed: an admin settles it (adjudication)")
    else:
        status_after = PairStatus.approved if decision == "approve" else PairStatus.rejected
        session.execute(
            update(Pair)
            .where(Pair.id == pair_id)
            .values(
                status=status_after,
                reject_reason=reason_str,
                reject_comment=comment if reason_value else None,
                reviewed_by_id=reviewer.id,
                reviewed_at=now,
                review_count=Pair.review_count + 1,
                version=Pair.version + 1,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
    session.add(
        Review(
            pair_id=pair_id,
            reviewer_id=reviewer.id,
            kind=ReviewKind.review,
            decision=decision,
            reason=reason_str,
            comment=comment,
            pair_version=expected_version,
            status_before=status_before,
            status_after=status_after,
            created_at=now,
        )
    )
    _complete_lease(session, pair_id, reviewer.id, now)
    audit.record(
        session=session,
        user=reviewer,
        action=f"pair.{decision}",
        target=f"pair:{pair_id}",
        reason=reason_str,
        status=status_after,
        version=expected_version + (status_after != status_before),
    )
    session.commit()
    pair = get_pair(session=session, pair_id=pair_id)
    session.refresh(pair)
    return pair


@dataclasses.dataclass(frozen=True)
class BatchOutcome:
    pair_id: int
    ok: bool
    status: str | None = None
    version: int | None = None
    error: str | None = None
    conflict: bool = False


def decide_many(
    *,
    session: Session,
    reviewer: User,
    items: Sequence[tuple[int, int]],
    decision: Decision | str,
    reason: RejectReason | str | None = None,
    comment: str | None = None,
) -> list[BatchOutcome]:
    """Grid triage: one decision on many ``(pair_id, expected_version)``. Each pair is its
    own unit of work; a conflict or a missing pair is reported in its outcome and the
    others go on (one bad item never fails a batch)."""
    validate_decision(decision=decision, reason=reason, comment=comment)
    outcomes: list[BatchOutcome] = []
    for pair_id, version in items:
        try:
            pair = decide(
                session=session,
                pair_id=pair_id,
                reviewer=reviewer,
                decision=decision,
                reason=reason,
                comment=comment,
                expected_version=version,
            )
        except ConflictError as exc:
            outcomes.append(
                BatchOutcome(
                    pair_id, False, version=exc.current_version, error=str(exc), conflict=True
                )
            )
        except (PairNotFoundError, ReviewError) as exc:
            outcomes.append(BatchOutcome(pair_id, False, error=str(exc)))
        else:
            outcomes.append(BatchOutcome(pair_id, True, status=pair.status, version=pair.version))
    return outcomes


def undo_last(
    *, session: Session, reviewer: User, lease_s: int | None = None, now: dt.datetime | None = None
) -> Pair | None:
    """Take back the caller's last decision that still stands; None when there is none.

    Appends an ``undo`` Review (the undone one stays: nothing is deleted). A vote is
    taken out of the pair's count and a pair it settled goes back to pending; an
    adjudication puts the pair back to disputed. The caller gets a fresh lease on the
    pair, so the next claim shows it again. ``ConflictError`` when someone settled or
    overrode the pair after this decision.
    """
    now = now or utcnow()
    lease_s = get_settings().lease_s if lease_s is None else lease_s
    undone = select(Review.undoes_id).where(
        Review.reviewer_id == reviewer.id, Review.undoes_id.is_not(None)
    )
    last = session.scalar(
        select(Review)
        .where(
            Review.reviewer_id == reviewer.id,
            Review.kind != ReviewKind.undo,
            Review.id.not_in(undone),
        )
        .order_by(Review.id.desc())
        .limit(1)
    )
    if last is None:
        return None
    row = _lock_pair(session, last.pair_id)
    gold = session.get(GoldAnswer, last.pair_id) is not None
    if not gold:
        later = session.scalars(
            _active_reviews(last.pair_id).where(
                Review.id > last.id, Review.reviewer_id != reviewer.id
            )
        ).all()
        if any(
            r.kind == ReviewKind.adjudication or r.status_before != PairStatus.pending
            for r in later
        ):
            session.rollback()
            raise ConflictError(
                f"pair {last.pair_id} was settled by someone else after your decision",
                current_version=row.version,
            )
    status_before = row.status
    values: dict[str, Any] = {}
    restore: Review | None = None
    if gold:
        status_after = status_before  # the known answer stands; only the vote goes
    else:
        if last.kind == ReviewKind.review:
            values["review_count"] = Pair.review_count - 1
        # Back to what the pair was before this decision: pending for a vote, disputed
        # for an adjudication, the earlier verdict for an override.
        fallback = (
            PairStatus.disputed if last.kind == ReviewKind.adjudication else PairStatus.pending
        )
        status_after = last.status_before or fallback
        if status_after in (PairStatus.approved, PairStatus.rejected):
            restore = session.scalar(
                _active_reviews(last.pair_id)
                .where(Review.id < last.id, Review.status_after == status_after)
                .order_by(Review.id.desc())
                .limit(1)
            )
    if status_after != status_before:
        values.update(
            status=status_after,
            reject_reason=restore.reason if restore else None,
            reject_comment=restore.comment if restore else None,
            reviewed_by_id=restore.reviewer_id if restore else None,
            reviewed_at=restore.created_at if restore else None,
            version=Pair.version + 1,
            updated_at=now,
        )
    if values:
        session.execute(
            update(Pair)
            .where(Pair.id == last.pair_id)
            .values(**values)
            .execution_options(synchronize_session=False)
        )
    session.add(
        Review(
            pair_id=last.pair_id,
            reviewer_id=reviewer.id,
            kind=ReviewKind.undo,
            decision=last.decision,
            reason=last.reason,
            undoes_id=last.id,
            pair_version=row.version,
            status_before=status_before,
            status_after=status_after,
            created_at=now,
        )
    )
    if last.kind == ReviewKind.review:
        _lease(session, last.pair_id, reviewer.id, now, now + dt.timedelta(seconds=lease_s))
    audit.record(
        session=session,
        user=reviewer,
        action="pair.undo",
        target=f"pair:{last.pair_id}",
        undoes=last.id,
        status=status_after,
    )
    session.commit()
    pair = get_pair(session=session, pair_id=last.pair_id)
    session.refresh(pair)
    return pair


@dataclasses.dataclass(frozen=True)
class ReviewerHistoryItem:
    """One of a reviewer's own decisions, for back/forward through their history."""

    review_id: int
    pair_id: int
    kind: str  # review | adjudication
    decision: str
    reason: str | None
    comment: str | None
    created_at: dt.datetime
    undone: bool
    pair_status: str
    pair_version: int
    caption: str
    image_path: str


def reviewer_history(
    *,
    session: Session,
    reviewer: User,
    before_id: int | None = None,
    after_id: int | None = None,
    limit: int = 50,
) -> list[ReviewerHistoryItem]:
    """The reviewer's own decisions, newest first, by keyset on the review id: ``before_id``
    pages back (older), ``after_id`` forward (newer). Undone ones are included, marked."""
    limit = max(1, min(limit, 500))
    undo = aliased(Review)
    query = (
        select(Review, Pair, undo.id)
        .join(Pair, Pair.id == Review.pair_id)
        .outerjoin(undo, undo.undoes_id == Review.id)
        .where(Review.reviewer_id == reviewer.id, Review.kind != ReviewKind.undo)
    )
    if before_id is not None:
        query = query.where(Review.id < before_id)
    if after_id is not None:
        query = query.where(Review.id > after_id).order_by(Review.id).limit(limit)
    else:
        query = query.order_by(Review.id.desc()).limit(limit)
    rows = session.execute(query).all()
    if after_id is not None:
        rows = list(reversed(rows))
    return [
        ReviewerHistoryItem(
            review_id=r.id,
            pair_id=p.id,
            kind=r.kind,
            decision=r.decision,
            reason=r.reason,
            comment=r.comment,
            created_at=r.created_at,
            undone=undo_id is not None,
            pair_status=p.status,
            pair_version=p.version,
            caption=p.caption,
            image_path=p.image_path,
        )
        for r, p, undo_id in rows
    ]


def _check_field(name: str, value: Any) -> None:
    if name in TEXT_FIELDS:
        if not isinstance(value, str):
            raise ReviewError(f"{name}: must be text")
        if len(value) > MAX_TEXT_LEN:
            raise ReviewError(f"{name}: at most {MAX_TEXT_LEN} characters")
    elif name == "magnification":
        # Quilt's bins 0-2; older rows keep the objective's x value (e.g. 20).
        if value is not None and (type(value) is not int or not 0 <= value <= 200):
            raise ReviewError("magnification: a bin (0, 1, 2), an x value, or empty")
    elif name == "subpathology":
        if value is not None and value not in SUBPATHOLOGIES:
            raise ReviewError(f"subpathology: one of {', '.join(SUBPATHOLOGIES)}, or empty")
    elif name == "not_histology" and type(value) is not bool:
        raise ReviewError("not_histology: true or false")


def edit(
    *,
    session: Session,
    pair_id: int,
    user: User,
    fields: dict[str, Any],
    expected_version: int,
) -> Pair:
    """Change caption fields and tags (EDITABLE_FIELDS); append a PairRevision with the
    before and after values.

    Fields equal to their current value are ignored; when nothing changes, nothing is
    written (but a stale ``expected_version`` is still refused).
    """
    unknown = set(fields) - set(EDITABLE_FIELDS)
    if unknown:
        raise ReviewError(f"not editable: {', '.join(sorted(unknown))}")
    for name, value in fields.items():
        _check_field(name, value)
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
                kind=review.kind,
                created_at=review.created_at,
                username=username,
                decision=review.decision,
                reason=review.reason,
                comment=review.comment,
                before={"status": review.status_before} if review.status_before else None,
                after={"status": review.status_after} if review.status_after else None,
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
        videos=[(i, t or u) for i, t, u in videos],
        sources=list(sources),
        magnifications=list(mags),
        statuses=[s.value for s in PairStatus],
    )
