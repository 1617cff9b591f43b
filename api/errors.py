"""Every API error is JSON: {"error": code, "message": text, ...}.

Engine errors keep their own code and context (a ValidationError adds its field `errors`);
FastAPI's own errors (bad body, unknown route) are reshaped to the same form.

A browser asking for a page (not under /api/, `Accept: text/html`) gets an HTML page instead: the
GOV.UK-styled 404, 403 (or other) error page, and the sign-in page when it is not signed in.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine.errors import CarepathError, ConflictError, NotFoundError, StateError, ValidationError


class ApiError(Exception):
    """An error the API raises itself (sign-in, permission, CSRF)."""

    def __init__(self, status: int, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


def unauthenticated(message: str = "sign in first") -> ApiError:
    return ApiError(401, "unauthenticated", message)


def forbidden(message: str = "you do not have permission to do that") -> ApiError:
    return ApiError(403, "forbidden", message)


def _status(exc: CarepathError) -> int:
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, (ConflictError, StateError)):
        return 409
    if isinstance(exc, ValidationError):
        return 422
    return 400


def wants_html(request: Request) -> bool:
    """A browser asking for a page: not the JSON API, and HTML accepted."""
    path = request.url.path
    return not (path == "/api" or path.startswith("/api/")) and "text/html" in request.headers.get("accept", "")


HTML_TITLES = {403: "You do not have permission to see this page", 404: "Page not found",
               405: "Sorry, there is a problem", 409: "Sorry, there is a problem"}
HTML_MESSAGES = {404: "There is no page at this address. If you typed it, check it is correct; if you pasted "
                      "it, check you copied all of it.",
                 405: "This page cannot be used that way. Go back and try again."}


def html_error(request: Request, status: int, message: str) -> Response:
    from . import page_kit  # page_kit imports this module

    if status == 401:
        return page_kit.redirect("/sign-in")
    try:
        user = page_kit.session_user(request)
    except Exception:  # noqa: BLE001 - an error page must not fail on a broken session
        user = None
    return page_kit.error_page(request, user, status, HTML_TITLES.get(status, "Sorry, there is a problem"),
                               HTML_MESSAGES.get(status, message))


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, exc: ApiError) -> Response:
        if wants_html(request):
            return await run_in_threadpool(html_error, request, exc.status, exc.message)
        headers = {"WWW-Authenticate": "Cookie"} if exc.status == 401 else None
        return JSONResponse({"error": exc.code, "message": exc.message, **exc.extra}, status_code=exc.status,
                            headers=headers)

    @app.exception_handler(CarepathError)
    async def _engine_error(_request: Request, exc: CarepathError) -> JSONResponse:
        body = exc.to_dict()
        if isinstance(exc, ValidationError):
            body.setdefault("errors", exc.errors)
        return JSONResponse(body, status_code=_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": "/".join(str(p) for p in e.get("loc", ()) if p != "body") or None,
                   "message": e.get("msg", "invalid")} for e in exc.errors()]
        return JSONResponse({"error": "invalid", "message": "the request is not valid", "errors": errors},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_html(request):
            return await run_in_threadpool(html_error, request, exc.status_code, str(exc.detail))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
