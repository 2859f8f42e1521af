"""HTML pages (Jinja2 + htmx). Kept out of the OpenAPI schema: the API is /api."""

from __future__ import annotations

from fastapi import APIRouter

from app.web.ui import (
    adjudication,
    admin,
    auth,
    channels,
    dashboards,
    evaluation,
    grid,
    media,
    review,
    training,
    workers,
)

router = APIRouter(include_in_schema=False)
for _module in (
    auth,
    grid,
    review,
    media,
    admin,
    channels,
    workers,
    training,
    adjudication,
    dashboards,
    evaluation,
):
    router.include_router(_module.router)

# Included by create_app with the upload body limit (see app/web/ui/admin.py).
upload_router = admin.upload_router
