"""Exception handlers: calm error pages for people, JSON for the API, never a traceback."""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, RedirectResponse, Response

from app.services.ingest import IngestError
from app.services.releases import ReleaseError
from app.services.review import ConflictError, PairNotFoundError, ReviewError
from app.services.users import UserError
from app.web.security import (
    CONTENT_SECURITY_POLICY,
    SECURITY_HEADERS,
    CsrfError,
    ForbiddenError,
    NotAuthenticatedError,
    is_api,
)
from app.web.templating import is_htmx, templates

_logger = logging.getLogger(__name__)

TITLES = {
    400: "Bad request",
    401: "Please log in",
    403: "Not allowed",
    404: "Not found",
    405: "Not allowed",
    409: "Changed by someone else",
    413: "Too large",
    422: "Invalid input",
    500: "Something went wrong",
}


def as_sentence(exc: Exception) -> str:
    """A service error as a page shows it: "a rejection needs a reason" reads "A rejection
    needs a reason."."""
    return str(exc).capitalize() + "."


def error_response(request: Request, status: int, message: str, **extra: object) -> Response:
    if is_api(request.url.path):
        return JSONResponse({"detail": message, **extra}, status_code=status)
    response = templates.TemplateResponse(
        request,
        "errors/error.html",
        {"status": status, "title": TITLES.get(status, "Error"), "message": message},
        status_code=status,
    )
    if is_htmx(request):
        # htmx does not swap error responses; let the page show a short notice instead.
        response.headers["HX-Reswap"] = "none"
    return response


async def _not_authenticated(request: Request, _exc: Exception) -> Response:
    if is_api(request.url.path):
        return JSONResponse({"detail": "not authenticated"}, status_code=401)
    target = request.url.path
    if request.url.query:
        target += "?" + request.url.query
    login = "/login" if request.method != "GET" else f"/login?next={quote(target, safe='/')}"
    if is_htmx(request):
        return Response(status_code=401, headers={"HX-Redirect": "/login"})
    return RedirectResponse(login, status_code=303)


async def _forbidden(request: Request, _exc: Exception) -> Response:
    return error_response(request, 403, "Your account may not do this; ask an administrator.")


async def _csrf(request: Request, _exc: Exception) -> Response:
    return error_response(
        request,
        403,
        "The form had expired or was not sent by this site. Reload the page and try again.",
    )


async def _http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else TITLES.get(status, "Error")
    if status == 404 and not is_api(request.url.path):
        detail = "There is nothing at this address."
    response = error_response(request, status, detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def _validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    if is_api(request.url.path):
        return JSONResponse({"detail": jsonable_encoder(exc.errors())}, status_code=422)
    fields = ", ".join(str(e["loc"][-1]) for e in exc.errors() if e.get("loc"))
    return error_response(request, 422, f"Some fields are missing or invalid: {fields}.")


async def _domain_invalid(request: Request, exc: Exception) -> Response:
    return error_response(request, 422, str(exc))


async def _conflict(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ConflictError)
    return error_response(request, 409, str(exc), current_version=exc.current_version)


async def _not_found(request: Request, exc: Exception) -> Response:
    return error_response(request, 404, str(exc))


async def _server_error(request: Request, exc: Exception) -> Response:
    _logger.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    response = error_response(
        request, 500, "The server could not finish this request. It was logged."
    )
    # This handler runs outside the middleware stack: add the headers here.
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    response.headers["content-security-policy"] = CONTENT_SECURITY_POLICY
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(NotAuthenticatedError, _not_authenticated)
    app.add_exception_handler(ForbiddenError, _forbidden)
    app.add_exception_handler(CsrfError, _csrf)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(ConflictError, _conflict)
    app.add_exception_handler(PairNotFoundError, _not_found)
    for invalid in (ReviewError, IngestError, UserError, ReleaseError):
        app.add_exception_handler(invalid, _domain_invalid)
    app.add_exception_handler(Exception, _server_error)
