"""History, append-only: a pair's edits and decisions (``pair_history``), a reviewer's
own decisions for back/forward (``reviewer_history``), and ``undo_last``, which is a Review
of its own that names the one it takes back (nothing is deleted).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, aliased

from app.models import (
    GoldAnswer,
    Pair,
    PairRevision,
    PairStatus,
    Release,
    ReleaseItem,
    Review,
    ReviewKind,
    Role,
    User,
    utcnow,
)
from app.services import audit
from app.services.review.errors import ConflictError
from app.services.review.leases import renew_lease
from app.services.review.rows import (
    active_reviews,
    get_pair,
    lock_pair,
    verdict_values,
    write_verdict,
)
from app.settings import get_settings


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
    # A decision that changed a settled pair (or undid one in a release): the caller
    # confirmed it on purpose.
    confirmed: bool = False


def _with_authors(session: Session, model: Any, author_id: Any, pair_id: int) -> list[Any]:
    """Rows of ``model`` (PairRevision or Review) on the pair in the order they were
    written, each with its author's username (None for a deleted user)."""
    return list(
        session.execute(
            select(model, User.username)
            .outerjoin(User, User.id == author_id)
            .where(model.pair_id == pair_id)
            .order_by(model.id)
        ).all()
    )


SETTLED = (PairStatus.approved, PairStatus.rejected)


def pair_history(
    *, session: Session, pair_id: int, viewer: User | None = None
) -> list[HistoryEntry]:
    """Edits and decisions on a pair, oldest first.

    Votes are blind: with a ``viewer`` who is not an admin, other reviewers' votes (and
    their undos) are left out until the pair is settled (approved or rejected), so the
    second of k reviewers never sees the first one's vote before casting theirs. Their
    own votes they always see; admins see everything."""
    pair = get_pair(session=session, pair_id=pair_id)
    blind = viewer is not None and viewer.role != Role.admin and pair.status not in SETTLED
    entries = [
        HistoryEntry(
            kind="edit",
            created_at=revision.created_at,
            username=username,
            before=revision.before,
            after=revision.after,
        )
        for revision, username in _with_authors(
            session, PairRevision, PairRevision.user_id, pair_id
        )
    ]
    entries += [
        HistoryEntry(
            kind=review.kind,
            created_at=review.created_at,
            username=username,
            decision=review.decision,
            reason=review.reason,
            comment=review.comment,
            before={"status": review.status_before} if review.status_before else None,
            after={"status": review.status_after} if review.status_after else None,
            confirmed=(review.kind == ReviewKind.review and review.status_before in SETTLED)
            or (review.kind == ReviewKind.undo and (review.comment or "").startswith("confirmed")),
        )
        for review, username in _with_authors(session, Review, Review.reviewer_id, pair_id)
        if not blind or review.reviewer_id == viewer.id
    ]
    # SQLite returns naive datetimes (all UTC); compare them as such.
    entries.sort(key=lambda e: e.created_at.replace(tzinfo=None))
    return entries


def undo_last(
    *,
    session: Session,
    reviewer: User,
    lease_s: int | None = None,
    now: dt.datetime | None = None,
    confirm: bool = False,
) -> Pair | None:
    """Take back the caller's last decision that still stands; None when there is none.

    Appends an ``undo`` Review (the undone one stays: nothing is deleted). A vote is
    taken out of the pair's count and a pair it settled goes back to pending; an
    adjudication puts the pair back to disputed. The caller gets a fresh lease on the
    pair, so the next claim shows it again. ``ConflictError`` when someone settled or
    overrode the pair after this decision. A decision whose pair is in a release (frozen
    there as it was) is undone only with ``confirm`` (else a ``ConflictError`` naming the
    release); the undo row then says so in its comment.
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
    row = lock_pair(session, last.pair_id)
    gold = session.get(GoldAnswer, last.pair_id) is not None
    if not gold:
        later = session.scalars(
            active_reviews(last.pair_id).where(
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
    released = session.scalar(
        select(Release.version)
        .join(ReleaseItem, ReleaseItem.release_id == Release.id)
        .where(ReleaseItem.pair_id == last.pair_id)
        .order_by(Release.id.desc())
        .limit(1)
    )
    if released is not None and not confirm:
        session.rollback()
        raise ConflictError(
            f"this decision is in release {released}; confirm to change it — releases stay "
            "as they are, the next release picks the change up",
            current_version=row.version,
        )
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
                active_reviews(last.pair_id)
                .where(Review.id < last.id, Review.status_after == status_after)
                .order_by(Review.id.desc())
                .limit(1)
            )
    if status_after != status_before:
        values.update(
            verdict_values(
                status=status_after,
                reason=restore.reason if restore else None,
                comment=restore.comment if restore else None,
                by_id=restore.reviewer_id if restore else None,
                at=restore.created_at if restore else None,
                now=now,
            )
        )
    pair = write_verdict(
        session,
        pair_id=last.pair_id,
        pair_values=values,
        reviewer_id=reviewer.id,
        kind=ReviewKind.undo,
        decision=last.decision,
        reason=last.reason,
        comment=f"confirmed: the decision was in release {released}" if released else None,
        pair_version=row.version,
        status_before=status_before,
        status_after=status_after,
        created_at=now,
        undoes_id=last.id,
    )
    if last.kind == ReviewKind.review:
        renew_lease(
            session=session,
            pair_id=last.pair_id,
            reviewer_id=reviewer.id,
            now=now,
            expires=now + dt.timedelta(seconds=lease_s),
        )
    audit.record(
        session=session,
        user=reviewer,
        action="pair.undo",
        target=f"pair:{last.pair_id}",
        undoes=last.id,
        status=status_after,
    )
    session.commit()
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
