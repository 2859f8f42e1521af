"""The JSON API under /api (documented in the OpenAPI schema)."""

from __future__ import annotations

from fastapi import APIRouter

from app.web.api import auth, meta, pairs, releases, videos

router = APIRouter(prefix="/api")
for _module in (auth, pairs, videos, releases, meta):
    router.include_router(_module.router)
