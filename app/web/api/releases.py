"""Dataset releases: list them and their changes; admins freeze the approved pairs into a
new one."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query

from app.db import SessionDep
from app.services import release_diff, releases
from app.web.api.schemas import (
    ReleaseCreateIn,
    ReleaseDetailOut,
    ReleaseDiffOut,
    ReleaseOut,
)
from app.web.deps import AdminUser, CurrentUser

router = APIRouter(prefix="/releases", tags=["releases"])


@router.get("", response_model=list[ReleaseOut])
def list_releases(session: SessionDep, user: CurrentUser) -> list[ReleaseOut]:
    listed = releases.list_releases(session=session, newest_first=True)
    return [ReleaseOut.model_validate(r) for r in listed]


@router.post("", response_model=ReleaseDetailOut, status_code=201)
def create_release(body: ReleaseCreateIn, session: SessionDep, user: AdminUser) -> ReleaseDetailOut:
    options: dict[str, Any] = {}
    if body.samples_per_shard is not None:
        options["samples_per_shard"] = body.samples_per_shard
    if body.min_shards is not None:
        options["min_shards"] = body.min_shards
    selection = releases.Selection(
        sources=tuple(dict.fromkeys(body.sources)),
        min_reviews=body.min_reviews,
        until=releases.parse_until(body.until) if body.until else None,
    )
    release = releases.create_release(
        session=session,
        version=body.version.strip(),
        user=user,
        notes=body.notes,
        selection=selection,
        parent=body.parent.strip() if body.parent else None,
        **options,
    )
    session.commit()
    return ReleaseDetailOut.model_validate(release)


@router.get("/{version}", response_model=ReleaseDetailOut)
def get_release(version: str, session: SessionDep, user: CurrentUser) -> ReleaseDetailOut:
    release = releases.get_release(session=session, version=version)
    if release is None:
        raise HTTPException(404, f"no release {version!r}")
    return ReleaseDetailOut.model_validate(release)


@router.get("/{version}/diff", response_model=ReleaseDiffOut)
def diff_release(
    version: str,
    session: SessionDep,
    user: CurrentUser,
    against: Annotated[str | None, Query(max_length=64)] = None,
) -> ReleaseDiffOut:
    """Pairs added, removed and edited (caption or texts) since ``against`` (default: the
    release's parent)."""
    try:
        diff = release_diff.diff_releases(session=session, old=against or None, new=version)
    except release_diff.ReleaseDiffError as exc:
        raise HTTPException(404, str(exc)) from None
    return ReleaseDiffOut.model_validate(dataclasses.asdict(diff) | {"counts": diff.counts})
