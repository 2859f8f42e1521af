"""Admin pages: queue sources, watch each video's pipeline, cut releases, manage users.

Channels and the workers have pages of their own (app/web/ui/channels.py, workers.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal, Unpack

from fastapi import APIRouter, Depends, Form, HTTPException, Query, Request, UploadFile
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.responses import FileResponse, RedirectResponse, Response

from app.db import SessionDep
from app.media import UnsafePathError, resolve_inside
from app.models import Release, Role, TranscriptSegment, User, Video
from app.pipeline import STAGE_NAMES
from app.services import audit, control, ingest, release_diff, releases, storage
from app.services.users import UserError, create_user
from app.web import errors, events, queries
from app.web.deps import AdminUser, get_admin_user
from app.web.security import SANDBOX_POLICY
from app.web.templating import is_htmx, render
from app.web.ui.forms import Outcome, form_page

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


# --- releases -----------------------------------------------------------------------

# The files a release lists for download: not the thousands of images/ and shard tars
# (those are fetched with the release folder), but every table, card and index.
_LISTED_DIRS = ("", "tsv", "clip_benchmark", "clip_benchmark_classification")


def _listed(files: list[str]) -> list[str]:
    return [
        f
        for f in files
        if f == "shards/sizes.json"
        or (f.rsplit("/", 1)[0] if "/" in f else "") in _LISTED_DIRS
        or (f.startswith("clip_benchmark") and f.endswith(".txt"))
    ]


def _releases(request: Request, session: Session, **outcome: Unpack[Outcome]) -> Response:
    listed = releases.list_releases(session=session, newest_first=True)
    versions = {r.id: r.version for r in listed}
    data = {
        "releases": listed,
        "files": {r.id: _listed(queries.release_files(r)) for r in listed},
        "parents": {r.id: versions.get(r.parent_id) for r in listed if r.parent_id},
        "sources": ("youtube", "http", "file", "upload"),
    }
    return form_page(request, "releases", data, **outcome)


@router.get("/releases")
def releases_page(request: Request, session: SessionDep, user: AdminUser) -> Response:
    return _releases(request, session)


def _optional_int(value: str, what: str) -> int | None:
    value = value.strip()
    if not value:
        return None
    try:
        return int(value)
    except ValueError:
        raise releases.ReleaseError(f"{what}: a whole number") from None


@router.post("/releases")
def create_release(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    version: Annotated[str, Form(min_length=1, max_length=64)],
    notes: Annotated[str, Form(max_length=4000)] = "",
    samples_per_shard: Annotated[str, Form(max_length=12)] = "",
    min_shards: Annotated[str, Form(max_length=12)] = "",
    min_reviews: Annotated[str, Form(max_length=12)] = "",
    until: Annotated[str, Form(max_length=40)] = "",
    parent: Annotated[str, Form(max_length=64)] = "",
    source: Annotated[list[str] | None, Form()] = None,
) -> Response:
    form = {
        "version": version,
        "notes": notes,
        "samples_per_shard": samples_per_shard,
        "min_shards": min_shards,
        "min_reviews": min_reviews,
        "until": until,
        "parent": parent,
    }
    try:
        sources = tuple(dict.fromkeys(s for s in (source or []) if s))
        unknown = [s for s in sources if s not in ("youtube", "http", "file", "upload")]
        if unknown:
            raise releases.ReleaseError(f"unknown source {unknown[0]!r}")
        options: dict[str, Any] = {}
        per_shard = _optional_int(samples_per_shard, "samples per shard")
        if per_shard is not None:
            options["samples_per_shard"] = per_shard
        shards = _optional_int(min_shards, "minimum shards")
        if shards is not None:
            options["min_shards"] = shards
        selection = releases.Selection(
            sources=sources,
            min_reviews=_optional_int(min_reviews, "minimum reviews"),
            until=releases.parse_until(until) if until.strip() else None,
        )
        release = releases.create_release(
            session=session,
            version=version.strip(),
            user=user,
            notes=notes.strip() or None,
            selection=selection,
            parent=parent.strip() or None,
            **options,
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


@router.get("/releases/diff")
def release_diff_page(
    request: Request,
    session: SessionDep,
    user: AdminUser,
    new: Annotated[str, Query(max_length=64)],
    old: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    """Pairs added, removed and edited from ``old`` (default: ``new``'s parent) to ``new``."""
    try:
        diff = release_diff.diff_releases(session=session, old=old or None, new=new)
    except release_diff.ReleaseDiffError as exc:
        raise HTTPException(404, str(exc)) from None
    return render(request, "admin/release_diff.html", {"diff": diff})


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


def _users(request: Request, session: Session, **outcome: Unpack[Outcome]) -> Response:
    users = session.scalars(select(User).order_by(User.username)).all()
    data = {"users": users, "roles": [r.value for r in Role]}
    return form_page(request, "users", data, **outcome)


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
