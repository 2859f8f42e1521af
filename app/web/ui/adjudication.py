"""The adjudication page (admins): the pairs whose k reviews disagree, each with its
votes, and the final word on each (app/services/adjudication.py)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Form, Query, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from app.db import SessionDep
from app.services import adjudication, review
from app.web import events
from app.web.deps import AdminUser, get_admin_user
from app.web.errors import as_sentence
from app.web.templating import is_htmx, render

router = APIRouter(prefix="/admin", dependencies=[Depends(get_admin_user)])

ADJ_PAGE_SIZE = 20


def _adjudication(
    request: Request,
    session: Session,
    *,
    offset: int = 0,
    message: str | None = None,
    error: str | None = None,
    error_pair: int | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    total, items = adjudication.list_adjudication(
        session=session, limit=ADJ_PAGE_SIZE, offset=offset
    )
    context: dict[str, Any] = {
        "total": total,
        "items": items,
        "offset": offset,
        "page_size": ADJ_PAGE_SIZE,
        "message": message,
        "error": error,
        "error_pair": error_pair,
    }
    return render(
        request,
        "admin/adjudication.html",
        context,
        partial="admin/_adjudication.html",
        status_code=status_code,
        headers=headers,
    )


@router.get("/adjudication")
def adjudication_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> Response:
    return _adjudication(request, session, offset=offset)


@router.post("/adjudication/{pair_id}")
def adjudicate(
    pair_id: int,
    request: Request,
    session: SessionDep,
    user: AdminUser,
    decision: Annotated[Literal["approve", "reject"], Form()],
    version: Annotated[int, Form()],
    reason: Annotated[str | None, Form(max_length=32)] = None,
    comment: Annotated[str | None, Form(max_length=review.MAX_COMMENT_LEN)] = None,
) -> Response:
    """The final word on a disputed pair; the list comes back without it."""
    try:
        adjudication.adjudicate(
            session=session,
            pair_id=pair_id,
            admin=user,
            decision=decision,
            reason=reason or None,
            comment=comment,
            expected_version=version,
        )
    except review.ConflictError as exc:
        return _adjudication(
            request,
            session,
            error=f"{exc}. The list below shows the current state; nothing was saved.",
            error_pair=pair_id,
            status_code=409,
        )
    except review.ReviewError as exc:
        return _adjudication(
            request,
            session,
            error=as_sentence(exc),
            error_pair=pair_id,
            status_code=422,
        )
    if not is_htmx(request):
        return RedirectResponse("/admin/adjudication", status_code=303)
    verb = "approved" if decision == "approve" else "rejected"
    return _adjudication(
        request,
        session,
        message=f"Pair #{pair_id} {verb}.",
        headers=events.trigger(events.PAIR_ADJUDICATED),
    )
