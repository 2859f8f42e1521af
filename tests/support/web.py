"""Signing in and posting forms the way the pages do (htmx, the CSRF token in the form)."""

from __future__ import annotations

from fastapi.testclient import TestClient
from httpx import Response

from tests.support.seed import PASSWORD

HX = {"HX-Request": "true"}


def api_login(client: TestClient, username: str, password: str = PASSWORD) -> str:
    """Log ``client`` in through the API; returns the session's CSRF token."""
    response = client.post("/api/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    return response.json()["csrf_token"]


def form(client: TestClient, **fields: object) -> dict[str, object]:
    """Form fields with the signed-in ``client``'s CSRF token (``client.token``)."""
    return {"csrf_token": client.token, **fields}


def hx_post(
    client: TestClient, path: str, /, files: dict | None = None, **fields: object
) -> Response:
    """POST a form as htmx does; ``fields`` are the form's fields (``url`` and ``path``
    included)."""
    return client.post(path, data=form(client, **fields), files=files, headers=HX)
