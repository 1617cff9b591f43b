"""Headless Chromium for the tests: Debian's /usr/bin/chromium driven by the Python `playwright` package.

Playwright's own browser download does not work on the build machines, so the tests use the
system browser (`make setup` installs it). Without Chromium or playwright the browser tests
skip with the reason; with CAREPATH_REQUIRE_BROWSER=1 (CI, `.ci/run`) they fail instead.

Also what the browser tests share: a real uvicorn server in a background thread (`live_server`),
signing in on the sign-in page (`sign_in`) and axe-core's WCAG 2.1 A/AA check (`run_axe`).
"""

from __future__ import annotations

import atexit
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
AXE = ROOT / "node_modules" / "axe-core" / "axe.min.js"  # locked in package-lock.json (`npm ci`)
CHROMIUM = Path(os.environ.get("CAREPATH_CHROMIUM", "/usr/bin/chromium"))
REQUIRE_BROWSER = os.environ.get("CAREPATH_REQUIRE_BROWSER") == "1"

# Without the background-networking flags Chromium keeps trying to reach Google's hosts,
# which this machine's closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def unavailable(reason: str) -> None:
    """Skip the test, or fail it when CAREPATH_REQUIRE_BROWSER=1."""
    if REQUIRE_BROWSER:
        pytest.fail(f"{reason} (CAREPATH_REQUIRE_BROWSER=1)", pytrace=False)
    pytest.skip(reason)


class _Shared:
    """This process's one Playwright and Chromium, started by the first launch() and stopped by shutdown()."""

    playwright = None
    browser = None


def _shared_browser():
    """The process's Chromium, started (or restarted, if it went away) on first use."""
    if _Shared.browser is not None and _Shared.browser.is_connected():
        return _Shared.browser
    shutdown()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"the Python package playwright is not installed ({exc}); run `make setup`")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"{CHROMIUM} is missing: run `make setup` (as root) or `apt-get install -y chromium`")
    pw = sync_playwright().start()
    try:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
    except Exception as exc:
        pw.stop()
        unavailable(f"{CHROMIUM} did not start under playwright: {exc}")
    _Shared.playwright, _Shared.browser = pw, browser
    atexit.register(shutdown)  # outside pytest (bench/), at the latest when the process ends
    return browser


def shutdown() -> None:
    """Close this process's Chromium and Playwright, if started (tests/conftest.py, at the session's end)."""
    browser, pw = _Shared.browser, _Shared.playwright
    _Shared.browser = _Shared.playwright = None
    try:
        if browser is not None and browser.is_connected():
            browser.close()
    finally:
        if pw is not None:
            pw.stop()


class Browser:
    """What launch() yields: the shared Chromium as one test sees it.

    new_context() (and new_page(), which opens its own context) give fresh, isolated browser
    contexts — no cookies, storage or cache from other tests — and every context still open is
    closed when the launch() block ends. Anything else is the Playwright Browser's."""

    def __init__(self, browser) -> None:
        self._browser = browser
        self._contexts: list = []

    def new_context(self, **options):
        context = self._browser.new_context(**options)
        self._contexts.append(context)
        return context

    def new_page(self, **options):
        page = self.new_context(**options).new_page()
        return page

    @property
    def contexts(self) -> list:
        return [c for c in self._contexts if c in self._browser.contexts]

    def close(self) -> None:
        """Close this test's contexts (the shared Chromium stays up for the next test)."""
        contexts, self._contexts = self._contexts, []
        for context in contexts:
            try:
                context.close()
            except Exception:  # already closed by the test, or the browser went away
                pass

    def __getattr__(self, name):
        return getattr(self._browser, name)


@contextmanager
def launch() -> Iterator[Browser]:
    """Headless Chromium for a test: fresh contexts on this process's shared Chromium, closed on exit.

    Starting Playwright and Chromium takes about a second, so each test process (xdist worker)
    starts them once, on the first launch(), and closes them at the end of the session
    (tests/conftest.py pytest_sessionfinish); a browser that crashed is started again."""
    browser = Browser(_shared_browser())
    try:
        yield browser
    finally:
        browser.close()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def live_server(app, port: int | None = None) -> Iterator[str]:
    """The ASGI app served by uvicorn in a background thread on a free port of 127.0.0.1 (or `port`); yields the
    base URL.

    Waits up to 10 s for the server to start; on exit asks it to stop and waits up to 10 s for the thread."""
    import uvicorn

    port = port or free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not srv.started:
        assert time.monotonic() < deadline, "uvicorn did not start within 10 s"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
        assert not thread.is_alive(), "uvicorn did not stop"


def sign_in(page, base: str, username: str, password: str, *, then: str | None = "/tasks",
            click: bool = False) -> None:
    """Sign in on the sign-in page: Enter in the password field (or, with `click`, the Sign in button).

    Then waits for the page at `then` (a path; "/tasks" by default); with `then=None`, for whatever
    page the form leads to (the caller checks where it landed)."""
    page.goto(f"{base}/sign-in")
    page.fill("#username", username)
    page.fill("#password", password)

    def submit() -> None:
        if click:
            page.get_by_role("button", name="Sign in").click()
        else:
            page.keyboard.press("Enter")

    if then is None:
        with page.expect_navigation():
            submit()
    else:
        submit()
        page.wait_for_url(f"{base}{then}")


def run_axe(page, name: str) -> None:
    """axe-core on the page as it is now (WCAG 2.1 A/AA); fails with the violations printed.

    axe is injected as an inline script: the page's context needs `bypass_csp=True` (once per document: a page
    checked again before it navigates keeps it). Every rule runs on every element; only the violations are
    listed in full (`resultTypes`: axe gives a single example node for the other result types instead of
    building a selector for every node, which is most of its time on a long page)."""
    if not page.evaluate("() => typeof window.axe === 'object' && typeof window.axe.run === 'function'"):
        page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'],"
                           " resultTypes: ['violations']})")
    violations = result["violations"]
    for v in violations:
        print(f"axe on {name}: {v['id']} ({v['impact']}): {v['help']}")
        for n in v["nodes"]:
            print("   ", n["target"], n.get("failureSummary", "").replace("\n", " "))
    assert violations == [], f"{len(violations)} axe violation(s) on the {name} page (printed above)"
    assert result["passes"], "axe ran no checks"
