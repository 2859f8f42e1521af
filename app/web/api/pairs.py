"""The review queue over JSON: claim (with filters), read, list, decide (one or a grid's
batch), edit, history, gold answers."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Response

from app.db import SessionDep
from app.models import Pair, PairStatus
from app.services import gold, review
from app.settings import get_settings
from app.web.api.schemas import (
    BatchDecisionIn,
    BatchOutcomeOut,
    ClaimBatchIn,
    DecisionIn,
    EditIn,
    FilterOptionsOut,
    GoldIn,
    GoldOut,
    HistoryEntryOut,
    IdLabelOut,
    PairOut,
    PairPage,
)
from app.web.deps import AdminUser, CurrentUser

router = APIRouter(prefix="/pairs", tags=["pairs"])

CONFLICT = {409: {"description": "The pair changed since the given version"}}


def pair_out(pair: Pair) -> PairOut:
    return PairOut.model_validate(
        {
            **{f: getattr(pair, f) for f in PairOut.model_fields if f != "image_url"},
            "image_url": f"/media/{pair.image_path}",
        }
    )


Source = Literal["file", "upload", "http", "youtube"]
DB_INT = {"ge": -(2**31), "le": 2**31 - 1}


async def queue_filters(
    channel_id: Annotated[int | None, Query(**DB_INT)] = None,
    video_id: Annotated[int | None, Query(**DB_INT)] = None,
    source: Source | None = None,
    magnification: Annotated[int | None, Query(**DB_INT)] = None,
) -> review.QueueFilters:
    # async: no I/O here, so FastAPI calls it on the event loop instead of a thread hop.
    return review.QueueFilters(
        channel_id=channel_id, video_id=video_id, source_kind=source, magnification=magnification
    )


PairId = Annotated[int, Path(ge=1, le=2**31 - 1)]
FiltersDep = Annotated[review.QueueFilters, Depends(queue_filters)]


@router.get(
    "/next",
    response_model=PairOut,
    responses={204: {"description": "Nothing left to review"}},
)
def next_pair(session: SessionDep, user: CurrentUser, filters: FiltersDep):
    """Lease the next pair to review (or the one already leased to the caller), in
    priority order, within the filters."""
    pair = review.claim_next(
        session=session, reviewer=user, lease_s=get_settings().lease_s, filters=filters
    )
    if pair is None:
        return Response(status_code=204)
    return pair_out(pair)


@router.get("", response_model=PairPage)
def list_pairs(
    session: SessionDep,
    user: CurrentUser,
    filters: FiltersDep,
    status: PairStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 48,
    offset: Annotated[int, Query(ge=0, le=2**31 - 1)] = 0,
) -> PairPage:
    """Pairs in queue order within the filters (and status): the grid's and search's
    listing. Reads only; lease a grid page with POST /api/pairs/claim."""
    filters = review.QueueFilters(**{**filters.__dict__, "status": status})
    total, pairs = review.list_pairs(session=session, filters=filters, limit=limit, offset=offset)
    return PairPage(total=total, items=[pair_out(p) for p in pairs])


@router.post("/claim", response_model=list[PairOut])
def claim_batch(body: ClaimBatchIn, session: SessionDep, user: CurrentUser) -> list[PairOut]:
    """Lease a grid page of pairs at once (the held ones first), within the filters."""
    filters = review.QueueFilters(
        channel_id=body.channel_id,
        video_id=body.video_id,
        source_kind=body.source,
        magnification=body.magnification,
    )
    pairs = review.claim_batch(session=session, reviewer=user, limit=body.limit, filters=filters)
    return [pair_out(p) for p in pairs]


@router.post("/batch-decision", response_model=list[BatchOutcomeOut])
def batch_decision(
    body: BatchDecisionIn, session: SessionDep, user: CurrentUser
) -> list[BatchOutcomeOut]:
    """Grid triage: one decision on many pairs. Each pair is decided on its own; a stale
    version is reported in its outcome (``conflict``) and the others still go through."""
    outcomes = review.decide_many(
        session=session,
        reviewer=user,
        items=[(i.pair_id, i.version) for i in body.items],
        decision=body.decision,
        reason=body.reason,
        comment=body.comment,
        confirm=body.confirm,
    )
    return [BatchOutcomeOut.model_validate(o) for o in outcomes]


@router.get("/filters", response_model=FilterOptionsOut)
def filter_options(session: SessionDep, user: CurrentUser) -> FilterOptionsOut:
    """The values the queue filters can take."""
    options = review.filter_options(session=session)
    return FilterOptionsOut(
        channels=[IdLabelOut(id=i, label=label) for i, label in options.channels],
        videos=[IdLabelOut(id=i, label=label) for i, label in options.videos],
        sources=options.sources,
        magnifications=options.magnifications,
        statuses=options.statuses,
    )


@router.get("/{pair_id}", response_model=PairOut)
def get_pair(pair_id: PairId, session: SessionDep, user: CurrentUser) -> PairOut:
    return pair_out(review.get_pair(session=session, pair_id=pair_id))


@router.post("/{pair_id}/decision", response_model=PairOut, responses=CONFLICT)
def decide(pair_id: PairId, body: DecisionIn, session: SessionDep, user: CurrentUser) -> PairOut:
    pair = review.decide(
        session=session,
        pair_id=pair_id,
        reviewer=user,
        decision=body.decision,
        reason=body.reason,
        comment=body.comment,
        expected_version=body.version,
        confirm=body.confirm,
    )
    return pair_out(pair)


@router.post("/{pair_id}/skip", status_code=204)
def skip(pair_id: PairId, session: SessionDep, user: CurrentUser) -> None:
    """Give the pair back to the queue; the caller will not be offered it again."""
    review.skip(session=session, pair_id=pair_id, reviewer=user)


@router.patch("/{pair_id}", response_model=PairOut, responses=CONFLICT)
def edit(pair_id: PairId, body: EditIn, session: SessionDep, user: CurrentUser) -> PairOut:
    fields = body.model_dump(exclude={"version"}, exclude_none=True)
    pair = review.edit(
        session=session, pair_id=pair_id, user=user, fields=fields, expected_version=body.version
    )
    return pair_out(pair)


@router.get("/{pair_id}/history", response_model=list[HistoryEntryOut])
def history(pair_id: PairId, session: SessionDep, user: CurrentUser) -> list[HistoryEntryOut]:
    """Edits and decisions on the pair, oldest first. Votes are blind: reviewers see other
    reviewers' votes once the pair is approved or rejected (their own always; admins all)."""
    entries = review.pair_history(session=session, pair_id=pair_id, viewer=user)
    return [HistoryEntryOut.model_validate(e) for e in entries]


@router.put("/{pair_id}/gold", response_model=GoldOut)
def mark_gold(pair_id: PairId, body: GoldIn, session: SessionDep, admin: AdminUser) -> GoldOut:
    """Give a pair a known answer (admins): it is mixed into reviewers' queues and their
    votes on it are scored (GET /api/stats/gold)."""
    answer = gold.mark_gold(
        session=session, pair_id=pair_id, admin=admin, decision=body.decision, reason=body.reason
    )
    return GoldOut.model_validate(answer)
