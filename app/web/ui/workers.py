"""The admin page of the workers: who is up, the queues and the running stages, live."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.db import SessionDep
from app.services import workers_health
from app.web.deps import AdminUser, get_admin_user
from app.web.templating import render

# For admins only, declared on the router as in admin.py.
router = APIRouter(prefix="/admin", dependencies=[Depends(get_admin_user)])


def _workers_context(session: Session) -> dict[str, Any]:
    return {"report": workers_health.workers_report(session)}


@router.get("/workers")
def workers_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    """The workers, the queues and the running stages; the panel refreshes itself."""
    return render(
        request, "admin/workers.html", _workers_context(session), partial="admin/_workers.html"
    )


@router.get("/workers/panel")
def workers_panel(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return render(request, "admin/_workers.html", _workers_context(session))
