"""The review service as the tests drive it: claims without gold pairs, votes and edits at
the pair's current version, and a disputed pair."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Pair, User, Video
from app.services import review
from tests.support.seed import make_pair, make_user

LEASE_S = 600


def version_of(session: Session, pair: Pair) -> int:
    """The pair's version as stored now (the object may be older)."""
    return session.scalar(select(Pair.version).where(Pair.id == pair.id))


def claim(session: Session, user: User, **kw):
    """``review.claim_next`` with a ten-minute lease and no gold pairs mixed in."""
    return review.claim_next(
        session=session, reviewer=user, **{"lease_s": LEASE_S, "gold_every": 0, **kw}
    )


def vote(
    session: Session,
    user: User,
    pair: Pair,
    decision: str = "approve",
    reason: str | None = None,
    *,
    k: int = 2,
    version: int | None = None,
):
    """``user`` decides on ``pair`` (at its current version unless ``version``), with ``k``
    reviews needed per pair."""
    return review.decide(
        session=session,
        pair_id=pair.id,
        reviewer=user,
        decision=decision,
        reason=reason,
        expected_version=version if version is not None else version_of(session, pair),
        reviews_per_pair=k,
    )


def edit(session: Session, user: User, pair: Pair, fields: dict[str, object]):
    """``user`` edits ``pair`` at its current version."""
    return review.edit(
        session=session,
        pair_id=pair.id,
        user=user,
        fields=fields,
        expected_version=version_of(session, pair),
    )


def disputed_pair(
    session: Session,
    video: Video,
    *,
    caption: str = "Disputed pair",
    voters: tuple[str, str] = ("vera", "victor"),
    reason: str = "duplicate",
) -> Pair:
    """A new pair two new reviewers (``voters``) disagree on, two reviews per pair: the first
    approves, the second rejects for ``reason``."""
    approver, rejecter = (make_user(session, name) for name in voters)
    pair = make_pair(session, video, caption=caption)
    vote(session, approver, pair, "approve")
    vote(session, rejecter, pair, "reject", reason)
    return pair
