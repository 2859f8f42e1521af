"""Queue statistics and the API's own schema (for logged-in users only)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlalchemy import func, select

from app.db import SessionDep
from app.models import Release
from app.services import review
from app.web import queries
from app.web.api.schemas import StatsOut
from app.web.deps import CurrentUser

router = APIRouter(tags=["meta"])


@router.get("/stats", response_model=StatsOut)
def stats(session: SessionDep, user: CurrentUser) -> StatsOut:
    counts = review.queue_counts(session=session)
    pairs = {"pending": counts.pending, "approved": counts.approved, "rejected": counts.rejected}
    if counts.disputed:
        pairs["disputed"] = counts.disputed
    return StatsOut(
        pairs=pairs,
        leased=counts.leased,
        videos=queries.video_counts(session=session),
        releases=session.scalar(select(func.count()).select_from(Release)) or 0,
    )


@router.get("/openapi.json", include_in_schema=False)
def openapi_schema(request: Request, user: CurrentUser) -> dict[str, Any]:
    return request.app.openapi()
