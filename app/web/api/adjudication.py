"""Adjudication over JSON (admins): disputed pairs, their votes, the final word."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from app.db import SessionDep
from app.services import adjudication
from app.web.api.pairs import PairId, pair_out
from app.web.api.schemas import AdjudicationItemOut, AdjudicationPage, DecisionIn, PairOut, VoteOut
from app.web.deps import AdminUser

router = APIRouter(prefix="/adjudication", tags=["adjudication"])


def item_out(item: adjudication.AdjudicationItem) -> AdjudicationItemOut:
    return AdjudicationItemOut(
        pair=pair_out(item.pair), votes=[VoteOut.model_validate(v) for v in item.votes]
    )


@router.get("", response_model=AdjudicationPage)
def list_disputed(
    session: SessionDep,
    admin: AdminUser,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> AdjudicationPage:
    """Disputed pairs (k reviews that disagree) with each reviewer's vote."""
    total, items = adjudication.list_adjudication(session=session, limit=limit, offset=offset)
    return AdjudicationPage(total=total, items=[item_out(i) for i in items])


@router.post(
    "/next",
    response_model=AdjudicationItemOut,
    responses={204: {"description": "No disputed pair left"}},
)
def claim_next(session: SessionDep, admin: AdminUser):
    """Lease the next disputed pair to the caller (or the one they hold)."""
    item = adjudication.claim_adjudication(session=session, admin=admin)
    if item is None:
        return Response(status_code=204)
    return item_out(item)


@router.post(
    "/{pair_id}",
    response_model=PairOut,
    responses={409: {"description": "The pair changed since the given version"}},
)
def adjudicate(pair_id: PairId, body: DecisionIn, session: SessionDep, admin: AdminUser) -> PairOut:
    """Settle a pair with the admin's decision (appended as an adjudication review)."""
    pair = adjudication.adjudicate(
        session=session,
        pair_id=pair_id,
        admin=admin,
        decision=body.decision,
        reason=body.reason,
        comment=body.comment,
        expected_version=body.version,
    )
    return pair_out(pair)
