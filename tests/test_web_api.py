"""The JSON API end to end on both databases: session, review queue, videos, releases."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from app.models import Role
from app.web.main import create_app
from tests.web_seed import api_login, make_pair, make_user, make_video, write_frame_jpeg


@pytest.fixture
def client(settings):
    with TestClient(create_app(), follow_redirects=False) as c:
        yield c


@pytest.fixture
def reviewer(client, session):
    make_user(session, "rita")
    token = api_login(client, "rita")
    client.headers["X-CSRF-Token"] = token
    return client


def test_login_session_logout(client, session):
    make_user(session, "rita")
    assert (
        client.post("/api/login", json={"username": "rita", "password": "wrong-pass"}).status_code
        == 401
    )
    assert (
        client.post("/api/login", json={"username": "nobody", "password": "x"}).status_code == 401
    )
    # A form post (what another site could make a browser send) is not a login.
    form = client.post("/api/login", data={"username": "rita", "password": "correct-horse-42"})
    assert form.status_code == 422
    token = api_login(client, "rita")
    me = client.get("/api/session").json()
    assert me == {
        "user": {"id": me["user"]["id"], "username": "rita", "role": "reviewer"},
        "csrf_token": token,
    }
    assert client.post("/api/logout").status_code == 403  # no token
    assert client.post("/api/logout", headers={"X-CSRF-Token": token}).status_code == 204
    assert client.get("/api/session").status_code == 401


def test_claim_decide_edit_history(reviewer, session, settings):
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    first = make_pair(session, video, priority=0.1)
    second = make_pair(session, video, priority=0.2)

    claimed = reviewer.get("/api/pairs/next").json()
    assert claimed["id"] == first.id and claimed["version"] == 1
    assert claimed["image_url"] == "/media/frames/1/0001.jpg"
    assert reviewer.get(claimed["image_url"]).status_code == 200

    edited = reviewer.patch(
        f"/api/pairs/{first.id}", json={"caption": "Steatosis, H&E.", "version": 1}
    )
    assert edited.status_code == 200 and edited.json()["version"] == 2
    stale = reviewer.post(
        f"/api/pairs/{first.id}/decision", json={"decision": "approve", "version": 1}
    )
    assert stale.status_code == 409 and stale.json()["current_version"] == 2
    no_reason = reviewer.post(
        f"/api/pairs/{first.id}/decision", json={"decision": "reject", "version": 2}
    )
    assert no_reason.status_code == 422 and "reason" in no_reason.json()["detail"]
    bad_reason = reviewer.post(
        f"/api/pairs/{first.id}/decision",
        json={"decision": "reject", "reason": "ugly", "version": 2},
    )
    assert bad_reason.status_code == 422
    done = reviewer.post(
        f"/api/pairs/{first.id}/decision",
        json={
            "decision": "reject",
            "reason": "impurity",
            "comment": "narrator visible",
            "version": 2,
        },
    )
    assert done.status_code == 200
    assert (done.json()["status"], done.json()["reject_reason"], done.json()["version"]) == (
        "rejected",
        "impurity",
        3,
    )
    history = reviewer.get(f"/api/pairs/{first.id}/history").json()
    assert [h["kind"] for h in history] == ["edit", "review"]
    assert history[0]["after"] == {"caption": "Steatosis, H&E."}

    assert reviewer.get("/api/pairs/next").json()["id"] == second.id
    assert reviewer.post(f"/api/pairs/{second.id}/skip").status_code == 204
    assert reviewer.get("/api/pairs/next").status_code == 204

    assert (
        reviewer.patch(
            f"/api/pairs/{second.id}", json={"status": "approved", "version": 1}
        ).status_code
        == 422
    )
    assert reviewer.get("/api/pairs/999999").status_code == 404
    assert reviewer.get("/api/pairs/abc").status_code == 422

    stats = reviewer.get("/api/stats").json()
    assert stats["pairs"] == {"pending": 1, "approved": 0, "rejected": 1}
    assert stats["videos"] == {"done": 1}


def test_videos_api_and_admin_only_queueing(client, session, settings):
    make_user(session, "rita")
    make_user(session, "ada", Role.admin)
    token = api_login(client, "rita")
    body = {"url": "https://www.youtube.com/watch?v=abc123"}
    assert client.post("/api/videos", json=body, headers={"X-CSRF-Token": token}).status_code == 403

    token = api_login(client, "ada")
    headers = {"X-CSRF-Token": token}
    queued = client.post("/api/videos", json=body, headers=headers)
    assert queued.status_code == 201 and queued.json()["kind"] == "video"
    channel = client.post(
        "/api/videos", json={"url": "https://www.youtube.com/@PathChannel"}, headers=headers
    )
    assert channel.json()["kind"] == "channel"
    bad = client.post("/api/videos", json={"url": "file:///etc/passwd"}, headers=headers)
    assert bad.status_code == 422 and "http" in bad.json()["detail"]

    listing = client.get("/api/videos").json()
    assert listing["total"] == 1 and listing["items"][0]["source_kind"] == "youtube"
    video_id = queued.json()["id"]
    detail = client.get(f"/api/videos/{video_id}").json()
    assert {run["stage"] for run in detail["stage_runs"]} >= {"fetch"}
    assert detail["pair_counts"] == {} and detail["segment_count"] == 0
    assert client.get("/api/videos/424242").status_code == 404
    requeued = client.post(f"/api/videos/{video_id}/requeue", headers=headers)
    assert requeued.status_code == 200 and requeued.json()["status"] == "queued"
    messages = sorted((settings.broker_dir / "out").glob("*"))
    tasks = [json.loads(p.read_text())["headers"]["task"] for p in messages]
    assert tasks.count("quilt.fetch") == 2 and "quilt.expand_source" in tasks


def test_releases_api(client, session, settings):
    make_user(session, "ada", Role.admin)
    token = api_login(client, "ada")
    headers = {"X-CSRF-Token": token}
    empty = client.post("/api/releases", json={"version": "v1"}, headers=headers)
    assert empty.status_code == 422 and "no approved pairs" in empty.json()["detail"]

    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    make_pair(session, video, status="approved")
    created = client.post(
        "/api/releases", json={"version": "v1", "notes": "first"}, headers=headers
    )
    assert created.status_code == 201, created.text
    assert (created.json()["status"], created.json()["pair_count"]) == ("ready", 1)
    again = client.post("/api/releases", json={"version": "v1"}, headers=headers)
    assert again.status_code == 422 and "exists" in again.json()["detail"]
    assert [r["version"] for r in client.get("/api/releases").json()] == ["v1"]


def test_openapi_documents_the_api_only(client, session):
    assert client.get("/api/openapi.json").status_code == 401
    make_user(session, "rita")
    api_login(client, "rita")
    schema = client.get("/api/openapi.json").json()
    paths = set(schema["paths"])
    assert "/api/pairs/{pair_id}/decision" in paths and "/api/login" in paths
    assert all(p.startswith("/api/") for p in paths)
    assert "409" in schema["paths"]["/api/pairs/{pair_id}/decision"]["post"]["responses"]
