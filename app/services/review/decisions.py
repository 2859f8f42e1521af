"""Decisions on pairs: ``decide`` (one vote), ``decide_many`` (grid triage), ``skip``.

Decisions use optimistic concurrency on the pair's version. A decision first locks the
pair's row (``rows.lock_pair``: a no-op UPDATE ... RETURNING, which is also SQLite's first
write) and then compares versions, so two votes on one pair are counted one after the
other, never lost. The k-th vote settles the pair (unanimous: approved or rejected;
otherwise disputed, for app.services.adjudication).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import Any, Literal

from sqlalchemy import Integer, func, literal, null, select, union_all
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    GoldAnswer,
    Pair,
    PairStatus,
    RejectReason,
    Review,
    ReviewKind,
    User,
    utcnow,
)
from app.services import audit
from app.services.review.edits import strip_bidi
from app.services.review.errors import ConflictError, PairNotFoundError, ReviewError
from app.services.review.rows import (
    active_reviews,
    lock_pair,
    outright_verdict,
    refuse_not_histology,
    verdict_values,
    write_verdict,
)
from app.settings import get_settings

Decision = Literal["approve", "reject"]
MAX_COMMENT_LEN = 2_000


def validate_decision(
    *, decision: str, reason: RejectReason | str | None, comment: str | None
) -> tuple[str | None, str | None]:
    """Check a decision before anything is written: (the reason's value, cleaned comment)."""
    if decision not in ("approve", "reject"):
        raise ReviewError("decision must be 'approve' or 'reject'")
    comment = strip_bidi(comment or "").strip() or None
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
    return reason_value.value, comment


def _complete_lease(session: Session, pair_id: int, reviewer_id: int, now: dt.datetime) -> None:
    """Mark the caller's lease on the pair done, in one statement: an upsert, since a pair
    decided without a lease (detail page, API) must still never be offered to them again."""
    dialect_insert = pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    stmt = dialect_insert(Assignment).values(
        pair_id=pair_id, reviewer_id=reviewer_id, leased_at=now, expires_at=now, completed_at=now
    )
    session.execute(
        stmt.on_conflict_do_update(
            index_elements=[Assignment.pair_id, Assignment.reviewer_id],
            set_={
                "completed_at": func.coalesce(Assignment.completed_at, stmt.excluded.completed_at)
            },
        ).execution_options(synchronize_session=False)
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


def _refuse_others_lease(
    pair_id: int, row: Any, leases: list[Any], reviewer_id: int, k: int
) -> None:
    """A pending pair is the lease holders' while their leases are open: a decision by
    someone without a lease, when other reviewers' open leases fill the votes the pair
    still lacks, would take the pair from under them (they would get a 409 on saving).
    ``leases``: the reviewer ids of the pair's open leases."""
    if reviewer_id in leases:
        return
    if leases and len(leases) >= (row.reviews_needed or k) - row.review_count:
        raise ConflictError(
            f"pair {pair_id} is being reviewed by someone else (it is leased to them); "
            "you may decide it once they are done or their lease expires",
            current_version=row.version,
        )


def settled_message(session: Session, pair_id: int, status: str, reviewed_by_id: int | None) -> str:
    """Why a settled pair is not changed without ``confirm``."""
    by = session.scalar(select(User.username).where(User.id == reviewed_by_id))
    who = f" by {by}" if by else ""
    return f"this pair is settled ({status}{who}); confirm to change it"


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
    confirm: bool = False,
) -> Pair:
    """Approve or reject a pair: append a Review (the caller's vote) and settle the pair
    once it has k votes: unanimous votes set approved/rejected, others ``disputed`` (the
    adjudication queue). A vote that does not settle the pair leaves its version alone,
    so the k reviewers of one pair never conflict with each other; a stale
    ``expected_version`` (an edit since) is a ``ConflictError``, as is a second vote by
    the same reviewer on a pending pair. On a pair already settled, a decision overrides
    (audited) only with ``confirm`` (else a ``ConflictError`` that says who settled it);
    disputed pairs are settled by admins (``adjudication.adjudicate``).
    Gold pairs keep their known answer: the vote is only recorded (for accuracy).

    Refused: a pending pair whose open slots are all leased to other reviewers while the
    caller holds no lease on it (``ConflictError``: they are reviewing it; once their
    lease expires it is anyone's), and approving a pair tagged not histology
    (``ReviewError``: not histology is a rejection reason).
    """
    reason_str, comment = validate_decision(decision=decision, reason=reason, comment=comment)
    k = reviews_per_pair or get_settings().reviews_per_pair
    now = utcnow()
    row = lock_pair(session, pair_id, expected_version=expected_version)
    status_before = row.status
    try:
        refuse_not_histology(decision=decision, not_histology=row.not_histology)
    except ReviewError:
        session.rollback()
        raise
    status_after = status_before
    # One read after the lock (on Postgres a fresh snapshot: it sees every vote committed
    # before the lock was ours): the standing votes, and a row with id 0 if it is gold.
    standing = active_reviews(pair_id).where(Review.kind == ReviewKind.review)
    rows = session.execute(
        union_all(
            standing.with_only_columns(
                Review.id, Review.reviewer_id, Review.decision, Review.reason, Review.comment
            ),
            select(
                literal(0, Integer),
                null(),
                GoldAnswer.decision,
                GoldAnswer.reason,
                null(),
            ).where(GoldAnswer.pair_id == pair_id),
            # Open leases on the pair, as rows with id -1 (whose they are).
            select(literal(-1, Integer), Assignment.reviewer_id, null(), null(), null()).where(
                Assignment.pair_id == pair_id,
                Assignment.completed_at.is_(None),
                Assignment.expires_at > now,
            ),
        )
    ).all()
    gold = any(r[0] == 0 for r in rows)
    leases = [r[1] for r in rows if r[0] == -1]
    votes = sorted((r for r in rows if r[0] > 0), key=lambda r: r[0])
    mine = any(r[1] == reviewer.id for r in votes)
    if (gold or status_before == PairStatus.pending) and mine:
        session.rollback()
        raise ConflictError(
            f"you already reviewed pair {pair_id}; undo it to decide again",
            current_version=row.version,
        )
    if not gold and status_before == PairStatus.pending:
        try:
            _refuse_others_lease(pair_id, row, leases, reviewer.id, k)
        except ConflictError:
            session.rollback()
            raise
    settled = status_before in (PairStatus.approved, PairStatus.rejected)
    if not gold and settled and not confirm:
        message = settled_message(session, pair_id, status_before, row.reviewed_by_id)
        session.rollback()
        raise ConflictError(message, current_version=row.version)
    values: dict[str, Any] = {}
    if gold:
        pass  # the known answer stands; the vote is scored against it
    elif status_before == PairStatus.pending:
        count = row.review_count + 1
        values["review_count"] = count
        if count >= (row.reviews_needed or k):
            status_after, final_reason, final_comment = _settle(
                [(d, r, c) for _, _, d, r, c in votes] + [(decision, reason_str, comment)]
            )
            values.update(
                verdict_values(
                    status=status_after,
                    reason=final_reason,
                    comment=final_comment,
                    by_id=reviewer.id,
                    at=now,
                    now=now,
                )
            )
    elif status_before == PairStatus.disputed:
        session.rollback()
        raise ReviewError(f"pair {pair_id} is disputed: an admin settles it (adjudication)")
    else:
        status_after, values = outright_verdict(
            decision=decision, reason=reason_str, comment=comment, by_id=reviewer.id, now=now
        )
        values["review_count"] = Pair.review_count + 1
    pair = write_verdict(
        session,
        pair_id=pair_id,
        pair_values=values,
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
    _complete_lease(session, pair_id, reviewer.id, now)
    audit.record(
        session=session,
        user=reviewer,
        action=f"pair.{decision}",
        target=f"pair:{pair_id}",
        reason=reason_str,
        status=status_after,
        version=expected_version + (status_after != status_before),
        **({"confirmed_override": True} if confirm and status_before != status_after else {}),
    )
    session.commit()
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
    confirm: bool = False,
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
                confirm=confirm,
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
