"""The review queue on both databases: claims, leases, decisions, edits, conflicts, queue
filters, grid batches and tags."""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from sqlalchemy import func, select

from app import db as app_db
from app.models import (
    Assignment,
    AuditEvent,
    Pair,
    PairRevision,
    PairStatus,
    RejectReason,
    Review,
    Role,
    User,
    utcnow,
)
from app.services import review
from tests.support.review import LEASE_S, claim
from tests.support.seed import make_channel, make_pair, make_user, make_video


@pytest.fixture
def queue(session):
    """Three pending pairs (priorities 0.9, 0.1, 0.1) and two reviewers."""
    video = make_video(session)
    pairs = [
        make_pair(session, video, priority=0.9),
        make_pair(session, video, priority=0.1),
        make_pair(session, video, priority=0.1),
    ]
    alice = make_user(session, "alice")
    bob = make_user(session, "bob")
    return pairs, alice, bob


def test_claim_order_is_priority_then_id_and_reload_keeps_the_pair(session, queue):
    pairs, alice, _ = queue
    first = review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S)
    assert first.id == pairs[1].id
    again = review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S)
    assert again.id == first.id
    assert session.scalar(select(func.count()).select_from(Assignment)) == 1


def test_two_reviewers_never_get_the_same_pair(session, queue):
    pairs, alice, bob = queue
    a = review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S)
    b = review.claim_next(session=session, reviewer=bob, lease_s=LEASE_S)
    assert {a.id, b.id} == {pairs[1].id, pairs[2].id}
    carol = make_user(session, "carol")
    c = review.claim_next(session=session, reviewer=carol, lease_s=LEASE_S)
    assert c.id == pairs[0].id
    dave = make_user(session, "dave")
    assert review.claim_next(session=session, reviewer=dave, lease_s=LEASE_S) is None


def test_expired_lease_goes_back_to_the_queue(session, queue):
    pairs, alice, bob = queue
    t0 = utcnow()
    held = review.claim_next(session=session, reviewer=alice, lease_s=60, now=t0)
    later = t0 + dt.timedelta(seconds=61)
    taken = review.claim_next(session=session, reviewer=bob, lease_s=60, now=later)
    assert taken.id == held.id
    # Alice's expired lease no longer counts; she gets the next free pair.
    other = review.claim_next(session=session, reviewer=alice, lease_s=60, now=later)
    assert other.id == pairs[2].id


def test_concurrent_claims_hand_out_distinct_pairs(session, settings):
    video = make_video(session)
    for i in range(12):
        make_pair(session, video, priority=i / 100)
    reviewers = [make_user(session, f"rev{i}") for i in range(8)]
    maker = app_db.get_sessionmaker()
    got: dict[str, int | None] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(reviewers))

    def claim(user_id: int) -> None:
        try:
            with maker() as own:
                reviewer = own.get(User, user_id)
                barrier.wait()
                pair = review.claim_next(session=own, reviewer=reviewer, lease_s=LEASE_S)
                got[reviewer.username] = pair.id if pair else None
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claim, args=(r.id,)) for r in reviewers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    ids = list(got.values())
    assert None not in ids
    assert len(set(ids)) == len(reviewers)


def test_approve_appends_review_bumps_version_and_frees_the_lease(session, queue):
    pairs, alice, _ = queue
    pair = review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S)
    decided = review.decide(
        session=session, pair_id=pair.id, reviewer=alice, decision="approve", expected_version=1
    )
    assert decided.status == PairStatus.approved
    assert decided.version == 2
    assert decided.reviewed_by_id == alice.id
    reviews = session.scalars(select(Review)).all()
    assert [(r.decision, r.reviewer_id) for r in reviews] == [("approve", alice.id)]
    lease = session.scalar(select(Assignment).where(Assignment.pair_id == pair.id))
    assert lease.completed_at is not None
    assert session.scalar(select(AuditEvent.action)) == "pair.approve"
    nxt = review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S)
    assert nxt.id == pairs[2].id


@pytest.mark.parametrize(
    ("fields", "match"),
    [
        ({"decision": "reject"}, "reason"),
        ({"decision": "reject", "reason": RejectReason.other, "comment": "  "}, "comment"),
        ({"decision": "maybe"}, None),
        ({"decision": "reject", "reason": "ugly"}, "unknown"),
    ],
    ids=["reject-without-reason", "other-without-comment", "unknown-decision", "unknown-reason"],
)
def test_invalid_decisions_are_refused_and_not_recorded(session, queue, fields, match):
    pairs, alice, _ = queue
    with pytest.raises(review.ReviewError, match=match):
        review.decide(
            session=session, pair_id=pairs[0].id, reviewer=alice, expected_version=1, **fields
        )
    assert session.scalar(select(func.count()).select_from(Review)) == 0
    assert session.scalar(select(Pair.status).where(Pair.id == pairs[0].id)) == "pending"


def test_reject_for_other_reasons_keeps_the_comment(session, queue):
    pairs, alice, _ = queue
    pid = pairs[0].id
    rejected = review.decide(
        session=session,
        pair_id=pid,
        reviewer=alice,
        decision="reject",
        reason="other",
        comment="slide label visible",
        expected_version=1,
    )
    assert (rejected.status, rejected.reject_reason, rejected.reject_comment) == (
        "rejected",
        "other",
        "slide label visible",
    )
    assert session.scalar(select(func.count()).select_from(Review)) == 1


def test_stale_version_is_a_conflict(session, queue):
    pairs, alice, bob = queue
    pid = pairs[0].id
    review.decide(
        session=session, pair_id=pid, reviewer=alice, decision="approve", expected_version=1
    )
    with pytest.raises(review.ConflictError) as info:
        review.decide(
            session=session,
            pair_id=pid,
            reviewer=bob,
            decision="reject",
            reason=RejectReason.duplicate,
            expected_version=1,
        )
    assert info.value.current_version == 2
    with pytest.raises(review.ConflictError):
        review.edit(
            session=session, pair_id=pid, user=bob, fields={"caption": "x"}, expected_version=1
        )
    pair = session.get(Pair, pid)
    session.refresh(pair)
    assert (pair.status, pair.version) == ("approved", 2)
    with pytest.raises(review.PairNotFoundError):
        review.decide(
            session=session, pair_id=10_000, reviewer=bob, decision="approve", expected_version=1
        )


def test_edit_appends_a_revision_with_before_and_after(session, queue):
    pairs, alice, _ = queue
    pid = pairs[0].id
    old_caption = pairs[0].caption
    edited = review.edit(
        session=session,
        pair_id=pid,
        user=alice,
        fields={"caption": "Macrovesicular steatosis, H&E, 20x.", "roi_text": pairs[0].roi_text},
        expected_version=1,
    )
    assert edited.caption == "Macrovesicular steatosis, H&E, 20x."
    assert edited.version == 2
    revision = session.scalar(select(PairRevision))
    assert revision.before == {"caption": old_caption}
    assert revision.after == {"caption": "Macrovesicular steatosis, H&E, 20x."}
    assert revision.user_id == alice.id
    # Nothing changed: no revision, no new version.
    same = review.edit(
        session=session,
        pair_id=pid,
        user=alice,
        fields={"caption": edited.caption},
        expected_version=2,
    )
    assert same.version == 2
    assert session.scalar(select(func.count()).select_from(PairRevision)) == 1
    with pytest.raises(review.ReviewError, match="not editable"):
        review.edit(
            session=session,
            pair_id=pid,
            user=alice,
            fields={"status": "approved"},
            expected_version=2,
        )
    with pytest.raises(review.ReviewError, match="empty"):
        review.edit(
            session=session, pair_id=pid, user=alice, fields={"caption": "  "}, expected_version=2
        )


def test_history_lists_edits_and_decisions_in_order(session, queue):
    pairs, alice, bob = queue
    pid = pairs[0].id
    review.edit(
        session=session, pair_id=pid, user=alice, fields={"caption": "first"}, expected_version=1
    )
    review.decide(
        session=session,
        pair_id=pid,
        reviewer=bob,
        decision="reject",
        reason=RejectReason.impurity,
        expected_version=2,
    )
    history = review.pair_history(session=session, pair_id=pid)
    assert [(h.kind, h.username) for h in history] == [("edit", "alice"), ("review", "bob")]
    assert history[1].reason == "impurity"


def test_skip_passes_the_pair_to_someone_else(session, queue):
    pairs, alice, bob = queue
    first = review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S)
    review.skip(session=session, pair_id=first.id, reviewer=alice)
    assert review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S).id == pairs[2].id
    assert review.claim_next(session=session, reviewer=bob, lease_s=LEASE_S).id == first.id


def test_queue_counts(session, queue):
    pairs, alice, _ = queue
    review.claim_next(session=session, reviewer=alice, lease_s=LEASE_S)
    review.decide(
        session=session,
        pair_id=pairs[0].id,
        reviewer=alice,
        decision="reject",
        reason=RejectReason.poor_quality,
        expected_version=1,
    )
    counts = review.queue_counts(session=session)
    assert (counts.pending, counts.approved, counts.rejected, counts.leased) == (2, 0, 1, 1)
    assert counts.total == 3
    assert session.scalar(select(User.role).where(User.username == "alice")) == Role.reviewer


def test_filters_by_channel_video_source_magnification(session, settings):
    channel = make_channel(session, "Liver path")
    yt = make_video(
        session, None, source_kind="youtube", source_url="https://youtu.be/x", channel_id=channel.id
    )
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


def test_batch_decision_reports_conflicts_per_item(session, team):
    pairs, (alice, bob, _), _ = team
    page = review.claim_batch(
        session=session, reviewer=alice, limit=3, lease_s=LEASE_S, gold_every=0
    )
    assert [p.id for p in page] == [p.id for p in pairs]
    assert (
        review.claim_batch(session=session, reviewer=bob, limit=3, lease_s=LEASE_S, gold_every=0)
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
