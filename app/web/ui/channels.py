"""Admin pages of the channels: queue one with its filters, watch its listing and yield,
edit its filters and re-crawl interval, list it again, cancel its queue."""

from __future__ import annotations

import math
from typing import Annotated, Any, TypedDict, Unpack

from fastapi import APIRouter, Depends, Form, HTTPException, Request
from sqlalchemy.orm import Session
from starlette.responses import RedirectResponse, Response

from app.db import SessionDep
from app.models import Channel
from app.services import channels, control, ingest
from app.web import errors, events
from app.web.deps import AdminUser, get_admin_user
from app.web.templating import is_htmx
from app.web.ui.forms import Outcome, form_page

# For admins only, declared on the router as in admin.py.
router = APIRouter(prefix="/admin", dependencies=[Depends(get_admin_user)])


class _ChannelForm(TypedDict):
    """The filter and re-crawl fields as the channel forms send them (text, as typed)."""

    min_minutes: str
    max_minutes: str
    include: str
    exclude: str
    uploaded_after: str
    skip_seen: bool
    recrawl_hours: str


def _minutes(value: str, what: str) -> float | None:
    value = value.strip()
    if not value:
        return None
    try:
        number = float(value)
    except ValueError:
        raise channels.ChannelError(f"{what} must be a number of minutes") from None
    if not math.isfinite(number) or number < 0:
        raise channels.ChannelError(f"{what} must be a number of minutes")
    return round(number * 60, 3)


def _settings_from_form(form: _ChannelForm) -> tuple[dict[str, Any], int | None]:
    """(filters, recrawl_every_s) from the form; ``ChannelError`` says what is wrong."""
    filters = {
        "min_duration_s": _minutes(form["min_minutes"], "the shortest length"),
        "max_duration_s": _minutes(form["max_minutes"], "the longest length"),
        "include_keywords": form["include"].split(","),
        "exclude_keywords": form["exclude"].split(","),
        "uploaded_after": form["uploaded_after"].strip() or None,
        "skip_seen": form["skip_seen"],
    }
    hours = form["recrawl_hours"].strip()
    if not hours:
        return filters, None
    try:
        seconds = float(hours) * 3600
    except ValueError:
        raise channels.ChannelError("list again every: a number of hours") from None
    if not math.isfinite(seconds) or not (
        channels.MIN_RECRAWL_S <= round(seconds) <= channels.MAX_RECRAWL_S
    ):
        raise channels.ChannelError("list again every: between 10 minutes and a year")
    return filters, round(seconds)


def _form_of(channel: Channel | None) -> _ChannelForm:
    """The form's fields showing a channel's settings (the defaults for a new one)."""
    rules = channels.ChannelFilters.stored(channel.filters if channel else None)

    def minutes(seconds: float | None) -> str:
        return "" if seconds is None else f"{seconds / 60:g}"

    every = channel.recrawl_every_s if channel else None
    return {
        "min_minutes": minutes(rules.min_duration_s),
        "max_minutes": minutes(rules.max_duration_s),
        "include": ", ".join(rules.include_keywords),
        "exclude": ", ".join(rules.exclude_keywords),
        "uploaded_after": rules.uploaded_after.isoformat() if rules.uploaded_after else "",
        "skip_seen": rules.skip_seen,
        "recrawl_hours": "" if every is None else f"{every / 3600:g}",
    }


def _channel_form(
    min_minutes: Annotated[str, Form(max_length=32)] = "",
    max_minutes: Annotated[str, Form(max_length=32)] = "",
    include: Annotated[str, Form(max_length=6000)] = "",
    exclude: Annotated[str, Form(max_length=6000)] = "",
    uploaded_after: Annotated[str, Form(max_length=32)] = "",
    skip_seen: Annotated[bool, Form()] = False,
    recrawl_hours: Annotated[str, Form(max_length=32)] = "",
) -> _ChannelForm:
    return {
        "min_minutes": min_minutes,
        "max_minutes": max_minutes,
        "include": include,
        "exclude": exclude,
        "uploaded_after": uploaded_after,
        "skip_seen": skip_seen,
        "recrawl_hours": recrawl_hours,
    }


ChannelForm = Annotated[_ChannelForm, Depends(_channel_form)]


def _channel_or_404(session: Session, channel_id: int) -> Channel:
    channel = session.get(Channel, channel_id)
    if channel is None:
        raise HTTPException(404, f"channel {channel_id} not found")
    return channel


def _channels(request: Request, session: Session, **outcome: Unpack[Outcome]) -> Response:
    rows = channels.list_channels(session=session)
    data = {
        "rows": [(c, n, channels.next_crawl_at(c)) for c, n in rows],
        "defaults": _form_of(None),
    }
    return form_page(request, "channels", data, **outcome)


@router.get("/channels")
def channels_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return _channels(request, session)


@router.post("/channels")
def queue_channel(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    fields: ChannelForm,
    url: Annotated[str, Form(max_length=2048)],
) -> Response:
    typed = {**fields, "url": url}
    try:
        filters, every = _settings_from_form(fields)
        channel = ingest.queue_url(
            session=session,
            url=url,
            user=user,
            kind="channel",
            filters=filters,
            recrawl_every_s=every,
        )
    except (channels.ChannelError, ingest.IngestError) as exc:
        session.rollback()
        return _channels(
            request, session, error=errors.as_sentence(exc), form=typed, status_code=422
        )
    if not is_htmx(request):
        return RedirectResponse(f"/admin/channels/{channel.id}", status_code=303)
    return _channels(
        request,
        session,
        message=f"Queued channel #{channel.id} for listing.",
        headers=events.trigger(events.VIDEO_QUEUED),
    )


def _channel_page(
    request: Request, session: Session, channel: Channel, **outcome: Unpack[Outcome]
) -> Response:
    data = {
        "channel": channel,
        "rules": channels.ChannelFilters.stored(channel.filters),
        "next_crawl": channels.next_crawl_at(channel),
        "produced": channels.channel_yield(session=session, channel_id=channel.id),
        "listing": channels.last_listing(session=session, channel_id=channel.id),
        "videos": channels.channel_videos(session=session, channel_id=channel.id),
        "videos_shown": 500,
        "defaults": _form_of(channel),
    }
    return form_page(request, "channel", data, **outcome)


@router.get("/channels/{channel_id}")
def channel_detail(
    channel_id: int, request: Request, session: SessionDep, user: AdminUser
) -> Response:
    return _channel_page(request, session, _channel_or_404(session, channel_id))


def _after_channel_post(
    request: Request, session: Session, channel: Channel, **outcome: Unpack[Outcome]
) -> Response:
    if not is_htmx(request) and "error" not in outcome:
        return RedirectResponse(f"/admin/channels/{channel.id}", status_code=303)
    return _channel_page(request, session, channel, **outcome)


@router.post("/channels/{channel_id}/settings")
def channel_settings(
    channel_id: int,
    request: Request,
    session: SessionDep,
    user: AdminUser,
    fields: ChannelForm,
) -> Response:
    channel = _channel_or_404(session, channel_id)
    try:
        filters, every = _settings_from_form(fields)
        channels.update_settings(
            session=session, channel=channel, user=user, filters=filters, recrawl_every_s=every
        )
    except channels.ChannelError as exc:
        session.rollback()
        return _after_channel_post(
            request,
            session,
            channel,
            error=errors.as_sentence(exc),
            form=dict(fields),
            status_code=422,
        )
    return _after_channel_post(
        request, session, channel, message="Saved: the next listing applies these settings."
    )


@router.post("/channels/{channel_id}/crawl")
def channel_crawl(
    channel_id: int, request: Request, session: SessionDep, user: AdminUser
) -> Response:
    channel = _channel_or_404(session, channel_id)
    try:
        sent = channels.crawl_now(session=session, channel=channel, user=user)
    except channels.ChannelError as exc:
        return _after_channel_post(
            request, session, channel, error=errors.as_sentence(exc), status_code=409
        )
    message = "Queued for listing: only videos not seen before are added."
    if sent.broker_down:
        message = "Queued for listing; " + sent.broker_down + "."
    return _after_channel_post(request, session, channel, message=message)


@router.post("/channels/{channel_id}/cancel")
def channel_cancel(
    channel_id: int, request: Request, session: SessionDep, user: AdminUser
) -> Response:
    channel = _channel_or_404(session, channel_id)
    cancelled = control.cancel_channel(session=session, channel=channel, user=user)
    return _after_channel_post(
        request,
        session,
        channel,
        message=f"Cancelled the queue: {cancelled} video(s) stopped; what their running "
        "stages made is not kept.",
    )
