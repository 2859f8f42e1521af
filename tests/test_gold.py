"""Gold pairs on both databases: an admin records a pair's known answer; it is mixed into
reviewers' queues, once each, and their answers are scored against it."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select

from app.models import Pair
from app.services import gold, review
from tests.support.review import LEASE_S, vote


def test_gold_pairs_are_mixed_in_and_scored(session, team):
    pairs, (alice, bob, _), ada = team
    gold_pair = pairs[2]
    with pytest.raises(review.NotAllowedError):
        gold.mark_gold(session=session, pair_id=gold_pair.id, admin=alice, decision="approve")
    gold.mark_gold(
        session=session, pair_id=gold_pair.id, admin=ada, decision="reject", reason="impurity"
    )
    assert session.scalar(select(Pair.status).where(Pair.id == gold_pair.id)) == "rejected"
    always = random.Random(1)
    for user, answer in ((alice, ("reject", "impurity")), (bob, ("approve", None))):
        got = review.claim_next(
            session=session, reviewer=user, lease_s=LEASE_S, gold_every=1, rng=always
        )
        assert got.id == gold_pair.id
        decided = review.decide(
            session=session,
            pair_id=got.id,
            reviewer=user,
            decision=answer[0],
            reason=answer[1],
            expected_version=got.version,
        )
        assert decided.status == "rejected"  # the known answer stands
        # Seen once: the next claim is an ordinary pair.
        nxt = review.claim_next(
            session=session, reviewer=user, lease_s=LEASE_S, gold_every=1, rng=always
        )
        assert nxt.id != gold_pair.id
    scores = {
        g.username: (g.answered, g.correct, g.accuracy) for g in gold.gold_accuracy(session=session)
    }
    assert scores == {"alice": (1, 1, 1.0), "bob": (1, 0, 0.0)}
    assert [g.pair_id for g in gold.list_gold(session=session)] == [gold_pair.id]


def test_undo_of_a_gold_vote_leaves_the_known_answer(session, team):
    pairs, (alice, bob, _), ada = team
    g = pairs[0]
    gold.mark_gold(session=session, pair_id=g.id, admin=ada, decision="approve")
    vote(session, alice, g, "reject", "duplicate")
    vote(session, bob, g, "approve")
    back = review.undo_last(session=session, reviewer=alice)
    assert back.status == "approved"
    assert {a.username: a.answered for a in gold.gold_accuracy(session=session)} == {"bob": 1}
