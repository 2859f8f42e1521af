"""User accounts: creation, passwords, sessions, the bootstrap admin.

Checking a password at login, with its rate limits and lockout, is app/services/logins.py.
"""

from __future__ import annotations

import re

from sqlalchemy import select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app.models import Role, User
from app.passwords import generate_password, hash_password

USERNAME_RE = re.compile(r"^[A-Za-z0-9_.-]{2,64}$")
MIN_PASSWORD_LEN = 8


class UserError(ValueError):
    pass


def create_user(*, session: Session, username: str, password: str, role: Role | str) -> User:
    if not USERNAME_RE.match(username):
        raise UserError("username: 2-64 letters, digits, '_', '.' or '-'")
    if len(password) < MIN_PASSWORD_LEN:
        raise UserError(f"password: at least {MIN_PASSWORD_LEN} characters")
    role = Role(role)
    if session.scalar(select(User).where(User.username == username)):
        raise UserError(f"user {username!r} exists")
    user = User(username=username, password_hash=hash_password(password), role=role)
    session.add(user)
    session.flush()
    return user


def set_password(*, session: Session, user: User, password: str) -> None:
    """Give ``user`` a new password: every session of theirs ends, and a lockout is lifted
    (an administrator resetting the password is how a locked-out user gets back in)."""
    if len(password) < MIN_PASSWORD_LEN:
        raise UserError(f"password: at least {MIN_PASSWORD_LEN} characters")
    user.password_hash = hash_password(password)
    unlock(user=user)
    end_sessions(session=session, user=user)


def unlock(*, user: User) -> None:
    """Lift a lockout now (the count of failures starts again from zero)."""
    user.failed_logins = 0
    user.locked_until = None


def end_sessions(*, session: Session, user: User) -> None:
    """End every session of ``user``, on every device: each session carries the version it
    began under, and the web app refuses one that is not the user's current version."""
    # Incremented in SQL, so that two logouts at once still give a new version each.
    version = session.execute(
        update(User)
        .where(User.id == user.id)
        .values(session_version=User.session_version + 1)
        .returning(User.session_version)
        .execution_options(synchronize_session=False)
    ).scalar_one()
    set_committed_value(user, "session_version", version)


def ensure_admin(*, session: Session, username: str, password: str = "") -> tuple[User, str | None]:
    """Create the admin account if missing. Returns (user, generated password or None)."""
    user = session.scalar(select(User).where(User.username == username))
    if user is not None:
        return user, None
    generated = None
    if not password:
        password = generated = generate_password()
    return create_user(
        session=session, username=username, password=password, role=Role.admin
    ), generated
