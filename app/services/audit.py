"""Audit trail: who did what to which object, append-only."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.models import AuditEvent, User


def record(
    *,
    session: Session,
    user: User | None,
    action: str,
    target: str | None = None,
    **details: Any,
) -> AuditEvent:
    event = AuditEvent(
        user_id=user.id if user else None, action=action, target=target, details=details
    )
    session.add(event)
    return event
