"""The web application: JSON API under /api, HTML pages everywhere else.

Started with ``uvicorn --factory app.web.main:create_app``: building the app reads the
settings but touches no database, so importing this module is free of side effects.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.middleware.sessions import SessionMiddleware

from app.settings import REPO_ROOT, get_settings
from app.web import errors
from app.web.api import router as api_router
from app.web.security import SecurityHeadersMiddleware, csrf_protect
from app.web.ui import router as ui_router
from app.web.ui import upload_router

SESSION_COOKIE = "quilt_session"
MIB = 1024 * 1024
# Every request body but an upload: forms and JSON with at most a few captions in them.
MAX_BODY_BYTES = 2 * MIB


def create_app() -> FastAPI:
    settings = get_settings()
    app = FastAPI(
        title="Quilt Curator",
        summary="Curation of histopathology image-text pairs with pathologists in the loop.",
        # The schema is served to logged-in users only, at /api/openapi.json (api/meta.py).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(csrf_protect)],
        max_body_size=MAX_BODY_BYTES,
    )
    # The middleware added last is the outermost: the security headers wrap every answer
    # (error pages included), and the session is decoded before any route runs.
    app.add_middleware(
        SessionMiddleware,
        secret_key=settings.secret_key,
        session_cookie=SESSION_COOKIE,
        max_age=settings.session_max_age_s,
        same_site="lax",
        https_only=settings.cookie_secure,
    )
    # HSTS in production only: a developer's http://localhost must keep working.
    app.add_middleware(SecurityHeadersMiddleware, hsts=settings.environment == "production")
    errors.install(app)
    app.mount("/static", StaticFiles(directory=REPO_ROOT / "static"), name="static")
    app.include_router(api_router)
    app.include_router(ui_router)
    app.include_router(
        upload_router,
        include_in_schema=False,
        max_body_size=settings.max_upload_mb * MIB + MIB,  # + multipart overhead
    )
    return app
