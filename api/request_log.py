"""The server's logs without personal data (issue 15, item 4; docs/security.md, "Logs").

The app's one middleware (api/http_layer.py) writes, for every HTTP request, one line to the
`carepath.access` logger:

    a3f09c1d2e4b5a67 "GET /api/cases/12/notes" 200 8.4ms

— a request id (sent back as the `X-Request-ID` header and shown on the error page, so a user can quote
it), the method, the path, the status and the time taken. Never the query string (a people search carries
names, NHS numbers, dates of birth and postcodes in it), never a body, a cookie or a header, never the
client's address. The path is rebuilt from the route it matched: ids (`{case_id}`, `{task_id}`, ...) of
at most 9 digits are kept (an NHS number has 10), names of things the council configures (`{process_id}`,
`{action}`, a file's `{name}`...) are kept when they are plain words that do not look like a person's
detail (5 or more digits in a row, a date, a postcode), and every other parameter — a
user's `{username}`, or any parameter a new route brings — is written as `{username}` etc. A path no
route matched keeps only the words some route has and short numbers standing alone; the rest (numbers beside
another number too: a date written 17/02/1941) is `{redacted}`.

An exception no handler turned into a response is logged here as an error — its type, the database
driver's error type and SQLSTATE, the statement's shape (its SQL with any literal replaced by `?`) and
the code lines it passed through — and answered with a 500 naming the request id. Never its message:
a database driver's message can quote the values ("Key (email)=(...) already exists"), and SQLAlchemy's
appends the statement's parameters (the engine is also built with `hide_parameters=True`, engine/db.py).
The exception is not passed on, so the server (uvicorn's "Exception in ASGI application") does not log
it again with its message.

`carepath serve` turns uvicorn's own access log off and writes these lines instead (`log_config()`,
carepath/server.py); for any other way of running the app under uvicorn, `AccessQueryFilter` on the
`uvicorn.access` logger rewrites uvicorn's own line with the same path and no query.
"""

from __future__ import annotations

import contextvars
import copy
import logging
import os
import re
import secrets
import time
import traceback
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response

access_log = logging.getLogger("carepath.access")
error_log = logging.getLogger("carepath.errors")
request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("carepath_request_id", default=None)

# Path parameters by what they hold. Ids: kept when they are at most 9 digits. Names the council configures
# (processes, forms, files, measures, sections, actions): kept when they are one plain word. Any other
# parameter is written as {name}: `username` (a member of staff's name), and whatever a new route brings
# (tests/test_logs_no_personal_data.py lists every route's parameters, so a new one is decided here).
ID_PARAMS = frozenset({"case_id", "instance_id", "doc_id", "task_id", "draft_id", "version", "case_ref",
                       "version_ref", "request_id", "grant_id", "simulation_id"})
NAME_PARAMS = frozenset({"action", "process_id", "name", "measure", "which", "section_id"})
REDACTED_PARAMS = frozenset({"username"})
REDACTED = "{redacted}"
_ID = re.compile(r"[0-9]{1,9}")
_WORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
# a plain word that may still be a person's detail: a run of 5 or more digits (an NHS number, a telephone
# number, a date of birth written 17021941), digits split by separators (a date: 1941-02-17, 17.02.1941) or a
# UK postcode written without its space (ZE29QX); names the council configures are none of these
_PERSONAL = re.compile(r"[0-9]{5}|[0-9]{1,4}[-._][0-9]{1,2}[-._][0-9]{1,4}|"
                       r"(?i:^[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}$)")
_PARAM = re.compile(r"{([A-Za-z_][A-Za-z0-9_]*)(?::[^}]*)?}")
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep


def _param_text(name: str, value: Any) -> str:
    text = str(value)
    if name in ID_PARAMS and _ID.fullmatch(text):
        return text
    if name in NAME_PARAMS and _WORD.fullmatch(text) and not _PERSONAL.search(text):
        return text
    return "{" + name + "}"


def _route_literals(app: Any) -> frozenset[str]:
    """Every literal segment of the app's route paths (`api`, `cases`, `notes`, ...)."""
    paths: list[str] = []
    for route in getattr(app, "routes", []):
        if hasattr(route, "effective_route_contexts"):  # an included router (FastAPI 0.165)
            paths.extend(p for ctx in route.effective_route_contexts()
                         if isinstance(p := getattr(ctx, "path", None), str))
        elif isinstance(getattr(route, "path", None), str):
            paths.append(route.path)
    return frozenset(s for path in paths for s in path.split("/") if s and "{" not in s)


class _Literals:
    """The route words of an app, worked out once per number of top-level routes."""

    def __init__(self) -> None:
        self.key: Any = None
        self.words: frozenset[str] = frozenset()

    def of(self, app: Any) -> frozenset[str]:
        key = (id(app), len(getattr(app, "routes", [])))
        if key != self.key:
            self.words, self.key = _route_literals(app), key
        return self.words


_literals = _Literals()


def loggable_path(scope: dict[str, Any]) -> str:
    """The request's path as the logs show it: rebuilt from the route it matched, ids kept, anything that
    may be personal replaced by its parameter's name; never the query string."""
    route = scope.get("route")
    template = getattr(route, "path", None)
    params = scope.get("path_params")
    if isinstance(template, str) and isinstance(params, dict) and "{" in template:
        return _PARAM.sub(lambda m: _param_text(m.group(1), params.get(m.group(1), "")), template)
    if isinstance(template, str) and template == scope.get("path"):
        return template
    return _unmatched(str(scope.get("path") or "/"), _literals.of(scope.get("app")))[:300]


def _unmatched(path: str, words: frozenset[str]) -> str:
    """A path no route matched: the words some route has, and numbers standing alone (an id); the rest, and
    numbers beside another number (a date written with slashes, 17/02/1941, a telephone number in parts), are
    {redacted}."""
    parts = path.split("/")

    def number(i: int) -> bool:
        return 0 <= i < len(parts) and _ID.fullmatch(parts[i]) is not None

    return "/".join(s if (not s or s in words or (number(i) and not number(i - 1) and not number(i + 1)))
                    else REDACTED for i, s in enumerate(parts))


def redact_target(target: str) -> str:
    """A request target as uvicorn logs it (path?query): its query dropped, and (uvicorn's line does not know
    the route) every segment that is not a word of the app's routes or a short number replaced."""
    return _unmatched(target.split("?", 1)[0], _literals.words)


class AccessQueryFilter(logging.Filter):
    """On `uvicorn.access`: uvicorn's own access line (when it is on) without the query string."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 5 and isinstance(args[2], str):
            record.args = (args[0], args[1], redact_target(args[2]), args[3], args[4])
        return True


def install_uvicorn_filter() -> None:
    logger = logging.getLogger("uvicorn.access")
    if not any(isinstance(f, AccessQueryFilter) for f in logger.filters):
        logger.addFilter(AccessQueryFilter())


# ---------------------------------------------------------------------- errors
_STRING = re.compile(r"'(?:[^']|'')*'")
_NUMBER = re.compile(r"(?<![A-Za-z0-9_$])-?[0-9]+(?:\.[0-9]+)?(?![A-Za-z0-9_])")
_SPACE = re.compile(r"\s+")


def statement_shape(sql: Any) -> str:
    """A SQL statement's text with every literal replaced by ? (bound values are never in it)."""
    text = _NUMBER.sub("?", _STRING.sub("?", str(sql)))
    text = _SPACE.sub(" ", text).strip()
    return text if len(text) <= 300 else text[:300] + "..."


def describe(exc: BaseException) -> str:
    """What went wrong, without a word of any value: the exception's type, for a database error the driver's
    error type, SQLSTATE and the statement's shape; then the code lines it passed through."""
    from sqlalchemy.exc import StatementError

    kind = f"{type(exc).__module__}.{type(exc).__qualname__}"
    parts = [kind]
    if isinstance(exc, StatementError):
        orig = exc.orig
        if orig is not None:
            code = getattr(orig, "sqlstate", None) or getattr(orig, "sqlite_errorname", None)
            parts.append(f"driver error {type(orig).__module__}.{type(orig).__qualname__}"
                         + (f" ({code})" if code else ""))
        if exc.statement:
            parts.append(f"in: {statement_shape(exc.statement)}")
    tb = traceback.extract_tb(exc.__traceback__)
    # carepath's own code lines, and the last line whoever's it is (the libraries' are not the story)
    own = [f for f in tb if f.filename.startswith(_ROOT) and "site-packages" not in f.filename] + tb[-1:]
    frames = [f"  at {f.filename.removeprefix(_ROOT)}:{f.lineno} in {f.name}" for f in own[-12:]]
    return "; ".join(parts) + ("\n" + "\n".join(frames) if frames else "")


async def error_response(scope: dict[str, Any], rid: str) -> Response:
    from .errors import html_error, wants_html

    request = Request(scope)
    text = f"Sorry, there is a problem with the service. Try again later. If you report it, quote {rid}."
    if wants_html(request):
        try:
            return await run_in_threadpool(html_error, request, 500, text)
        except Exception:  # noqa: BLE001 - the error page must not fail in turn
            return PlainTextResponse(text, status_code=500)
    return JSONResponse({"error": "server_error", "message": text, "request_id": rid}, status_code=500)


# ---------------------------------------------------------------------- the middleware's part
# Run for every HTTP request by the app's one middleware (api/http_layer.py), outside everything but the
# security headers: a request id (`request_id`, `X-Request-ID`), the error line and 500 of an exception no
# handler answered (`log_failure`, `error_response`), and the access line (`log_line`).
def new_request_id(scope: dict[str, Any]) -> str:
    if _literals.key is None:  # the route words, for paths no route matched and uvicorn's own line
        _literals.of(scope.get("app"))
    return secrets.token_hex(8)


def log_failure(scope: dict[str, Any], rid: str, exc: BaseException) -> None:
    """The error line of an exception no handler turned into a response: never its message (`describe`)."""
    error_log.error('%s "%s %s" failed: %s', rid, scope.get("method"), loggable_path(scope), describe(exc))


def log_line(scope: dict[str, Any], rid: str, status: int, started: float) -> None:
    """The access line (when `carepath.access` writes INFO: the path is rebuilt only then)."""
    if access_log.isEnabledFor(logging.INFO):
        took = (time.perf_counter() - started) * 1000
        access_log.info('%s "%s %s" %d %.1fms', rid, scope.get("method"), loggable_path(scope), status, took)


# ---------------------------------------------------------------------- `carepath serve`'s logging
def log_config(level: str = "INFO") -> dict[str, Any]:
    """uvicorn's logging set-up with carepath's loggers added at `level`: `carepath.access` to standard
    output (where uvicorn's own access log went), every other `carepath.*` logger to standard error."""
    from uvicorn.config import LOGGING_CONFIG

    config = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["carepath"] = {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    config["handlers"]["carepath_access"] = {"formatter": "carepath", "class": "logging.StreamHandler",
                                             "stream": "ext://sys.stdout"}
    config["handlers"]["carepath"] = {"formatter": "carepath", "class": "logging.StreamHandler",
                                      "stream": "ext://sys.stderr"}
    config["loggers"]["carepath.access"] = {"handlers": ["carepath_access"], "level": level, "propagate": False}
    config["loggers"]["carepath"] = {"handlers": ["carepath"], "level": level, "propagate": False}
    return config
