"""The pipeline's stages and versions; admins re-run what an older version made, and
cancel a channel's queue."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path

from app.db import SessionDep
from app.models import Channel
from app.pipeline import PIPELINE, STAGE_NAMES
from app.services import control
from app.settings import get_settings
from app.web.api.schemas import CancelledOut, RerunIn, RerunOut, StageVersionOut
from app.web.deps import AdminUser

router = APIRouter(tags=["pipeline"])

ChannelId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("/pipeline", response_model=list[StageVersionOut])
def stages(session: SessionDep, user: AdminUser) -> list[StageVersionOut]:
    settings = get_settings()
    return [
        StageVersionOut(
            stage=stage.name,
            queue=stage.queue,
            version=stage.version_for(settings),
            outdated=len(control.outdated_runs(session=session, stage=stage.name)),
        )
        for stage in PIPELINE
    ]


@router.post("/pipeline/rerun-outdated", response_model=RerunOut)
def rerun_outdated(body: RerunIn, session: SessionDep, user: AdminUser) -> RerunOut:
    """Queue the stage again (and those after it) for every video whose run of it was made
    by another version; pairs a reviewer touched are kept."""
    if body.stage not in STAGE_NAMES:
        raise HTTPException(status_code=422, detail="no such stage")
    ids = control.rerun_outdated(
        session=session, stage=body.stage, user=user, channel_id=body.channel_id
    )
    return RerunOut(stage=body.stage, video_ids=ids)


@router.post("/channels/{channel_id}/cancel", response_model=CancelledOut)
def cancel_channel(channel_id: ChannelId, session: SessionDep, user: AdminUser) -> CancelledOut:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise HTTPException(status_code=404, detail="no such channel")
    return CancelledOut(
        cancelled_videos=control.cancel_channel(session=session, channel=channel, user=user)
    )
