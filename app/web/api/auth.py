"""Log in and out through the API; the session cookie is the same as the pages'.

Login limits and the audit of every try are in app/services/logins.py.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from app.db import SessionDep
from app.services import audit, logins
from app.services.users import end_sessions
from app.settings import get_settings
from app.web.api.schemas import LoginIn, SessionOut, UserOut
from app.web.deps import CurrentUser
from app.web.security import client_address, csrf_token, start_session

router = APIRouter(tags=["session"])


@router.post(
    "/login",
    response_model=SessionOut,
    responses={
        401: {"description": "Wrong username or password (or the account is locked)"},
        429: {"description": "Too many failed logins from this address; see Retry-After"},
    },
)
def api_login(body: LoginIn, request: Request, session: SessionDep):
    result = logins.attempt(
        session=session,
        settings=get_settings(),
        username=body.username,
        password=body.password,
        address=client_address(request),
        via="api",
    )
    session.commit()
    if result.outcome is logins.Outcome.address_limited:
        request.session.clear()
        return JSONResponse(
            {"detail": "too many failed logins from this address; try again later"},
            status_code=429,
            headers={"Retry-After": str(result.retry_after_s)},
        )
    if not result.ok or result.user is None:
        request.session.clear()
        return JSONResponse({"detail": "wrong username or password"}, status_code=401)
    user = result.user
    token = start_session(request, user.id, user.session_version)
    return SessionOut(user=UserOut.model_validate(user), csrf_token=token)


@router.post("/logout", status_code=204)
def api_logout(request: Request, session: SessionDep, user: CurrentUser) -> None:
    # Ends the user's sessions everywhere, so that a copy of this cookie is worthless too.
    end_sessions(session=session, user=user)
    audit.record(session=session, user=user, action="user.logout", via="api")
    session.commit()
    request.session.clear()


@router.get("/session", response_model=SessionOut)
def api_session(request: Request, user: CurrentUser) -> SessionOut:
    return SessionOut(user=UserOut.model_validate(user), csrf_token=csrf_token(request))
