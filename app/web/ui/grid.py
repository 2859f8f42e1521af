"""Grid triage: a page of thumbnails with their captions, selected with the mouse or
keys and decided together: the quick way through the many pairs that are plainly right or
plainly wrong, leaving the review page for the ones that need reading.

The page leases its pairs (``review.claim_batch``), so two reviewers never triage the
same pair at once; a decision goes through ``review.decide_many`` with the version each
tile was shown at, so a pair changed meanwhile is reported, never overwritten.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Form, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session
from starlette.responses import Response

from app.db import SessionDep
from app.models import User
from app.services import review
from app.web import events
from app.web.deps import CurrentUser
from app.web.errors import as_sentence
from app.web.templating import render

router = APIRouter(prefix="/review/grid")

PAGE = "review/grid.html"
PARTIAL = "review/_grid.html"
# Tiles per page: fewer and triage saves little over one pair at a time; more and the
# thumbnails get too small to judge on one screen.
SIZES = (24, 36, 48)
MIN_SIZE, MAX_SIZE = min(SIZES), max(SIZES)


class GridFilters(BaseModel):
    channel: int | None = None
    video: int | None = None
    source: str | None = Field(default=None, max_length=16)
    magnification: int | None = None
    size: int = Field(default=36, ge=MIN_SIZE, le=MAX_SIZE)

    def queue_filters(self) -> review.QueueFilters:
        return review.QueueFilters(
            channel_id=self.channel,
            video_id=self.video,
            source_kind=self.source or None,
            magnification=self.magnification,
        )


def _grid(
    request: Request,
    session: Session,
    user: User,
    filters: GridFilters,
    *,
    outcomes: list[review.BatchOutcome] | None = None,
    decision: str | None = None,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    pairs = review.claim_batch(
        session=session, reviewer=user, limit=filters.size, filters=filters.queue_filters()
    )
    outcomes = outcomes or []
    context: dict[str, Any] = {
        "pairs": pairs,
        "filters": filters,
        "options": review.filter_options(session=session),
        "sizes": SIZES,
        "decided": [o for o in outcomes if o.ok],
        "failed": [o for o in outcomes if not o.ok],
        "decision": decision,
        "error": error,
        "counts": review.queue_counts(session=session),
    }
    return render(request, PAGE, context, partial=PARTIAL, status_code=status_code, headers=headers)


@router.get("")
def grid_page(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    filters: Annotated[GridFilters, Query()],
) -> Response:
    return _grid(request, session, user, filters)


@router.post("")
def grid_decide(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    action: Annotated[Literal["approve", "reject"], Form()],
    pair: Annotated[list[str], Form(max_length=200)] = [],  # noqa: B006 - FastAPI form list
    reason: Annotated[str | None, Form(max_length=32)] = None,
    comment: Annotated[str | None, Form(max_length=review.MAX_COMMENT_LEN)] = None,
    channel: Annotated[int | None, Form()] = None,
    video: Annotated[int | None, Form()] = None,
    source: Annotated[str | None, Form(max_length=16)] = None,
    magnification: Annotated[int | None, Form()] = None,
    size: Annotated[int, Form(ge=MIN_SIZE, le=MAX_SIZE)] = 36,
) -> Response:
    """Decide the selected tiles (``pair`` = "id:version", one per tile)."""
    filters = GridFilters(
        channel=channel, video=video, source=source, magnification=magnification, size=size
    )
    items: list[tuple[int, int]] = []
    for value in pair:
        pair_id, _, version = value.partition(":")
        if not (pair_id.isdigit() and version.isdigit()):
            return _grid(
                request, session, user, filters, error="Invalid selection.", status_code=422
            )
        items.append((int(pair_id), int(version)))
    if not items:
        return _grid(request, session, user, filters, error="Select pairs first.", status_code=422)
    try:
        outcomes = review.decide_many(
            session=session,
            reviewer=user,
            items=items,
            decision=action,
            reason=reason or None,
            comment=comment,
        )
    except review.ReviewError as exc:
        return _grid(request, session, user, filters, error=as_sentence(exc), status_code=422)
    return _grid(
        request,
        session,
        user,
        filters,
        outcomes=outcomes,
        decision=action,
        headers=events.trigger(events.PAIRS_TRIAGED),
    )
