"""The app's own request layer: one pure ASGI middleware around every route (issue 14 item 4, docs/performance.md
"A cheaper HTTP layer, continued").

For every HTTP request, outermost first — each part is documented where its rules live:

1. **Security headers** (api/security_headers.py): `nosniff` on every response, `no-store` on every one that does
   not set its own caching, the 500s below included.
2. **Request id, access and error lines** (api/request_log.py): an `X-Request-ID` on every response; an exception
   no handler answered is logged without its message and answered 500 naming the id; one access line per request.
3. **Input** (api/inputs.py `InputGuard`): the address and the body checked before any route — size limits while
   reading, strict JSON, no control characters — and refused with a 4xx (a GOV.UK page for a browser).
4. **The page of each case access** (api/access.py): `current_page` and `written` for `log_access`, and the access
   log's backstop for a 403/404 on a case-scoped route that logged nothing (`log_unlogged_refusal`).

These were four middlewares, each wrapping `send` and calling the next; they are one now (one call and one
`send` wrapper a request, not four of each) and do the same in the same order: tests/test_headers_and_refusals.py,
tests/test_request_log*.py, tests/test_logs_no_personal_data.py, tests/test_robust_input.py and
tests/test_pages_input_refused.py prove the behaviour through the app.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from .access import current_page, log_unlogged_refusal, request_page, written
from .inputs import InputGuard, Refused
from .request_log import error_response, install_uvicorn_filter, log_failure, log_line, new_request_id, request_id
from .security_headers import add_security_headers


class HttpLayer:
    """ASGI middleware: the four parts of the module's docstring, in that order. `routes_of` is the FastAPI app
    (its routes' body limits)."""

    def __init__(self, app: Any, routes_of: Any = None) -> None:
        self.app = app
        self.guard = InputGuard(routes_of)
        install_uvicorn_filter()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        rid = new_request_id(scope)
        rid_header = (b"x-request-id", rid.encode())
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                headers = [*message.get("headers", ()), rid_header]
                add_security_headers(headers)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.route(scope, receive, send_with_headers, lambda: status)
        except Exception as exc:  # noqa: BLE001 - logged without its message and answered with a 500
            log_failure(scope, rid, exc)
            if not status:  # else the response has begun: the client sees it cut short
                response = await error_response(scope, rid)
                await response(scope, receive, send_with_headers)
        finally:
            request_id.reset(token)
            log_line(scope, rid, status, started)

    async def route(self, scope: Any, receive: Any, send: Any, status: Callable[[], int]) -> None:
        """Parts 3 and 4: the input guard, then the route with the page of each case access kept for it and the
        access log's backstop after it (`status`: the response's status once it has begun)."""
        try:
            guarded = await self.guard.checked(scope, receive)
        except Refused as refused:
            await (await self.guard.refusal(scope, refused))(scope, receive, send)
            return
        page = current_page.set(request_page(scope))
        rows: list[int] = []
        rows_token = written.set(rows)
        try:
            await self.app(scope, guarded, send)
            await log_unlogged_refusal(scope, status(), rows)
        finally:
            written.reset(rows_token)
            current_page.reset(page)
