"""Sessions, CSRF tokens, security headers and safe redirects.

The session is a signed cookie (Starlette's SessionMiddleware, itsdangerous) holding the
user id, the user's ``session_version`` at login and a CSRF token; nothing else is
trusted from the client. A signed cookie cannot be revoked by itself, so the version is
what ends it: logout and a password change bump the user's version (app/services/
users.py ``end_sessions``), and app/web/deps.py refuses a session whose version is no
longer the user's, a cookie copied before the logout included. Every state-changing
request (POST, PUT, PATCH, DELETE) must echo the token: forms in a hidden ``csrf_token``
field, htmx and API clients in the ``X-CSRF-Token`` header. The one exception is
``POST /api/login``: its client has no token yet, and FastAPI's strict content type
check only accepts a JSON body there, which a cross-site form cannot send.

In production every answer also carries ``Strict-Transport-Security`` (browsers ignore it
over plain HTTP, so it cannot lock out a site that has no HTTPS yet), and the session
cookie is ``Secure`` unless QUILT_COOKIE_SECURE=false (app/settings.py).
"""

from __future__ import annotations

import hmac
import secrets
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

SESSION_USER = "uid"
SESSION_VERSION = "sv"
SESSION_CSRF = "csrf"
CSRF_HEADER = "X-CSRF-Token"
CSRF_FIELD = "csrf_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
# Routes that take no CSRF token at all (see the module docstring).
CSRF_EXEMPT = frozenset({"/api/login"})
# Routes that anonymous visitors may POST to (with the token of their anonymous session).
ANONYMOUS_POSTS = frozenset({"/login"})

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)
# Media and release files are data, never documents: even an uploaded .html file opened
# directly cannot run script in our origin.
SANDBOX_POLICY = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"


class NotAuthenticatedError(Exception):
    """No logged-in, active user: HTML gets a redirect to /login, the API a 401."""


class ForbiddenError(Exception):
    """Logged in, but the role does not allow this."""


class CsrfError(Exception):
    """A state-changing request without the session's CSRF token."""


def csrf_token(request: Request) -> str:
    """The session's CSRF token, created on first use."""
    token = request.session.get(SESSION_CSRF)
    if not isinstance(token, str) or not token:
        token = secrets.token_urlsafe(32)
        request.session[SESSION_CSRF] = token
    return token


def start_session(request: Request, user_id: int, session_version: int) -> str:
    """Log ``user_id`` in with a fresh session (and so a fresh CSRF token), valid while the
    user's session version stays ``session_version``."""
    request.session.clear()
    request.session[SESSION_USER] = user_id
    request.session[SESSION_VERSION] = session_version
    return csrf_token(request)


def client_address(request: Request) -> str | None:
    """The address that login limits count against: the socket's peer, never a header
    (see app/services/logins.py for proxies)."""
    return request.client.host if request.client else None


async def csrf_protect(request: Request) -> None:
    """App-wide dependency: refuse state-changing requests without the CSRF token.

    An anonymous request to a protected route is refused as unauthenticated first, so
    that clients are sent to log in rather than told about tokens.
    """
    if request.method in SAFE_METHODS:
        return
    path = request.url.path
    if path in CSRF_EXEMPT:
        return
    if path not in ANONYMOUS_POSTS and not request.session.get(SESSION_USER):
        raise NotAuthenticatedError
    sent = request.headers.get(CSRF_HEADER)
    if not sent and not path.startswith("/api/"):
        content_type = request.headers.get("content-type", "")
        if content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
            form = await request.form()  # cached on the request: the route reads it again
            value = form.get(CSRF_FIELD)
            sent = value if isinstance(value, str) else None
    expected = request.session.get(SESSION_CSRF)
    if not (
        isinstance(expected, str)
        and expected
        and sent
        and hmac.compare_digest(sent.encode(), expected.encode())
    ):
        raise CsrfError


def safe_next(target: str | None, default: str = "/review") -> str:
    """A local path to go to after login; anything that could leave the site is dropped."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return default
    return target


def is_api(path: str) -> bool:
    return path == "/api" or path.startswith("/api/")


# Sent in production only: a year, subdomains included. No ``preload``: that is a
# decision for whoever owns the domain, and hard to undo.
HSTS_HEADER = (b"strict-transport-security", b"max-age=31536000; includeSubDomains")

SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
)


class SecurityHeadersMiddleware:
    """Adds the security headers to every response (a pure ASGI middleware: it does not
    buffer bodies, so file downloads and range requests stream as before); ``hsts`` adds
    Strict-Transport-Security too."""

    def __init__(self, app: ASGIApp, *, hsts: bool = False) -> None:
        self.app = app
        self.headers = SECURITY_HEADERS + ((HSTS_HEADER,) if hsts else ())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("path", "")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in self.headers:
                    if name not in present:
                        headers.append((name, value))
                if b"content-security-policy" not in present:
                    headers.append((b"content-security-policy", CONTENT_SECURITY_POLICY.encode()))
                if b"cache-control" not in present and not path.startswith("/static/"):
                    # Pages and API answers carry reviewers' data: keep them out of caches.
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)
