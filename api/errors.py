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


def _error_body(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": {
        "type": "object", "required": ["error", "message"],
        "properties": {"error": {"type": "string"}, "message": {"type": "string"},
                       "errors": {"type": "array", "items": {"type": "object"}}}}}}}


# The refusals every API route may answer, documented in the OpenAPI description (api/app.py includes every
# router with them; tests/test_robust_input.py runs schemathesis against it).
DOCUMENTED: dict[int | str, dict[str, Any]] = {
    400: _error_body("The request could not be read"),
    401: _error_body("Not signed in"),
    403: _error_body("Not allowed: the role, the case's restriction, or the CSRF token"),
    404: _error_body("Nothing at this address (an unknown id, or an id out of range)"),
    409: _error_body("The record has changed, or is not in a state that allows this"),
    413: _error_body("The request body is larger than this address accepts"),
    422: _error_body("The request is not valid (strict JSON, no control characters, ranges)"),
}


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
        path = request.url.path
        if exc.code == "password_change_required" and not (path == "/api" or path.startswith("/api/")):
            from . import page_kit  # a page's address: to the page that changes the password (api/own_password.py)

            return page_kit.redirect(page_kit.PASSWORD_PAGE)
        if wants_html(request):
            return await run_in_threadpool(html_error, request, exc.status, exc.message)
        headers = {"WWW-Authenticate": "Cookie"} if exc.status == 401 else {}
        if "retry_after" in exc.extra:  # 429 back-off, 503 busy sign-in (api/auth.py): when to try again
            headers["Retry-After"] = str(exc.extra["retry_after"])
        return JSONResponse({"error": exc.code, "message": exc.message, **exc.extra}, status_code=exc.status,
                            headers=headers)

    @app.exception_handler(CarepathError)
    async def _engine_error(_request: Request, exc: CarepathError) -> JSONResponse:
        body = exc.to_dict()
        if isinstance(exc, ValidationError):
            body.setdefault("errors", exc.errors)
        return JSONResponse(body, status_code=_status(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in exc.errors()):
            # an id out of range (api/inputs.Id) or not a number: nothing can be at this address
            if wants_html(request):
                return await run_in_threadpool(html_error, request, 404, "Not Found")
            return JSONResponse({"error": "not_found", "message": "Not Found"}, status_code=404)
        errors = [{"field": "/".join(str(p) for p in e.get("loc", ()) if p != "body") or None,
                   "message": e.get("msg", "invalid")} for e in exc.errors()]
        if wants_html(request):  # a page's address with a bad value: the error summary, not JSON
            from .inputs import Refused, refusal_page

            refused = Refused(422, "invalid", "the request is not valid",
                              [{"field": e["field"], "message": f"{e['field'] or 'The address'}: {e['message']}"}
                               for e in errors])
            return await run_in_threadpool(refusal_page, request, refused)
        return JSONResponse({"error": "invalid", "message": "the request is not valid", "errors": errors},
                            status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if wants_html(request):
            return await run_in_threadpool(html_error, request, exc.status_code, str(exc.detail))
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
