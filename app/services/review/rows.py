"""Row-level steps shared by decisions, edits, undo, adjudication and gold answers.

``lock_pair`` is the write that comes first in every decision: it locks the pair's row and
reads its current state (its docstring says why it must come first on SQLite).
``write_verdict`` is the one place a verdict is written: the pair's status columns (with
a version bump) and the append-only Review row that records who decided what, and the
status before and after.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import (
    Pair,
    PairStatus,
    Review,
    ReviewKind,
    utcnow,
)
from app.services.review.errors import PairNotFoundError, ReviewError, conflict


def get_pair(*, session: Session, pair_id: int) -> Pair:
    pair = session.get(Pair, pair_id)
    if pair is None:
        raise PairNotFoundError(f"pair {pair_id} not found")
    return pair


def bump(*, session: Session, pair_id: int, expected_version: int, values: dict[str, Any]) -> None:
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
    raise conflict(pair_id, current, expected_version)


def lock_pair(session: Session, pair_id: int, *, expected_version: int | None = None) -> Any:
    """The write that comes first: lock the pair's row and read its current state; with
    ``expected_version``, a ``ConflictError`` if the pair has moved on since.

    Postgres: the no-op UPDATE takes the row lock (waiting for whoever holds it) and
    RETURNING gives the row as last committed. SQLite: it is the first write, so it takes
    the database's write lock before anything of this transaction is read.
    """
    row = session.execute(
        update(Pair)
        .where(Pair.id == pair_id)
        .values(version=Pair.version)
        .returning(
            Pair.version,
            Pair.status,
            Pair.review_count,
            Pair.reviews_needed,
            Pair.not_histology,
            Pair.reviewed_by_id,
        )
        .execution_options(synchronize_session=False)
    ).first()
    if row is None:
        session.rollback()
        raise PairNotFoundError(f"pair {pair_id} not found")
    if expected_version is not None and row.version != expected_version:
        session.rollback()
        raise conflict(pair_id, row.version, expected_version)
    return row


NOT_HISTOLOGY_APPROVAL = (
    "a pair tagged not histology cannot be approved: reject it (reason: not histology) "
    "or untick the tag"
)


def refuse_not_histology(*, decision: str, not_histology: bool | None) -> None:
    """Not histology is a rejection reason: an approved pair ships in the next release, so
    a pair tagged so is never approved (votes, overrides, adjudication alike)."""
    if decision == "approve" and not_histology:
        raise ReviewError(NOT_HISTOLOGY_APPROVAL)


def standing_votes(*, pair_ids: Collection[int] | None = None) -> Any:
    """Votes (Reviews of kind ``review``) that no undo has taken back; ``pair_ids`` narrows
    the lookup of undos to those pairs."""
    undone = select(Review.undoes_id).where(Review.undoes_id.is_not(None))
    if pair_ids is not None:
        undone = undone.where(Review.pair_id.in_(pair_ids))
    return (Review.kind == ReviewKind.review) & Review.id.not_in(undone)


def active_reviews(pair_id: int) -> Any:
    """Votes on a pair that no undo has taken back."""
    undone = select(Review.undoes_id).where(
        Review.pair_id == pair_id, Review.undoes_id.is_not(None)
    )
    return select(Review).where(
        Review.pair_id == pair_id,
        Review.kind != ReviewKind.undo,
        Review.id.not_in(undone),
    )


def verdict_values(
    *,
    status: str,
    reason: str | None,
    comment: str | None,
    by_id: int | None,
    at: dt.datetime | None,
    now: dt.datetime,
) -> dict[str, Any]:
    """The pair's columns for a verdict (who settled it, when, why), with a version bump:
    anyone who read the pair before it now gets a ``ConflictError``."""
    return {
        "status": status,
        "reject_reason": reason,
        "reject_comment": comment,
        "reviewed_by_id": by_id,
        "reviewed_at": at,
        "version": Pair.version + 1,
        "updated_at": now,
    }


def outright_verdict(
    *, decision: str, reason: str | None, comment: str | None, by_id: int, now: dt.datetime
) -> tuple[str, dict[str, Any]]:
    """(status, pair columns) of a verdict that settles the pair by itself, whatever votes
    it had: an override of a settled pair, an adjudication, a gold answer. The decision is
    the status; a rejection keeps its reason and comment."""
    status = PairStatus.approved if decision == "approve" else PairStatus.rejected
    values = verdict_values(
        status=status,
        reason=reason,
        comment=comment if reason else None,
        by_id=by_id,
        at=now,
        now=now,
    )
    return status, values


def write_verdict(
    session: Session,
    *,
    pair_id: int,
    pair_values: dict[str, Any],
    reviewer_id: int,
    kind: ReviewKind,
    decision: str,
    reason: str | None,
    comment: str | None,
    pair_version: int,
    status_before: str,
    status_after: str,
    created_at: dt.datetime | None = None,
    undoes_id: int | None = None,
) -> Pair:
    """Write a decision on a pair that ``lock_pair`` holds: ``pair_values`` on the pair
    (empty: the pair is left as it is, e.g. a gold pair's vote) and the append-only Review
    row. Used by votes, undo, adjudication and gold answers alike.

    Returns the pair as written (UPDATE ... RETURNING): the row stays locked until the
    caller commits, so this is also what the commit leaves, and nobody needs to read the
    pair again afterwards (one round trip less per decision).
    """
    pair = session.scalars(
        update(Pair)
        .where(Pair.id == pair_id)
        .values(**(pair_values or {"version": Pair.version}))
        .returning(Pair)
        .execution_options(synchronize_session=False, populate_existing=True)
    ).one()
    review = Review(
        pair_id=pair_id,
        reviewer_id=reviewer_id,
        kind=kind,
        decision=decision,
        reason=reason,
        comment=comment,
        pair_version=pair_version,
        status_before=status_before,
        status_after=status_after,
        undoes_id=undoes_id,
    )
    if created_at is not None:
        review.created_at = created_at
    session.add(review)
    return pair
