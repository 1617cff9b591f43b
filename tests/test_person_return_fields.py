"""The person's details the Client Level Data return needs, asked where they were not (issue 12): the GP
practice's ODS code and the postcode on the contact form (format checked, one spelling kept), the date of death
kept on the person when a case is closed because they died (not in the future, not before the date of birth),
the carer's hours of caring a week on the carer's assessment (0 to 168). Forms, processes, the case record's
pages, and a browser journey (axe, keyboard). The page and the return's columns: docs/casework.md."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.replay import replay_case
from tests.browser import launch, live_server, run_axe
from tests.casework_helpers import (
    ROOT,
    TM,
    action_token,
    api_client,
    casework_engine,
    claimed_task_page,
    complete,
    contact,
    known_case,
    page_client,
    signed_in_page,
)
from tests.test_process_assessment_to_review import PETER, carer_assessment

LIB = FormLibrary.from_folder(ROOT / "forms")
GP_MESSAGE = "GP practice code must be one letter then five numbers, like A81001"
POSTCODE_MESSAGE = "Postcode must be a real UK postcode, like NB7 1AB"
PERSON = {**PETER, "date_of_birth": "1948-05-01", "gp_practice_code": "A81001", "postcode": "NS2 4BB"}


def errors_of(form: str, data: dict) -> list[dict]:
    try:
        LIB.validate(form, data)
    except ValidationError as exc:
        return exc.errors
    return []


# ---------------------------------------------------------------------- the forms
@pytest.mark.parametrize("code", ["A81001", "a81001", " Y12345 ", "Z00000"])
def test_a_gp_practice_code_of_one_letter_and_five_digits_is_accepted(code):
    assert errors_of("contact", contact(person_gp_practice_code=code)) == []


@pytest.mark.parametrize("code", ["81001", "A8100", "A810011", "AB1234", "81001A", "A81 001", "A8100O", ""])
def test_any_other_gp_practice_code_is_refused_naming_the_format(code):
    assert errors_of("contact", contact(person_gp_practice_code=code)) == [
        {"field": "person/gp_practice_code", "message": GP_MESSAGE}]


@pytest.mark.parametrize("postcode", ["NB7 1AB", "nb71ab", "SW1A 1AA", "M1 1AE", "B33 8TH", "  cr2 6xh "])
def test_a_uk_postcode_is_accepted_in_any_case_and_spacing(postcode):
    assert errors_of("contact", contact(person_postcode=postcode)) == []


@pytest.mark.parametrize("postcode", ["NB7", "not a postcode", "1AB NB7", "NB7 1A", "NB7 1ABC", "N"])
def test_a_postcode_in_another_format_is_refused(postcode):
    assert errors_of("contact", contact(person_postcode=postcode)) == [
        {"field": "person/postcode", "message": POSTCODE_MESSAGE}]


@pytest.mark.parametrize("hours", [0, 1, 35, 167, 168])
def test_hours_caring_a_week_from_0_to_168_are_accepted(hours):
    assert errors_of("carers_assessment", {**carer_assessment(), "hours_caring_per_week": hours}) == []


@pytest.mark.parametrize("hours, message", [
    (169, "Hours caring a week must be 168 or fewer (a week has 168 hours)"),
    (1000, "Hours caring a week must be 168 or fewer (a week has 168 hours)"),
    (-1, "Hours caring a week must be 0 or more"),
    (35.5, "Hours caring a week must be a whole number, like 35"),
    ("35", "Hours caring a week must be a whole number, like 35"),
])
def test_hours_caring_a_week_outside_0_to_168_or_not_whole_are_refused(hours, message):
    assert errors_of("carers_assessment", {**carer_assessment(), "hours_caring_per_week": hours}) == [
        {"field": "hours_caring_per_week", "message": message}]


def test_hours_caring_a_week_are_optional_and_asked_beside_how_much_care():
    assert errors_of("carers_assessment", carer_assessment()) == []
    caring = next(s for s in LIB.sections("carers_assessment") if s["id"] == "caring")
    at = caring["fields"].index("cares_for_how_long")
    assert caring["fields"][at + 1] == "hours_caring_per_week"


def test_a_form_whose_own_messages_are_not_texts_is_refused(tmp_path):
    (tmp_path / "bad.schema.json").write_text(
        '{"type": "object", "properties": {"a": {"type": "string", "x-messages": {"pattern": 3}}}}')
    with pytest.raises(Exception, match="x-messages must be an object of JSON Schema keyword to message text"):
        FormLibrary.from_folder(tmp_path)


# ---------------------------------------------------------------------- the processes
@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, [ROOT / "processes"], users=True)


@pytest.fixture
def app(eng):
    return create_app(eng, run_timers=False)


def test_the_contact_keeps_the_gp_practice_and_postcode_on_the_case_record_in_one_spelling(eng):
    cid = eng.start("front_door", actor=demo("front_door_advisor")).case_id
    complete(eng, cid, "record_contact", contact(person_gp_practice_code=" a81001 ", person_postcode="nb71ab",
                                                 person_date_of_birth="1946-02-11"),
             actor=demo("front_door_advisor"))
    person = eng.get_case(cid)["data"]["person"]
    assert (person["gp_practice_code"], person["postcode"]) == ("A81001", "NB7 1AB")
    assert replay_case(eng, cid).ok


def test_a_contact_with_a_wrong_gp_practice_code_is_refused_and_nothing_is_kept(eng):
    cid = eng.start("front_door", actor=demo("front_door_advisor")).case_id
    before = len(eng.history(cid))
    with pytest.raises(ValidationError) as err:
        complete(eng, cid, "record_contact", contact(person_gp_practice_code="A8100"))
    assert err.value.errors == [{"field": "person/gp_practice_code", "message": GP_MESSAGE}]
    assert len(eng.history(cid)) == before and "person" not in eng.get_case(cid)["data"]


def test_closing_the_case_because_the_person_died_keeps_the_date_of_death_on_the_person(eng, app):
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    tm = api_client(app, "team_manager")
    r = tm.post(f"/api/cases/{cid}/close", json={"reason": "died", "details": {"date_of_death": "2031-03-02"}})
    assert r.status_code == 200, r.text
    case = eng.get_case(cid)
    assert case["data"]["person"] == {**PERSON, "date_of_death": "2031-03-02"}
    assert case["data"]["case_closed"]["details"] == {"date_of_death": "2031-03-02"}
    kinds = [e["type"] for e in eng.history(cid)]
    assert kinds.index("case.record_updated", kinds.index("instance.started")) < kinds.index("case.closed")
    assert replay_case(eng, cid).ok


def test_ending_one_process_because_the_person_died_keeps_the_date_too(eng, app):
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    [iid] = [i["id"] for i in eng.get_case(cid)["instances"]]
    tm = api_client(app, "team_manager")
    r = tm.post(f"/api/cases/{cid}/close", json={"reason": "died", "instance_id": iid,
                                                 "details": {"date_of_death": "2031-03-03"}})
    assert r.status_code == 200, r.text
    assert eng.get_case(cid)["data"]["person"]["date_of_death"] == "2031-03-03"


@pytest.mark.parametrize("day, message", [
    ("1948-04-30", "The date of death must be on or after the date of birth (1 May 1948)"),
    ("2031-03-04", "The date of death must be today or in the past"),  # the clock is at 3 March 2031
    ("2031-02-30", "The date of death must be a real date"),
])
def test_a_date_of_death_before_birth_or_in_the_future_is_refused_and_nothing_is_kept(eng, app, day, message):
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    before = len(eng.history(cid))
    tm = api_client(app, "team_manager")
    r = tm.post(f"/api/cases/{cid}/close", json={"reason": "died", "details": {"date_of_death": day}})
    assert r.status_code == 422
    assert {"field": "date_of_death", "message": message} in r.json()["errors"]
    assert len(eng.history(cid)) == before and eng.get_case(cid)["data"]["person"] == PERSON


def test_the_command_line_keeps_the_date_of_death_too(eng, db_url, capsys):
    from carepath.cli import main

    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    assert main(["close", "--db", db_url, str(cid), "--reason", "died", "--details", '{"date_of_death": "1948-01-01"}',
                 "--as", TM]) != 0
    assert "on or after the date of birth" in capsys.readouterr().err
    assert main(["close", "--db", db_url, str(cid), "--reason", "died", "--details", '{"date_of_death": "2031-03-01"}',
                 "--as", TM]) == 0
    assert eng.get_case(cid)["data"]["person"]["date_of_death"] == "2031-03-01"


def test_the_date_of_birth_itself_is_a_possible_date_of_death(eng, app):
    cid = known_case(eng, {**PERSON, "date_of_birth": "2031-03-01"}, contact_date="2031-03-03")
    tm = api_client(app, "team_manager")
    r = tm.post(f"/api/cases/{cid}/close", json={"reason": "died", "details": {"date_of_death": "2031-03-01"}})
    assert r.status_code == 200, r.text


def demo(role: str) -> str:
    from api.demo_users import demo_username

    return demo_username(role)


# ---------------------------------------------------------------------- the case record's pages
def test_the_record_shows_the_gp_practice_and_corrects_it_only_in_the_right_format(eng, app):
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    sw = api_client(app, "social_worker")
    page, _ = page_client(app, "social_worker")
    html = page.get(f"/cases/{cid}").text
    assert re.search(r"GP practice code\s*</dt>\s*<dd[^>]*>\s*A81001", html)
    assert "Date of death" not in html  # asked when the case is closed, shown once known
    r = sw.post(f"/api/cases/{cid}/details", json={"changes": {"gp_practice_code": "A8100"},
                                                   "expected": {"gp_practice_code": "A81001"}, "reason": "typo"})
    assert r.status_code == 422 and r.json()["errors"] == [{"field": "changes/gp_practice_code",
                                                           "message": GP_MESSAGE}]
    r = sw.post(f"/api/cases/{cid}/details", json={"changes": {"gp_practice_code": " b12345",
                                                               "postcode": "ns24bb"},
                                                   "expected": {"gp_practice_code": "A81001", "postcode": "NS2 4BB"},
                                                   "reason": "moved practice"})
    assert r.status_code == 200, r.text
    person = eng.get_case(cid)["data"]["person"]
    assert (person["gp_practice_code"], person["postcode"]) == ("B12345", "NS2 4BB")


def test_a_corrected_date_of_death_may_not_be_before_the_date_of_birth(eng, app):
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    tm = api_client(app, "team_manager")
    assert tm.post(f"/api/cases/{cid}/close", json={"reason": "died",
                                                    "details": {"date_of_death": "2031-03-02"}}).status_code == 200
    r = tm.post(f"/api/cases/{cid}/details", json={"changes": {"date_of_death": "1948-04-01"},
                                                   "expected": {"date_of_death": "2031-03-02"}, "reason": "typo"})
    assert r.status_code == 422
    assert r.json()["errors"] == [{"field": "changes/date_of_death",
                                   "message": "The date of death must be on or after the date of birth (1948-05-01)"}]
    r = tm.post(f"/api/cases/{cid}/details", json={"changes": {"date_of_birth": "2031-03-03"},
                                                   "expected": {"date_of_birth": "1948-05-01"}, "reason": "typo"})
    assert r.status_code == 422 and "on or before the date of death (2031-03-02)" in r.json()["errors"][0]["message"]
    r = tm.post(f"/api/cases/{cid}/details", json={"changes": {"date_of_death": "2031-03-01"},
                                                   "expected": {"date_of_death": "2031-03-02"}, "reason": "the GP's"})
    assert r.status_code == 200 and eng.get_case(cid)["data"]["person"]["date_of_death"] == "2031-03-01"


def _revision(client, url: str) -> str:
    return re.search(r'name="revision" value="(\d+)"', client.get(url).text).group(1)


def test_the_carers_assessment_page_says_what_is_wrong_with_the_hours(eng, app):
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    sw, csrf = page_client(app, "social_worker")
    form = sw.get(f"/cases/{cid}/actions/carers_assessment").text
    assert sw.post(f"/cases/{cid}/actions/carers_assessment", data={
        "csrf_token": csrf, "action_token": action_token(form), "carer_name": "Susan Clarke",
        "relationship": "daughter"}).status_code == 303
    [task] = [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "assess_carer"]
    assert sw.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf}).status_code == 303
    url = f"/tasks/{task['id']}/sections/caring"
    for typed, message in (("169", "Hours caring a week must be 168 or fewer (a week has 168 hours)"),
                           ("-1", "Hours caring a week must be 0 or more"),
                           ("ten", "Hours caring a week must be a number")):
        r = sw.post(url, data={"csrf_token": csrf, "revision": _revision(sw, url), "action": "continue",
                               "hours_caring_per_week": typed})
        assert r.status_code == 400, typed
        summary = re.search(r'govuk-error-summary.*?</ul>', r.text, re.S).group(0)
        assert message in summary and 'href="#f-hours_caring_per_week"' in summary, (typed, summary)
    r = sw.post(url, data={"csrf_token": csrf, "revision": _revision(sw, url), "action": "continue",
                           "hours_caring_per_week": "168"})
    assert r.status_code == 303
    assert eng.get_task(task["id"])["draft"]["hours_caring_per_week"] == 168
    check = sw.get(f"/tasks/{task['id']}/check-answers").text  # "Check your answers" shows it
    assert re.search(r"Hours caring a week\s*</dt>\s*<dd[^>]*>\s*168\s*<", check), check[:2000]


def test_a_manager_closes_the_case_after_a_death_and_the_record_shows_it_in_the_browser(eng, app):
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    with live_server(app) as base, launch() as browser:
        ctx, page = signed_in_page(browser, base, TM, "team_manager")
        page.goto(f"{base}/cases/{cid}/close")
        page.get_by_label("The person has died").check()
        page.get_by_label("Day").fill("30")
        page.get_by_label("Month").fill("4")
        page.get_by_label("Year").fill("1948")
        page.get_by_label("Year").press("Tab")
        while page.evaluate("() => document.activeElement.tagName") != "BUTTON":
            page.keyboard.press("Tab")
        page.keyboard.press("Enter")  # the button, by keyboard
        page.wait_for_selector(".govuk-error-summary")
        assert "on or after the date of birth (1 May 1948)" in page.inner_text(".govuk-error-summary")
        run_axe(page, "close the case with a date of death before birth")
        page.get_by_label("Year").fill("2031")
        page.get_by_label("Month").fill("3")
        page.get_by_label("Day").fill("2")
        page.get_by_role("button", name="Close the case").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(r".*saved=closed"))
        details = page.inner_text("main")
        assert "Date of death" in details and "2 March 2031" in details and "A81001" in details
        run_axe(page, "closed case record with the date of death")
        ctx.close()
    assert eng.get_case(cid)["data"]["person"]["date_of_death"] == "2031-03-02"


def test_the_contact_form_asks_the_gp_practice_and_names_a_wrong_code_in_the_browser(eng, app):
    advisor = demo("front_door_advisor")
    cid = eng.start("front_door", actor=advisor).case_id
    [task] = [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "record_contact"]
    with live_server(app) as base, launch() as browser:
        ctx, page = claimed_task_page(browser, base, advisor, "front_door_advisor", task["id"])
        run_axe(page, "record the contact, with the GP practice code")
        page.get_by_label("GP practice code").fill("A8100")
        page.get_by_label("Postcode").fill("nb7")
        page.get_by_label("GP practice code").press("Enter")  # the form's default button: complete
        page.wait_for_selector(".govuk-error-summary")
        summary = page.inner_text(".govuk-error-summary")
        assert GP_MESSAGE in summary and POSTCODE_MESSAGE in summary
        run_axe(page, "record the contact with a wrong GP practice code")
        page.get_by_role("link", name=GP_MESSAGE).focus()
        page.keyboard.press("Enter")
        assert page.evaluate("() => document.activeElement.id") == "f-person-gp_practice_code"
        assert page.input_value("#f-person-gp_practice_code") == "A8100"  # what was typed is kept
        ctx.close()
    assert "person" not in eng.get_case(cid)["data"]


def test_the_carers_hours_section_names_its_error_in_the_browser(eng, app):
    cid = known_case(eng, PERSON, contact_date="2031-03-03")
    eng.start("carers_assessment", case_id=cid, actor=demo("social_worker"),
              data={"person": {"name": "Susan Clarke", "relationship": "daughter"}, "cared_for": "Peter Clarke"})
    [task] = [t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "assess_carer"]
    with live_server(app) as base, launch() as browser:
        ctx, page = claimed_task_page(browser, base, demo("social_worker"), "social_worker", task["id"])
        page.goto(f"{base}/tasks/{task['id']}/sections/caring")
        run_axe(page, "the carer's assessment: caring")
        page.get_by_label("Hours caring a week").fill("169")
        page.get_by_label("Hours caring a week").press("Enter")
        page.wait_for_selector(".govuk-error-summary")
        assert "Hours caring a week must be 168 or fewer" in page.inner_text(".govuk-error-summary")
        run_axe(page, "the carer's assessment: caring, with too many hours")
        page.get_by_label("Hours caring a week").fill("168")
        page.get_by_label("Hours caring a week").press("Enter")
        page.wait_for_url(f"{base}/tasks/{task['id']}")
        ctx.close()
    assert eng.get_task(task["id"])["draft"]["hours_caring_per_week"] == 168

