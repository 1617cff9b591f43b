"""Headers every response carries, added in one place (the app's one pure ASGI middleware, api/http_layer.py: no
per-route code to forget).

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

NOSNIFF = (b"x-content-type-options", b"nosniff")
NO_STORE = (b"cache-control", b"no-store")


def add_security_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """Append `nosniff`, and `no-store` unless a Cache-Control is set, to a response's raw headers (in place). Run
    on every HTTP response's start by the app's one middleware (api/http_layer.py), its 500s included."""
    names = {name.lower() for name, _value in headers}
    if NOSNIFF[0] not in names:
        headers.append(NOSNIFF)
    if NO_STORE[0] not in names:
        headers.append(NO_STORE)
