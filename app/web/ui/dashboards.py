"""The admins' figures: the agreement page (kappa and alpha over the reviewers' votes,
gold accuracy) and the dashboard (progress, yield, throughput per reviewer). Rendered from
app/services/agreement.py, gold.py and dashboards.py; the pages only lay the figures out.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import Response

from app.db import SessionDep
from app.models import utcnow
from app.services import agreement, dashboards, gold
from app.web.deps import AdminUser, get_admin_user
from app.web.templating import render

router = APIRouter(prefix="/admin", dependencies=[Depends(get_admin_user)])

WINDOWS = {"1d": 1, "7d": 7, "30d": 30}


@router.get("/agreement")
def agreement_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    context = {
        "report": agreement.report(session=session),
        "gold": gold.gold_accuracy(session=session),
    }
    return render(request, "admin/agreement.html", context)


@router.get("/dashboard")
def dashboard_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    window: Annotated[Literal["1d", "7d", "30d"], Query()] = "7d",
) -> Response:
    since = utcnow() - dt.timedelta(days=WINDOWS[window])
    buckets = dashboards.throughput(session=session, since=since, bucket_s=86400)
    days = sorted({b.start for b in buckets})
    names = sorted({b.username for b in buckets})
    per_day = {(b.start, b.username): b.decisions for b in buckets}
    context = {
        "window": window,
        "windows": list(WINDOWS),
        "channels": dashboards.progress_by_channel(session=session),
        "videos": dashboards.progress_by_video(session=session),
        "reviewers": dashboards.reviewer_stats(session=session, since=since),
        "days": days,
        "names": names,
        "per_day": per_day,
        "min_decisions_for_rate": dashboards.MIN_DECISIONS_FOR_RATE,
    }
    return render(request, "admin/dashboard.html", context)
