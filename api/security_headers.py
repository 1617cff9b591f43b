"""Headers every response carries, added in one place (a pure ASGI middleware, no per-route code to forget).

* `X-Content-Type-Options: nosniff` on every response: a browser never guesses a type other than the one sent
  (a JSON answer or an uploaded file is never run as script or styled as a page).
* `Cache-Control: no-store` on every response that does not set its own caching: the JSON API (personal data
  in almost every answer), every page (page_kit.render sets it already), error pages and redirects. A browser,
  a shared computer's cache or a proxy keeps no copy. The only responses that set their own are the allow-listed
  front-end files (api/static_assets.py: `public, max-age=3600`; no personal data) and the replay page's diagram
  files of a version (`private`, the BPMN of a process, no personal data).

docs/security.md "Response headers"; tests/test_headers_and_refusals.py proves it over the route table.
"""

from __future__ import annotations

from typing import Any

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")


class SecurityHeaders:
    """ASGI middleware: adds `nosniff` to every HTTP response and `no-store` to those without a Cache-Control."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope.get("type") != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Any) -> None:
            if message.get("type") == "http.response.start":
                headers = list(message.get("headers") or [])
                names = {name.lower() for name, _value in headers}
                if NOSNIFF[0] not in names:
                    headers.append(NOSNIFF)
                if NO_STORE[0] not in names:
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
