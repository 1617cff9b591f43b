"""Every API error is JSON: {"error": code, "message": text, ...}.

Engine errors keep their own code and context (a ValidationError adds its field `errors`);
FastAPI's own errors (bad body, unknown route) are reshaped to the same form.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
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


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
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
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "message": str(exc.detail)}, status_code=exc.status_code,
                            headers=getattr(exc, "headers", None))
