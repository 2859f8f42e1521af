"""Jinja2 templates and the one way routes render them.

A route returns the full page, or only the partial when htmx asks (``HX-Request``);
the full page template includes the same partial, so the two never drift apart.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from fastapi import Request
from fastapi.templating import Jinja2Templates
from starlette.responses import Response

from app.models import REJECT_REASON_LABELS, Role
from app.pipeline import STAGE_NAMES
from app.services import redact
from app.settings import REPO_ROOT
from app.web.security import csrf_token


def is_admin(request: Request) -> bool:
    """The request's logged-in user (set by ``get_current_user``) is an admin."""
    user = getattr(request.state, "user", None)
    return bool(user and user.role == Role.admin)


def _common(request: Request) -> dict[str, Any]:
    return {
        "user": getattr(request.state, "user", None),
        "is_admin": is_admin(request),
        "csrf_token": csrf_token(request),
        "reject_reasons": list(REJECT_REASON_LABELS.items()),
    }


def _timespan(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def _when(value: dt.datetime | None) -> str:
    if value is None:
        return "–"
    if value.tzinfo is None:  # SQLite gives back naive datetimes; they are UTC
        value = value.replace(tzinfo=dt.UTC)
    return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


templates = Jinja2Templates(directory=REPO_ROOT / "templates", context_processors=[_common])
templates.env.filters["timespan"] = _timespan
templates.env.filters["when"] = _when
# A video's source as reviewers see it: a local file by its name, never its server path.
templates.env.filters["source_name"] = lambda video: redact.source_name(
    video.source_kind, video.source_url
)
templates.env.globals["stage_order"] = list(STAGE_NAMES)
templates.env.globals["reject_reason_labels"] = {
    k.value: v for k, v in REJECT_REASON_LABELS.items()
}


def is_htmx(request: Request) -> bool:
    return (
        request.headers.get("HX-Request") == "true" and request.headers.get("HX-Boosted") != "true"
    )


def render(
    request: Request,
    page: str,
    context: Mapping[str, Any] | None = None,
    *,
    partial: str | None = None,
    status_code: int = 200,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """``page`` for a normal request, ``partial`` (when given) for an htmx request."""
    name = partial if partial and is_htmx(request) else page
    return templates.TemplateResponse(
        request, name, dict(context or {}), status_code=status_code, headers=headers
    )
