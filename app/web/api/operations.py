"""Operations, for admins: the workers and queues, and the media store's disk use."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from app.db import SessionDep
from app.services import storage, workers_health
from app.web import queries
from app.web.deps import AdminUser

router = APIRouter(tags=["operations"])


@router.get("/workers", response_model=workers_health.WorkersReport)
def workers(session: SessionDep, user: AdminUser) -> workers_health.WorkersReport:
    """The Celery workers that answer (queues, pool, active tasks), the queues' lengths
    and the stage runs that are running with their leases. Answers within a couple of
    seconds; ``problem`` says in words what could not be seen (a broker that is down, no
    worker answering)."""
    return workers_health.workers_report(session)


@router.get("/storage", response_model=storage.StorageReport)
def storage_totals(
    session: SessionDep,
    user: AdminUser,
    top: Annotated[int, Query(ge=0, le=1000, description="How many videos to list")] = 20,
) -> storage.StorageReport:
    """Bytes under the media store: totals (sources, frames, other, orphan folders,
    uploads, releases) and the ``top`` videos by bytes."""
    return storage.storage_report(session, top=top)


@router.get("/storage/videos/{video_id}", response_model=storage.VideoStorage)
def video_storage(
    video_id: Annotated[int, Path(ge=1, le=2**31 - 1)], session: SessionDep, user: AdminUser
) -> storage.VideoStorage:
    """One video's bytes: source media, frames, other; whether its source was deleted."""
    return storage.video_storage(session, queries.video_or_404(session, video_id))
