"""Headless Chromium for the tests: Debian's /usr/bin/chromium driven by the Python `playwright` package.

Playwright's own browser download does not work on the build machines, so the tests use the
system browser (`make setup` installs it). Without Chromium or playwright the browser tests
skip with the reason; with CAREPATH_REQUIRE_BROWSER=1 (CI, `.ci/run`) they fail instead.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

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
