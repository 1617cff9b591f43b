"""Headless Chromium for the tests: Debian's /usr/bin/chromium driven by the Python `playwright` package.

Playwright's own browser download does not work on the build machines, so the tests use the
system browser (`make setup` installs it). Without Chromium or playwright the browser tests
skip with the reason; with CAREPATH_REQUIRE_BROWSER=1 (CI, `.ci/run`) they fail instead.

Also what the browser tests share: a real uvicorn server in a background thread (`live_server`),
signing in on the sign-in page (`sign_in`) and axe-core's WCAG 2.1 A/AA check (`run_axe`).
"""

from __future__ import annotations

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


@contextmanager
def launch() -> Iterator["object"]:
    """A Playwright Chromium Browser on the system Chromium; closed on exit."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError as exc:
        unavailable(f"the Python package playwright is not installed ({exc}); run `make setup`")
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        unavailable(f"{CHROMIUM} is missing: run `make setup` (as root) or `apt-get install -y chromium`")
    with sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        except Exception as exc:
            unavailable(f"{CHROMIUM} did not start under playwright: {exc}")
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
def live_server(app) -> Iterator[str]:
    """The ASGI app served by uvicorn in a background thread on a free port of 127.0.0.1; yields the base URL.

    Waits up to 10 s for the server to start; on exit asks it to stop and waits up to 10 s for the thread."""
    import uvicorn

    port = free_port()
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

    axe is injected as an inline script: the page's context needs `bypass_csp=True`."""
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa']})")
    violations = result["violations"]
    for v in violations:
        print(f"axe on {name}: {v['id']} ({v['impact']}): {v['help']}")
        for n in v["nodes"]:
            print("   ", n["target"], n.get("failureSummary", "").replace("\n", " "))
    assert violations == [], f"{len(violations)} axe violation(s) on the {name} page (printed above)"
    assert result["passes"], "axe ran no checks"
