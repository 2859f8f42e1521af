"""Login and logout pages.

Login limits and the audit of every try are in app/services/logins.py.
"""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Form, Request
from starlette.responses import RedirectResponse, Response

from app.db import SessionDep
from app.services import audit, logins
from app.services.users import end_sessions
from app.settings import get_settings
from app.web.deps import CurrentUser
from app.web.security import SESSION_USER, client_address, safe_next, start_session
from app.web.templating import render

router = APIRouter()

# Deliberately one message for a wrong password, an unknown user and a locked account.
WRONG = "Wrong username or password."


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
    result = logins.attempt(
        session=session,
        settings=get_settings(),
        username=username,
        password=password,
        address=client_address(request),
        via="web",
    )
    session.commit()
    if result.outcome is logins.Outcome.address_limited:
        minutes = math.ceil(result.retry_after_s / 60)
        error = (
            "Too many failed logins from this address. "
            f"Try again in {minutes} minute{'s' if minutes != 1 else ''}."
        )
        return render(
            request,
            "auth/login.html",
            {"next": safe_next(next), "error": error, "username": username},
            status_code=429,
            headers={"Retry-After": str(result.retry_after_s)},
        )
    if not result.ok or result.user is None:
        return render(
            request,
            "auth/login.html",
            {"next": safe_next(next), "error": WRONG, "username": username},
            status_code=400,
        )
    start_session(request, result.user.id, result.user.session_version)
    return RedirectResponse(safe_next(next), status_code=303)


@router.post("/logout")
def logout(request: Request, session: SessionDep, user: CurrentUser) -> Response:
    # Ends the user's sessions everywhere, so that a copy of this cookie is worthless too.
    end_sessions(session=session, user=user)
    audit.record(session=session, user=user, action="user.logout", via="web")
    session.commit()
    request.session.clear()
    return RedirectResponse("/login", status_code=303)
