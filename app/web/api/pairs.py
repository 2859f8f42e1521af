"""The review queue over JSON: claim, read, decide, edit, history."""

from __future__ import annotations

from fastapi import APIRouter, Response

from app.db import SessionDep
from app.models import Pair
from app.services import review
from app.settings import get_settings
from app.web.api.schemas import DecisionIn, EditIn, HistoryEntryOut, PairOut
from app.web.deps import CurrentUser

router = APIRouter(prefix="/pairs", tags=["pairs"])

CONFLICT = {409: {"description": "The pair changed since the given version"}}


def pair_out(pair: Pair) -> PairOut:
    return PairOut.model_validate(
        {
            **{f: getattr(pair, f) for f in PairOut.model_fields if f != "image_url"},
            "image_url": f"/media/{pair.image_path}",
        }
    )


@router.get(
    "/next",
    response_model=PairOut,
    responses={204: {"description": "Nothing left to review"}},
)
def next_pair(session: SessionDep, user: CurrentUser):
    """Lease the next pair to review (or the one already leased to the caller)."""
    pair = review.claim_next(session=session, reviewer=user, lease_s=get_settings().lease_s)
    if pair is None:
        return Response(status_code=204)
    return pair_out(pair)


@router.get("/{pair_id}", response_model=PairOut)
def get_pair(pair_id: int, session: SessionDep, user: CurrentUser) -> PairOut:
    return pair_out(review.get_pair(session=session, pair_id=pair_id))


@router.post("/{pair_id}/decision", response_model=PairOut, responses=CONFLICT)
def decide(pair_id: int, body: DecisionIn, session: SessionDep, user: CurrentUser) -> PairOut:
    pair = review.decide(
        session=session,
        pair_id=pair_id,
        reviewer=user,
        decision=body.decision,
        reason=body.reason,
        comment=body.comment,
        expected_version=body.version,
    )
    return pair_out(pair)


@router.post("/{pair_id}/skip", status_code=204)
def skip(pair_id: int, session: SessionDep, user: CurrentUser) -> None:
    """Give the pair back to the queue; the caller will not be offered it again."""
    review.skip(session=session, pair_id=pair_id, reviewer=user)


@router.patch("/{pair_id}", response_model=PairOut, responses=CONFLICT)
def edit(pair_id: int, body: EditIn, session: SessionDep, user: CurrentUser) -> PairOut:
    fields = body.model_dump(exclude={"version"}, exclude_none=True)
    pair = review.edit(
        session=session, pair_id=pair_id, user=user, fields=fields, expected_version=body.version
    )
    return pair_out(pair)


@router.get("/{pair_id}/history", response_model=list[HistoryEntryOut])
def history(pair_id: int, session: SessionDep, user: CurrentUser) -> list[HistoryEntryOut]:
    entries = review.pair_history(session=session, pair_id=pair_id)
    return [HistoryEntryOut.model_validate(e) for e in entries]
