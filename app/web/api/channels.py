"""Channels for admins: queue one with filters and a re-crawl interval, read what it
yielded and what its last listing turned away, change its settings, list it again now.
(Cancelling a channel's queue is an operation: app/web/api/pipeline.py.)"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Path
from sqlalchemy.orm import Session

from app.db import SessionDep
from app.models import Channel
from app.services import channels, ingest
from app.web.api.schemas import (
    ChannelDetailOut,
    ChannelFiltersOut,
    ChannelOut,
    ChannelPatchIn,
    ChannelQueueIn,
    ChannelYieldOut,
    CrawlOut,
    ListingOut,
)
from app.web.deps import AdminUser

router = APIRouter(prefix="/channels", tags=["channels"])

ChannelId = Annotated[int, Path(ge=1, le=2**31 - 1)]


def _channel_or_404(session: Session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise HTTPException(status_code=404, detail="no such channel")
    return channel


def _out(channel: Channel, video_count: int) -> ChannelOut:
    return ChannelOut(
        id=channel.id,
        url=channel.url,
        title=channel.title,
        status=channel.status,
        error=channel.error,
        created_at=channel.created_at,
        crawled_at=channel.crawled_at,
        next_crawl_at=channels.next_crawl_at(channel),
        recrawl_every_s=channel.recrawl_every_s,
        filters=ChannelFiltersOut(**channels.ChannelFilters.stored(channel.filters).to_json()),
        video_count=video_count,
    )


def _detail(session: Session, channel: Channel) -> ChannelDetailOut:
    produced = channels.channel_yield(session=session, channel_id=channel.id)
    listing = channels.last_listing(session=session, channel_id=channel.id)
    return ChannelDetailOut(
        **_out(channel, sum(produced.videos_by_status.values())).model_dump(),
        yield_=ChannelYieldOut.model_validate(produced),
        last_listing=ListingOut.model_validate(listing) if listing else None,
    )


@router.get("", response_model=list[ChannelOut])
def list_channels(session: SessionDep, user: AdminUser) -> list[ChannelOut]:
    return [_out(c, n) for c, n in channels.list_channels(session=session)]


@router.post("", response_model=ChannelDetailOut, status_code=201)
def queue_channel(body: ChannelQueueIn, session: SessionDep, user: AdminUser) -> ChannelDetailOut:
    """Queue a channel, playlist or feed to be listed, with its filters and re-crawl
    interval (queueing a known channel again lists it again, keeping its filters unless
    new ones are sent)."""
    channel = ingest.queue_url(
        session=session,
        url=body.url,
        user=user,
        kind="channel",
        filters=body.filters.model_dump(mode="json") if body.filters else None,
        recrawl_every_s=body.recrawl_every_s,
    )
    return _detail(session, channel)


@router.get("/{channel_id}", response_model=ChannelDetailOut)
def get_channel(channel_id: ChannelId, session: SessionDep, user: AdminUser) -> ChannelDetailOut:
    """The channel, its settings, what it yielded (videos and pairs by status, pairs per
    hour of processed video) and what its last listing did."""
    return _detail(session, _channel_or_404(session, channel_id))


@router.patch("/{channel_id}", response_model=ChannelDetailOut)
def update_channel(
    channel_id: ChannelId, body: ChannelPatchIn, session: SessionDep, user: AdminUser
) -> ChannelDetailOut:
    """Replace the filters and/or the re-crawl interval; the next listing applies them."""
    channel = _channel_or_404(session, channel_id)
    changes = {}
    if "filters" in body.model_fields_set:
        changes["filters"] = body.filters.model_dump(mode="json") if body.filters else {}
    if "recrawl_every_s" in body.model_fields_set:
        changes["recrawl_every_s"] = body.recrawl_every_s
    try:
        channels.update_settings(session=session, channel=channel, user=user, **changes)
    except channels.ChannelError as exc:
        session.rollback()
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return _detail(session, channel)


@router.post("/{channel_id}/crawl", response_model=CrawlOut, status_code=202)
def crawl(channel_id: ChannelId, session: SessionDep, user: AdminUser) -> CrawlOut:
    """List the channel again now; only videos not seen before are added."""
    channel = _channel_or_404(session, channel_id)
    try:
        sent = channels.crawl_now(session=session, channel=channel, user=user)
    except channels.ChannelError as exc:
        raise HTTPException(status_code=409, detail=str(exc)) from exc
    return CrawlOut(channel_id=channel.id, status=channel.status, broker_down=sent.broker_down)
