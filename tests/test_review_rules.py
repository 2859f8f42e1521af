"""Review rules on both databases: a pair leased to someone else is theirs until the lease
expires; votes are blind until the pair settles; a pair tagged not histology is never
approved; changing a settled pair, or undoing a decision that is in a release, needs an
explicit confirm; caption edits show as word diffs in the pair's history."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import select, update

from app.models import Assignment, Pair, Release, ReleaseItem, Review, utcnow
from app.services import adjudication, review
from tests.support.review import claim, version_of, vote
from tests.support.seed import make_pair, make_user, make_video
from tests.support.web import HX, form, hx_post

# --- 1. another reviewer's lease ---------------------------------------------------------


def test_a_pair_leased_to_someone_else_cannot_be_decided(session, team):
    _, (alice, bob, _), ada = team
    held = claim(session, alice)
    with pytest.raises(review.ConflictError, match="being reviewed by someone else"):
        vote(session, bob, held, "approve", k=1)
    # The batch (grid) reports it the same way, and the pair is untouched.
    [outcome] = review.decide_many(
        session=session,
        reviewer=bob,
        items=[(held.id, version_of(session, held))],
        decision="reject",
        reason="duplicate",
    )
    assert not outcome.ok and outcome.conflict and "someone else" in outcome.error
    assert session.scalar(select(Pair.status).where(Pair.id == held.id)) == "pending"
    # The lease holder decides as usual.
    assert vote(session, alice, held, "approve", k=1).status == "approved"


def test_an_expired_lease_protects_nothing(session, team):
    _, (alice, bob, _), _ = team
    held = claim(session, alice)
    session.execute(
        update(Assignment)
        .where(Assignment.pair_id == held.id)
        .values(expires_at=utcnow() - dt.timedelta(seconds=1))
    )
    session.commit()
    assert vote(session, bob, held, "approve", k=1).status == "approved"


def test_with_k_reviews_a_free_slot_may_still_be_decided(session, team):
    _, (alice, bob, carol), _ = team
    held = claim(session, alice, reviews_per_pair=2)
    # One of two slots is alice's: bob may take the other one without a lease...
    vote(session, bob, held, "approve", k=2)
    # ...but now the last slot is alice's.
    with pytest.raises(review.ConflictError, match="someone else"):
        vote(session, carol, held, "approve", k=2)


def test_api_and_page_refuse_a_pair_leased_to_someone_else(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    other = make_user(session, "otto")
    claim(session, other)
    api = reviewer.post(
        f"/api/pairs/{pair.id}/decision",
        json={"decision": "approve", "version": pair.version},
        headers={"X-CSRF-Token": reviewer.token},
    )
    assert api.status_code == 409 and "someone else" in api.json()["detail"]
    page = hx_post(
        reviewer, f"/review/pairs/{pair.id}", action="approve", version=pair.version, mode="detail"
    )
    assert page.status_code == 409 and "someone else" in page.text


def test_admin_adjudication_ignores_leases(session, team):
    _, (alice, bob, carol), ada = team
    video = make_video(session)
    pair = make_pair(session, video)
    vote(session, alice, pair, "approve")
    vote(session, bob, pair, "reject", "duplicate")
    adjudication.claim_adjudication(session=session, admin=ada)
    done = adjudication.adjudicate(
        session=session,
        pair_id=pair.id,
        admin=ada,
        decision="approve",
        expected_version=version_of(session, pair),
    )
    assert done.status == "approved"


# --- 2. blind votes ------------------------------------------------------------------------


def test_votes_are_blind_until_the_pair_settles(session, team):
    pairs, (alice, bob, _), ada = team
    pair = pairs[0]
    vote(session, alice, pair, "reject", "duplicate")
    seen_by_bob = review.pair_history(session=session, pair_id=pair.id, viewer=bob)
    assert [e for e in seen_by_bob if e.kind == "review"] == []
    mine = review.pair_history(session=session, pair_id=pair.id, viewer=alice)
    assert [(e.kind, e.username) for e in mine] == [("review", "alice")]
    assert len(review.pair_history(session=session, pair_id=pair.id, viewer=ada)) == 1
    vote(session, bob, pair, "reject", "duplicate")  # settles it: rejected
    after = review.pair_history(session=session, pair_id=pair.id, viewer=bob)
    assert sorted(e.username for e in after) == ["alice", "bob"]


def test_history_api_and_page_hide_other_votes(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    vote(session, make_user(session, "otto"), pair, "reject", "duplicate", k=2)
    api = reviewer.get(f"/api/pairs/{pair.id}/history")
    assert api.status_code == 200 and api.json() == []
    page = reviewer.get(f"/review/pairs/{pair.id}")
    assert "otto" not in page.text.split('id="pair-history"', 1)[1]


def test_admins_see_every_vote(admin, session):
    video = make_video(session)
    pair = make_pair(session, video)
    vote(session, make_user(session, "otto"), pair, "reject", "duplicate", k=2)
    assert [e["username"] for e in admin.get(f"/api/pairs/{pair.id}/history").json()] == ["otto"]


# --- 3. not histology is a rejection -----------------------------------------------------


def test_a_pair_tagged_not_histology_cannot_be_approved(session, team):
    pairs, (alice, _, _), ada = team
    pair = pairs[0]
    session.execute(update(Pair).where(Pair.id == pair.id).values(not_histology=True))
    session.commit()
    with pytest.raises(review.ReviewError, match="not histology"):
        vote(session, alice, pair, "approve", k=1)
    with pytest.raises(review.ReviewError, match="not histology"):
        adjudication.adjudicate(
            session=session,
            pair_id=pair.id,
            admin=ada,
            decision="approve",
            expected_version=version_of(session, pair),
        )
    assert vote(session, alice, pair, "reject", "not_histology", k=1).status == "rejected"


def test_ticking_not_histology_and_approving_on_the_page_is_refused(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    response = hx_post(
        reviewer,
        f"/review/pairs/{pair.id}",
        action="approve",
        version=pair.version,
        mode="detail",
        tags="1",
        not_histology="on",
    )
    assert response.status_code == 422
    assert "cannot be approved" in response.text
    session.expire_all()
    stored = session.get(Pair, pair.id)
    assert (stored.status, stored.not_histology) == ("pending", False)
    api = reviewer.post(
        f"/api/pairs/{pair.id}/decision",
        json={"decision": "approve", "version": pair.version},
        headers={"X-CSRF-Token": reviewer.token},
    )
    assert api.status_code == 200  # untagged: fine


# --- 4. settled pairs and released decisions need a confirm ------------------------------


def test_changing_a_settled_pair_needs_confirm(session, team):
    pairs, (alice, bob, _), _ = team
    pair = pairs[0]
    vote(session, alice, pair, "approve", k=1)
    with pytest.raises(review.ConflictError, match=r"settled \(approved by alice\); confirm"):
        vote(session, bob, pair, "reject", "duplicate", k=1)
    changed = review.decide(
        session=session,
        pair_id=pair.id,
        reviewer=bob,
        decision="reject",
        reason="duplicate",
        expected_version=version_of(session, pair),
        confirm=True,
    )
    assert changed.status == "rejected"
    history = review.pair_history(session=session, pair_id=pair.id)
    assert [e.confirmed for e in history] == [False, True]


def test_settled_pair_on_the_api_and_page(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    vote(session, make_user(session, "otto"), pair, "approve", k=1)
    version = version_of(session, pair)
    headers = {"X-CSRF-Token": reviewer.token}
    body = {"decision": "reject", "reason": "duplicate", "version": version}
    refused = reviewer.post(f"/api/pairs/{pair.id}/decision", json=body, headers=headers)
    assert refused.status_code == 409
    assert "settled (approved by otto); confirm to change it" in refused.json()["detail"]
    page = reviewer.get(f"/review/pairs/{pair.id}")
    assert 'name="confirm"' in page.text
    done = hx_post(
        reviewer,
        f"/review/pairs/{pair.id}",
        action="reject",
        reason="duplicate",
        version=version,
        mode="detail",
        confirm="true",
    )
    assert done.status_code == 200
    assert session.scalar(select(Pair.status).where(Pair.id == pair.id)) == "rejected"


def _release(session, pair):
    release = Release(version="v1", status="ready")
    session.add(release)
    session.flush()
    session.add(
        ReleaseItem(release_id=release.id, pair_id=pair.id, key="0001", split="train", data={})
    )
    session.commit()


def test_undoing_a_released_decision_needs_confirm(session, team):
    pairs, (alice, _, _), _ = team
    pair = pairs[0]
    vote(session, alice, pair, "approve", k=1)
    _release(session, pair)
    with pytest.raises(review.ConflictError, match="in release v1; confirm to change it"):
        review.undo_last(session=session, reviewer=alice)
    assert session.scalar(select(Pair.status).where(Pair.id == pair.id)) == "approved"
    back = review.undo_last(session=session, reviewer=alice, confirm=True)
    assert back.status == "pending"
    undo = session.scalars(select(Review).where(Review.kind == "undo")).one()
    assert "release v1" in undo.comment
    assert review.pair_history(session=session, pair_id=pair.id)[-1].confirmed


def test_undo_api_and_page_with_a_released_decision(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    vote(session, reviewer.user, pair, "approve", k=1)
    _release(session, pair)
    headers = {"X-CSRF-Token": reviewer.token}
    refused = reviewer.post("/api/history/undo", headers=headers)
    assert refused.status_code == 409 and "release v1" in refused.json()["detail"]
    page = reviewer.post("/review/undo", data=form(reviewer), headers=HX)
    assert page.status_code == 409
    done = reviewer.post("/api/history/undo", json={"confirm": True}, headers=headers)
    assert done.status_code == 200 and done.json()["status"] == "pending"


# --- 6. edits as word diffs --------------------------------------------------------------


def test_caption_edits_show_as_word_diffs(admin, session):
    video = make_video(session)
    pair = make_pair(session, video, caption="Hepatocytes with microvesicular steatosis.")
    review.edit(
        session=session,
        pair_id=pair.id,
        user=admin.user,
        fields={"caption": "Hepatocytes with macrovesicular steatosis."},
        expected_version=pair.version,
    )
    page = admin.get(f"/review/pairs/{pair.id}").text
    history = page.split('id="pair-history"', 1)[1]
    assert "<del>microvesicular</del> <ins>macrovesicular</ins>" in history
    assert "<del>Hepatocytes with microvesicular" not in history


# --- 5. reviewers see no server paths or raw exception text ------------------------------

SERVER_PATH = "/srv/quilt/imports/liver.mp4"
RAW_ERROR = (
    f"fetch: will retry: FileNotFoundError: [Errno 2] No such file or directory: '{SERVER_PATH}'"
)


def _failed_local_video(session):
    return make_video(session, title=None, source_url=SERVER_PATH, status="failed", error=RAW_ERROR)


def test_reviewers_get_file_names_and_plain_errors(reviewer, session):
    video = _failed_local_video(session)
    [item] = reviewer.get("/api/videos").json()["items"]
    assert item["source_url"] == "liver.mp4"
    assert item["error"] == "fetch: will retry: No such file or directory: liver.mp4"
    detail = reviewer.get(f"/api/videos/{video.id}").json()
    assert "/srv" not in str(detail) and "FileNotFoundError" not in str(detail)
    pair = make_pair(session, video)
    page = reviewer.get(f"/review/pairs/{pair.id}").text
    assert SERVER_PATH not in page and "liver.mp4" in page


def test_admins_get_the_full_details(admin, session):
    _failed_local_video(session)
    [item] = admin.get("/api/videos").json()["items"]
    assert (item["source_url"], item["error"]) == (SERVER_PATH, RAW_ERROR)


def test_internal_errors_read_as_such():
    from app.services.redact import error_line  # noqa: PLC0415

    line = error_line("frames: internal error in frames: KeyError: 'x'\nTraceback ...")
    assert line == "frames: an internal error (an admin can see the details)"


# --- 7. caption limits and bidi controls -------------------------------------------------


def test_captions_are_at_most_2000_characters(session, team):
    pairs, (alice, _, _), _ = team
    with pytest.raises(review.ReviewError, match="caption: at most 2,000 characters"):
        review.edit(
            session=session,
            pair_id=pairs[0].id,
            user=alice,
            fields={"caption": "x" * 2_001},
            expected_version=1,
        )
    # Medical and ROI text keep the longer limit.
    done = review.edit(
        session=session,
        pair_id=pairs[0].id,
        user=alice,
        fields={"caption": "x" * 2_000, "medical_text": "y" * 5_000},
        expected_version=1,
    )
    assert len(done.caption) == 2_000


def test_bidi_controls_are_stripped_on_save(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    tricky = "Benign \u202etumor\u202c with \u2066atypia\u2069."
    response = reviewer.patch(
        f"/api/pairs/{pair.id}",
        json={"caption": tricky, "roi_text": "\u202a roi", "version": pair.version},
        headers={"X-CSRF-Token": reviewer.token},
    )
    assert response.status_code == 200
    assert response.json()["caption"] == "Benign tumor with atypia."
    assert response.json()["roi_text"] == " roi"
    too_long = reviewer.patch(
        f"/api/pairs/{pair.id}",
        json={"caption": "x" * 2_001, "version": response.json()["version"]},
        headers={"X-CSRF-Token": reviewer.token},
    )
    assert too_long.status_code == 422


def test_release_notes_are_escaped_in_the_data_card():
    from app.exporters.datacard import render_datacard  # noqa: PLC0415

    header = {
        "version": "v1",
        "created_at": "2026-01-01",
        "pair_count": 0,
        "counts": {},
        "shards": {},
        "val_fraction": 0.1,
        "test_fraction": 0.1,
    }
    card = render_datacard(manifest_header=header, notes="<script>x</script> & co")
    assert "&lt;script>x&lt;/script> &amp; co" in card
    assert "<script>" not in card
