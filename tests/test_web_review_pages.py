"""Pages of the review workspace (issue 5): the pair view's context, prefetch, background
decisions, undo, history, grid triage, adjudication, agreement and dashboards, media
byte ranges, the knowledge-base reader, and escaping of hostile captions."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from app import knowledge
from app.models import Pair, PairStatus, Role, TranscriptSegment
from app.services import review
from app.web.main import create_app
from app.web.ui.pair_context import word_diff
from tests.support.seed import api_login, make_pair, make_user, make_video, write_frame_jpeg

HX = {"HX-Request": "true"}
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'


@pytest.fixture
def client(settings):
    with TestClient(create_app(), follow_redirects=False) as c:
        yield c


@pytest.fixture
def reviewer(client, session):
    user = make_user(session, "rita")
    client.token = api_login(client, "rita")
    client.user = user
    return client


@pytest.fixture
def admin(client, session):
    user = make_user(session, "ada", Role.admin)
    client.token = api_login(client, "ada")
    client.user = user
    return client


def _post(client, url, **fields):
    return client.post(url, data={"csrf_token": client.token, **fields}, headers=HX)


def _pane_pair_id(html: str) -> int | None:
    marker = 'id="pair-form"'
    if marker not in html:
        return None
    rest = html.split(marker, 1)[1]
    return int(rest.split('data-pair-id="', 1)[1].split('"', 1)[0])


# --- the knowledge base and the word diff ------------------------------------------


def test_knowledge_base_reader_and_highlight(settings, tmp_path, monkeypatch):
    kb = tmp_path / "kb.jsonl"
    kb.write_text(
        '{"concept_id": "QC:1", "canonical_name": "hepatocyte", "aliases": ["hepatocytes"],'
        ' "types": ["T025"]}\n'
        "not json\n"
        '{"concept_id": "QC:2", "canonical_name": "bile duct", "aliases": ["bile ducts"],'
        ' "types": ["T023", "T999"]}\n'
        "\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(settings, "kb_path", str(kb))
    monkeypatch.setattr("app.knowledge.get_settings", lambda: settings)
    assert set(knowledge.concepts()) == {"QC:1", "QC:2"}
    hepatocyte = knowledge.concepts()["QC:1"]
    assert hepatocyte.name == "hepatocyte" and hepatocyte.aliases == ("hepatocytes",)
    assert hepatocyte.type_names == ["Cell"]
    assert hepatocyte.label == "hepatocyte (Cell) · QC:1"
    found = knowledge.concepts_of(["QC:1", {"cui": "QC:2"}, "QC:1", "QC:missing", 7])
    assert [c.concept_id for c in found] == ["QC:1", "QC:2", "QC:missing"]
    assert found[1].type_names == ["Body Part, Organ, or Organ Component", "T999"]
    assert found[-1].name == "QC:missing" and found[-1].types == ()
    segments = knowledge.highlight("Hepatocytes around the bile ducts; the duct", found)
    marked = [(s.text, s.concept.concept_id) for s in segments if s.concept]
    # Longest alias wins, case-insensitive, whole words only ("duct" alone is no alias).
    assert marked == [("Hepatocytes", "QC:1"), ("bile ducts", "QC:2")]
    assert "".join(s.text for s in segments) == "Hepatocytes around the bile ducts; the duct"
    assert knowledge.highlight("", found) == []
    assert knowledge.highlight("the hepatocytes", []) == [knowledge.Segment("the hepatocytes")]


def test_the_bundled_knowledge_base_is_read(settings):
    hepatocyte = knowledge.concepts()["QC:239475"]
    assert hepatocyte.name == "hepatocyte" and "T025" in hepatocyte.types


def test_word_diff():
    pieces = word_diff("the hepato sites are here", "the hepatocytes are here")
    assert [(p.op, p.text) for p in pieces] == [
        ("equal", "the"),
        ("delete", "hepato sites"),
        ("insert", "hepatocytes"),
        ("equal", "are here"),
    ]
    assert word_diff("", "") == []


# --- the pair view -----------------------------------------------------------------


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


# --- prefetch, background decisions, undo, history ----------------------------------


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


def test_background_decision_is_204_and_a_stale_one_409_text(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    reviewer.get("/review")
    ok = _post(
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
    stale = _post(
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
    invalid = _post(
        reviewer, f"/review/pairs/{other.id}", action="reject", version="1", mode="background"
    )
    assert invalid.status_code == 422 and "reason" in invalid.text
    skipped = _post(
        reviewer, f"/review/pairs/{other.id}", action="skip", version="1", mode="background"
    )
    assert skipped.status_code == 204


def test_conflict_in_the_pane_offers_a_reload(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    reviewer.get("/review")
    response = _post(
        reviewer, f"/review/pairs/{pair.id}", action="approve", version="3", caption="x"
    )
    assert response.status_code == 409
    assert "changed by someone else" in response.text
    assert f'href="/review/pairs/{pair.id}">Reload this pair</a>' in response.text


def test_undo_and_history(reviewer, session):
    video = make_video(session)
    first, second = (make_pair(session, video, priority=p) for p in (0.1, 0.2))
    reviewer.get("/review")
    _post(reviewer, f"/review/pairs/{first.id}", action="approve", version="1", mode="background")
    reviewer.get(f"/review/ahead?exclude={first.id}")
    _post(
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

    undone = _post(reviewer, "/review/undo")
    assert undone.status_code == 200 and _pane_pair_id(undone.text) == second.id
    assert f"Undid your decision on pair #{second.id}" in undone.text
    assert "pair-undone" in undone.headers["HX-Trigger"]
    session.expire_all()
    assert session.get(Pair, second.id).status == PairStatus.pending
    # The undo is in the pair's history; nothing was deleted.
    detail = reviewer.get(f"/review/pairs/{second.id}").text
    assert "undid their rejection" in detail and "Duplicate" in detail
    assert _post(reviewer, "/review/undo").status_code == 200  # the approval of the first
    nothing = _post(reviewer, "/review/undo")
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
    nothing = _post(reviewer, "/review/grid", action="approve", size="24")
    assert nothing.status_code == 422 and "Select pairs first" in nothing.text
    bad = _post(reviewer, "/review/grid", action="approve", pair="1:x")
    assert bad.status_code == 422
    no_reason = _post(reviewer, "/review/grid", action="reject", pair=f"{pairs[5].id}:1")
    assert no_reason.status_code == 422 and "reason" in no_reason.text


def test_grid_filters(reviewer, session):
    one, two = make_video(session, "Video one"), make_video(session, "Video two")
    make_pair(session, one, caption="From one")
    make_pair(session, two, caption="From two")
    text = reviewer.get(f"/review/grid?video={two.id}").text
    assert "From two" in text and "From one" not in text
    assert f'<option value="{two.id}" selected>Video two</option>' in text


# --- admin pages ---------------------------------------------------------------------


def _disputed(session, video, caption="Disputed pair", voters=("rita2", "remy2")):
    rita, remy = (make_user(session, name) for name in voters)
    pair = make_pair(session, video, caption=caption)
    for user, decision, reason in ((rita, "approve", None), (remy, "reject", "duplicate")):
        review.decide(
            session=session,
            pair_id=pair.id,
            reviewer=user,
            decision=decision,
            reason=reason,
            expected_version=1,
            reviews_per_pair=2,
        )
    return pair


def test_adjudication_page_and_decision(admin, session):
    video = make_video(session)
    pair = _disputed(session, video)
    page = admin.get("/admin/adjudication")
    assert page.status_code == 200
    assert f'id="adj-{pair.id}"' in page.text and "Duplicate" in page.text
    stale = _post(admin, f"/admin/adjudication/{pair.id}", decision="approve", version="9")
    assert stale.status_code == 409 and "Reload" in stale.text
    missing_reason = _post(admin, f"/admin/adjudication/{pair.id}", decision="reject", version="1")
    assert missing_reason.status_code == 422
    session.expire_all()
    version = session.get(Pair, pair.id).version
    done = _post(admin, f"/admin/adjudication/{pair.id}", decision="approve", version=str(version))
    assert done.status_code == 200 and f"Pair #{pair.id} approved." in done.text
    assert "No disputes" in done.text and "<html" not in done.text
    session.expire_all()
    assert session.get(Pair, pair.id).status == PairStatus.approved


def test_agreement_and_dashboard_pages(admin, session):
    video = make_video(session)
    _disputed(session, video)
    agreement = admin.get("/admin/agreement")
    assert agreement.status_code == 200
    assert (
        "Cohen" in agreement.text
        and "Fleiss" in agreement.text
        and "Krippendorff" in agreement.text
    )
    dashboard = admin.get("/admin/dashboard")
    assert dashboard.status_code == 200
    assert 'id="reviewers"' in dashboard.text and "Liver pathology, lecture 3" in dashboard.text
    assert admin.get("/admin/dashboard?window=30d").status_code == 200
    assert admin.get("/admin/dashboard?window=2y").status_code == 422
    # Empty database: the pages still render.


def test_admin_pages_render_empty(admin):
    for url in ("/admin/adjudication", "/admin/agreement", "/admin/dashboard"):
        assert admin.get(url).status_code == 200, url


def test_reviewer_may_not_open_admin_workspace_pages(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    for url in ("/admin/adjudication", "/admin/agreement", "/admin/dashboard"):
        assert reviewer.get(url).status_code == 403, url
    response = _post(reviewer, f"/admin/adjudication/{pair.id}", decision="approve", version="1")
    assert response.status_code == 403
    assert reviewer.get("/review/grid").status_code == 200


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
    disputed = _disputed(session, video, caption=HOSTILE)
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


def test_tags_are_saved_only_from_a_form_that_carries_them(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video, magnification=20)
    reviewer.get("/review")
    text = reviewer.get(f"/review/pairs/{pair.id}").text
    assert '<option value="20" selected>20×</option>' in text  # an older x value is kept
    # Without the tag fieldset (an API-like form), tags are left alone.
    _post(reviewer, f"/review/pairs/{pair.id}", action="save", version="1", caption="New")
    session.expire_all()
    assert (session.get(Pair, pair.id).magnification, session.get(Pair, pair.id).version) == (20, 2)
    response = _post(
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
    bad = _post(
        reviewer,
        f"/review/pairs/{pair.id}",
        action="save",
        version=str(saved.version),
        tags="1",
        subpathology="astrology",
    )
    assert bad.status_code == 422 and "subpathology" in bad.text


# --- gold answers from the pair page ----------------------------------------------


def test_admin_marks_a_pair_gold_from_its_page(admin, session):
    video = make_video(session)
    pair = make_pair(session, video)
    page = admin.get(f"/review/pairs/{pair.id}")
    assert page.status_code == 200 and "Mark as gold" in page.text
    refused = _post(admin, f"/review/pairs/{pair.id}/gold", decision="reject")
    assert refused.status_code == 422 and "reason" in refused.text.lower()
    done = _post(admin, f"/review/pairs/{pair.id}/gold", decision="reject", reason="impurity")
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
    r = _post(reviewer, f"/review/pairs/{pair.id}/gold", decision="approve")
    assert r.status_code == 403
    session.expire_all()
    assert review.get_pair(session=session, pair_id=pair.id).status == PairStatus.pending
    no_token = reviewer.post(f"/review/pairs/{pair.id}/gold", data={"decision": "approve"})
    assert no_token.status_code == 403


# --- what the frames stage saw -------------------------------------------------------


def test_pair_view_shows_what_the_frames_stage_saw(reviewer, session):
    from app.models import Frame

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
