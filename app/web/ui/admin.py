"""Admin pages: queue sources, watch the pipeline and channels, cut releases, manage users."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypedDict, Unpack

from fastapi import APIRouter, Depends, Form, HTTPException, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import FileResponse, RedirectResponse, Response

from app.db import SessionDep
from app.media import UnsafePathError, resolve_inside
from app.models import Channel, Release, Role, TranscriptSegment, User, Video
from app.pipeline import STAGE_NAMES
from app.services import audit, channels, control, ingest, releases, storage, workers_health
from app.services.users import UserError, create_user
from app.web import errors, events, queries
from app.web.deps import AdminUser, get_admin_user
from app.web.security import SANDBOX_POLICY
from app.web.templating import is_htmx, render

# Every route here is for admins; the dependency on the router makes forgetting it
# impossible (and tests/test_web_auth.py walks the routes to check).
router = APIRouter(prefix="/admin", dependencies=[Depends(get_admin_user)])

# Uploads get their own router so that create_app can give them the one large body limit;
# every other route keeps the small default (a body is read before the route's
# dependencies run, so the limit is what protects against anonymous giant posts).
upload_router = APIRouter(prefix="/admin", dependencies=[Depends(get_admin_user)])

SEGMENTS_SHOWN = 500


@router.get("")
def admin_home(user: AdminUser) -> Response:
    return RedirectResponse("/admin/videos", status_code=303)


# --- videos -------------------------------------------------------------------------


def _videos_context(session: Session) -> dict[str, Any]:
    total, videos = queries.list_videos(session=session, limit=200)
    return {"videos": videos, "total": total, "active": queries.any_active(videos)}


def _queue_forms(
    request: Request,
    session: Session,
    *,
    message: str | None = None,
    error: str | None = None,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    context = {"message": message, "error": error, **_videos_context(session)}
    return render(
        request,
        "admin/videos.html",
        context,
        partial="admin/_queue_forms.html",
        status_code=status_code,
        headers=headers,
    )


def _queued(request: Request, session: Session, message: str) -> Response:
    if not is_htmx(request):
        return RedirectResponse("/admin/videos", status_code=303)
    return _queue_forms(
        request, session, message=message, headers=events.trigger(events.VIDEO_QUEUED)
    )


@router.get("/videos")
def videos_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return _queue_forms(request, session)


@router.get("/videos/table")
def videos_table(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return render(request, "admin/_videos_table.html", _videos_context(session))


@router.post("/videos/url")
def queue_url(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    url: Annotated[str, Form(max_length=2048)],
    kind: Annotated[Literal["auto", "video", "channel"], Form()] = "auto",
) -> Response:
    try:
        queued = ingest.queue_url(session=session, url=url, user=user, kind=kind)
    except ingest.IngestError as exc:
        return _queue_forms(request, session, error=str(exc), status_code=422)
    what = "video" if isinstance(queued, Video) else "channel"
    return _queued(request, session, f"Queued {what} #{queued.id}.")


@router.post("/videos/file")
def queue_file(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    path: Annotated[str, Form(max_length=4096)],
) -> Response:
    try:
        video = ingest.queue_file(session=session, path=Path(path.strip()), user=user)
    except ingest.IngestError as exc:
        return _queue_forms(request, session, error=str(exc), status_code=422)
    return _queued(request, session, f"Queued video #{video.id} ({video.title}).")


@upload_router.post("/videos/upload")
def queue_upload(
    request: Request, session: SessionDep, user: AdminUser, file: UploadFile
) -> Response:
    try:
        video = ingest.queue_upload(
            session=session, filename=file.filename or "upload", stream=file.file, user=user
        )
    except ingest.IngestError as exc:
        return _queue_forms(request, session, error=str(exc), status_code=422)
    return _queued(request, session, f"Uploaded and queued video #{video.id} ({video.title}).")


def _video_context(session: Session, video: Video) -> dict[str, Any]:
    """What the video page and its stage table (which the page refreshes) show."""
    return {
        "video": video,
        "active": queries.any_active([video]),
        "pair_counts": queries.pair_counts_for_video(session=session, video_id=video.id),
    }


def _stages(request: Request, session: Session, video: Video, **extra: Any) -> Response:
    headers = extra.pop("headers", None)
    context = {**_video_context(session, video), **extra}
    return render(request, "admin/_video_stages.html", context, headers=headers)


@router.get("/videos/{video_id}")
def video_detail(video_id: int, request: Request, session: SessionDep, user: AdminUser) -> Response:
    video = queries.video_or_404(session, video_id)
    segments = session.scalars(
        select(TranscriptSegment)
        .where(TranscriptSegment.video_id == video_id)
        .order_by(TranscriptSegment.start_s)
        .limit(SEGMENTS_SHOWN)
    ).all()
    context = {
        **_video_context(session, video),
        "segments": segments,
        "segment_count": queries.segment_count(session=session, video_id=video_id),
        "segments_shown": SEGMENTS_SHOWN,
        "storage": storage.video_storage(session, video),
    }
    return render(request, "admin/video.html", context)


@router.get("/videos/{video_id}/stages")
def video_stages(video_id: int, request: Request, session: SessionDep, user: AdminUser) -> Response:
    return _stages(request, session, queries.video_or_404(session, video_id))


@router.post("/videos/{video_id}/requeue")
def requeue(
    video_id: int,
    request: Request,
    session: SessionDep,
    user: AdminUser,
    stage: Annotated[str | None, Form(max_length=16)] = None,
) -> Response:
    if stage is not None and stage not in STAGE_NAMES:
        raise HTTPException(status_code=422, detail="no such stage")
    video = ingest.requeue_video(
        session=session, video=queries.video_or_404(session, video_id), user=user, from_stage=stage
    )
    if not is_htmx(request):
        return RedirectResponse(f"/admin/videos/{video_id}", status_code=303)
    return _stages(
        request,
        session,
        video,
        message="Queued again." if not stage else f"Queued again from {stage}.",
        headers=events.trigger(events.VIDEO_QUEUED),
    )


@router.post("/videos/{video_id}/cancel")
def cancel(video_id: int, request: Request, session: SessionDep, user: AdminUser) -> Response:
    video = queries.video_or_404(session, video_id)
    try:
        control.cancel_video(session=session, video=video, user=user)
        message, error = "Cancelled: what the running stage made is not kept.", None
    except control.ControlError as exc:
        message, error = None, errors.as_sentence(exc)
    if not is_htmx(request):
        return RedirectResponse(f"/admin/videos/{video_id}", status_code=303)
    return _stages(request, session, video, message=message, error=error)


class _Outcome(TypedDict, total=False):
    """What a form page says after a request: a message or an error, what was typed
    before the error, and the response's status and headers."""

    message: str
    error: str
    form: dict[str, str]
    status_code: int
    headers: dict[str, str]


def _form_page(
    request: Request, name: str, data: dict[str, Any], **outcome: Unpack[_Outcome]
) -> Response:
    """An admin page with a form (admin/NAME.html, or its partial admin/_NAME.html for
    htmx), echoing the outcome and what was typed before an error."""
    context = {
        **data,
        "message": outcome.get("message"),
        "error": outcome.get("error"),
        "form": outcome.get("form") or {},
    }
    return render(
        request,
        f"admin/{name}.html",
        context,
        partial=f"admin/_{name}.html",
        status_code=outcome.get("status_code", 200),
        headers=outcome.get("headers"),
    )


# --- releases -----------------------------------------------------------------------


def _releases(request: Request, session: Session, **outcome: Unpack[_Outcome]) -> Response:
    listed = releases.list_releases(session=session, newest_first=True)
    data = {"releases": listed, "files": {r.id: queries.release_files(r) for r in listed}}
    return _form_page(request, "releases", data, **outcome)


@router.get("/releases")
def releases_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return _releases(request, session)


@router.post("/releases")
def create_release(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    version: Annotated[str, Form(min_length=1, max_length=64)],
    notes: Annotated[str, Form(max_length=4000)] = "",
) -> Response:
    form = {"version": version, "notes": notes}
    try:
        release = releases.create_release(
            session=session, version=version.strip(), user=user, notes=notes.strip() or None
        )
        session.commit()
    except releases.ReleaseError as exc:
        session.rollback()
        return _releases(request, session, error=str(exc), form=form, status_code=422)
    if not is_htmx(request):
        return RedirectResponse("/admin/releases", status_code=303)
    return _releases(
        request,
        session,
        message=f"Release {release.version} created with {release.pair_count} pairs.",
        headers=events.trigger(events.RELEASE_CREATED),
    )


@router.get("/releases/{release_id}/files/{path:path}")
def release_file(release_id: int, path: str, session: SessionDep, user: AdminUser) -> Response:
    release = session.get(Release, release_id)
    if release is None or release.status != "ready":
        raise HTTPException(404)
    try:
        file = resolve_inside(releases.release_dir(release), path)
    except UnsafePathError:
        raise HTTPException(404) from None
    if not file.is_file():
        raise HTTPException(404)
    return FileResponse(
        file,
        media_type="application/json" if file.suffix == ".json" else "application/octet-stream",
        filename=file.name,  # sent as an attachment
        headers={"Content-Security-Policy": SANDBOX_POLICY},
    )


# --- users --------------------------------------------------------------------------


def _users(request: Request, session: Session, **outcome: Unpack[_Outcome]) -> Response:
    users = session.scalars(select(User).order_by(User.username)).all()
    data = {"users": users, "roles": [r.value for r in Role]}
    return _form_page(request, "users", data, **outcome)


@router.get("/users")
def users_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return _users(request, session)


@router.post("/users")
def add_user(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    role: Annotated[Role, Form()] = Role.reviewer,
) -> Response:
    try:
        created = create_user(
            session=session, username=username.strip(), password=password, role=role
        )
    except UserError as exc:
        session.rollback()
        return _users(
            request,
            session,
            error=str(exc),
            form={"username": username, "role": role},
            status_code=422,
        )
    audit.record(
        session=session,
        user=user,
        action="user.create",
        target=f"user:{created.id}",
        role=role.value,
    )
    session.commit()
    if not is_htmx(request):
        return RedirectResponse("/admin/users", status_code=303)
    return _users(
        request,
        session,
        message=f"Added {created.username} ({created.role}).",
        headers=events.trigger(events.USER_CREATED),
    )


@router.post("/users/{user_id}/active")
def set_active(
    user_id: int,
    request: Request,
    session: SessionDep,
    user: AdminUser,
    active: Annotated[bool, Form()],
) -> Response:
    target = session.get(User, user_id)
    if target is None:
        raise HTTPException(404)
    if target.id == user.id and not active:
        return _users(
            request, session, error="You cannot deactivate your own account.", status_code=422
        )
    target.is_active = active
    audit.record(
        session=session,
        user=user,
        action="user.activate" if active else "user.deactivate",
        target=f"user:{target.id}",
    )
    session.commit()
    if not is_htmx(request):
        return RedirectResponse("/admin/users", status_code=303)
    state = "active" if active else "deactivated"
    return _users(request, session, message=f"{target.username} is {state}.")


# --- channels -----------------------------------------------------------------------


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


def _channels(request: Request, session: Session, **outcome: Unpack[_Outcome]) -> Response:
    rows = channels.list_channels(session=session)
    data = {
        "rows": [(c, n, channels.next_crawl_at(c)) for c, n in rows],
        "defaults": _form_of(None),
    }
    return _form_page(request, "channels", data, **outcome)


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
    request: Request, session: Session, channel: Channel, **outcome: Unpack[_Outcome]
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
    return _form_page(request, "channel", data, **outcome)


@router.get("/channels/{channel_id}")
def channel_detail(
    channel_id: int, request: Request, session: SessionDep, user: AdminUser
) -> Response:
    return _channel_page(request, session, _channel_or_404(session, channel_id))


def _after_channel_post(
    request: Request, session: Session, channel: Channel, **outcome: Unpack[_Outcome]
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


# --- workers ------------------------------------------------------------------------


def _workers_context(session: Session) -> dict[str, Any]:
    return {"report": workers_health.workers_report(session)}


@router.get("/workers")
def workers_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    """The workers, the queues and the running stages; the panel refreshes itself."""
    return render(
        request, "admin/workers.html", _workers_context(session), partial="admin/_workers.html"
    )


@router.get("/workers/panel")
def workers_panel(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return render(request, "admin/_workers.html", _workers_context(session))
