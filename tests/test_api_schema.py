"""Schemathesis against the JSON API, in-process (ASGI): every documented operation,
with generated inputs, as a signed-in admin with the CSRF header. No input may produce a
server error: a 5xx is a bug whatever the input. Bounded so that it finishes in well under
90 s."""

from __future__ import annotations

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings

from app.models import Role
from app.web.main import create_app
from tests.support.seed import make_pair, make_user, make_video, write_frame_jpeg
from tests.support.web import api_login

pytestmark = pytest.mark.slow

# Ending the session would make every later case a 401, which tests nothing.
SKIP = {("POST", "/api/logout")}
EXAMPLES_PER_OPERATION = 25


def test_no_server_errors_on_any_operation(settings, session):
    video = make_video(session)
    write_frame_jpeg(settings.media_root)
    for i in range(4):
        make_pair(session, video, priority=i / 10)
    make_user(session, "ada", Role.admin)
    app = create_app()
    with TestClient(app, follow_redirects=False) as client:
        client.headers["X-CSRF-Token"] = api_login(client, "ada")
        schema = schemathesis.openapi.from_dict(app.openapi())
        checked = 0
        for result in schema.get_all_operations():
            operation = result.ok()
            if (operation.method.upper(), operation.path) in SKIP:
                continue

            @hsettings(
                max_examples=EXAMPLES_PER_OPERATION,
                deadline=None,
                database=None,
                derandomize=True,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy())
            def call(case) -> None:
                kwargs = case.as_transport_kwargs(base_url="http://testserver")
                kwargs.pop("cookies", None)
                kwargs["headers"] = {
                    k: v for k, v in kwargs["headers"].items() if k.lower() != "connection"
                }
                kwargs["headers"]["X-CSRF-Token"] = client.headers["X-CSRF-Token"]
                if case.path == "/api/login":
                    # A login attempt must not replace the admin's session either.
                    with TestClient(app) as other:
                        response = other.request(**kwargs)
                else:
                    response = client.request(**kwargs)
                assert response.status_code < 500, (
                    case.method,
                    case.formatted_path,
                    kwargs.get("params"),
                    kwargs.get("json"),
                    response.text[:300],
                )

            call()
            checked += 1
        assert checked >= 30
        # Still signed in as the admin: the run really exercised authenticated routes.
        assert client.get("/api/session").json()["user"]["username"] == "ada"
