"""Review depth on both databases: k reviews per pair, disputes and adjudication, filters,
undo and one's own history, gold pairs, grid batches, tags."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from sqlalchemy import func, select

from app.models import Channel, Pair, PairStatus, Review, Role, User, Video, utcnow
from app.services import adjudication, gold, review
from tests.support.seed import make_pair, make_user, make_video

LEASE = 600
NO_GOLD = {"gold_every": 0}


def claim(session, user, **kw):
    return review.claim_next(session=session, reviewer=user, lease_s=LEASE, **NO_GOLD, **kw)


def vote(session, user, pair, decision="approve", reason=None, k=2, version=None):
    current = session.scalar(select(Pair.version).where(Pair.id == pair.id))
    return review.decide(
        session=session,
        pair_id=pair.id,
        reviewer=user,
        decision=decision,
        reason=reason,
        expected_version=version if version is not None else current,
        reviews_per_pair=k,
    )


@pytest.fixture
def team(session):
    video = make_video(session)
    pairs = [make_pair(session, video, priority=p) for p in (0.1, 0.2, 0.3)]
    users = [make_user(session, name) for name in ("alice", "bob", "carol")]
    admin = make_user(session, "ada", Role.admin)
    return pairs, users, admin


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
    item = adjudication.claim_adjudication(session=session, admin=ada, lease_s=LEASE)
    assert item.pair.id == p.id
    ada2 = make_user(session, "ada2", Role.admin)
    assert adjudication.claim_adjudication(session=session, admin=ada2, lease_s=LEASE) is None
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
    assert (
        review.claim_next(session=session, reviewer=alice, now=t0, **NO_GOLD, **kw).id
        == pairs[0].id
    )
    assert (
        review.claim_next(session=session, reviewer=bob, now=t0, **NO_GOLD, **kw).id == pairs[0].id
    )
    assert (
        review.claim_next(session=session, reviewer=carol, now=t0, **NO_GOLD, **kw).id
        == pairs[1].id
    )
    later = t0 + dt.timedelta(seconds=61)
    dave = make_user(session, "dave")
    assert (
        review.claim_next(session=session, reviewer=dave, now=later, **NO_GOLD, **kw).id
        == pairs[0].id
    )


def test_filters_by_channel_video_source_magnification(session, settings):
    channel = Channel(url="https://www.youtube.com/@liver", title="Liver path")
    session.add(channel)
    session.commit()
    yt = Video(
        source_kind="youtube", source_url="https://youtu.be/x", channel_id=channel.id, status="done"
    )
    session.add(yt)
    session.commit()
    local = make_video(session)
    p_local = make_pair(session, local, priority=0.1, magnification=2)
    p_yt = make_pair(session, yt, priority=0.5, magnification=1)
    p_yt2 = make_pair(session, yt, priority=0.6, magnification=2)
    alice = make_user(session, "alice")
    f = review.QueueFilters
    assert claim(session, alice, filters=f(channel_id=channel.id)).id == p_yt.id
    # New filters: the held pair outside them goes back to the queue, and the next fits.
    assert claim(session, alice, filters=f(magnification=2)).id == p_local.id
    assert claim(session, alice, filters=f(source_kind="youtube", magnification=2)).id == p_yt2.id
    assert claim(session, alice, filters=f(video_id=local.id)).id == p_local.id
    bob = make_user(session, "bob")
    assert claim(session, bob, filters=f(channel_id=channel.id)).id == p_yt.id
    with pytest.raises(review.ReviewError):
        claim(session, bob, filters=f(status="approved"))
    total, listed = review.list_pairs(session=session, filters=f(source_kind="youtube"))
    assert total == 2 and [p.id for p in listed] == [p_yt.id, p_yt2.id]
    options = review.filter_options(session=session)
    assert options.channels == [(channel.id, "Liver path")]
    assert options.sources == ["file", "youtube"] and options.magnifications == [1, 2]


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
            session=session, reviewer=user, lease_s=LEASE, gold_every=1, rng=always
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
            session=session, reviewer=user, lease_s=LEASE, gold_every=1, rng=always
        )
        assert nxt.id != gold_pair.id
    scores = {
        g.username: (g.answered, g.correct, g.accuracy)
        for g in gold.gold_accuracy(session=session)
    }
    assert scores == {"alice": (1, 1, 1.0), "bob": (1, 0, 0.0)}
    assert [g.pair_id for g in gold.list_gold(session=session)] == [gold_pair.id]


def test_batch_decision_reports_conflicts_per_item(session, team):
    pairs, (alice, bob, _), _ = team
    page = review.claim_batch(session=session, reviewer=alice, limit=3, lease_s=LEASE, gold_every=0)
    assert [p.id for p in page] == [p.id for p in pairs]
    assert (
        review.claim_batch(session=session, reviewer=bob, limit=3, lease_s=LEASE, gold_every=0)
        == []
    )
    review.edit(
        session=session, pair_id=pairs[1].id, user=bob, fields={"caption": "x"}, expected_version=1
    )
    outcomes = review.decide_many(
        session=session,
        reviewer=alice,
        items=[(pairs[0].id, 1), (pairs[1].id, 1), (pairs[2].id, 1), (999_999, 1)],
        decision="reject",
        reason="poor_quality",
    )
    assert [(o.ok, o.conflict) for o in outcomes] == [
        (True, False),
        (False, True),
        (True, False),
        (False, False),
    ]
    assert outcomes[1].version == 2
    assert session.scalar(select(func.count()).select_from(Review)) == 2


def test_tags_are_edited_with_history(session, team):
    pairs, (alice, _, _), _ = team
    p = pairs[0]
    edited = review.edit(
        session=session,
        pair_id=p.id,
        user=alice,
        fields={"magnification": 1, "subpathology": "hepatobiliary", "not_histology": True},
        expected_version=1,
    )
    assert (edited.magnification, edited.subpathology, edited.not_histology) == (
        1,
        "hepatobiliary",
        True,
    )
    history = review.pair_history(session=session, pair_id=p.id)
    assert history[0].before == {"magnification": 20, "subpathology": None, "not_histology": False}
    for bad in ({"subpathology": "liverish"}, {"magnification": "20x"}, {"not_histology": "yes"}):
        with pytest.raises(review.ReviewError):
            review.edit(session=session, pair_id=p.id, user=alice, fields=bad, expected_version=2)
    assert session.get(User, alice.id).username == "alice"


def test_undo_of_an_override_restores_the_earlier_verdict(session, team):
    pairs, (alice, bob, _), _ = team
    p = pairs[0]
    first_version = vote(session, alice, p, "reject", "duplicate", k=1).version
    overridden = vote(session, bob, p, "approve", k=1)
    assert (overridden.status, overridden.version) == ("approved", first_version + 1)
    back = review.undo_last(session=session, reviewer=bob)
    assert (back.status, back.reject_reason, back.reviewed_by_id) == (
        "rejected",
        "duplicate",
        alice.id,
    )
    # Bob's override no longer stands, so Alice may undo her own decision.
    assert review.undo_last(session=session, reviewer=alice).status == "pending"


def test_undo_of_a_gold_vote_leaves_the_known_answer(session, team):
    pairs, (alice, bob, _), ada = team
    g = pairs[0]
    gold.mark_gold(session=session, pair_id=g.id, admin=ada, decision="approve")
    vote(session, alice, g, "reject", "duplicate")
    vote(session, bob, g, "approve")
    back = review.undo_last(session=session, reviewer=alice)
    assert back.status == "approved"
    assert {a.username: a.answered for a in gold.gold_accuracy(session=session)} == {"bob": 1}


def test_one_pair_can_need_more_reviews_than_the_setting(session, team):
    pairs, (alice, bob, _), _ = team
    adjudication.set_reviews_needed(session=session, pair_id=pairs[0].id, k=2)
    assert vote(session, alice, pairs[0], k=1).status == "pending"
    assert vote(session, bob, pairs[0], k=1).status == "approved"
    with pytest.raises(review.ReviewError):
        adjudication.set_reviews_needed(session=session, pair_id=pairs[0].id, k=0)
