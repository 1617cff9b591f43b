"""The Client Level Data return prepared in the background (api/cld_returns.py, docs/cld-returns-page.md): the page
never waits for the return — it says the return is being prepared, with a link to check again (a script follows it
when scripts run) — and shows the report once it is ready; the return is kept in the database (prepared_returns),
so a second server process on the same database shows the same report and downloads the very rows it showed;
one preparation per return whoever asks; a failed or abandoned preparation is taken again; the newest few are
kept. A browser journey with and without scripts (axe, keyboard). The clock stands at 3 March 2031."""

from __future__ import annotations

import html as html_text
import re
import threading
import time
from datetime import date, timedelta

import pytest
from sqlalchemy import select, update

from api import cld_returns
from api.app import create_app
from api.demo_users import demo_password, demo_username
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import prepared_returns
from handlers import cld
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import ROOT, page_client
from tests.test_case_actions import app, eng, planned_case  # noqa: F401  (fixtures)
from tests.test_cld_returns_page import QUARTER, logged, ready, summary_cells

PERIOD = (date(2031, 1, 1), date(2031, 3, 31))
WAITING = "Your return is being prepared"


class Held:
    """cld_return made to wait until the test lets it go (as a county year's takes tens of seconds), counting calls."""

    def __init__(self, monkeypatch) -> None:
        self.calls: list[tuple] = []
        self.go = threading.Event()
        self.fail = False
        real = cld.cld_return

        def held(*a, **k):
            self.calls.append(a[1:3])
            assert self.go.wait(60), "the test never let the return go"
            if self.fail:
                raise RuntimeError("CASE-000001 Peter Clarke")  # a message naming someone: never shown or logged
            return real(*a, **k)

        monkeypatch.setattr(cld, "cld_return", held)


def wait_until(engine, status: str) -> None:
    """Poll the database until the period's return has `status` (the background thread's work)."""
    for _ in range(1200):
        with engine.db.engine.connect() as conn:
            if conn.execute(select(prepared_returns.c.status)).scalars().all() == [status]:
                return
        time.sleep(0.05)
    raise AssertionError(f"the return never became {status}")


def check_link(html: str) -> str:
    return html_text.unescape(re.search(r'id="check-again" href="([^"]+)"', html).group(1))


def download_link(html: str) -> str:
    return html_text.unescape(re.search(r'id="download" href="([^"]+)"', html).group(1))


def second_app(engine):
    """Another server process on the same database: its own engine (connections, no shared memory) and app."""
    other = Engine(engine.db.url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    return other, create_app(other, run_timers=False)


# ---------------------------------------------------------------------- the waiting page
def test_the_page_says_the_return_is_being_prepared_then_shows_it(eng, app, monkeypatch):  # noqa: F811
    planned_case(eng)
    held = Held(monkeypatch)
    client, _ = page_client(app, "performance")
    r = client.get(f"/returns/cld?period={QUARTER}")
    assert r.status_code == 200 and WAITING in r.text and "rows-by-event-type" not in r.text
    assert "Client Level Data return, 1 January 2031 to 31 March 2031" in r.text
    link = check_link(r.text)
    assert re.fullmatch(rf"/returns/cld\?period={QUARTER}&version=[0-9a-f]{{16}}", link)
    status = html_text.unescape(re.search(r'data-status="([^"]+)"', r.text).group(1))
    assert client.get(status).json() == {"status": "preparing"}
    # asking again, by the link or afresh, starts no second preparation
    assert WAITING in client.get(link).text and WAITING in client.get(f"/returns/cld?period={QUARTER}").text
    assert held.calls == [PERIOD]
    # a download of the version being prepared goes to its waiting page, downloading nothing
    version = link.rsplit("=", 1)[1]
    r = client.get(f"/returns/cld.csv?from=2031-01-01&to=2031-03-31&version={version}")
    assert r.status_code == 303 and r.headers["location"].endswith(f"&version={version}")
    assert logged(eng) == []
    held.go.set()
    wait_until(eng, "ready")
    assert client.get(status).json() == {"status": "ready"}
    html = client.get(link).text
    assert summary_cells(html) == {"Assessment": "1", "Service": "1", "All rows": "2"}
    assert "Prepared from the cases as they were at 09:00 UTC on 3 March 2031." in html
    assert download_link(html).endswith(f"&version={version}") and held.calls == [PERIOD]


def test_the_status_says_unknown_for_a_version_not_kept_and_refuses_other_roles(eng, app):  # noqa: F811
    client, _ = page_client(app, "performance")
    assert client.get("/returns/cld/status?from=2031-01-01&to=2031-03-31&version=0000000000000000").json() == \
        {"status": "unknown"}
    assert client.get("/returns/cld/status?from=bad&to=2031-03-31&version=zz").json() == {"status": "unknown"}
    worker, _ = page_client(app, "social_worker")
    r = worker.get("/returns/cld/status?from=2031-01-01&to=2031-03-31&version=0000000000000000")
    assert r.status_code == 403


def test_a_failed_preparation_says_so_without_its_message_and_can_be_tried_again(eng, app, monkeypatch,  # noqa: F811
                                                                                  caplog):
    planned_case(eng)
    held = Held(monkeypatch)
    held.fail = True
    client, _ = page_client(app, "performance")
    link = check_link(client.get(f"/returns/cld?period={QUARTER}").text)
    held.go.set()
    wait_until(eng, "failed")
    r = client.get(link)
    assert r.status_code == 200 and "Your return could not be prepared" in r.text
    assert "Peter" not in r.text and "Peter" not in caplog.text and "RuntimeError" in caplog.text
    assert len(held.calls) == 1  # looking again does not start it again by itself
    again = html_text.unescape(re.search(r'id="try-again" href="([^"]+)"', r.text).group(1))
    held.fail = False
    html = ready(client, again).text
    assert summary_cells(html) == {"Assessment": "1", "Service": "1", "All rows": "2"} and len(held.calls) == 2


def test_a_preparation_abandoned_for_the_stale_time_is_taken_again(eng, app, monkeypatch):  # noqa: F811
    """A process that stopped mid-way leaves its row `preparing`: taken again at STALE, not a moment before."""
    planned_case(eng)
    version = cld_returns.version(eng)
    assert cld_returns.claim(eng, *PERIOD, version)  # this "process" then stops: nothing prepares it
    assert not cld_returns.claim(eng, *PERIOD, version)
    with eng.db.transaction() as conn:
        started = eng.now(conn) - cld_returns.STALE + timedelta(seconds=1)
        conn.execute(update(prepared_returns).values(started_at=started))
    assert not cld_returns.claim(eng, *PERIOD, version)
    with eng.db.transaction() as conn:
        conn.execute(update(prepared_returns).values(started_at=started - timedelta(seconds=1)))
    assert cld_returns.preparing_now(eng, *PERIOD) is None
    client, _ = page_client(app, "performance")
    html = ready(client, f"/returns/cld?period={QUARTER}").text  # the page takes it and prepares it
    assert summary_cells(html) == {"Assessment": "1", "Service": "1", "All rows": "2"}


# ---------------------------------------------------------------------- kept in the database, for every process
def test_a_second_server_process_shows_the_prepared_report_and_downloads_its_rows(eng, app,  # noqa: F811
                                                                                    monkeypatch):
    planned_case(eng)
    held = Held(monkeypatch)
    other_engine, other_app = second_app(eng)
    try:
        first, _ = page_client(app, "performance")
        second, _ = page_client(other_app, "team_manager")
        assert WAITING in first.get(f"/returns/cld?period={QUARTER}").text
        r = second.get(f"/returns/cld?period={QUARTER}")  # the other process finds it being prepared
        assert WAITING in r.text and held.calls == [PERIOD]
        held.go.set()
        html = ready(second, check_link(r.text)).text
        assert summary_cells(html) == {"Assessment": "1", "Service": "1", "All rows": "2"}
        link = download_link(html)
        mine = first.get(link)
        theirs = second.get(link)
        assert theirs.status_code == 200 and theirs.content == mine.content and held.calls == [PERIOD]
        assert len(cld_returns.read_csv(theirs.content)) == 1 + 2
        assert len(logged(eng)) == 2
    finally:
        other_engine.db.dispose()


def test_the_stored_return_is_the_made_one_file_and_report_alike(eng):  # noqa: F811
    planned_case(eng)
    made = cld_returns.produce(eng, *PERIOD)
    kept = cld_returns.unpack(cld_returns.pack(made))
    assert cld_returns.csv_bytes(kept) == cld_returns.csv_bytes(made)
    assert (kept.start, kept.end, kept.problems, kept.withheld, kept.error, kept.findings) == \
        (made.start, made.end, made.problems, made.withheld, made.error, made.findings)

    class Reader:
        username, roles = "performance", frozenset({"performance"})

        def has(self, *roles):
            return bool(self.roles & set(roles))

    assert cld_returns.report(eng, kept, Reader()) == cld_returns.report(eng, made, Reader())


def test_the_newest_returns_are_kept_and_older_ones_deleted(eng):  # noqa: F811
    planned_case(eng)
    periods = [(date(2031, 1, d), date(2031, 3, 1)) for d in range(1, cld_returns.KEEP + 3)]
    for n, period in enumerate(periods):
        assert cld_returns.claim(eng, *period, "v")
        cld_returns.prepare(eng, *period, "v")
        eng.advance_clock(timedelta(minutes=1))
        with eng.db.engine.connect() as conn:
            kept = conn.execute(select(prepared_returns.c.period_start)).scalars().all()
        assert len(kept) == min(n + 1, cld_returns.KEEP)
    assert sorted(kept) == [p[0].isoformat() for p in periods[-cld_returns.KEEP:]]


# ---------------------------------------------------------------------- in the browser
@pytest.mark.parametrize("scripts", [True, False], ids=["scripts", "no-scripts"])
def test_the_waiting_page_in_the_browser_axe_clean_keyboard_then_the_report(eng, app, monkeypatch,  # noqa: F811
                                                                            scripts):
    planned_case(eng)
    held = Held(monkeypatch)
    with live_server(app) as base, launch() as browser:
        ctx = browser.new_context(bypass_csp=True, java_script_enabled=scripts)
        page = ctx.new_page()
        sign_in(page, base, demo_username("performance"), demo_password("performance"), then=None)
        page.goto(f"{base}/returns/cld")
        page.get_by_label("January to March 2031 (quarter 4 of 2030 to 2031) – in progress").focus()
        page.keyboard.press("Space")
        page.get_by_role("button", name="Continue").focus()
        page.keyboard.press("Enter")
        page.wait_for_selector("h1:has-text('Your return is being prepared')")
        assert page.title().startswith("Your return is being prepared")
        assert page.get_by_role("status").inner_text() == "The return is not ready yet."
        if scripts:  # axe runs as a script: checked where scripts run (the page is the same markup without them)
            run_axe(page, "the return being prepared")
        if scripts:  # the page checks by itself and opens the report once it is ready
            held.go.set()
            page.wait_for_selector("#report-heading", timeout=60_000)
        else:  # the link, by keyboard: still being prepared, then ready
            page.get_by_role("link", name="Check if your return is ready").focus()
            page.keyboard.press("Enter")
            page.wait_for_load_state()
            assert "Your return is being prepared" in page.inner_text("h1")
            held.go.set()
            wait_until(eng, "ready")
            page.get_by_role("link", name="Check if your return is ready").focus()
            page.keyboard.press("Enter")
            page.wait_for_selector("#report-heading")
        assert "1 January 2031 to 31 March 2031" in page.inner_text("h1")
        assert "Assessment" in page.inner_text("#rows-by-event-type")
        if scripts:
            run_axe(page, "the prepared return's report")
        ctx.close()
    assert held.calls == [PERIOD]
