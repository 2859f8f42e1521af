"""Access control on every route: anonymous, reviewer, admin; CSRF; escaping; headers.

The route walks read the app's own route table, so a route added tomorrow is checked
without anyone remembering to add it here.
"""

from __future__ import annotations

import re

from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from app.models import Role, User
from app.web.deps import get_admin_user
from app.web.main import create_app
from tests.support.seed import PASSWORD, make_pair, make_user, make_video, write_frame_jpeg
from tests.support.web import api_login

PUBLIC = {("GET", "/login"), ("POST", "/login"), ("POST", "/api/login")}
CSRF_EXEMPT = {("POST", "/api/login")}
STATE_CHANGING = {"POST", "PUT", "PATCH", "DELETE"}


def route_table(app: FastAPI) -> list[tuple[str, str, object]]:
    """(method, path, route) for every HTTP route of the app, mounts (static) excluded."""
    table = []
    for route in iter_route_contexts(app.routes):
        if isinstance(route.original_route, Mount) or not route.methods:
            continue
        for method in sorted(route.methods - {"HEAD"}):
            table.append((method, route.path, route))
    return table


SAMPLE_PARAMS = {
    "pair_id": "1",
    "video_id": "1",
    "release_id": "1",
    "user_id": "1",
    "channel_id": "1",
    "step": "1",
    "evaluation_id": "1",
    "run_id": "1",
    "version": "v1",
    "path": "frames/1/0001.jpg",
}


def concrete(path: str) -> str:
    """A route path with its parameters filled in."""
    return re.sub(r"\{(\w+)(?::\w+)?\}", lambda m: SAMPLE_PARAMS[m.group(1)], path)


def _login_page_token(client: TestClient, url: str = "/login") -> str:
    """The CSRF token the login page puts in its form."""
    page = client.get(url)
    return page.text.split('name="csrf_token" value="')[1].split('"')[0]


def _needs_admin(route) -> bool:
    def walk(dependant) -> bool:
        return dependant.call is get_admin_user or any(walk(d) for d in dependant.dependencies)

    return walk(route.dependant)


def test_route_table_is_what_we_think(web_app):
    table = route_table(web_app)
    paths = {path for _, path, _ in table}
    assert len(table) > 30
    assert {"/review", "/admin/videos", "/api/pairs/next", "/media/{path:path}"} <= paths
    # Admin-only is declared where the route is, and matches the URL space.
    admin_paths = {path for _, path, route in table if _needs_admin(route)}
    assert {p for p in paths if p.startswith("/admin")} <= admin_paths
    assert admin_paths - {p for p in paths if p.startswith("/admin")} == {
        "/api/videos",
        "/api/videos/{video_id}/requeue",
        "/api/videos/{video_id}/cancel",
        # Pipeline versions, re-runs and a channel's cancel are operations.
        "/api/pipeline",
        "/api/pipeline/rerun-outdated",
        "/api/channels/{channel_id}/cancel",
        # Operations: workers and queues, disk use.
        "/api/workers",
        "/api/storage",
        "/api/storage/videos/{video_id}",
        # Channels: their filters, re-crawl and listing on demand.
        "/api/channels",
        "/api/channels/{channel_id}",
        "/api/channels/{channel_id}/crawl",
        "/api/releases",
        # Adjudication and gold answers are for admins.
        "/api/adjudication",
        "/api/adjudication/next",
        "/api/adjudication/{pair_id}",
        "/api/pairs/{pair_id}/gold",
        "/review/pairs/{pair_id}/gold",
        "/api/stats/gold",
        "/api/stats/gold/pairs",
        # Training runs: start, list, read, cancel, retry.
        "/api/training",
        "/api/training/{run_id}",
        "/api/training/{run_id}/cancel",
        "/api/training/{run_id}/retry",
        # Evaluations of checkpoints: queue, list, compare.
        "/api/evaluations",
        "/api/evaluations/compare",
        "/api/evaluations/{evaluation_id}",
    }


def test_anonymous_is_sent_to_login_everywhere(web_app, client):
    checked = 0
    for method, path, _ in route_table(web_app):
        if (method, path) in PUBLIC:
            continue
        response = client.request(method, concrete(path))
        if path.startswith("/api/"):
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json() == {"detail": "not authenticated"}
        else:
            assert response.status_code == 303, (method, path, response.status_code)
            assert response.headers["location"].startswith("/login")
        checked += 1
    assert checked > 30
    # htmx requests are told to go to the login page rather than swap it in.
    response = client.get("/review", headers={"HX-Request": "true"})
    assert (response.status_code, response.headers["HX-Redirect"]) == (401, "/login")


def test_reviewer_gets_403_on_every_admin_route(web_app, client, session):
    make_user(session, "rita")
    token = api_login(client, "rita")
    admin_routes = [(m, p) for m, p, route in route_table(web_app) if _needs_admin(route)]
    assert len(admin_routes) >= 15
    for method, path in admin_routes:
        response = client.request(method, concrete(path), headers={"X-CSRF-Token": token})
        assert response.status_code == 403, (method, path, response.status_code)
        assert "may not" in response.text, (method, path)
    # ... and may use the review routes.
    assert client.get("/review").status_code == 200
    assert client.get("/api/stats").status_code == 200


def test_every_state_changing_route_needs_the_csrf_token(web_app, client, session):
    make_user(session, "ada", Role.admin)
    token = api_login(client, "ada")
    checked = 0
    for method, path, _ in route_table(web_app):
        if method not in STATE_CHANGING or (method, path) in CSRF_EXEMPT:
            continue
        for headers in ({}, {"X-CSRF-Token": "forged"}):
            response = client.request(
                method, concrete(path), headers=headers, data={"csrf_token": "x"}
            )
            assert response.status_code == 403, (method, path, headers, response.status_code)
            assert "expired" in response.text or "not sent by this site" in response.text
        checked += 1
    assert checked >= 15
    # The right token passes the check (and the route then does its own validation).
    response = client.post("/admin/users", data={"csrf_token": token, "username": "x"})
    assert response.status_code == 422
    # Still logged in: nothing above changed the session.
    assert client.get("/api/session").json()["user"]["username"] == "ada"


def test_login_form_needs_the_token_of_the_login_page(client, session):
    make_user(session, "ada", Role.admin)
    response = client.post("/login", data={"username": "ada", "password": PASSWORD})
    assert response.status_code == 403
    token = _login_page_token(client)
    response = client.post(
        "/login",
        data={
            "username": "ada",
            "password": PASSWORD,
            "csrf_token": token,
            "next": "//evil.example",
        },
    )
    assert (response.status_code, response.headers["location"]) == (303, "/review")
    # A new session, with a new token, after login (no fixation of the anonymous one).
    assert client.get("/api/session").json()["csrf_token"] != token


def test_wrong_password_and_logout(client, session):
    make_user(session, "ada", Role.admin)
    token = _login_page_token(client, "/login?next=/admin/users")
    response = client.post(
        "/login",
        data={
            "username": "ada",
            "password": "nope-nope",
            "csrf_token": token,
            "next": "/admin/users",
        },
    )
    assert response.status_code == 400 and "Wrong username or password" in response.text
    response = client.post(
        "/login",
        data={"username": "ada", "password": PASSWORD, "csrf_token": token, "next": "/admin/users"},
    )
    assert response.headers["location"] == "/admin/users"
    token = client.get("/api/session").json()["csrf_token"]
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    assert client.get("/review").status_code == 303


def test_deactivated_user_loses_access_at_once(client, session):
    user = make_user(session, "rita")
    api_login(client, "rita")
    assert client.get("/review").status_code == 200
    session.get(User, user.id).is_active = False
    session.commit()
    assert client.get("/review").status_code == 303
    assert client.get("/api/session").status_code == 401


def test_captions_and_titles_are_escaped(client, session, settings):
    make_user(session, "ada", Role.admin)
    video = make_video(session, title='<img src=x onerror="alert(1)">')
    write_frame_jpeg(settings.media_root)
    make_pair(session, video, caption="<script>alert('caption')</script>", noisy_text="<b>asr</b>")
    api_login(client, "ada")
    page = client.get("/review").text
    assert "<script>alert('caption')</script>" not in page
    assert "&lt;script&gt;alert(&#39;caption&#39;)&lt;/script&gt;" in page
    assert "<b>asr</b>" not in page and "&lt;b&gt;asr&lt;/b&gt;" in page
    assert '<img src=x onerror="alert(1)">' not in page
    videos = client.get("/admin/videos").text
    assert 'onerror="alert(1)"' not in videos and "&lt;img src=x" in videos


def test_security_headers_on_pages_errors_and_api(client, session):
    login = client.get("/login")
    for response in (login, client.get("/nope"), client.get("/api/stats")):
        headers = response.headers
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
    cookie = login.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=lax" in cookie


def test_media_is_served_only_inside_the_media_root(client, session, settings):
    make_user(session, "rita")
    relative = write_frame_jpeg(settings.media_root)
    (settings.media_root / "evil.html").write_text("<script>alert(1)</script>")
    (settings.var_dir / "secret.jpg").write_bytes(b"secret")
    assert client.get(f"/media/{relative}").status_code == 303  # anonymous
    api_login(client, "rita")
    response = client.get(f"/media/{relative}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "image/jpeg"
    assert response.content[:3] == b"\xff\xd8\xff"
    assert "sandbox" in response.headers["content-security-policy"]
    partial = client.get(f"/media/{relative}", headers={"Range": "bytes=0-9"})
    assert partial.status_code == 206 and len(partial.content) == 10
    for bad in (
        "/media/..%2fsecret.jpg",
        "/media/%2e%2e/secret.jpg",
        "/media/%2fetc%2fpasswd",
        "/media/evil.html",
        "/media/frames/1/missing.jpg",
    ):
        response = client.get(bad)
        assert response.status_code == 404, bad
        assert b"secret" not in response.content


def test_errors_never_show_a_traceback(settings, session):
    app = create_app()

    def boom() -> None:
        raise RuntimeError("database password is hunter2")

    app.add_api_route("/boom", boom)
    app.add_api_route("/api/boom", boom)
    with TestClient(app, raise_server_exceptions=False) as client:
        page = client.get("/boom")
        assert page.status_code == 500
        assert "hunter2" not in page.text and "Traceback" not in page.text
        assert "Something went wrong" in page.text
        api = client.get("/api/boom")
        assert api.status_code == 500 and "hunter2" not in api.text
        assert api.json()["detail"]
        missing = client.get("/api/nothing-here")
        assert missing.status_code == 404 and missing.headers["content-type"] == "application/json"
