"""Robust input (issue 15 item 5, docs/security.md "Input"): what every request is checked for before a
route sees it, so that crafted input is a 4xx and never a server error on SQLite or PostgreSQL.

* **Ids** are whole numbers from 1 to 2^63 − 1 (the databases' BIGINT): `Id` is the type of every integer a
  route takes (path, query, body); a path id outside it is a 404 (api/errors.py: no page can be at that
  address), a query or body value a 422. `to_id` is the same rule for ids read from a form by hand.
  tests/test_robust_input.py walks the route table and fails on a route with an unbounded integer.
* **`InputGuard`**, run by the app's one pure ASGI middleware (api/http_layer.py) before any route:
  - the body's size is checked against its route kind's limit (`limit_for`): Content-Length first, then
    the bytes counted as they are received, answering 413 as soon as the limit is passed — never reading
    the rest;
  - JSON is parsed strictly: `NaN`, `Infinity`, `-Infinity` and numbers too large for a float are refused
    (422), as is JSON that is not valid;
  - text may not hold NUL or other control characters — C0, DEL and C1, U+0000–U+001F and U+007F–U+009F
    (PostgreSQL cannot store NUL in text; the others have no place in case records, can forge log lines or
    headers, and C1's CSI drives terminals), nor lone surrogates (they cannot be
    encoded for either database): in the address (path and query) none at all — a path is a 404, a query
    a 422 naming the parameter; in a JSON or form body tab, CR and LF are allowed (notes have lines), the
    rest are a 422 naming the field. A page's form gets a GOV.UK error page with an error summary.
"""

from __future__ import annotations

import json
import math
import re
from typing import Annotated, Any, Callable
from urllib.parse import parse_qsl

from annotated_types import Ge, Le
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import compile_path
from starlette.types import Message, Receive, Scope

MAX_ID = 2**63 - 1  # the largest BIGINT (SQLite INTEGER, PostgreSQL bigint)
Id = Annotated[int, Ge(1), Le(MAX_ID)]
"""The type of every integer id a route takes: 1 to 2^63 − 1. Out of range: 404 in a path, 422 elsewhere."""
Revision = Annotated[int, Ge(0), Le(MAX_ID)]  # a record's revision or a version counter (tasks start at 0)
PageNo = Annotated[int, Ge(1), Le(100_000)]  # a page of a long list


def is_whole(text: str) -> bool:
    """`text` is a whole number a database column can hold: ASCII digits, at most 19 of them. (`str.isdigit`
    is also true of "²", which `int` refuses, and of 30 digits.)"""
    return text.isascii() and text.isdigit() and len(text) <= 19


def whole(text: str | None, lo: int = 0, hi: int = MAX_ID) -> int | None:
    """`text` as a whole number from `lo` to `hi`, else None."""
    text = (text or "").strip()
    if not is_whole(text):
        return None
    n = int(text)
    return n if lo <= n <= hi else None


def to_id(text: str | None) -> int | None:
    """`text` as an id (1 to 2^63 − 1), else None."""
    return whole(text, 1)


# ---------------------------------------------------------------------- limits
KIB, MIB = 1024, 1024 * 1024
SIGN_IN_LIMIT = 16 * KIB  # signing in (anyone may send it): a username and a password of at most 1,024
SIGN_IN_PATHS = frozenset({"/api/session", "/sign-in"})
FORM_LIMIT = 256 * KIB  # a page's form (api/page_kit.MAX_BODY)
JSON_LIMIT = 1 * MIB  # the JSON API (a task's draft is at most 100,000 characters)
DIAGRAM_LIMIT = 8 * MIB  # diagrams sent as JSON or uploaded (each file at most 5 MB: engine/xmlsafe.py)
LIMIT_ATTR = "__carepath_body_limit__"


def body_limit(limit: int) -> Callable[[Any], Any]:
    """Mark a route's endpoint as taking bodies up to `limit` bytes (put it under the router's decorator)."""

    def mark(fn: Any) -> Any:
        setattr(fn, LIMIT_ATTR, limit)
        return fn

    return mark


ADDRESS_BAD = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
BODY_BAD = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
CONTROL = ("must not contain control characters (such as NUL) or unpaired surrogates; "
           "remove them and try again")


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors or []


def _label(field: str) -> str:
    name = field.rsplit("/", 1)[-1] if field else ""
    return (name.replace("_", " ").replace("-", " ").strip().capitalize() or "The request") if name else "The request"


def _bad_text(field: str) -> Refused:
    return Refused(422, "invalid", f"{field or 'the request'} {CONTROL}",
                   [{"field": field or None, "message": f"{_label(field)} {CONTROL}"}])


def _refuse_constant(name: str) -> Any:
    raise Refused(422, "invalid", f"{name} is not a number JSON allows: send a finite number or null",
                  [{"field": None, "message": f"{name} is not allowed in JSON"}])


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Refused(422, "invalid", f"the number {text[:40]} is too large",
                      [{"field": None, "message": "A number is too large"}])
    return value


def strict_json(body: bytes) -> Any:
    """`body` parsed as JSON with nothing Python's parser accepts beyond the standard (NaN, Infinity)."""
    try:
        return json.loads(body, parse_constant=_refuse_constant, parse_float=_finite)
    except Refused:
        raise
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, bad UTF-8, a 5,000-digit integer, [[[[...
        raise Refused(422, "invalid", "the request is not valid JSON",
                      [{"field": None, "message": f"JSON decode error: {str(exc)[:120]}"}]) from None


def check_json_text(value: Any) -> None:
    """Refuse (422, naming the field) a string or key anywhere in `value` holding a control character."""
    todo: list[tuple[str, Any]] = [("", value)]
    while todo:
        path, v = todo.pop()
        if isinstance(v, str):
            if BODY_BAD.search(v):
                raise _bad_text(path)
        elif isinstance(v, dict):
            for k, item in v.items():
                sub = f"{path}/{k}" if path else str(k)
                if BODY_BAD.search(k) or ADDRESS_BAD.search(k):
                    raise _bad_text(path)
                todo.append((sub, item))
        elif isinstance(v, list):
            todo.extend((f"{path}/{i}" if path else str(i), item) for i, item in enumerate(v))


def check_form_text(body: bytes) -> None:
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True):
        if ADDRESS_BAD.search(name):
            raise _bad_text("")
        if BODY_BAD.search(value):
            raise _bad_text(name)


def check_address(scope: Scope) -> None:
    if ADDRESS_BAD.search(scope.get("path") or ""):
        raise Refused(404, "not_found", "Not Found")
    query = scope.get("query_string") or b""
    if not query:
        return
    for name, value in parse_qsl(query.decode("latin-1"), keep_blank_values=True):
        if ADDRESS_BAD.search(name):
            raise _bad_text("")
        if ADDRESS_BAD.search(value):
            raise _bad_text(name)


def _media_type(scope: Scope) -> str:
    for k, v in scope.get("headers") or ():
        if k == b"content-type":
            return v.decode("latin-1").split(";", 1)[0].strip().lower()
    return ""


def _is_json(media: str) -> bool:
    return media == "application/json" or (media.startswith("application/") and media.endswith("+json"))


# ---------------------------------------------------------------------- the middleware
class InputGuard:
    """See the module's docstring: `checked` and `refusal`, run by the app's one middleware (api/http_layer.py).
    `routes_of` is the FastAPI application (for its routes' limits)."""

    def __init__(self, routes_of: Any = None) -> None:
        self.routes_of = routes_of  # the FastAPI app whose routes carry `body_limit` marks
        self._marked: list[tuple[Any, frozenset[str], int]] | None = None

    # -- limits
    def _marks(self) -> list[tuple[Any, frozenset[str], int]]:
        if self._marked is None:
            marked = []
            for route, path in leaf_routes(self.routes_of) if self.routes_of is not None else ():
                limit = getattr(getattr(route, "endpoint", None), LIMIT_ATTR, None)
                if limit is not None:
                    marked.append((compile_path(path)[0], frozenset(route.methods or ()), limit))
            self._marked = marked
        return self._marked

    def limit_for(self, scope: Scope, media: str) -> int:
        path, method = scope.get("path") or "", scope.get("method") or ""
        if path in SIGN_IN_PATHS:
            return SIGN_IN_LIMIT
        for regex, methods, limit in self._marks():
            if method in methods and regex.match(path):
                return limit
        return JSON_LIMIT if _is_json(media) else FORM_LIMIT

    # -- the request
    async def checked(self, scope: Scope, receive: Receive) -> Receive:
        """Check the request's address and body: the `receive` to pass on (the body read and replayed), or
        `Refused`. Run by the app's middleware (api/http_layer.py) before any route."""
        check_address(scope)
        headers = dict(scope.get("headers") or ())
        length, chunked = headers.get(b"content-length"), b"chunked" in headers.get(b"transfer-encoding", b"")
        if length is None and not chunked:
            return receive  # no body
        media = _media_type(scope)
        limit = self.limit_for(scope, media)
        if length is not None and (not length.isdigit() or int(length) > limit):
            raise _too_large(limit)
        body, disconnected = await _read(receive, limit)
        if _is_json(media) and body:
            check_json_text(strict_json(body))
        elif media == "application/x-www-form-urlencoded":
            check_form_text(body)
        return _replay(body, disconnected, receive)

    async def refusal(self, scope: Scope, refused: Refused) -> Response:
        from .errors import wants_html

        request = Request(scope)
        if wants_html(request):
            return await run_in_threadpool(refusal_page, request, refused)
        body: dict[str, Any] = {"error": refused.code, "message": refused.message}
        if refused.errors:
            body["errors"] = refused.errors
        headers = {"Connection": "close"} if refused.status == 413 else None
        return JSONResponse(body, status_code=refused.status, headers=headers)


def _too_large(limit: int) -> Refused:
    size = f"{limit // MIB} MB" if limit >= MIB else f"{limit // KIB} KB"
    return Refused(413, "too_large", f"The request is larger than this address accepts ({size}).")


async def _read(receive: Receive, limit: int) -> tuple[bytes, bool]:
    """The body, counted as it arrives: Refused (413) as soon as it passes `limit`, the rest never read."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return b"".join(chunks), True
        chunk = message.get("body", b"")
        total += len(chunk)
        if total > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), False


def _replay(body: bytes, disconnected: bool, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            if disconnected:
                return {"type": "http.disconnect"}
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


# The label a person reads beside a page's field, for the refusal page: InputGuard answers before the route
# and its template, so the page would otherwise name the field by its parameter ("Q must not ..."). A name
# not listed gets a readable phrase (page_label).
PAGE_LABELS: dict[str, str] = {
    "q": "Name, date of birth, NHS number or postcode",  # Find a person (/people)
    "name": "Full name",  # a new contact (/intake)
    "nhs_number": "NHS number",
    "postcode": "Postcode",
    "text": "Note",  # a case note (/cases/{id}/notes)
    "reference": "Case reference",  # home: "Open a case record"
    "display_name": "Full name",  # a new user (/admin/users/new)
    "username": "Username",
    "reason": "Reason",
    "note": "Change note",  # a draft (/processes/...)
    "hospital": "Hospital",
}
BODY_CONTROL = ("contains a character that cannot be kept in a case record (a control character, such as NUL, "
                "often pasted in from another program): delete it and send the form again")


def page_label(field: str | None) -> str:
    """The field's label on its page, else its name in words ("given-name" → "Given name"), else a phrase."""
    name = re.split(r"[/.\[]", field or "")[-1].strip("]")
    if name in PAGE_LABELS:
        return PAGE_LABELS[name]
    words = re.sub(r"[_\-]+", " ", name).strip()
    if len(words) < 3 or not re.fullmatch(r"[A-Za-z][A-Za-z0-9 ]*", words):
        return "One of the answers"
    return words.capitalize()


def _page_error(error: dict[str, Any]) -> dict[str, str]:
    if error.get("message", "").endswith(CONTROL):
        return {"text": f"{page_label(error.get('field'))} {BODY_CONTROL}"}
    return {"text": error["message"]}


def refusal_page(request: Request, refused: Refused) -> Response:
    """The refusal as a GOV.UK page: 404 and 413 error pages, a 422 with its error summary."""
    from . import page_kit

    if refused.status == 404:
        from .errors import html_error

        return html_error(request, 404, refused.message)
    try:
        user = page_kit.session_user(request)
    except Exception:  # noqa: BLE001 - a refusal page must not fail on a broken session
        user = None
    if refused.status == 413:
        size = refused.message.rsplit("(", 1)[-1].rstrip(").") if "(" in refused.message else ""
        return page_kit.error_page(
            request, user, 413, "What you sent is too large",
            f"The form you sent is larger than this page accepts{f' ({size})' if size else ''}, so nothing was "
            "saved. If you pasted in a long text, shorten it or add it in parts, then send the form again.")
    items = [_page_error(e) for e in refused.errors] or [{"text": refused.message}]
    return page_kit.render(request, "input_refused.html",
                           {"user": user, "title": "Sorry, there is a problem with what you sent",
                            "message": "Some of what you typed or pasted holds characters that cannot be "
                                       "kept in a case record.", "errors": items}, refused.status)


def leaf_routes(app: Any) -> list[tuple[Any, str]]:
    """Every route of `app` with its full path, inside its included routers too (FastAPI 0.165 keeps each
    included router as one entry of `app.routes`)."""
    out = []
    for route in app.routes:
        if hasattr(route, "effective_route_contexts"):
            out.extend((ctx.original_route, ctx.path) for ctx in route.effective_route_contexts())
        elif hasattr(route, "endpoint"):
            out.append((route, route.path))
    return out
