"""Login and logout pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from app.db import SessionDep
from app.services import audit
from app.services.users import authenticate
from app.web.deps import CurrentUser
from app.web.security import SESSION_USER, safe_next, start_session
from app.web.templating import render

router = APIRouter()


@router.get("/")
def home(user: CurrentUser) -> Response:
    return RedirectResponse("/review", status_code=303)


@router.get("/login")
def login_page(request: Request, next: str | None = None) -> Response:
    if request.session.get(SESSION_USER):
        return RedirectResponse(safe_next(next), status_code=303)
    return render(request, "auth/login.html", {"next": safe_next(next), "error": None})


@router.post("/login")
def login(
    request: Request,
    session: SessionDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2048)] = "/review",
) -> Response:
    user = authenticate(session=session, username=username, password=password)
    if user is None:
        audit.record(session=session, user=None, action="user.login_failed", username=username)
        session.commit()
        return render(
            request,
            "auth/login.html",
            {"next": safe_next(next), "error": "Wrong username or password.", "username": username},
            status_code=400,
        )
    start_session(request, user.id)
    audit.record(session=session, user=user, action="user.login", via="web")
    session.commit()
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, user: CurrentUser) -> Response:
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
