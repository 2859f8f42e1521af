"""Adjudication: the admin's final word on pairs whose k reviews disagree.

A pair that needs k reviews (settings.reviews_per_pair, or its own ``reviews_needed``:
``set_reviews_needed``) is settled by ``review.decide`` when its k-th vote comes in:
unanimous votes settle it, others make it ``disputed``. Disputed pairs wait here for an
admin: ``list_adjudication`` / ``claim_adjudication`` (a lease from the same
``lease_next`` as the review queue, one admin per pair) and ``adjudicate`` (an
append-only Review of kind ``adjudication``, with optimistic concurrency on the pair's
version).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    Pair,
    PairStatus,
    RejectReason,
    Review,
    ReviewKind,
    User,
    utcnow,
)
from app.services import audit
from app.services.review.decisions import validate_decision
from app.services.review.errors import ReviewError, require_admin
from app.services.review.leases import held_leases, lease_next
from app.services.review.rows import (
    get_pair,
    lock_pair,
    outright_verdict,
    refuse_not_histology,
    standing_votes,
    write_verdict,
)
from app.settings import get_settings


@dataclasses.dataclass(frozen=True)
class Vote:
    review_id: int
    reviewer_id: int
    username: str | None
    decision: str
    reason: str | None
    comment: str | None
    created_at: dt.datetime


@dataclasses.dataclass(frozen=True)
class AdjudicationItem:
    pair: Pair
    votes: list[Vote]


def _votes(session: Session, pair_ids: list[int]) -> dict[int, list[Vote]]:
    out: dict[int, list[Vote]] = collections.defaultdict(list)
    if not pair_ids:
        return out
    rows = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(Review.pair_id.in_(pair_ids), standing_votes(pair_ids=pair_ids))
        .order_by(Review.id)
    ).all()
    for r, username in rows:
        out[r.pair_id].append(
            Vote(r.id, r.reviewer_id, username, r.decision, r.reason, r.comment, r.created_at)
        )
    return out


def _item(session: Session, pair: Pair) -> AdjudicationItem:
    return AdjudicationItem(pair, _votes(session, [pair.id]).get(pair.id, []))


def list_adjudication(
    *, session: Session, limit: int = 50, offset: int = 0
) -> tuple[int, list[AdjudicationItem]]:
    """(total, page) of disputed pairs with their votes, oldest dispute first."""
    limit = max(1, min(limit, 500))
    where = Pair.status == PairStatus.disputed
    total = session.scalar(select(func.count()).select_from(Pair).where(where)) or 0
    pairs = list(
        session.scalars(
            select(Pair)
            .where(where)
            .order_by(Pair.priority, Pair.id)
            .limit(limit)
            .offset(max(0, offset))
        )
    )
    votes = _votes(session, [p.id for p in pairs])
    return total, [AdjudicationItem(p, votes.get(p.id, [])) for p in pairs]


def claim_adjudication(
    *,
    session: Session,
    admin: User,
    lease_s: int | None = None,
    now: dt.datetime | None = None,
) -> AdjudicationItem | None:
    """Lease the next disputed pair to ``admin`` (or refresh the one they hold), so two
    admins never settle the same dispute at once."""
    require_admin(user=admin)
    now = now or utcnow()
    lease_s = get_settings().lease_s if lease_s is None else lease_s
    held = held_leases(
        session=session, reviewer=admin, now=now, where=[Pair.status == PairStatus.disputed]
    )
    if held:
        lease, pair = held[0]
        lease.leased_at, lease.expires_at = now, now + dt.timedelta(seconds=lease_s)
    else:
        leased = lease_next(
            session=session,
            reviewer=admin,
            status=PairStatus.disputed,
            lease_s=lease_s,
            now=now,
        )
        pair = leased[0] if leased else None
    session.commit()
    return None if pair is None else _item(session, pair)


def adjudicate(
    *,
    session: Session,
    pair_id: int,
    admin: User,
    decision: str,
    reason: RejectReason | str | None = None,
    comment: str | None = None,
    expected_version: int,
) -> Pair:
    """Settle a pair (normally a disputed one) with an admin's decision: appends a Review
    of kind ``adjudication``, sets the status, bumps the version (``ConflictError`` if
    stale). On a pair that is not disputed it is an audited override."""
    require_admin(user=admin)
    reason_str, comment = validate_decision(decision=decision, reason=reason, comment=comment)
    now = utcnow()
    row = lock_pair(session, pair_id, expected_version=expected_version)
    try:
        refuse_not_histology(decision=decision, not_histology=row.not_histology)
    except ReviewError:
        session.rollback()
        raise
    status_after, values = outright_verdict(
        decision=decision, reason=reason_str, comment=comment, by_id=admin.id, now=now
    )
    pair = write_verdict(
        session,
        pair_id=pair_id,
        pair_values=values,
        reviewer_id=admin.id,
        kind=ReviewKind.adjudication,
        decision=decision,
        reason=reason_str,
        comment=comment,
        pair_version=expected_version,
        status_before=row.status,
        status_after=status_after,
        created_at=now,
    )
    session.execute(
        update(Assignment)
        .where(
            Assignment.pair_id == pair_id,
            Assignment.reviewer_id == admin.id,
            Assignment.completed_at.is_(None),
        )
        .values(completed_at=now)
        .execution_options(synchronize_session=False)
    )
    audit.record(
        session=session,
        user=admin,
        action="pair.adjudicate",
        target=f"pair:{pair_id}",
        decision=decision,
        reason=reason_str,
        status_before=row.status,
        version=expected_version + 1,
    )
    session.commit()
    return pair


def set_reviews_needed(*, session: Session, pair_id: int, k: int | None) -> Pair:
    """Override k for one pair (None: back to settings.reviews_per_pair)."""
    if k is not None and not 1 <= k <= 10:
        raise ReviewError("k must be between 1 and 10")
    lock_pair(session, pair_id)
    session.execute(
        update(Pair)
        .where(Pair.id == pair_id)
        .values(reviews_needed=k)
        .execution_options(synchronize_session=False)
    )
    session.commit()
    pair = get_pair(session=session, pair_id=pair_id)
    session.refresh(pair)
    return pair
