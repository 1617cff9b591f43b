"""What the casework tests set up the same way: an engine on the simulated clock with the real handlers, forms
and diagrams; the demo users signed in to the JSON API or the pages; a case someone has worked on; a valid
front door contact; a task completed by its step id; the Tab key walked to a field in the browser; the fake
GOV.UK Notify, started (`notify`) and configured (`configured`) — fixtures a test module takes in with
`notify, configured = casework_helpers.notify, casework_helpers.configured`.

(tests/case_helpers.py reads a case's history; tests/browser.py starts the browser and the live server.)
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.demo_users import create_demo_users, demo_password, demo_username
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import timers as timer_rows
from tests.browser import sign_in
from tests.case_helpers import the_task
from tests.conftest import START
from tests.fake_notify import API_KEY, EMAIL_TEMPLATE, FakeNotify

ROOT = Path(__file__).resolve().parent.parent
SW, TM = demo_username("social_worker"), demo_username("team_manager")


def diagrams(*names: str) -> list[Path]:
    """processes/NAME.bpmn for each name (a name with a suffix, such as screening.dmn, as it is)."""
    return [ROOT / "processes" / (name if "." in name else f"{name}.bpmn") for name in names]


def casework_engine(db_url: str, files: list[Path], *, start=START, forms: FormLibrary | None = None,
                    users: bool = False) -> Iterator[Engine]:
    """For a fixture to `yield from`: the engine with `files` deployed, the clock at `start` (the demo users
    created when `users`); disposed afterwards."""
    engine = Engine(db_url, registry=load_registry("handlers"), forms=forms or FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=start)
    engine.deploy(files)
    if users:
        create_demo_users(engine)
    yield engine
    engine.db.dispose()


@contextmanager
def engine_on_file(tmp_path: Path, files: list[Path], **kw: Any) -> Iterator[Engine]:
    """`casework_engine` on a SQLite file in `tmp_path` (a live server in another thread reads it), for a `with`
    block: `with engine_on_file(tmp_path, files, users=True) as eng:`."""
    made = casework_engine(f"sqlite:///{tmp_path / 'carepath.db'}", files, **kw)
    try:
        yield next(made)
    finally:
        next(made, None)


def with_sam(eng: Engine, password: str) -> Engine:
    """`eng` with Sam Okoro, a social worker in the social work team, who signs in as "sam" with `password`."""
    from api.auth import create_user

    create_user(eng, "sam", password, display_name="Sam Okoro", roles=["social_worker"], teams=["social_work"])
    return eng


@contextmanager
def served(eng: Engine) -> Iterator[tuple[str, Any]]:
    """(base URL, browser): the app on `eng` in a live server, and the browser, for a `with` block."""
    from api.app import create_app
    from tests.browser import launch, live_server

    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        yield base, browser


def served_to_sam(folder: Path, files: list[Path], password: str, make_cases: Any, **kw: Any) -> Iterator[tuple]:
    """For a module's fixture to `yield from`: (engine, base URL, browser, cases) — `casework_engine` on a SQLite
    file in `folder` with Sam (`with_sam`), the cases `make_cases(engine)` makes, then the app served and the
    browser; all closed afterwards."""
    with engine_on_file(folder, files, **kw) as eng:
        cases = make_cases(with_sam(eng, password))
        with served(eng) as (base, browser):
            yield eng, base, browser, cases


# ---------------------------------------------------------------- GOV.UK Notify (the fake)
@pytest.fixture
def notify() -> Iterator[FakeNotify]:
    """The fake GOV.UK Notify, running (carepath is not told about it: letters are filed for printing)."""
    fake = FakeNotify().start()
    yield fake
    fake.stop()


@pytest.fixture
def configured(notify: FakeNotify, monkeypatch) -> FakeNotify:
    """The fake GOV.UK Notify, configured as carepath's Notify (its email template too; a 0.5 s time-out)."""
    monkeypatch.setenv("CAREPATH_NOTIFY_API_KEY", API_KEY)
    monkeypatch.setenv("CAREPATH_NOTIFY_BASE_URL", notify.url)
    monkeypatch.setenv("CAREPATH_NOTIFY_EMAIL_TEMPLATE_ID", EMAIL_TEMPLATE)
    monkeypatch.setenv("CAREPATH_NOTIFY_TIMEOUT", "0.5")
    return notify


# ---------------------------------------------------------------- signed in
def api_client(app, role: str) -> TestClient:
    """The demo user with `role`, signed in to the JSON API (the CSRF header set)."""
    c = TestClient(app)
    r = c.post("/api/session", json={"username": demo_username(role), "password": demo_password(role)})
    assert r.status_code == 200, r.text
    c.headers["X-CSRF-Token"] = r.json()["csrf_token"]
    return c


def page_client(app, role: str) -> tuple[TestClient, str]:
    """The demo user with `role`, signed in on the sign-in page; with the session's CSRF token for forms."""
    c = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', c.get("/sign-in").text).group(1)
    r = c.post("/sign-in", data={"form_token": token, "username": demo_username(role),
                                 "password": demo_password(role)})
    assert r.status_code == 303, r.text
    return c, re.search(r'name="csrf_token" value="([^"]+)"', c.get("/tasks").text).group(1)


def action_token(html: str) -> str:
    """The one-time token of a question page's form (a case action, closing, a referral)."""
    return re.search(r'name="action_token" value="([^"]+)"', html).group(1)


# ---------------------------------------------------------------- cases and tasks
def known_case(eng, person: dict[str, Any], contact_date: str = "2031-02-24") -> int:
    """`person`'s case, which the social worker has worked on (a needs assessment under way)."""
    cid = eng.start("needs_assessment", actor=SW, data={"name": person["name"], "person": person,
                                                        "contact_date": contact_date}).case_id
    eng.update_case_record(cid, {"person": person}, actor=SW, reason="recorded at the contact")
    return cid


def tasks(eng, case_id) -> list[tuple[str, str]]:
    """The case's open tasks as (step id, team)."""
    return [(t["element_id"], t["team"]) for t in eng.list_tasks(case_id=case_id)]


def complete(eng, case_id, element_id, data, actor="worker"):
    """Complete the case's one open task at `element_id` with `data`."""
    return eng.complete_task(the_task(eng, case_id, element_id)["id"], data, actor=actor)


def waiting_timers(eng, instance_id) -> list[tuple[str, datetime]]:
    """The instance's waiting timers (the timers table the scheduler reads) as (step id, due time in UTC), sorted."""
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(timer_rows.c.element_id, timer_rows.c.due_at).where(
            timer_rows.c.instance_id == instance_id)).all()
    return sorted((e, (d if d.tzinfo else d.replace(tzinfo=timezone.utc)).astimezone(timezone.utc)) for e, d in rows)


def contact(**changes) -> dict[str, Any]:
    """A valid front door contact form (Joan Barker, from her GP); `person_*` keys change the person's details,
    `caller_*` the caller's, any other key the form's own."""
    data = {
        "caller": {"name": "Dr Amy Shah", "relationship": "gp_or_social_prescriber", "organisation": "Riverside GP"},
        "reason": "Falls at home and struggling since her husband died",
        "person": {"name": "Joan Barker", "age": 78, "address": "4 Mill Lane, Northby", "area": "north",
                   "lives_alone": True},
        "needs": [],
        "outcomes_unable": [],
        "safeguarding_concern": False,
        "crisis": False,
        "consents_to_referral": True,
        "from_hospital": False,
    }
    for key, value in changes.items():
        if key.startswith("person_"):
            data["person"][key[len("person_"):]] = value
        elif key.startswith("caller_"):
            data["caller"][key[len("caller_"):]] = value
        else:
            data[key] = value
    return data


# ---------------------------------------------------------------- in the browser
def focused(page) -> str:
    """The focused element's id, or else its text."""
    return page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")


def tab_to(page, target: str, limit: int = 80) -> None:
    """Press Tab until the focused element's id (or else its text) is `target`."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if focused(page) == target:
            return
    raise AssertionError(f"{target} was not reached with the Tab key")


def type_and_submit(page, fields: dict[str, str | None], button: str) -> None:
    """Keyboard only, from the focused field: each of `fields` (ids, in the order Tab reaches them) must have the
    focus in turn; select what it holds and type its value (None: leave it as it is), then Tab on. The Tab after
    the last must reach the button named `button`, and Enter presses it."""
    for field, value in fields.items():
        assert focused(page) == field, f"the focus is on {focused(page)!r}, not {field!r}"
        if value is not None:
            page.keyboard.press("Control+A")
            page.keyboard.type(value)
        page.keyboard.press("Tab")
    assert focused(page) == button, f"the focus is on {focused(page)!r}, not the button {button!r}"
    page.keyboard.press("Enter")


def signed_in_page(browser, base: str, username: str, role: str):
    """(context, page): a fresh browser context signed in as `username` (the demo password of `role`); close the
    context when done."""
    ctx = browser.new_context(bypass_csp=True)
    page = ctx.new_page()
    sign_in(page, base, username, demo_password(role))
    return ctx, page


def claimed_task_page(browser, base: str, username: str, role: str, task_id: int):
    """(context, page): signed in as `username`, on the task's page after claiming it (so its form shows)."""
    ctx, page = signed_in_page(browser, base, username, role)
    page.goto(f"{base}/tasks/{task_id}")
    page.get_by_role("button", name="Claim this task").click()
    page.wait_for_url(f"{base}/tasks/{task_id}")
    return ctx, page


def follow_by_keyboard(page, link: str, url: str) -> None:
    """Focus the link named `link`, press Enter and wait for `url` (an action's page from the case record)."""
    page.get_by_role("link", name=link).focus()
    page.keyboard.press("Enter")
    page.wait_for_url(url)
