"""Undo on both databases: undoing a decision appends to the pair's history (nothing is
deleted), gives the pair back to its reviewer and restores the verdict before it; a
decision someone else has since settled cannot be undone. Also one's own decision history,
paged both ways."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.models import Review
from app.services import adjudication, review
from tests.support.review import claim, vote


def test_undo_appends_and_the_pair_comes_back(session, team):
    pairs, (alice, bob, _), _ = team
    assert review.undo_last(session=session, reviewer=alice) is None
    got = claim(session, alice)
    decided = review.decide(
        session=session,
        pair_id=got.id,
        reviewer=alice,
        decision="reject",
        reason="duplicate",
        expected_version=1,
    )
    assert decided.status == "rejected"
    back = review.undo_last(session=session, reviewer=alice)
    assert (back.id, back.status, back.version, back.review_count) == (got.id, "pending", 3, 0)
    assert back.reject_reason is None
    # The pair is leased to alice again; nobody else gets it meanwhile.
    assert claim(session, alice).id == got.id
    assert claim(session, bob).id != got.id
    reviews = session.scalars(select(Review).order_by(Review.id)).all()
    assert [(r.kind, r.undoes_id) for r in reviews] == [("review", None), ("undo", reviews[0].id)]
    # She decides again, now approve.
    again = review.decide(
        session=session, pair_id=got.id, reviewer=alice, decision="approve", expected_version=3
    )
    assert again.status == "approved"
    history = review.reviewer_history(session=session, reviewer=alice)
    assert [(h.decision, h.undone) for h in history] == [("approve", False), ("reject", True)]
    older = review.reviewer_history(session=session, reviewer=alice, before_id=history[0].review_id)
    assert [h.review_id for h in older] == [history[1].review_id]
    newer = review.reviewer_history(session=session, reviewer=alice, after_id=history[1].review_id)
    assert [h.review_id for h in newer] == [history[0].review_id]
    entries = review.pair_history(session=session, pair_id=got.id)
    assert [(e.kind, e.before, e.after) for e in entries] == [
        ("review", {"status": "pending"}, {"status": "rejected"}),
        ("undo", {"status": "rejected"}, {"status": "pending"}),
        ("review", {"status": "pending"}, {"status": "approved"}),
    ]


def test_undo_refused_after_someone_else_settled_the_pair(session, team):
    pairs, (alice, bob, _), ada = team
    p = pairs[0]
    vote(session, alice, p, "approve")
    disputed = vote(session, bob, p, "reject", "impurity")
    adjudication.adjudicate(
        session=session,
        pair_id=p.id,
        admin=ada,
        decision="approve",
        expected_version=disputed.version,
    )
    with pytest.raises(review.ConflictError, match="settled"):
        review.undo_last(session=session, reviewer=bob)
    # The admin can undo the adjudication: back to disputed.
    assert review.undo_last(session=session, reviewer=ada).status == "disputed"
    # k=2 vote undone before the second vote: only the count goes down.
    q = pairs[1]
    vote(session, alice, q, "approve")
    assert review.undo_last(session=session, reviewer=alice).review_count == 0


def test_undo_of_an_override_restores_the_earlier_verdict(session, team):
    pairs, (alice, bob, _), _ = team
    p = pairs[0]
    first_version = vote(session, alice, p, "reject", "duplicate", k=1).version
    overridden = review.decide(
        session=session,
        pair_id=p.id,
        reviewer=bob,
        decision="approve",
        expected_version=first_version,
        confirm=True,  # a settled pair changes only on purpose
    )
    assert (overridden.status, overridden.version) == ("approved", first_version + 1)
    back = review.undo_last(session=session, reviewer=bob)
    assert (back.status, back.reject_reason, back.reviewed_by_id) == (
        "rejected",
        "duplicate",
        alice.id,
    )
    # Bob's override no longer stands, so Alice may undo her own decision.
    assert review.undo_last(session=session, reviewer=alice).status == "pending"
