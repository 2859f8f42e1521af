"""The JSON API under /api (documented in the OpenAPI schema)."""

from __future__ import annotations

from fastapi import APIRouter

from app.web.api import (
    adjudication,
    auth,
    channels,
    dashboards,
    evaluation,
    history,
    meta,
    operations,
    pairs,
    pipeline,
    releases,
    training,
    videos,
)

router = APIRouter(prefix="/api")
for _module in (
    auth,
    pairs,
    history,
    adjudication,
    dashboards,
    videos,
    channels,
    pipeline,
    releases,
    training,
    evaluation,
    operations,
    meta,
):
    router.include_router(_module.router)
