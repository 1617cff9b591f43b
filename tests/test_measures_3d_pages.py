"""ASCOF 3D by age band and the carers' parts on the measures page (api/measures.py): the figures, the table behind
each chart, the cases behind a part, in a real browser with axe-core and the keyboard.

The population is bench/county.py's cases driven through the real diagrams on the simulated clock (from 3 March
2031): long-term support in the community for a direct payment (Peter, born May 1950), two managed budgets
(Peter again on two cases, a carer present on one) and a managed account after reablement (Joan, no date of
birth recorded); the carer Susan (born September 1976) with a carer's plan paid by a direct payment from 3 March.
On 30 June 2031 (the second quarter's last day) Peter is 81 by DHSC's proxy (29,645 days from 1 May 1950 /
365.25 = 81.2) and Susan 54 (20,025 days from 1 September 1976 / 365.25 = 54.8)."""

from __future__ import annotations

import html
import re

import pytest

from api.app import create_app
from api.demo_users import create_demo_users, demo_password, demo_username
from bench import county as driven
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from tests.browser import launch, live_server, run_axe, sign_in
from tests.casework_helpers import api_client

Q2 = "quarter=2031-Q2"


@pytest.fixture
def site(db_url):
    eng = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(driven.ROOT / "forms"))
    eng.init(simulated_start=driven.START)
    eng.deploy(driven.FILES)
    c = driven.drive(eng)
    create_demo_users(eng)
    yield eng, c, create_app(eng, run_timers=False)
    eng.db.dispose()


def text(page: str) -> str:
    page = re.sub(r'<span class="govuk-visually-hidden">[^<]*</span>', "", page)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def card(page: str, key: str) -> str:
    return text(page.split(f'id="measure-{key}"')[1].split('<div class="govuk-summary-card"')[0])


def test_the_age_bands_and_the_carers_parts_on_the_page_with_their_tables(site):
    eng, c, app = site
    page = api_client(app, "performance").get(f"/measures?{Q2}").text
    # clients on 30 June: 4 in community support (1 direct payment, 3 managed budgets); 3 of them are Peter, 81
    assert "100% — 4 of 4" in card(page, "ascof_3d1") and "25% — 1 of 4" in card(page, "ascof_3d2")
    over = card(page, "ascof_3d1_65_over")
    assert "ASCOF 3D(1a): self-directed support, aged 65 and over" in over and "100% — 3 of 3" in over
    assert "Direct payment 1 33.3%" in over and "Council-managed personal budget 2 66.7%" in over
    assert "33.3% — 1 of 3" in card(page, "ascof_3d2_65_over")
    young = card(page, "ascof_3d1_18_64")
    assert "Nobody aged 18 to 64 had long-term support in the community on the period's last day." in young
    # the carer: a direct payment in the quarter, aged 54 on its last day
    carers = card(page, "ascof_3d1b")
    assert "ASCOF 3D(1b): carers receiving self-directed support" in carers and "100% — 1 of 1" in carers
    assert "ASCOF 3D(1b): carers receiving self-directed support: the table behind the chart" in carers
    assert "2031-06-01 to 2031-06-30 100% 1 1" in carers  # the chart's table, month by month
    assert "100% — 1 of 1" in card(page, "ascof_3d2b_18_64")
    assert "No carer aged 65 and over had support direct to them in the period." in card(page, "ascof_3d1b_65_over")
    assert ('href="/measures/ascof_3d1b/cases?from=2031-04-01&amp;to=2031-06-30&amp;part=direct_payment"'
            in page)
    # the same figures as JSON
    body = api_client(app, "performance").get("/api/measures?from=2031-04-01&to=2031-06-30").json()
    got = {x["key"]: (x["numerator"], x["denominator"]) for x in body["measures"]}
    assert got["ascof_3d1_65_over"] == (3, 3) and got["ascof_3d1_18_64"] == (0, 0)
    assert got["ascof_3d2b"] == (1, 1) and got["ascof_3d2b_65_over"] == (0, 0)


def test_the_cases_behind_the_carers_figure(site):
    eng, c, app = site
    page = text(api_client(app, "team_manager").get(
        "/measures/ascof_3d1b_18_64/cases?from=2031-04-01&to=2031-06-30&part=direct_payment").text)
    assert eng.get_case(c["carer"])["reference"] in page
    assert "carer's support from 2031-03-03: Direct Payment; aged 54 on 2031-06-30" in page
    assert eng.get_case(c["direct_payment"])["reference"] not in page


def test_the_new_figures_in_the_browser_are_accessible_and_keyboard_usable(site):
    eng, c, app = site
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, demo_username("performance"), demo_password("performance"), then="/home")
        page.goto(f"{base}/measures?{Q2}")
        for title in ("ASCOF 3D(1a): self-directed support, aged 65 and over",
                      "ASCOF 3D(1b): carers receiving self-directed support"):
            assert page.get_by_role("table", name=re.compile(re.escape(title) + ": the table behind the chart")
                                    ).count() == 1
            assert page.get_by_role("img", name=re.compile(re.escape(title))).count() >= 1
        run_axe(page, "measures with the 3D age bands and carers")
        link = page.get_by_role("link", name=re.compile(
            r"^Direct payment\s*: the cases \(ASCOF 3D\(1b\): carers receiving self-directed support\)"))
        link.focus()
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*/measures/ascof_3d1b/cases\?.*part=direct_payment"))
        assert page.locator("tbody tr th").all_inner_texts() == [eng.get_case(c["carer"])["reference"]]
        run_axe(page, "the carers behind 3D(1b)")
