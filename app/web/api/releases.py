"""Dataset releases: list them; admins freeze the approved pairs into a new one."""

from __future__ import annotations

from fastapi import APIRouter

from app.db import SessionDep
from app.services import releases
from app.web.api.schemas import ReleaseIn, ReleaseOut
from app.web.deps import AdminUser, CurrentUser

router = APIRouter(prefix="/releases", tags=["releases"])


@router.get("", response_model=list[ReleaseOut])
def list_releases(session: SessionDep, user: CurrentUser) -> list[ReleaseOut]:
    listed = releases.list_releases(session=session, newest_first=True)
    return [ReleaseOut.model_validate(r) for r in listed]


@router.post("", response_model=ReleaseOut, status_code=201)
def create_release(body: ReleaseIn, session: SessionDep, user: AdminUser) -> ReleaseOut:
    release = releases.create_release(
        session=session, version=body.version.strip(), user=user, notes=body.notes
    )
    session.commit()
    return ReleaseOut.model_validate(release)
