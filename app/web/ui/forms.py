"""The admin pages' forms: one way to render a page with a form and what it says after a
request (a message or an error, and what was typed before the error)."""

from __future__ import annotations

from typing import Any, TypedDict, Unpack

from fastapi import Request
from starlette.responses import Response

from app.web.templating import render


class Outcome(TypedDict, total=False):
    """What a form page says after a request: a message or an error, what was typed
    before the error, and the response's status and headers."""

    message: str
    error: str
    form: dict[str, str]
    status_code: int
    headers: dict[str, str]


def form_page(
    request: Request, name: str, data: dict[str, Any], **outcome: Unpack[Outcome]
) -> Response:
    """An admin page with a form (admin/NAME.html, or its partial admin/_NAME.html for
    htmx), echoing the outcome and what was typed before an error."""
    context = {
        **data,
        "message": outcome.get("message"),
        "error": outcome.get("error"),
        "form": outcome.get("form") or {},
    }
    return render(
        request,
        f"admin/{name}.html",
        context,
        partial=f"admin/_{name}.html",
        status_code=outcome.get("status_code", 200),
        headers=outcome.get("headers"),
    )
