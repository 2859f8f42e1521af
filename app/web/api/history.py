"""A reviewer's own history over JSON: back and forward through their decisions, undo."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.db import SessionDep
from app.services import review
from app.web.api.pairs import pair_out
from app.web.api.schemas import PairOut, ReviewerHistoryItemOut, UndoIn
from app.web.deps import CurrentUser

router = APIRouter(prefix="/history", tags=["history"])

ReviewId = Annotated[int | None, Query(ge=0, le=2**31 - 1)]


@router.get("", response_model=list[ReviewerHistoryItemOut])
def my_history(
    session: SessionDep,
    user: CurrentUser,
    before_id: ReviewId = None,
    after_id: ReviewId = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> list[ReviewerHistoryItemOut]:
    """The caller's decisions, newest first. ``before_id`` pages back (older), ``after_id``
    forward (newer); undone decisions are included and marked."""
    items = review.reviewer_history(
        session=session, reviewer=user, before_id=before_id, after_id=after_id, limit=limit
    )
    return [
        ReviewerHistoryItemOut.model_validate(
            {**item.__dict__, "image_url": f"/media/{item.image_path}"}
        )
        for item in items
    ]


@router.post(
    "/undo",
    response_model=PairOut,
    responses={
        204: {"description": "No decision left to undo"},
        409: {
            "description": "Someone settled the pair after the caller's decision, or the "
            "decision is in a release and was not confirmed"
        },
    },
)
def undo(session: SessionDep, user: CurrentUser, body: UndoIn | None = None):
    """Take back the caller's last standing decision (an undo row is appended; nothing is
    deleted). The pair comes back to the caller, leased, as it is now. A decision whose
    pair is in a release needs ``{"confirm": true}`` (else 409)."""
    pair = review.undo_last(session=session, reviewer=user, confirm=bool(body and body.confirm))
    if pair is None:
        return Response(status_code=204)
    return pair_out(pair)
