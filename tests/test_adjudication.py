"""Several reviews per pair, on both databases: a pair is leased to as many reviewers as it
needs (k) and never twice to one, agreeing votes settle it, disagreeing ones make it
disputed, and only an admin adjudicates a dispute."""

from __future__ import annotations

import datetime as dt

import pytest

from app.models import PairStatus, Role, utcnow
from app.services import adjudication, review
from tests.support.review import LEASE_S, claim, vote
from tests.support.seed import make_user


def test_k_reviews_per_pair_lease_to_k_reviewers_and_never_twice_to_one(session, team):
    pairs, (alice, bob, carol), _ = team
    a = claim(session, alice, reviews_per_pair=2)
    b = claim(session, bob, reviews_per_pair=2)
    assert a.id == b.id == pairs[0].id  # two leases: the pair needs two reviews
    c = claim(session, carol, reviews_per_pair=2)
    assert c.id == pairs[1].id  # a third reviewer is not needed on pairs[0]
    first = vote(session, alice, a)
    assert (first.status, first.review_count, first.version) == ("pending", 1, 1)
    # A vote that does not settle the pair leaves the version alone: bob is not in conflict.
    second = vote(session, bob, b)
    assert (second.status, second.review_count, second.version) == ("approved", 2, 2)
    # Alice is never handed pairs[0] again, nor can she vote twice on a pending pair.
    assert claim(session, alice, reviews_per_pair=2).id == pairs[1].id
    with pytest.raises(review.ConflictError, match="already reviewed"):
        vote(session, carol, c)
        vote(session, carol, c)


def test_disagreement_goes_to_adjudication(session, team):
    pairs, (alice, bob, carol), ada = team
    p = pairs[0]
    vote(session, alice, p, "approve")
    disputed = vote(session, bob, p, "reject", "impurity")
    assert disputed.status == PairStatus.disputed
    assert review.queue_counts(session=session).disputed == 1
    # Reviewers do not settle disputes.
    with pytest.raises(review.ReviewError, match="admin"):
        vote(session, carol, p, "approve")
    with pytest.raises(review.NotAllowedError):
        adjudication.claim_adjudication(session=session, admin=alice)
    total, items = adjudication.list_adjudication(session=session)
    assert total == 1 and [v.decision for v in items[0].votes] == ["approve", "reject"]
    item = adjudication.claim_adjudication(session=session, admin=ada, lease_s=LEASE_S)
    assert item.pair.id == p.id
    ada2 = make_user(session, "ada2", Role.admin)
    assert adjudication.claim_adjudication(session=session, admin=ada2, lease_s=LEASE_S) is None
    with pytest.raises(review.ConflictError):
        adjudication.adjudicate(
            session=session, pair_id=p.id, admin=ada, decision="approve", expected_version=1
        )
    settled = adjudication.adjudicate(
        session=session,
        pair_id=p.id,
        admin=ada,
        decision="reject",
        reason="impurity",
        expected_version=disputed.version,
    )
    assert (settled.status, settled.reject_reason) == ("rejected", "impurity")
    kinds = [h.kind for h in review.pair_history(session=session, pair_id=p.id)]
    assert kinds == ["review", "review", "adjudication"]
    assert adjudication.list_adjudication(session=session)[0] == 0


def test_unanimous_rejections_keep_the_most_common_reason(session, team):
    pairs, (alice, bob, carol), _ = team
    p = pairs[0]
    vote(session, alice, p, "reject", "impurity", k=3)
    vote(session, bob, p, "reject", "duplicate", k=3)
    done = vote(session, carol, p, "reject", "impurity", k=3)
    assert (done.status, done.reject_reason) == ("rejected", "impurity")


def test_expired_leases_return_with_k_reviews(session, team):
    pairs, (alice, bob, carol), _ = team
    t0 = utcnow()
    kw = {"reviews_per_pair": 2, "lease_s": 60}
    assert claim(session, alice, now=t0, **kw).id == pairs[0].id
    assert claim(session, bob, now=t0, **kw).id == pairs[0].id
    assert claim(session, carol, now=t0, **kw).id == pairs[1].id
    later = t0 + dt.timedelta(seconds=61)
    dave = make_user(session, "dave")
    assert claim(session, dave, now=later, **kw).id == pairs[0].id


def test_one_pair_can_need_more_reviews_than_the_setting(session, team):
    pairs, (alice, bob, _), _ = team
    adjudication.set_reviews_needed(session=session, pair_id=pairs[0].id, k=2)
    assert vote(session, alice, pairs[0], k=1).status == "pending"
    assert vote(session, bob, pairs[0], k=1).status == "approved"
    with pytest.raises(review.ReviewError):
        adjudication.set_reviews_needed(session=session, pair_id=pairs[0].id, k=0)
