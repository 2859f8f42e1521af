"""What the review services raise; app/web/errors.py maps them to HTTP answers."""

from __future__ import annotations

from app.models import Role, User


class ReviewError(ValueError):
    """The request itself is invalid (missing reason, unknown field, ...)."""


class PairNotFoundError(LookupError):
    pass


class ConflictError(Exception):
    """Someone else changed the pair since the caller read it."""

    def __init__(self, message: str, *, current_version: int | None = None) -> None:
        super().__init__(message)
        self.current_version = current_version


def conflict(pair_id: int, current: int, expected: int) -> ConflictError:
    return ConflictError(
        f"pair {pair_id} was changed by someone else (version {current}, you had {expected})",
        current_version=current,
    )


class NotAllowedError(ReviewError):
    """Only admins adjudicate and mark gold pairs."""


def require_admin(*, user: User) -> None:
    if user.role != Role.admin:
        raise NotAllowedError("only an admin may do this")
