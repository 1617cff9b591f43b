"""A referral from children's services through the JSON API, the page and the command line (api/transition.py):
who may, bad input named by field with nothing stored, an existing case for the same person, a closed case,
a second referral on the same case, the one-time form token. Real diagrams, simulated clock, SQLite and
PostgreSQL."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from api.app import create_app
from api.demo_users import demo_username
from engine.schema import case_access_log, cases, instances
from tests.casework_helpers import action_token, api_client, casework_engine, diagrams, page_client

PROCESSES = ("transition", "needs_assessment", "carers_assessment", "personal_budget", "financial_assessment",
             "support_plan", "review",
             "direct_payment_review", "safeguarding", "front_door", "reablement", "hospital_discharge",
             "hospital_follow_up")
SW, TM, FD = demo_username("social_worker"), demo_username("team_manager"), demo_username("front_door_advisor")
REFERRAL = {"name": "Helena Brooks", "date_of_birth": "2013-09-14", "address": "Linden House College, Southby",
            "postcode": "SB4 7LH", "ehc_plan": "yes", "likely_needs": "Learning disability and autism",
            "childrens_social_worker": "Amira Khan", "childrens_team": "Children with Disabilities"}


DIAGRAMS = [path for path in diagrams(*PROCESSES) if path.exists()] + diagrams("screening.dmn",
                                                                               "discharge_pathway.dmn")


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, DIAGRAMS, users=True)


@pytest.fixture
def app(eng):
    return create_app(eng, run_timers=False)


def stored(eng) -> tuple[int, int]:
    with eng.db.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(cases)).scalar_one(),
                conn.execute(select(func.count()).select_from(instances)).scalar_one())


# ---------------------------------------------------------------------- JSON API
def test_a_social_worker_refers_and_the_decision_task_goes_to_social_work(eng, app):
    r = api_client(app, "social_worker").post("/api/transitions", json={"data": REFERRAL})
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["process_id"] == "transition" and body["reference"].startswith("CASE-")
    assert [(t["element_id"], t["team"]) for t in body["tasks"]] == [("decide_assessment", "social_work")]
    case = eng.get_case(body["case_id"])
    assert case["title"] == "Helena Brooks" and case["data"]["person"]["date_of_birth"] == "2013-09-14"
    with eng.db.engine.connect() as conn:
        logged = conn.execute(select(case_access_log.c.action, case_access_log.c.user).where(
            case_access_log.c.case_id == body["case_id"])).all()
    assert ("transition_referral", SW) in [tuple(r) for r in logged]


@pytest.mark.parametrize("role", ["front_door_advisor", "team_manager"])
def test_front_door_advisors_and_team_managers_may_refer_too(eng, app, role):
    assert api_client(app, role).post("/api/transitions", json={"data": REFERRAL}).status_code == 201


@pytest.mark.parametrize("role", ["auditor", "occupational_therapist", "reablement_coordinator", "finance_officer"])
def test_other_roles_are_refused_and_nothing_is_stored(eng, app, role):
    before = stored(eng)
    r = api_client(app, role).post("/api/transitions", json={"data": REFERRAL})
    assert r.status_code == 403
    assert "referral" in r.json()["message"]
    assert stored(eng) == before


def test_bad_input_names_every_field_and_stores_nothing(eng, app):
    before = stored(eng)
    r = api_client(app, "social_worker").post("/api/transitions", json={"data": {
        "name": "Helena\u202e Brooks", "date_of_birth": "2013-03-03", "ehc_plan": "perhaps"}})
    assert r.status_code == 422
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert set(fields) == {"name", "date_of_birth", "address", "ehc_plan", "likely_needs", "childrens_social_worker"}
    assert fields["date_of_birth"].startswith("The young person is 18: adults are referred through the front door")
    assert "characters you can see" in fields["name"]
    assert stored(eng) == before


def test_someone_who_already_has_a_case_is_referred_on_that_case(eng, app):
    sw = api_client(app, "social_worker")
    first = sw.post("/api/transitions", json={"data": REFERRAL}).json()
    before = stored(eng)
    again = sw.post("/api/transitions", json={"data": {**REFERRAL, "name": "helena brooks"}})
    assert again.status_code == 409
    assert f"already has a case ({first['reference']}): make the referral on that case" in again.json()["message"]
    assert stored(eng) == before
    # on the case itself: one transition at a time
    twice = sw.post("/api/transitions", json={"data": REFERRAL, "case_id": first["case_id"]})
    assert twice.status_code == 409 and "already has a referral from children's services in progress" in \
        twice.json()["message"]
    assert sw.post("/api/transitions", json={"data": REFERRAL, "case_id": 999999}).status_code == 404
    assert stored(eng) == before


def test_a_referral_on_a_closed_case_is_refused(eng, app):
    cid = eng.create_case("Sam Patel", {"person": {"name": "Sam Patel", "date_of_birth": "2015-01-01"}}, actor=SW)
    eng.close_case(cid, reason="moved_away", details={"council": "Northshire"}, actor=TM)
    r = api_client(app, "social_worker").post("/api/transitions", json={"data": {**REFERRAL, "name": "Sam Patel",
                                                                             "date_of_birth": "2015-01-01"},
                                                                    "case_id": cid})
    assert r.status_code == 409 and "is closed" in r.json()["message"]


# ---------------------------------------------------------------------- the page
def _form(referral: dict, csrf: str, token: str) -> dict:
    d, m, y = referral["date_of_birth"].split("-")[2], referral["date_of_birth"].split("-")[1], \
        referral["date_of_birth"].split("-")[0]
    data = {k: v for k, v in referral.items() if k != "date_of_birth"}
    return {**data, "date_of_birth-day": d.lstrip("0"), "date_of_birth-month": m.lstrip("0"),
            "date_of_birth-year": y, "csrf_token": csrf, "action_token": token}


def test_the_page_shows_errors_in_a_summary_and_a_second_click_starts_nothing(eng, app):
    sw, csrf = page_client(app, "social_worker")
    assert "Record a referral from children's services" in sw.get("/tasks").text
    form = sw.get("/transitions/new")
    assert form.status_code == 200 and "<h1 class=\"govuk-heading-l\">Referral from children's services</h1>" \
        in form.text
    before = stored(eng)
    r = sw.post("/transitions/new", data={"csrf_token": csrf, "action_token": action_token(form.text),
                                          "date_of_birth-day": "31", "date_of_birth-month": "2",
                                          "date_of_birth-year": "2014"})
    assert r.status_code == 422 and "govuk-error-summary" in r.text
    assert 'href="#date_of_birth-day"' in r.text and "The date of birth must be a real date" in r.text
    assert "Enter the young person&#39;s full name" in r.text and 'href="#ehc_plan"' in r.text
    assert r.text.count("Error:", 0, r.text.index("</title>")) == 1
    assert stored(eng) == before
    good = _form(REFERRAL, csrf, action_token(r.text))
    first = sw.post("/transitions/new", data=good)
    assert first.status_code == 303
    assert re.fullmatch(r"/cases/\d+\?saved=transition", first.headers["location"])
    again = sw.post("/transitions/new", data=good)  # the same form sent twice
    assert again.status_code == 303 and stored(eng) == (before[0] + 1, before[1] + 1)
    case_page = sw.get(first.headers["location"]).text
    assert "Referral from children&#39;s services recorded" in case_page
    assert ('<p class="govuk-body" id="childrens-services">Children&#39;s services go on supporting the young person '
            'until adult support is in place (referred 3 March 2031; 18 on 14 September 2031). Children&#39;s social '
            'worker: Amira Khan.</p>') in case_page
    assert sw.post("/transitions/new", data={**good, "csrf_token": "x"}).status_code == 403


def test_an_existing_case_is_offered_on_the_page_and_the_case_record_offers_the_referral(eng, app):
    sw, csrf = page_client(app, "social_worker")
    cid = eng.create_case("Sam Patel", {"person": {"name": "Sam Patel", "date_of_birth": "2015-01-01",
                                                   "address": "4 Mill Lane"}}, actor=SW)
    record = sw.get(f"/cases/{cid}").text
    assert f'href="/transitions/new?case={cid}"' in record  # 16 on the engine's clock
    form = sw.get("/transitions/new").text
    sam = {**REFERRAL, "name": "Sam Patel", "date_of_birth": "2015-01-01"}
    r = sw.post("/transitions/new", data=_form(sam, csrf, action_token(form)))
    assert r.status_code == 422 and f'href="/transitions/new?case={cid}"' in r.text
    on_case = sw.get(f"/transitions/new?case={cid}").text
    assert f'name="case" value="{cid}"' in on_case
    r = sw.post("/transitions/new", data={**_form(sam, csrf, action_token(on_case)), "case": str(cid)})
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{cid}?saved=transition"
    assert [i["process_id"] for i in eng.get_case(cid)["instances"]] == ["transition"]
    adult = eng.create_case("Peter Jones", {"person": {"name": "Peter Jones", "date_of_birth": "1948-05-01"}},
                            actor=SW)
    assert "/transitions/new?case=" not in sw.get(f"/cases/{adult}").text


def test_roles_on_the_page(eng, app):
    ot, _ = page_client(app, "occupational_therapist")
    assert ot.get("/transitions/new").status_code == 403
    auditor, _ = page_client(app, "auditor")
    refused = auditor.get("/transitions/new")
    assert refused.status_code == 403 and "may read case records but not take referrals" in refused.text
    assert TestClient(app, follow_redirects=False).get("/transitions/new").status_code == 303  # sign in first


def test_the_case_record_says_where_childrens_services_stand():
    from api.transition import childrens_services_text

    ended = {"status": "ended", "ended_on": "2031-09-14", "adult_worker": "Kelly Morgan",
             "social_worker": {"name": "Amira Khan"}}
    assert childrens_services_text({"data": {"childrens_services": ended}}) == (
        "Children's services ended on 14 September 2031: adult support is in place, with Kelly Morgan as their "
        "adult social care worker. Children's social worker: Amira Khan.")
    declined = {"status": "ended_without_adult_support", "ended_on": "2031-04-10", "reason": "not_eligible"}
    assert childrens_services_text({"data": {"childrens_services": declined}}) == (
        "Children's services ended on 10 April 2031 without adult support (not eligible for adult care and support).")
    assert childrens_services_text({"data": {}}) == ""


# ---------------------------------------------------------------------- the command line
def test_the_command_line_refers_with_the_same_checks(eng, db_url, capsys):
    import json

    from carepath.cli import main

    assert main(["transition", "--db", db_url, "--as", SW, "--data", json.dumps(REFERRAL)]) == 0
    assert "Decide whether to assess [social_work]" in capsys.readouterr().out
    before = stored(eng)
    assert main(["transition", "--db", db_url, "--as", demo_username("auditor"), "--data",
                 json.dumps({**REFERRAL, "name": "Sam Patel"})]) != 0
    assert "refused" in capsys.readouterr().err
    assert main(["transition", "--db", db_url, "--as", SW, "--data",
                 json.dumps({**REFERRAL, "name": "Sam Patel", "date_of_birth": "2020-01-01"})]) != 0
    assert "date_of_birth: The young person is 11" in capsys.readouterr().err
    assert stored(eng) == before
