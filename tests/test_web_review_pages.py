"""The review pages and their htmx partials, on both databases: the pair view (concepts,
transcript, source video, tags, what the frames stage saw), deciding in the pane and in the
background, conflicts, prefetch, undo and one's own history, grid triage, tags, gold answers
from the pair page, media byte ranges, and hostile captions escaped on every page."""

from __future__ import annotations

import json

from app.models import Frame, Pair, PairStatus, TranscriptSegment
from app.services import review
from app.web import events
from app.web.ui.pair_context import word_diff
from tests.support.review import disputed_pair
from tests.support.seed import make_pair, make_video, write_frame_jpeg
from tests.support.web import HX, form, hx_post

HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _pane_pair_id(html: str) -> int | None:
    marker = 'id="pair-form"'
    if marker not in html:
        return None
    rest = html.split(marker, 1)[1]
    return int(rest.split('data-pair-id="', 1)[1].split('"', 1)[0])


# --- the pair view -----------------------------------------------------------------


def test_review_page_shows_the_claimed_pair(admin, session, settings):
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    pair = make_pair(session, video)
    page = admin.get("/review")
    assert page.status_code == 200
    text = page.text
    assert 'src="/media/frames/1/0001.jpg"' in text
    for expected in (
        pair.caption,
        pair.roi_text,
        # noisy -> corrected as a word diff
        "<del>hepato sites</del> <ins>hepatocytes</ins>",
        "<del>macro vesicular stee a toesis</del> <ins>macrovesicular steatosis</ins>",
        "Hepatocyte",
        "steatosis",
        "20×",
        "1:02–1:10",
        "Liver pathology, lecture 3",
        "Narrator / desktop / text overlay in the image",
        'hx-headers=\'{"X-CSRF-Token": "',
    ):
        assert expected in text, expected
    # htmx asks for the pane only.
    pane = admin.get("/review", headers=HX).text
    assert pane.lstrip().startswith("<section") or pane.lstrip().startswith("{#")
    assert "<html" not in pane


def test_word_diff():
    pieces = word_diff("the hepato sites are here", "the hepatocytes are here")
    assert [(p.op, p.text) for p in pieces] == [
        ("equal", "the"),
        ("delete", "hepato sites"),
        ("insert", "hepatocytes"),
        ("equal", "are here"),
    ]
    assert word_diff("", "") == []


def test_pair_view_shows_concepts_transcript_video_and_tags(reviewer, session, settings):
    video = make_video(session)
    video.media_path = "videos/1/source.mp4"
    session.add_all(
        [
            TranscriptSegment(
                video_id=video.id, idx=0, start_s=10.0, end_s=20.0, text="Too early."
            ),
            TranscriptSegment(video_id=video.id, idx=1, start_s=35.0, end_s=40.0, text="Before."),
            TranscriptSegment(video_id=video.id, idx=2, start_s=63.0, end_s=68.0, text="During."),
            TranscriptSegment(video_id=video.id, idx=3, start_s=95.0, end_s=99.0, text="After."),
            TranscriptSegment(video_id=video.id, idx=4, start_s=120.0, end_s=125.0, text="Late."),
        ]
    )
    session.commit()
    make_pair(
        session,
        video,
        umls=["QC:239475"],
        medical_text="hepatocytes with macrovesicular steatosis",
        magnification=1,
    )
    text = reviewer.get("/review").text
    assert (
        '<mark class="concept" title="hepatocyte (Cell) · QC:239475" '
        'data-concept="QC:239475">hepatocytes</mark>'
    ) in text
    assert "Before." in text and "During." in text and "After." in text
    assert "Too early." not in text and "Late." not in text
    assert '<li class="inside"><span class="ts">1:03</span> During.</li>' in text
    assert 'src="/media/videos/1/source.mp4#t=62.0,70.5"' in text and 'preload="none"' in text
    assert "Source video from 1:02" in text
    assert "20×" in text  # Quilt's magnification bin 1
    for label in ("Sub-pathology", "Dermatopathology", "Hematopathology", "Not histology"):
        assert label in text
    # The seven reject reasons, numbered for the keyboard.
    for number, label in enumerate(
        [
            "Not histology",
            "Narrator / desktop / text overlay in the image",
            "Text does not match image",
            "Poor image quality",
            "Duplicate",
            "Identifiable patient information",
            "Other",
        ],
        1,
    ):
        assert f'data-key="{number}">{number} · {label}</option>' in text
    assert 'id="viewer"' in text and 'data-zoom="full"' in text


def test_pair_view_shows_what_the_frames_stage_saw(reviewer, session):
    video = make_video(session)
    frame = Frame(
        video_id=video.id,
        image_path="frames/1/0001.jpg",
        t_s=66.0,
        start_s=62.0,
        end_s=70.5,
        width=640,
        height=360,
        histology_score=0.934,
        is_histology=True,
        flags={
            "face": True,
            "text_overlay": False,
            "quality": {"ok": False, "reasons": ["blur < 20"]},
            "fallback": "sharpest_moving",
        },
        crop_box=[0, 0, 500, 360],
    )
    session.add(frame)
    session.commit()
    pair = make_pair(session, video, frame_id=frame.id)
    page = reviewer.get(f"/review/pairs/{pair.id}")
    assert page.status_code == 200
    notes = page.text.split('class="chips frame-notes"', 1)[1].split("</ul>", 1)[0]
    assert "narrator in the lecture frame" in notes
    assert "cropped to the tissue around them" in notes
    assert "quality: blur &lt; 20" in notes  # escaped
    assert "no stable view" in notes and "histology score 0.93" in notes
    assert "text overlay" not in notes
    # A pair without a frame row (an older pair, or the frame was deleted) shows none.
    bare = make_pair(session, video)
    assert "frame-notes" not in reviewer.get(f"/review/pairs/{bare.id}").text


def test_media_serves_byte_ranges(reviewer, settings):
    data = bytes(range(256)) * 40
    path = settings.media_root / "videos" / "1" / "source.mp4"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    whole = reviewer.get("/media/videos/1/source.mp4")
    assert whole.status_code == 200 and whole.content == data
    assert whole.headers["accept-ranges"] == "bytes"
    part = reviewer.get("/media/videos/1/source.mp4", headers={"Range": "bytes=1000-1999"})
    assert part.status_code == 206
    assert part.content == data[1000:2000]
    assert part.headers["content-range"] == f"bytes 1000-1999/{len(data)}"
    assert part.headers["content-type"] == "video/mp4"
    tail = reviewer.get("/media/videos/1/source.mp4", headers={"Range": "bytes=-100"})
    assert (tail.status_code, tail.content) == (206, data[-100:])
    beyond = reviewer.get("/media/videos/1/source.mp4", headers={"Range": "bytes=99999-"})
    assert beyond.status_code == 416


# --- deciding and saving -------------------------------------------------------------


def test_decide_by_htmx_swaps_in_the_next_pair(admin, session, settings):
    video = make_video(session)
    first = make_pair(session, video, priority=0.1)
    second = make_pair(session, video, priority=0.2, caption="Second caption")
    admin.get("/review")
    response = hx_post(
        admin,
        f"/review/pairs/{first.id}",
        action="approve",
        version="1",
        caption="Edited first caption",
        medical_text=first.medical_text,
        roi_text=first.roi_text,
    )
    assert response.status_code == 200
    assert json.loads(response.headers["HX-Trigger"]) == {events.PAIR_DECIDED: True}
    assert f"Approved pair #{first.id}" in response.text and "Second caption" in response.text
    session.expire_all()
    decided = session.get(Pair, first.id)
    # The edit made before pressing approve was kept: saved, then approved.
    assert (decided.status, decided.caption, decided.version) == (
        "approved",
        "Edited first caption",
        3,
    )

    no_reason = hx_post(
        admin, f"/review/pairs/{second.id}", action="reject", version="1", caption="typed"
    )
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.text
    assert ">typed</textarea>" in no_reason.text  # what the reviewer typed is kept
    saved = hx_post(admin, f"/review/pairs/{second.id}", action="save", version="1", caption="New")
    assert saved.status_code == 200 and "Saved." in saved.text
    assert events.PAIR_SAVED in saved.headers["HX-Trigger"]
    stale = hx_post(admin, f"/review/pairs/{second.id}", action="approve", version="1")
    assert stale.status_code == 409 and "changed by someone else" in stale.text
    assert 'name="version" value="2"' in stale.text
    rejected = hx_post(
        admin, f"/review/pairs/{second.id}", action="reject", version="2", reason="duplicate"
    )
    assert "Rejected pair" in rejected.text and "Nothing to review" in rejected.text
    detail = admin.get(f"/review/pairs/{second.id}").text
    assert "Duplicate" in detail and "History" in detail and "<del>" in detail


def test_plain_form_post_without_htmx_redirects(admin, session):
    video = make_video(session)
    pair = make_pair(session, video)
    response = admin.post(f"/review/pairs/{pair.id}", data=form(admin, action="skip", version="1"))
    assert (response.status_code, response.headers["location"]) == (303, "/review")
    assert "Nothing to review" in admin.get("/review").text


def test_background_decision_is_204_and_a_stale_one_409_text(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    reviewer.get("/review")
    ok = hx_post(
        reviewer,
        f"/review/pairs/{pair.id}",
        action="reject",
        reason="duplicate",
        version="1",
        mode="background",
        caption=pair.caption,
    )
    assert ok.status_code == 204 and "pair-decided" in ok.headers["HX-Trigger"]
    session.expire_all()
    assert session.get(Pair, pair.id).reject_reason == "duplicate"

    other = make_pair(session, video, caption="Other")
    stale = hx_post(
        reviewer,
        f"/review/pairs/{other.id}",
        action="approve",
        version="7",
        mode="background",
        caption="An edit made on an old version",
    )
    assert stale.status_code == 409
    assert stale.headers["content-type"].startswith("text/plain")
    assert "changed by someone else" in stale.text
    invalid = hx_post(
        reviewer, f"/review/pairs/{other.id}", action="reject", version="1", mode="background"
    )
    assert invalid.status_code == 422 and "reason" in invalid.text
    skipped = hx_post(
        reviewer, f"/review/pairs/{other.id}", action="skip", version="1", mode="background"
    )
    assert skipped.status_code == 204


def test_conflict_in_the_pane_offers_a_reload(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    reviewer.get("/review")
    response = hx_post(
        reviewer, f"/review/pairs/{pair.id}", action="approve", version="3", caption="x"
    )
    assert response.status_code == 409
    assert "changed by someone else" in response.text
    assert f'href="/review/pairs/{pair.id}">Reload this pair</a>' in response.text


def test_tags_are_saved_only_from_a_form_that_carries_them(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video, magnification=20)
    reviewer.get("/review")
    text = reviewer.get(f"/review/pairs/{pair.id}").text
    assert '<option value="20" selected>20×</option>' in text  # an older x value is kept
    # Without the tag fieldset (an API-like form), tags are left alone.
    hx_post(reviewer, f"/review/pairs/{pair.id}", action="save", version="1", caption="New")
    session.expire_all()
    assert (session.get(Pair, pair.id).magnification, session.get(Pair, pair.id).version) == (20, 2)
    response = hx_post(
        reviewer,
        f"/review/pairs/{pair.id}",
        action="save",
        version="2",
        caption="New",
        tags="1",
        magnification="2",
        subpathology="dermatopathology",
        not_histology="on",
    )
    assert response.status_code == 200 and "Saved." in response.text
    session.expire_all()
    saved = session.get(Pair, pair.id)
    assert (saved.magnification, saved.subpathology, saved.not_histology) == (
        2,
        "dermatopathology",
        True,
    )
    assert '<option value="dermatopathology" selected>Dermatopathology</option>' in response.text
    bad = hx_post(
        reviewer,
        f"/review/pairs/{pair.id}",
        action="save",
        version=str(saved.version),
        tags="1",
        subpathology="astrology",
    )
    assert bad.status_code == 422 and "subpathology" in bad.text


# --- prefetch, undo, history ----------------------------------------------------------


def test_prefetch_leases_the_pair_after_the_current_one(reviewer, session):
    video = make_video(session)
    first, second, third = (make_pair(session, video, priority=p) for p in (0.1, 0.2, 0.3))
    assert _pane_pair_id(reviewer.get("/review", headers=HX).text) == first.id
    ahead = reviewer.get(f"/review/ahead?exclude={first.id}", headers=HX)
    assert ahead.status_code == 200 and "<html" not in ahead.text
    assert _pane_pair_id(ahead.text) == second.id
    # Asking again gives the same (held) pair, not a third one.
    assert _pane_pair_id(reviewer.get(f"/review/ahead?exclude={first.id}").text) == second.id
    url = f"/review/ahead?exclude={first.id}&exclude={second.id}"
    assert _pane_pair_id(reviewer.get(url, headers=HX).text) == third.id
    url += f"&exclude={third.id}"
    assert "Nothing to review" in reviewer.get(url, headers=HX).text
    # The current pair is still the first one (a reload keeps it).
    assert _pane_pair_id(reviewer.get("/review", headers=HX).text) == first.id


def test_undo_and_history(reviewer, session):
    video = make_video(session)
    first, second = (make_pair(session, video, priority=p) for p in (0.1, 0.2))
    reviewer.get("/review")
    hx_post(reviewer, f"/review/pairs/{first.id}", action="approve", version="1", mode="background")
    reviewer.get(f"/review/ahead?exclude={first.id}")
    hx_post(
        reviewer,
        f"/review/pairs/{second.id}",
        action="reject",
        reason="duplicate",
        version="1",
        mode="background",
    )
    last = reviewer.get("/review/mine/1", headers=HX)
    assert last.status_code == 200 and _pane_pair_id(last.text) == second.id
    assert 'data-mode="history"' in last.text and "you rejected this pair" in last.text
    assert 'id="pair-history"' in last.text
    assert _pane_pair_id(reviewer.get("/review/mine/2", headers=HX).text) == first.id
    assert reviewer.get("/review/mine/3", headers=HX).status_code == 404
    assert reviewer.get("/review/mine/0", headers=HX).status_code == 404
    assert "<html" in reviewer.get("/review/mine/1").text  # a full page without htmx

    undone = hx_post(reviewer, "/review/undo")
    assert undone.status_code == 200 and _pane_pair_id(undone.text) == second.id
    assert f"Undid your decision on pair #{second.id}" in undone.text
    assert "pair-undone" in undone.headers["HX-Trigger"]
    session.expire_all()
    assert session.get(Pair, second.id).status == PairStatus.pending
    # The undo is in the pair's history; nothing was deleted.
    detail = reviewer.get(f"/review/pairs/{second.id}").text
    assert "undid their rejection" in detail and "Duplicate" in detail
    assert hx_post(reviewer, "/review/undo").status_code == 200  # the approval of the first
    nothing = hx_post(reviewer, "/review/undo")
    assert nothing.status_code == 404 and "Nothing to undo" in nothing.text


# --- grid ----------------------------------------------------------------------------


def test_grid_page_and_batch_decision(reviewer, session, settings):
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    pairs = [make_pair(session, video, priority=i / 100, caption=f"Tile {i}") for i in range(30)]
    page = reviewer.get("/review/grid?size=24")
    assert page.status_code == 200 and page.text.count('class="tile"') == 24
    assert "Tile 0" in page.text and "Tile 23" in page.text and "Tile 24" not in page.text
    assert reviewer.get("/review/grid?size=60").status_code == 422
    chosen = [f"{p.id}:1" for p in pairs[:3]] + [f"{pairs[3].id}:9"]
    response = reviewer.post(
        "/review/grid",
        data={
            "csrf_token": reviewer.token,
            "action": "reject",
            "reason": "duplicate",
            "pair": chosen,
            "size": "24",
        },
        headers=HX,
    )
    assert response.status_code == 200, response.text
    assert "Rejected 3 pairs." in response.text
    assert f"pair #{pairs[3].id}</a>: changed by someone else" in response.text
    assert "pairs-triaged" in response.headers["HX-Trigger"]
    assert "<html" not in response.text
    session.expire_all()
    assert [session.get(Pair, p.id).status for p in pairs[:4]] == ["rejected"] * 3 + ["pending"]
    # The decided tiles are gone; the page is filled up from the queue.
    assert response.text.count('class="tile"') == 24 and "Tile 0<" not in response.text
    nothing = hx_post(reviewer, "/review/grid", action="approve", size="24")
    assert nothing.status_code == 422 and "Select pairs first" in nothing.text
    bad = hx_post(reviewer, "/review/grid", action="approve", pair="1:x")
    assert bad.status_code == 422
    no_reason = hx_post(reviewer, "/review/grid", action="reject", pair=f"{pairs[5].id}:1")
    assert no_reason.status_code == 422 and "reason" in no_reason.text


def test_grid_filters(reviewer, session):
    one, two = make_video(session, "Video one"), make_video(session, "Video two")
    make_pair(session, one, caption="From one")
    make_pair(session, two, caption="From two")
    text = reviewer.get(f"/review/grid?video={two.id}").text
    assert "From two" in text and "From one" not in text
    assert f'<option value="{two.id}" selected>Video two</option>' in text


# --- gold answers from the pair page ----------------------------------------------


def test_admin_marks_a_pair_gold_from_its_page(admin, session):
    video = make_video(session)
    pair = make_pair(session, video)
    page = admin.get(f"/review/pairs/{pair.id}")
    assert page.status_code == 200 and "Mark as gold" in page.text
    refused = hx_post(admin, f"/review/pairs/{pair.id}/gold", decision="reject")
    assert refused.status_code == 422 and "reason" in refused.text.lower()
    done = hx_post(admin, f"/review/pairs/{pair.id}/gold", decision="reject", reason="impurity")
    assert done.status_code == 200, done.text
    assert "is gold: reject" in done.text and "Known answer" in done.text
    session.expire_all()
    gold = review.get_pair(session=session, pair_id=pair.id)
    assert gold.status == PairStatus.rejected and gold.reject_reason == "impurity"
    assert "Update gold answer" in admin.get(f"/review/pairs/{pair.id}").text


def test_reviewers_cannot_mark_gold(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    assert "Mark as gold" not in reviewer.get(f"/review/pairs/{pair.id}").text
    r = hx_post(reviewer, f"/review/pairs/{pair.id}/gold", decision="approve")
    assert r.status_code == 403
    session.expire_all()
    assert review.get_pair(session=session, pair_id=pair.id).status == PairStatus.pending
    no_token = reviewer.post(f"/review/pairs/{pair.id}/gold", data={"decision": "approve"})
    assert no_token.status_code == 403


# --- escaping ------------------------------------------------------------------------


def test_hostile_captions_are_escaped_everywhere(admin, session):
    video = make_video(session, title=HOSTILE)
    pair = make_pair(
        session,
        video,
        caption=HOSTILE,
        medical_text=HOSTILE + " hepatocytes",
        roi_text=HOSTILE,
        noisy_text=HOSTILE,
        corrected_text=HOSTILE + " fixed",
        umls=["QC:239475"],
        keywords=[HOSTILE],
    )
    session.add(TranscriptSegment(video_id=video.id, idx=0, start_s=60, end_s=65, text=HOSTILE))
    session.commit()
    disputed = disputed_pair(session, video, caption=HOSTILE)
    review.edit(
        session=session,
        pair_id=disputed.id,
        user=admin.user,
        fields={"caption": HOSTILE + "!"},
        expected_version=session.get(Pair, disputed.id).version,
    )
    pages = [
        admin.get("/review"),
        admin.get(f"/review/pairs/{pair.id}"),
        admin.get(f"/review/pairs/{disputed.id}"),
        admin.get("/review/grid"),
        admin.get("/admin/adjudication"),
        admin.get("/admin/dashboard"),
    ]
    for response in pages:
        assert response.status_code == 200, response.url
        assert "<script>alert" not in response.text, response.url
        assert "<img src=x" not in response.text, response.url
        assert "&lt;script&gt;" in response.text, response.url
