"""The HTML pages and their htmx partials: review flow, admin queueing, releases, users."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from app.models import Pair, Release, Role, StageRun, User, Video
from app.web import events
from app.web.main import create_app
from tests.conftest import DEMO_VIDEO
from tests.support.seed import api_login, make_pair, make_user, make_video, write_frame_jpeg

HX = {"HX-Request": "true"}


@pytest.fixture
def client(settings):
    with TestClient(create_app(), follow_redirects=False) as c:
        yield c


@pytest.fixture
def admin(client, session):
    make_user(session, "ada", Role.admin)
    client.token = api_login(client, "ada")
    return client


def _form(client, **fields):
    return {"csrf_token": client.token, **fields}


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


def test_decide_by_htmx_swaps_in_the_next_pair(admin, session, settings):
    video = make_video(session)
    first = make_pair(session, video, priority=0.1)
    second = make_pair(session, video, priority=0.2, caption="Second caption")
    admin.get("/review")
    response = admin.post(
        f"/review/pairs/{first.id}",
        data=_form(
            admin,
            action="approve",
            version="1",
            caption="Edited first caption",
            medical_text=first.medical_text,
            roi_text=first.roi_text,
        ),
        headers=HX,
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

    no_reason = admin.post(
        f"/review/pairs/{second.id}",
        data=_form(admin, action="reject", version="1", caption="typed"),
        headers=HX,
    )
    assert no_reason.status_code == 422 and "needs a reason" in no_reason.text
    assert ">typed</textarea>" in no_reason.text  # what the reviewer typed is kept
    saved = admin.post(
        f"/review/pairs/{second.id}",
        data=_form(admin, action="save", version="1", caption="New"),
        headers=HX,
    )
    assert saved.status_code == 200 and "Saved." in saved.text
    assert events.PAIR_SAVED in saved.headers["HX-Trigger"]
    stale = admin.post(
        f"/review/pairs/{second.id}", data=_form(admin, action="approve", version="1"), headers=HX
    )
    assert stale.status_code == 409 and "changed by someone else" in stale.text
    assert 'name="version" value="2"' in stale.text
    rejected = admin.post(
        f"/review/pairs/{second.id}",
        data=_form(admin, action="reject", version="2", reason="duplicate"),
        headers=HX,
    )
    assert "Rejected pair" in rejected.text and "Nothing to review" in rejected.text
    detail = admin.get(f"/review/pairs/{second.id}").text
    assert "Duplicate" in detail and "History" in detail and "<del>" in detail


def test_plain_form_post_without_htmx_redirects(admin, session):
    video = make_video(session)
    pair = make_pair(session, video)
    response = admin.post(f"/review/pairs/{pair.id}", data=_form(admin, action="skip", version="1"))
    assert (response.status_code, response.headers["location"]) == (303, "/review")
    assert "Nothing to review" in admin.get("/review").text


def test_admin_queues_url_file_and_upload(admin, session, settings, monkeypatch):
    page = admin.get("/admin/videos")
    assert page.status_code == 200 and "Queue for processing" in page.text
    ok = admin.post(
        "/admin/videos/url",
        data=_form(admin, url="https://youtu.be/abc123", kind="auto"),
        headers=HX,
    )
    assert ok.status_code == 200 and "Queued video #" in ok.text
    assert json.loads(ok.headers["HX-Trigger"]) == {events.VIDEO_QUEUED: True}
    bad = admin.post("/admin/videos/url", data=_form(admin, url="javascript:alert(1)"), headers=HX)
    assert bad.status_code == 422 and "only http(s) URLs" in bad.text
    outside = admin.post("/admin/videos/file", data=_form(admin, path="/etc/passwd"), headers=HX)
    assert outside.status_code == 422 and "outside the import folders" in outside.text
    inside = admin.post("/admin/videos/file", data=_form(admin, path=str(DEMO_VIDEO)), headers=HX)
    assert inside.status_code == 200 and "lecture.mp4" in inside.text
    upload = admin.post(
        "/admin/videos/upload",
        data=_form(admin),
        files={"file": ("../../<b>talk</b>.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")},
        headers=HX,
    )
    assert upload.status_code == 200 and "Uploaded and queued" in upload.text
    videos = session.scalars(select(Video).order_by(Video.id)).all()
    assert [v.source_kind for v in videos] == ["youtube", "file", "upload"]
    table = admin.get("/admin/videos/table", headers=HX).text
    assert 'hx-trigger="every 2s, video-queued from:body"' in table

    # When nothing is queued or processing, the table stops polling.
    for video in videos:
        video.status = "done"
    session.commit()
    table = admin.get("/admin/videos/table", headers=HX).text
    assert 'hx-trigger="video-queued from:body"' in table


def test_video_detail_and_requeue(admin, session):
    video = make_video(session)
    video.status = "failed"
    video.error = "fetch: <not a video>"
    session.add(
        StageRun(
            video_id=video.id,
            stage="fetch",
            status="failed",
            attempts=3,
            error="moov atom not found",
        )
    )
    session.commit()
    page = admin.get(f"/admin/videos/{video.id}").text
    assert "moov atom not found" in page and "&lt;not a video&gt;" in page and "Requeue" in page
    response = admin.post(f"/admin/videos/{video.id}/requeue", data=_form(admin), headers=HX)
    assert response.status_code == 200 and "Queued again." in response.text
    assert 'hx-trigger="every 2s"' in response.text
    assert admin.get("/admin/videos/9999").status_code == 404


def test_release_form_and_downloads(admin, session, settings):
    page = admin.get("/admin/releases").text
    assert "No release yet" in page
    empty = admin.post("/admin/releases", data=_form(admin, version="v1"), headers=HX)
    assert empty.status_code == 422 and "no approved pairs" in empty.text
    assert 'value="v1"' in empty.text
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    make_pair(session, video, status="approved")
    created = admin.post(
        "/admin/releases", data=_form(admin, version="v2", notes="first"), headers=HX
    )
    assert created.status_code == 200, created.text
    assert "Release v2 created with 1 pairs" in created.text
    assert "manifest.json" in created.text
    release_id = session.scalar(select(Release.id).where(Release.version == "v2"))
    manifest = admin.get(f"/admin/releases/{release_id}/files/manifest.json")
    assert manifest.status_code == 200 and "attachment" in manifest.headers["content-disposition"]
    assert "v2" in manifest.text
    assert admin.get(f"/admin/releases/{release_id}/files/..%2f..%2fquilt.db").status_code == 404
    assert admin.get(f"/admin/releases/{release_id}/files/nope.txt").status_code == 404


def test_users_page(admin, session):
    created = admin.post(
        "/admin/users",
        data=_form(admin, username="rita", password="long-enough-1", role="reviewer"),
        headers=HX,
    )
    assert created.status_code == 200 and "Added rita (reviewer)" in created.text
    short = admin.post(
        "/admin/users", data=_form(admin, username="bob", password="short"), headers=HX
    )
    assert short.status_code == 422 and "at least 8" in short.text
    rita = session.scalar(select(User).where(User.username == "rita"))
    off = admin.post(
        f"/admin/users/{rita.id}/active", data=_form(admin, active="false"), headers=HX
    )
    assert "rita is deactivated" in off.text
    me = session.scalar(select(User).where(User.username == "ada"))
    selfoff = admin.post(
        f"/admin/users/{me.id}/active", data=_form(admin, active="false"), headers=HX
    )
    assert selfoff.status_code == 422


def test_request_bodies_are_limited_except_uploads(admin, client, settings):
    big = b"x" * (3 * 1024 * 1024)
    too_big = admin.post("/admin/users", data=_form(admin), files={"blob": ("b.bin", big)})
    assert too_big.status_code == 413
    anonymous = TestClient(client.app, follow_redirects=False)
    assert anonymous.post("/login", files={"blob": ("b.bin", big)}).status_code == 413
    upload = admin.post(
        "/admin/videos/upload",
        data=_form(admin),
        files={"file": ("talk.mp4", big, "video/mp4")},
        headers=HX,
    )
    assert upload.status_code == 200 and "Uploaded and queued" in upload.text
