"""Log in and out through the API; the session cookie is the same as the pages'."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse

from app.db import SessionDep
from app.services import audit
from app.services.users import authenticate
from app.web.api.schemas import LoginIn, SessionOut, UserOut
from app.web.deps import CurrentUser
from app.web.security import csrf_token, start_session

router = APIRouter(tags=["session"])


@router.post(
    "/login",
    response_model=SessionOut,
    responses={401: {"description": "Wrong username or password"}},
)
def api_login(body: LoginIn, request: Request, session: SessionDep):
    user = authenticate(session=session, username=body.username, password=body.password)
    if user is None:
        request.session.clear()
        return JSONResponse({"detail": "wrong username or password"}, status_code=401)
    token = start_session(request, user.id)
    audit.record(session=session, user=user, action="user.login", via="api")
    session.commit()
    return SessionOut(user=UserOut.model_validate(user), csrf_token=token)


@router.post("/logout", status_code=204)
def api_logout(request: Request, user: CurrentUser) -> None:
    request.session.clear()


@router.get("/session", response_model=SessionOut)
def api_session(request: Request, user: CurrentUser) -> SessionOut:
    return SessionOut(user=UserOut.model_validate(user), csrf_token=csrf_token(request))
