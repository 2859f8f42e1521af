"""Gold pairs: pairs with a known answer (``mark_gold``). The review queue mixes them into
every reviewer's stream (settings.gold_every), once each, and ``gold_accuracy`` scores
each reviewer's votes on them against the answers.
"""

from __future__ import annotations

import collections
import dataclasses

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import (
    GoldAnswer,
    RejectReason,
    Review,
    ReviewKind,
    User,
    utcnow,
)
from app.services import audit
from app.services.review.decisions import validate_decision
from app.services.review.errors import require_admin
from app.services.review.rows import lock_pair, outright_verdict, standing_votes, write_verdict


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
    require_admin(user=admin)
    reason_str, _ = validate_decision(
        decision=decision, reason=reason, comment="gold" if reason == RejectReason.other else None
    )
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
    status_after, values = outright_verdict(
        decision=decision, reason=reason_str, comment=None, by_id=admin.id, now=utcnow()
    )
    if row.status != status_after:
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
    rows = session.execute(
        select(Review.reviewer_id, User.username, Review.decision, Review.reason, GoldAnswer)
        .join(GoldAnswer, GoldAnswer.pair_id == Review.pair_id)
        .join(User, User.id == Review.reviewer_id)
        .where(standing_votes())
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
