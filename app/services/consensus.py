"""Consensus over k reviews per pair: adjudication of disputes, gold pairs, agreement.

- A pair that needs k reviews (settings.reviews_per_pair) is settled by ``review.decide``
  when its k-th vote comes in: unanimous votes settle it, others make it ``disputed``.
  Disputed pairs wait here for an admin: ``list_adjudication`` / ``claim_adjudication``
  (a lease, as in the review queue) and ``adjudicate`` (an append-only Review of kind
  ``adjudication``, with optimistic concurrency on the pair's version).
- Gold pairs carry a known answer (``mark_gold``); the queue mixes them in
  (settings.gold_every) and ``gold_accuracy`` scores each reviewer against them.
- ``agreement_report``: Cohen's kappa per reviewer pair, Fleiss' kappa and
  Krippendorff's alpha overall on the approve/reject votes, and the edit distance between
  reviewers' caption edits of the same pair (app/services/agreement.py has the maths).
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import itertools
import logging

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.models import (
    Assignment,
    GoldAnswer,
    Pair,
    PairRevision,
    PairStatus,
    RejectReason,
    Review,
    ReviewKind,
    Role,
    User,
    utcnow,
)
from app.services import agreement, audit
from app.services.review import ConflictError, ReviewError, get_pair, validate_decision
from app.services.review.queue import renew_lease
from app.services.review.rows import lock_pair, verdict_values, write_verdict
from app.settings import get_settings

_logger = logging.getLogger(__name__)


class NotAllowedError(ReviewError):
    """Only admins adjudicate and mark gold pairs."""


def _require_admin(user: User) -> None:
    if user.role != Role.admin:
        raise NotAllowedError("only an admin may do this")


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
    undone = select(Review.undoes_id).where(
        Review.pair_id.in_(pair_ids), Review.undoes_id.is_not(None)
    )
    rows = session.execute(
        select(Review, User.username)
        .outerjoin(User, User.id == Review.reviewer_id)
        .where(
            Review.pair_id.in_(pair_ids),
            Review.kind == ReviewKind.review,
            Review.id.not_in(undone),
        )
        .order_by(Review.id)
    ).all()
    for r, username in rows:
        out[r.pair_id].append(
            Vote(r.id, r.reviewer_id, username, r.decision, r.reason, r.comment, r.created_at)
        )
    return out


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
    admins never settle the same dispute at once. Same locking as ``review.claim_next``."""
    _require_admin(admin)
    now = now or utcnow()
    lease_s = get_settings().lease_s if lease_s is None else lease_s
    expires = now + dt.timedelta(seconds=lease_s)
    postgres = session.get_bind().dialect.name == "postgresql"
    # First write: SQLite's write lock before any read (see review's module docstring).
    session.execute(
        update(Assignment)
        .where(
            Assignment.reviewer_id == admin.id,
            Assignment.completed_at.is_(None),
            Assignment.expires_at <= now,
        )
        .values(expires_at=Assignment.expires_at)
        .execution_options(synchronize_session=False)
    )
    held = session.scalars(
        select(Pair)
        .join(Assignment, Assignment.pair_id == Pair.id)
        .where(
            Assignment.reviewer_id == admin.id,
            Assignment.completed_at.is_(None),
            Assignment.expires_at > now,
            Pair.status == PairStatus.disputed,
        )
        .order_by(Pair.priority, Pair.id)
        .limit(1)
        .execution_options(populate_existing=True)
    ).first()
    if held is not None:
        renew_lease(session, held.id, admin.id, now, expires)
        session.commit()
        return AdjudicationItem(held, _votes(session, [held.id]).get(held.id, []))

    def leased_by_other(pair_id_col: object) -> object:
        return (
            select(Assignment.id)
            .where(
                Assignment.pair_id == pair_id_col,
                Assignment.reviewer_id != admin.id,
                Assignment.completed_at.is_(None),
                Assignment.expires_at > now,
            )
            .exists()
        )

    seen: list[int] = []
    while True:
        query = (
            select(Pair)
            .where(Pair.status == PairStatus.disputed, ~leased_by_other(Pair.id))
            .order_by(Pair.priority, Pair.id)
            .limit(1)
            .execution_options(populate_existing=True)
        )
        if seen:
            query = query.where(Pair.id.not_in(seen))
        if postgres:
            query = query.with_for_update(skip_locked=True, of=Pair)
        pair = session.scalars(query).first()
        if pair is None:
            session.commit()
            return None
        if postgres and session.scalar(select(leased_by_other(pair.id))):
            seen.append(pair.id)
            continue
        renew_lease(session, pair.id, admin.id, now, expires)
        session.commit()
        return AdjudicationItem(pair, _votes(session, [pair.id]).get(pair.id, []))


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
    _require_admin(admin)
    reason_value, comment = validate_decision(decision=decision, reason=reason, comment=comment)
    now = utcnow()
    row = lock_pair(session, pair_id)
    if row.version != expected_version:
        session.rollback()
        raise ConflictError(
            f"pair {pair_id} was changed by someone else (version {row.version}, "
            f"you had {expected_version})",
            current_version=row.version,
        )
    status_after = PairStatus.approved if decision == "approve" else PairStatus.rejected
    reason_str = reason_value.value if reason_value else None
    write_verdict(
        session,
        pair_id=pair_id,
        pair_values=verdict_values(
            status=status_after,
            reason=reason_str,
            comment=comment if reason_value else None,
            by_id=admin.id,
            at=now,
            now=now,
        ),
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
    pair = get_pair(session=session, pair_id=pair_id)
    session.refresh(pair)
    return pair


# --- gold pairs ---------------------------------------------------------------------


def mark_gold(
    *,
    session: Session,
    pair_id: int,
    admin: User,
    decision: str,
    reason: RejectReason | str | None = None,
) -> GoldAnswer:
    """Give a pair a known answer. Its status becomes that answer (an admin's word, like
    an adjudication, recorded as one); from then on the queue mixes it into every
    reviewer's stream once, and their votes on it are scored, never counted."""
    _require_admin(admin)
    reason_value, _ = validate_decision(
        decision=decision, reason=reason, comment="gold" if reason == RejectReason.other else None
    )
    reason_str = reason_value.value if reason_value else None
    row = lock_pair(session, pair_id)
    gold = session.get(GoldAnswer, pair_id)
    if gold is None:
        gold = GoldAnswer(
            pair_id=pair_id, decision=decision, reason=reason_str, created_by_id=admin.id
        )
        session.add(gold)
    else:
        gold.decision, gold.reason, gold.created_by_id = decision, reason_str, admin.id
        gold.created_at = utcnow()
    status_after = PairStatus.approved if decision == "approve" else PairStatus.rejected
    if row.status != status_after:
        now = utcnow()
        values = verdict_values(
            status=status_after, reason=reason_str, comment=None, by_id=admin.id, at=now, now=now
        )
        del values["reject_comment"]  # a gold answer has no comment: the pair keeps its own
        write_verdict(
            session,
            pair_id=pair_id,
            pair_values=values,
            reviewer_id=admin.id,
            kind=ReviewKind.adjudication,
            decision=decision,
            reason=reason_str,
            comment="gold answer",
            pair_version=row.version,
            status_before=row.status,
            status_after=status_after,
        )
    audit.record(
        session=session,
        user=admin,
        action="pair.gold",
        target=f"pair:{pair_id}",
        decision=decision,
        reason=reason_str,
    )
    session.commit()
    return gold


def list_gold(*, session: Session) -> list[GoldAnswer]:
    return list(session.scalars(select(GoldAnswer).order_by(GoldAnswer.pair_id)))


@dataclasses.dataclass(frozen=True)
class GoldAccuracy:
    reviewer_id: int
    username: str
    answered: int
    correct: int  # same decision as the gold answer
    reason_correct: int  # ... and, for rejections, the same reason

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.answered if self.answered else None


def gold_accuracy(*, session: Session) -> list[GoldAccuracy]:
    """Each reviewer's standing votes on gold pairs, scored against the known answers."""
    undone = select(Review.undoes_id).where(Review.undoes_id.is_not(None))
    rows = session.execute(
        select(Review.reviewer_id, User.username, Review.decision, Review.reason, GoldAnswer)
        .join(GoldAnswer, GoldAnswer.pair_id == Review.pair_id)
        .join(User, User.id == Review.reviewer_id)
        .where(Review.kind == ReviewKind.review, Review.id.not_in(undone))
        .order_by(User.username)
    ).all()
    tally: dict[tuple[int, str], list[int]] = collections.defaultdict(lambda: [0, 0, 0])
    for reviewer_id, username, decision, reason, gold in rows:
        t = tally[(reviewer_id, username)]
        t[0] += 1
        if decision == gold.decision:
            t[1] += 1
            if decision == "approve" or reason == gold.reason:
                t[2] += 1
    return [GoldAccuracy(rid, name, *t) for (rid, name), t in tally.items()]


# --- agreement ----------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PairwiseAgreement:
    reviewer_a: str
    reviewer_b: str
    common: int  # pairs both decided
    percent_agreement: float
    cohen_kappa: float | None


@dataclasses.dataclass(frozen=True)
class EditDistance:
    reviewer_a: str
    reviewer_b: str
    common: int  # pairs whose caption both edited
    mean_chars: float
    mean_normalized: float  # Levenshtein / longer length, 0 identical ... 1 disjoint


@dataclasses.dataclass(frozen=True)
class AgreementReport:
    pairwise: list[PairwiseAgreement]
    fleiss_kappa: float | None
    fleiss_items: int  # pairs with the most common number of votes (Fleiss needs equal n)
    fleiss_raters: int
    krippendorff_alpha: float | None
    alpha_items: int  # pairs with >= 2 votes
    caption_edits: list[EditDistance]


def _standing_votes(session: Session) -> dict[int, dict[str, str]]:
    """pair id -> {reviewer name: decision}: each reviewer's last standing vote, only on
    pairs that at least two reviewers decided (gold pairs included: they are votes too)."""
    undone = select(Review.undoes_id).where(Review.undoes_id.is_not(None))
    standing = (Review.kind == ReviewKind.review) & Review.id.not_in(undone)
    multi = (
        select(Review.pair_id)
        .where(standing)
        .group_by(Review.pair_id)
        .having(func.count(func.distinct(Review.reviewer_id)) >= 2)
    )
    rows = session.execute(
        select(Review.pair_id, User.username, Review.decision)
        .join(User, User.id == Review.reviewer_id)
        .where(standing, Review.pair_id.in_(multi))
        .order_by(Review.id)
    ).all()
    out: dict[int, dict[str, str]] = collections.defaultdict(dict)
    for pair_id, username, decision in rows:
        out[pair_id][username] = decision
    return out


def agreement_report(*, session: Session) -> AgreementReport:
    votes = _standing_votes(session)
    by_reviewer_pair: dict[tuple[str, str], tuple[list[str], list[str]]] = {}
    for per_pair in votes.values():
        for a, b in itertools.combinations(sorted(per_pair), 2):
            xs, ys = by_reviewer_pair.setdefault((a, b), ([], []))
            xs.append(per_pair[a])
            ys.append(per_pair[b])
    pairwise = [
        PairwiseAgreement(
            a,
            b,
            len(xs),
            sum(x == y for x, y in zip(xs, ys, strict=True)) / len(xs),
            agreement.cohen_kappa(xs, ys),
        )
        for (a, b), (xs, ys) in sorted(by_reviewer_pair.items())
    ]
    units = [list(per_pair.values()) for per_pair in votes.values()]
    alpha = agreement.krippendorff_alpha_nominal(units)
    fleiss: float | None = None
    fleiss_items = fleiss_raters = 0
    if units:
        fleiss_raters = collections.Counter(len(u) for u in units).most_common(1)[0][0]
        table = [[u.count("approve"), u.count("reject")] for u in units if len(u) == fleiss_raters]
        fleiss_items = len(table)
        fleiss = agreement.fleiss_kappa(table)
    return AgreementReport(
        pairwise=pairwise,
        fleiss_kappa=fleiss,
        fleiss_items=fleiss_items,
        fleiss_raters=fleiss_raters,
        krippendorff_alpha=alpha,
        alpha_items=len(units),
        caption_edits=caption_edit_distances(session=session),
    )


def caption_edit_distances(*, session: Session) -> list[EditDistance]:
    """For every pair whose caption two reviewers edited: the Levenshtein distance
    between each one's last caption, averaged per reviewer pair."""
    rows = session.execute(
        select(PairRevision.pair_id, User.username, PairRevision.after)
        .join(User, User.id == PairRevision.user_id)
        .order_by(PairRevision.id)
    ).all()
    captions: dict[int, dict[str, str]] = collections.defaultdict(dict)
    for pair_id, username, after in rows:
        if isinstance(after, dict) and isinstance(after.get("caption"), str):
            captions[pair_id][username] = after["caption"]
    sums: dict[tuple[str, str], list[float]] = {}
    for per_pair in captions.values():
        for a, b in itertools.combinations(sorted(per_pair), 2):
            s = sums.setdefault((a, b), [0, 0.0, 0.0])
            s[0] += 1
            s[1] += agreement.levenshtein(per_pair[a], per_pair[b])
            s[2] += agreement.normalized_edit_distance(per_pair[a], per_pair[b])
    return [
        EditDistance(a, b, int(n), chars / n, norm / n)
        for (a, b), (n, chars, norm) in sorted(sums.items())
    ]


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
