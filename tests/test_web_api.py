"""The JSON API end to end on both databases: session, review queue, videos, releases."""

from __future__ import annotations

import json

from app.models import Role
from tests.support.seed import make_pair, make_user, make_video, write_frame_jpeg
from tests.support.web import api_login


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
    reviewer.headers["X-CSRF-Token"] = reviewer.token  # the header an API client sends
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


def test_two_reviewers_then_adjudication_gold_and_figures(client, session, settings, monkeypatch):
    """What the review workspace does, over JSON, with two reviews per pair: filters, the
    grid's claim and batch decision, undo and one's own history; a second reviewer's vote
    makes a dispute, which the admin adjudicates; a gold answer, and the figures (agreement,
    progress, reviewers, throughput)."""
    monkeypatch.setenv("QUILT_GOLD_EVERY", "0")
    monkeypatch.setenv("QUILT_REVIEWS_PER_PAIR", "2")
    from app.settings import get_settings  # noqa: PLC0415

    get_settings.cache_clear()
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    pairs = [make_pair(session, video, priority=i / 10, magnification=i % 2) for i in range(4)]
    make_user(session, "rita")
    make_user(session, "sam")
    make_user(session, "ada", Role.admin)

    def login(name: str) -> None:
        client.headers["X-CSRF-Token"] = api_login(client, name)

    login("rita")
    options = client.get("/api/pairs/filters").json()
    assert options["magnifications"] == [0, 1] and "disputed" in options["statuses"]
    only_1x = client.get("/api/pairs/next", params={"magnification": 1}).json()
    assert only_1x["id"] == pairs[1].id and only_1x["not_histology"] is False
    listing = client.get("/api/pairs", params={"status": "pending", "limit": 2}).json()
    assert listing["total"] == 4 and len(listing["items"]) == 2
    grid = client.post("/api/pairs/claim", json={"limit": 24}).json()
    assert [p["id"] for p in grid] == [p.id for p in pairs]
    batch = client.post(
        "/api/pairs/batch-decision",
        json={
            "items": [{"pair_id": p.id, "version": 1} for p in pairs[:2]]
            + [{"pair_id": 999_999, "version": 1}],
            "decision": "approve",
        },
    ).json()
    assert [(o["ok"], o["status"]) for o in batch] == [(True, "pending")] * 2 + [(False, None)]
    undone = client.post("/api/history/undo").json()
    assert (undone["id"], undone["review_count"], undone["status"]) == (pairs[1].id, 0, "pending")
    mine = client.get("/api/history").json()
    assert [(h["pair_id"], h["undone"]) for h in mine] == [
        (pairs[1].id, True),
        (pairs[0].id, False),
    ]
    assert (
        client.get("/api/history", params={"before_id": mine[0]["review_id"]}).json()[0]["pair_id"]
        == pairs[0].id
    )

    login("sam")
    disputed = client.post(
        f"/api/pairs/{pairs[0].id}/decision",
        json={"decision": "reject", "reason": "duplicate", "version": 1},
    ).json()
    assert disputed["status"] == "disputed"
    assert client.get("/api/adjudication").status_code == 403
    agreement = client.get("/api/stats/agreement").json()
    assert agreement["pairwise"][0]["common"] == 1 and agreement["alpha_items"] == 1

    login("ada")
    page = client.get("/api/adjudication").json()
    assert page["total"] == 1 and len(page["items"][0]["votes"]) == 2
    claimed = client.post("/api/adjudication/next").json()
    assert claimed["pair"]["id"] == pairs[0].id
    stale = client.post(
        f"/api/adjudication/{pairs[0].id}", json={"decision": "approve", "version": 1}
    )
    assert stale.status_code == 409
    settled = client.post(
        f"/api/adjudication/{pairs[0].id}",
        json={"decision": "approve", "version": claimed["pair"]["version"]},
    )
    assert settled.status_code == 200 and settled.json()["status"] == "approved"
    assert client.post("/api/adjudication/next").status_code == 204
    gold = client.put(f"/api/pairs/{pairs[3].id}/gold", json={"decision": "approve"})
    assert gold.status_code == 200 and gold.json()["decision"] == "approve"
    assert [g["pair_id"] for g in client.get("/api/stats/gold/pairs").json()] == [pairs[3].id]
    assert client.get("/api/stats/gold").json() == []
    channels = client.get("/api/stats/channels").json()
    assert channels[0]["total"] == 4 and channels[0]["yield"] == 0.5
    assert client.get("/api/stats/videos").json()[0]["approved"] == 2
    reviewers = {r["username"]: r for r in client.get("/api/stats/reviewers").json()}
    assert reviewers["rita"]["decisions"] == 2 and reviewers["rita"]["undos"] == 1
    assert sum(b["decisions"] for b in client.get("/api/stats/throughput").json()) >= 4
    history = client.get(f"/api/pairs/{pairs[0].id}/history").json()
    assert [h["kind"] for h in history] == ["review", "review", "adjudication"]
    assert client.get("/api/pairs/99999999999").status_code == 422
    tagged = client.patch(
        f"/api/pairs/{pairs[2].id}",
        json={"subpathology": "hepatobiliary", "not_histology": True, "version": 1},
    )
    assert tagged.status_code == 200 and tagged.json()["subpathology"] == "hepatobiliary"
    get_settings.cache_clear()


def test_pipeline_versions_rerun_and_cancel_through_the_api(client, session):
    make_user(session, "rita")
    make_user(session, "ada", Role.admin)
    assert client.get("/api/pipeline").status_code == 401
    api_login(client, "rita")
    assert client.get("/api/pipeline").status_code == 403  # reviewers see none of this
    admin = client
    admin.token = api_login(client, "ada")
    headers = {"X-CSRF-Token": admin.token}
    stages = admin.get("/api/pipeline").json()
    assert [s["stage"] for s in stages] == ["fetch", "asr", "frames", "text", "align"]
    assert all(s["version"].startswith(f"{s['stage']}@") and s["outdated"] == 0 for s in stages)
    video = make_video(session)
    video.status = "processing"
    session.commit()
    cancelled = admin.post(f"/api/videos/{video.id}/cancel", headers=headers)
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    again = admin.post(f"/api/videos/{video.id}/cancel", headers=headers)
    assert again.status_code == 409 and "nothing to cancel" in again.text
    rerun = admin.post("/api/pipeline/rerun-outdated", json={"stage": "align"}, headers=headers)
    assert rerun.status_code == 200 and rerun.json() == {"stage": "align", "video_ids": []}
    bad = admin.post("/api/pipeline/rerun-outdated", json={"stage": "nope"}, headers=headers)
    assert bad.status_code == 422
    assert admin.post("/api/channels/999/cancel", headers=headers).status_code == 404
