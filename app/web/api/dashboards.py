"""Dashboard figures over JSON: progress, yield, throughput, agreement, gold accuracy."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Query

from app.db import SessionDep
from app.models import utcnow
from app.services import dashboards, gold
from app.services.agreement import report as agreement_report
from app.web.api.schemas import (
    AgreementOut,
    GoldAccuracyOut,
    GoldOut,
    ProgressOut,
    ReviewerStatsOut,
    ThroughputOut,
)
from app.web.deps import AdminUser, CurrentUser

router = APIRouter(prefix="/stats", tags=["dashboards"])

Days = Annotated[float, Query(gt=0, le=3660, description="Window: the last N days")]


def _progress(rows: list[dashboards.Progress]) -> list[ProgressOut]:
    return [ProgressOut.model_validate(r) for r in rows]


def _since(days: float) -> dt.datetime:
    return utcnow() - dt.timedelta(days=days)


@router.get("/channels", response_model=list[ProgressOut], response_model_by_alias=True)
def progress_by_channel(session: SessionDep, user: CurrentUser) -> list[ProgressOut]:
    """Progress and yield (approved / total) per channel."""
    return _progress(dashboards.progress_by_channel(session=session))


@router.get("/videos", response_model=list[ProgressOut], response_model_by_alias=True)
def progress_by_video(
    session: SessionDep,
    user: CurrentUser,
    channel_id: Annotated[int | None, Query(ge=-(2**31), le=2**31 - 1)] = None,
) -> list[ProgressOut]:
    """Progress and yield per video (optionally of one channel)."""
    return _progress(dashboards.progress_by_video(session=session, channel_id=channel_id))


@router.get("/reviewers", response_model=list[ReviewerStatsOut])
def reviewers(session: SessionDep, user: CurrentUser, days: Days = 7) -> list[ReviewerStatsOut]:
    """Throughput and agreement per reviewer over the window."""
    rows = dashboards.reviewer_stats(session=session, since=_since(days))
    return [ReviewerStatsOut.model_validate(r) for r in rows]


@router.get("/throughput", response_model=list[ThroughputOut])
def throughput(
    session: SessionDep,
    user: CurrentUser,
    days: Days = 7,
    bucket_s: Annotated[int, Query(ge=60, le=31 * 86400)] = 3600,
) -> list[ThroughputOut]:
    """Decisions per reviewer per time bucket."""
    rows = dashboards.throughput(session=session, since=_since(days), bucket_s=bucket_s)
    return [ThroughputOut.model_validate(r) for r in rows]


@router.get("/agreement", response_model=AgreementOut)
def agreement(session: SessionDep, user: CurrentUser) -> AgreementOut:
    """Cohen's kappa per reviewer pair, Fleiss' kappa and Krippendorff's alpha overall,
    edit distance between reviewers' caption edits."""
    return AgreementOut.model_validate(agreement_report(session=session))


@router.get("/gold", response_model=list[GoldAccuracyOut])
def gold_accuracy(session: SessionDep, admin: AdminUser) -> list[GoldAccuracyOut]:
    """Per-reviewer accuracy on gold pairs (admins)."""
    return [GoldAccuracyOut.model_validate(g) for g in gold.gold_accuracy(session=session)]


@router.get("/gold/pairs", response_model=list[GoldOut])
def gold_pairs(session: SessionDep, admin: AdminUser) -> list[GoldOut]:
    """The gold pairs and their known answers (admins)."""
    return [GoldOut.model_validate(g) for g in gold.list_gold(session=session)]
