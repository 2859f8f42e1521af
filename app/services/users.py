"""User accounts: creation, authentication, the bootstrap admin."""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.models import Role, User
from app.passwords import generate_password, hash_password, verify_password

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


def authenticate(*, session: Session, username: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        # Hash anyway so a missing user takes as long as a wrong password.
        verify_password(_DUMMY_HASH, password)
        return None
    if not user.is_active or not verify_password(user.password_hash, password):
        return None
    return user


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


_DUMMY_HASH = hash_password("timing-equaliser")
