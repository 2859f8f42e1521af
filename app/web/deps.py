"""Dependencies of the routes: the logged-in user and their role.

``CurrentUser`` loads the user named by the session cookie on every request, so that a
deactivated account loses access at once, and so does a session that logout or a
password change ended (its version is no longer the user's; app/web/security.py). What
happens when there is none is decided by the exception handlers (app/web/errors.py): a
redirect to /login for pages, a 401 for the API, a 403 for a reviewer on an admin route.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from app.db import SessionDep
from app.models import Role, User
from app.web.security import (
    SESSION_USER,
    SESSION_VERSION,
    ForbiddenError,
    NotAuthenticatedError,
)


def get_current_user(request: Request, session: SessionDep) -> User:
    user_id = request.session.get(SESSION_USER)
    if not isinstance(user_id, int):
        raise NotAuthenticatedError
    user = session.get(User, user_id)
    # A session without a version predates versions: it ends too (one more login).
    version = request.session.get(SESSION_VERSION)
    if user is None or not user.is_active or version != user.session_version:
        request.session.clear()
        raise NotAuthenticatedError
    request.state.user = user
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]


def get_admin_user(user: CurrentUser) -> User:
    if user.role != Role.admin:
        raise ForbiddenError
    return user


AdminUser = Annotated[User, Depends(get_admin_user)]
