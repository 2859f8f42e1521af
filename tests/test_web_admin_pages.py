"""The admin pages and their htmx partials, on both databases: queueing videos (URL,
file, upload) and their detail and requeue, releases and their downloads, users, request
size limits, and the review workspace's admin pages (adjudication of disputed pairs,
agreement, the dashboard), which reviewers may not open."""

from __future__ import annotations

import json

from fastapi.testclient import TestClient
from sqlalchemy import select

from app import broker
from app.models import Pair, PairStatus, Release, StageRun, User, Video
from app.settings import get_settings
from app.web import events
from tests.conftest import DEMO_VIDEO
from tests.support.review import disputed_pair
from tests.support.seed import make_pair, make_video, write_frame_jpeg
from tests.support.web import HX, form, hx_post

# --- videos, releases, users ---------------------------------------------------------


def test_a_video_queued_while_the_broker_is_down_says_so(admin, session, monkeypatch):
    monkeypatch.setenv("QUILT_BROKER_URL", "redis://127.0.0.1:1/0")  # nothing listens
    get_settings.cache_clear()
    broker.client.cache_clear()
    queued = hx_post(admin, "/admin/videos/file", path=str(DEMO_VIDEO))
    assert queued.status_code == 200  # the row is kept; the message waits in the outbox
    video = session.scalars(select(Video)).one()
    page = admin.get(f"/admin/videos/{video.id}").text
    assert "the broker is down, it will start when the broker is back" in page
    table = admin.get("/admin/videos/table", headers=HX).text
    assert "waiting for the broker" in table


def test_admin_queues_url_file_and_upload(admin, session, settings, monkeypatch):
    page = admin.get("/admin/videos")
    assert page.status_code == 200 and "Queue for processing" in page.text
    ok = hx_post(admin, "/admin/videos/url", url="https://youtu.be/abc123", kind="auto")
    assert ok.status_code == 200 and "Queued video #" in ok.text
    assert json.loads(ok.headers["HX-Trigger"]) == {events.VIDEO_QUEUED: True}
    bad = hx_post(admin, "/admin/videos/url", url="javascript:alert(1)")
    assert bad.status_code == 422 and "only http(s) URLs" in bad.text
    outside = hx_post(admin, "/admin/videos/file", path="/etc/passwd")
    assert outside.status_code == 422 and "outside the import folders" in outside.text
    inside = hx_post(admin, "/admin/videos/file", path=str(DEMO_VIDEO))
    assert inside.status_code == 200 and "lecture.mp4" in inside.text
    upload = hx_post(
        admin,
        "/admin/videos/upload",
        files={"file": ("../../<b>talk</b>.mp4", b"\x00\x00\x00\x18ftypmp42", "video/mp4")},
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
    assert "moov atom not found" in page and "&lt;not a video&gt;" in page and "Run again" in page
    assert "/cancel" not in page  # nothing runs: nothing to cancel
    response = hx_post(admin, f"/admin/videos/{video.id}/requeue")
    assert response.status_code == 200 and "Queued again." in response.text
    assert 'hx-trigger="every 2s"' in response.text
    # Queued again: it can be cancelled now, and the cancel sticks.
    assert f"/admin/videos/{video.id}/cancel" in response.text
    cancelled = hx_post(admin, f"/admin/videos/{video.id}/cancel")
    assert cancelled.status_code == 200 and "Cancelled" in cancelled.text
    session.expire_all()
    assert session.get(Video, video.id).status == "cancelled"
    again = hx_post(admin, f"/admin/videos/{video.id}/cancel")
    assert "Nothing to cancel: the video is cancelled." in again.text
    assert hx_post(admin, f"/admin/videos/{video.id}/requeue", stage="nope").status_code == 422
    assert admin.get("/admin/videos/9999").status_code == 404


def test_release_form_and_downloads(admin, session, settings):
    page = admin.get("/admin/releases").text
    assert "No release yet" in page
    empty = hx_post(admin, "/admin/releases", version="v1")
    assert empty.status_code == 422 and "no approved pairs" in empty.text
    assert 'value="v1"' in empty.text
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    make_pair(session, video, status="approved")
    created = hx_post(admin, "/admin/releases", version="v2", notes="first")
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
    created = hx_post(
        admin, "/admin/users", username="rita", password="long-enough-1", role="reviewer"
    )
    assert created.status_code == 200 and "Added rita (reviewer)" in created.text
    short = hx_post(admin, "/admin/users", username="bob", password="short")
    assert short.status_code == 422 and "at least 8" in short.text
    rita = session.scalar(select(User).where(User.username == "rita"))
    off = hx_post(admin, f"/admin/users/{rita.id}/active", active="false")
    assert "rita is deactivated" in off.text
    me = session.scalar(select(User).where(User.username == "ada"))
    selfoff = hx_post(admin, f"/admin/users/{me.id}/active", active="false")
    assert selfoff.status_code == 422


def test_request_bodies_are_limited_except_uploads(admin, client, settings):
    big = b"x" * (3 * 1024 * 1024)
    too_big = admin.post("/admin/users", data=form(admin), files={"blob": ("b.bin", big)})
    assert too_big.status_code == 413
    anonymous = TestClient(client.app, follow_redirects=False)
    assert anonymous.post("/login", files={"blob": ("b.bin", big)}).status_code == 413
    upload = hx_post(admin, "/admin/videos/upload", files={"file": ("talk.mp4", big, "video/mp4")})
    assert upload.status_code == 200 and "Uploaded and queued" in upload.text


# --- adjudication, agreement, dashboard ----------------------------------------------


def test_adjudication_page_and_decision(admin, session):
    video = make_video(session)
    pair = disputed_pair(session, video)
    page = admin.get("/admin/adjudication")
    assert page.status_code == 200
    assert f'id="adj-{pair.id}"' in page.text and "Duplicate" in page.text
    stale = hx_post(admin, f"/admin/adjudication/{pair.id}", decision="approve", version="9")
    assert stale.status_code == 409 and "Reload" in stale.text
    missing_reason = hx_post(
        admin, f"/admin/adjudication/{pair.id}", decision="reject", version="1"
    )
    assert missing_reason.status_code == 422
    session.expire_all()
    version = session.get(Pair, pair.id).version
    done = hx_post(
        admin, f"/admin/adjudication/{pair.id}", decision="approve", version=str(version)
    )
    assert done.status_code == 200 and f"Pair #{pair.id} approved." in done.text
    assert "No disputes" in done.text and "<html" not in done.text
    session.expire_all()
    assert session.get(Pair, pair.id).status == PairStatus.approved


def test_agreement_and_dashboard_pages(admin, session):
    video = make_video(session)
    disputed_pair(session, video)
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


def test_admin_pages_render_empty(admin):
    for url in ("/admin/adjudication", "/admin/agreement", "/admin/dashboard"):
        assert admin.get(url).status_code == 200, url


def test_reviewer_may_not_open_admin_workspace_pages(reviewer, session):
    video = make_video(session)
    pair = make_pair(session, video)
    for url in ("/admin/adjudication", "/admin/agreement", "/admin/dashboard"):
        assert reviewer.get(url).status_code == 403, url
    response = hx_post(reviewer, f"/admin/adjudication/{pair.id}", decision="approve", version="1")
    assert response.status_code == 403
    assert reviewer.get("/review/grid").status_code == 200
