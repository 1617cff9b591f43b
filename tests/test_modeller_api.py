"""The modeller's support API and pages (api/modeller.py): who may use them, the catalogue the properties
panel offers, the server's checks of a diagram as it is drawn (deploy validation + layout rules), timers
read in plain English, the sandbox's check of conditions and scripts, bad and hostile input, the form
preview and the modeller page; and parse_bundle's check of a handler's required parameters
(engine/bpmn_checks.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from api import modeller
from api.auth import ROLES, TEAMS
from engine.bpmn import parse_bundle
from engine.errors import DefinitionError
from tests.front_door_world import Api, build, username

ROOT = Path(__file__).resolve().parent.parent
FRONT_DOOR = (ROOT / "processes" / "front_door.bpmn").read_text()
SCREENING = (ROOT / "processes" / "screening.dmn").read_text()
ENDPOINTS = [("GET", "/api/modeller/catalogue", None),
             ("POST", "/api/modeller/validate", {"files": {"front_door.bpmn": FRONT_DOOR}}),
             ("POST", "/api/modeller/timer", {"kind": "duration", "expression": "P42D"}),
             ("POST", "/api/modeller/expression", {"kind": "condition", "text": "x > 1"})]
HOSTILE = """<?xml version="1.0"?>
<!DOCTYPE lol [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol2;</bpmn:definitions>"""


@pytest.fixture
def world(db_url):
    eng, app, _people = build(db_url)
    yield eng, app
    eng.db.dispose()


@pytest.fixture
def owner(world):
    return Api(world[1], "process-owner")


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A process owner's client on one SQLite world for the checks that store nothing."""
    eng, app, _people = build(f"sqlite:///{tmp_path_factory.mktemp('modeller') / 'carepath.db'}")
    yield Api(app, "process-owner")
    eng.db.dispose()


def _validate(owner, files: dict[str, str]) -> list[dict]:
    r = owner.post("/api/modeller/validate", {"files": files, "process_id": "front_door"})
    assert r.status_code == 200, r.text
    return r.json()["problems"]


# ---------------------------------------------------------------------- who may use it
@pytest.mark.parametrize("role", ROLES)
def test_only_process_owners_use_the_modeller_api(world, role):
    _eng, app = world
    api = Api(app, username(role))
    for method, url, body in ENDPOINTS:
        r = api.send(method, url, body)
        assert r.status_code == (200 if role == "process_owner" else 403), (role, url, r.text)


def test_signed_out_is_401_and_a_post_without_the_csrf_header_is_403(world, owner):
    _eng, app = world
    for method, url, body in ENDPOINTS:
        assert TestClient(app).request(method, url, json=body).status_code == 401
    for _method, url, body in ENDPOINTS[1:]:
        r = owner.client.post(url, json=body)  # signed in, no X-CSRF-Token
        assert r.status_code == 403 and r.json()["error"] == "csrf"


# ---------------------------------------------------------------------- the catalogue
def test_the_catalogue_lists_teams_forms_handlers_with_their_parameters_and_local_settings(quick):
    cat = quick.get("/api/modeller/catalogue").json()
    assert cat["teams"] == list(TEAMS)
    forms = {f["name"]: f["title"] for f in cat["forms"]}
    assert "contact" in forms and "needs_assessment_stub" in forms and len(forms) > 30
    handlers = {h["name"]: h["params"] for h in cat["handlers"]}
    assert handlers["deadline"] == [{"name": "working_days", "type": "int", "required": True},
                                    {"name": "at", "type": "str", "required": False}]
    assert {"name": "keys", "type": "list[str] | None", "required": False} in handlers["local_settings"]
    assert handlers["start_process"][0] == {"name": "process_id", "type": "str", "required": True}
    assert handlers["update_case"] == [{"name": "data", "type": "dict", "required": True}]
    settings = {s["name"]: s["value"] for s in cat["settings"]}
    assert settings["reablement_length"] == "P42D" and settings["safeguarding_plan_review_working_days"] == 5
    assert not any(name.startswith("_") for name in settings)


# ---------------------------------------------------------------------- checking a diagram
def test_a_clean_diagram_has_no_problems(quick):
    assert _validate(quick, {"front_door.bpmn": FRONT_DOOR, "screening.dmn": SCREENING}) == []


def test_every_problem_the_engine_would_refuse_names_file_element_and_line(quick):
    broken = (FRONT_DOOR.replace('camunda:topic="search_directory"', 'camunda:topic="no_such_handler"')
              .replace('camunda:formKey="signposting_call_back"', 'camunda:formKey="no_such_form"'))
    problems = _validate(quick, {"front_door.bpmn": broken, "screening.dmn": SCREENING})
    by_element = {p["element_id"]: p for p in problems}
    assert "'no_such_handler', which is not registered" in by_element["search_directory"]["message"]
    assert "'no_such_form', which is not in the form library" in by_element["signposting_call_back"]["message"]
    for p in problems:
        assert p["file"] == "front_door.bpmn" and p["line"] > 0 and p["severity"] == "error"
        assert p["rule"] == "carepath"


def test_a_service_task_without_its_handlers_required_parameter_is_a_problem(quick):
    task = ('<bpmn:serviceTask id="due" name="Work out the deadline" camunda:type="external" '
            'camunda:topic="deadline"><bpmn:incoming>f_new</bpmn:incoming><bpmn:outgoing>f_new2</bpmn:outgoing>'
            '</bpmn:serviceTask>')
    bpmn = _with_task(task)
    problems = _validate(quick, {"front_door.bpmn": bpmn, "screening.dmn": SCREENING})
    assert [p["message"] for p in problems if p["element_id"] == "due" and p["rule"] == "carepath"] == [
        "service task 'Work out the deadline' does not give handler 'deadline' its required parameter(s): working_days"]
    given = bpmn.replace('</bpmn:serviceTask>', '<bpmn:extensionElements><camunda:inputOutput><camunda:inputParameter '
                                               'name="working_days">2</camunda:inputParameter></camunda:inputOutput>'
                                               '</bpmn:extensionElements></bpmn:serviceTask>')
    assert [p for p in _validate(quick, {"front_door.bpmn": given, "screening.dmn": SCREENING})
            if p["element_id"] == "due" and p["rule"] == "carepath"] == []


def _with_task(task_xml: str) -> str:
    """front_door with `task_xml` on a path of its own from the start event (no drawing: checks, not layout)."""
    head, sep, tail = FRONT_DOOR.partition("</bpmn:process>")
    flows = ('<bpmn:sequenceFlow id="f_new" sourceRef="contact_received" targetRef="due" />'
             '<bpmn:sequenceFlow id="f_new2" sourceRef="due" targetRef="end_new" />'
             '<bpmn:endEvent id="end_new"><bpmn:incoming>f_new2</bpmn:incoming></bpmn:endEvent>')
    return head + task_xml + flows + sep + tail


def test_a_timer_typo_in_a_diagram_is_a_problem(quick):
    bpmn = FRONT_DOOR.replace('signposting["call_back_due"]</bpmn:timeDate>', "P4XD</bpmn:timeDate>")
    problems = _validate(quick, {"front_door.bpmn": bpmn, "screening.dmn": SCREENING})
    assert any("'P4XD' is not a valid ISO 8601 date" in p["message"] for p in problems)


def test_the_layout_rules_report_as_warnings_with_their_rule(quick):
    long_name = "A task whose name is far too long to fit inside the box it is drawn in on the diagram at all"
    bpmn = FRONT_DOOR.replace('name="Record the contact"', f'name="{long_name}"')
    problems = _validate(quick, {"front_door.bpmn": bpmn, "screening.dmn": SCREENING})
    layout = [p for p in problems if p["element_id"] == "record_contact"]
    assert layout and all(p["severity"] == "warning" and p["rule"] not in (None, "carepath") for p in layout)


def test_a_file_that_is_not_well_formed_is_a_problem_with_its_line(quick):
    problems = _validate(quick, {"front_door.bpmn": FRONT_DOOR.replace("</bpmn:process>", "</bpmn:proces>", 1)})
    assert problems and problems[0]["file"] == "front_door.bpmn" and problems[0]["line"]


@pytest.mark.parametrize("files, status, words", [
    ({"evil.bpmn": HOSTILE}, 422, "refused: the file contains"),
    ({}, 422, "no files were sent"),
    ({"../etc/passwd.bpmn": FRONT_DOOR}, 422, "must end in .bpmn or .dmn"),
    ({"notes.txt": FRONT_DOOR}, 422, "must end in .bpmn or .dmn"),
    ({f"f{i}.bpmn": FRONT_DOOR for i in range(21)}, 422, "at most 20"),
    ({"big.bpmn": "<a>" + "x" * (5 * 1024 * 1024) + "</a>"}, 413, "larger than 5 MB"),
])
def test_bad_or_hostile_files_are_refused_with_a_message(quick, files, status, words):
    r = quick.post("/api/modeller/validate", {"files": files})
    assert r.status_code == status, r.text
    assert words in r.json()["message"]


def test_a_body_that_is_not_files_is_422(quick):
    r = quick.post("/api/modeller/validate", {"files": ["front_door.bpmn"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"].startswith("files")


# ---------------------------------------------------------------------- timers in words
@pytest.mark.parametrize("kind, text, event, reading", [
    ("duration", "P42D", "boundary", "6 weeks after this task starts"),
    ("duration", "PT24H", "catch", "24 hours after the case reaches this timer"),
    ("duration", "P1Y2M", None, "1 year and 2 months after the timer starts"),
    ("date", "2027-01-04T09:00:00Z", None, "on Monday 4 January 2027 at 09:00 UK time"),
    ("date", "2027-07-05T16:00:00Z", None, "on Monday 5 July 2027 at 17:00 UK time"),
    ("cycle", "R3/PT2H", None, "every 2 hours, 3 times; the first one 2 hours after the timer starts"),
    ("duration", 'settings["reablement_length"]', "boundary",
     "6 weeks after this task starts (the local setting reablement_length, now P42D)"),
    ("date", 'working_day_deadline(now().isoformat(), 30)', "boundary",
     "30 working days after this task starts, at 17:00 UK time, excluding weekends and bank holidays "
     "(England and Wales)"),
    ("date", 'working_day_deadline(now().isoformat(), settings["safeguarding_strategy_working_days"])', None,
     "5 working days (the local setting safeguarding_strategy_working_days) after the timer starts, at 17:00 UK "
     "time, excluding weekends and bank holidays (England and Wales)"),
    ("duration", '"P%dD" % settings["signposting_call_back_days"]', None,
     "14 days (the local setting signposting_call_back_days) after the timer starts"),
    ("date", 'signposting["call_back_due"]', None,
     "the date in the case's data signposting['call_back_due'], worked out earlier in the process"),
])
def test_a_timer_is_read_in_plain_english(quick, kind, text, event, reading):
    r = quick.post("/api/modeller/timer", {"kind": kind, "expression": text, "event": event})
    assert r.json() == {"ok": True, "reading": reading, "problem": None}


@pytest.mark.parametrize("kind, text, problem", [
    ("duration", "P4XD", "'P4XD' is not a valid ISO 8601 duration (for example P42D)"),
    ("date", "P42D", "'P42D' is not a valid ISO 8601 date"),
    ("duration", "P1W2D", "not a valid ISO 8601 duration"),
    ("duration", 'settings["no_such_setting"]', "there is no local setting 'no_such_setting'"),
    ("date", 'settings["reablement_length"]', "is 'P42D', which is not an ISO 8601 date"),
    ("duration", "open('/etc/passwd')", "refused"),
    ("duration", "days +", "syntax error"),
    ("duration", "  ", "the timer has no value"),
    # a length of time in words, or in lower case, was read as Python: a syntax error, or a case variable
    # 'p14d' that no case has ("Checked"), so the timer failed when a case reached it
    ("duration", "14 days", "'14 days' is not a valid ISO 8601 duration (for example P42D): write P14D"),
    ("duration", "6 Weeks", "'6 Weeks' is not a valid ISO 8601 duration (for example P42D): write P6W"),
    ("duration", "p14d", "'p14d' is not a valid ISO 8601 duration (for example P42D): write P14D"),
    ("duration", "P-14D", "'P-14D' is not a valid ISO 8601 duration (for example P42D)"),
    ("duration", "5 working days", "working days are counted with a local setting"),
    ("cycle", "r/p1y", "write R/P1Y"),
])
def test_a_timer_that_would_not_deploy_says_why(quick, kind, text, problem):
    body = quick.post("/api/modeller/timer", {"kind": kind, "expression": text}).json()
    assert body["ok"] is False and body["reading"] is None and problem in body["problem"]


@pytest.mark.parametrize("body", [{"kind": "weekly", "expression": "P1D"}, {"kind": "duration"},
                                  {"kind": "duration", "expression": "P1D", "event": "end"}])
def test_a_bad_timer_request_is_422(quick, body):
    r = quick.post("/api/modeller/timer", body)
    assert r.status_code == 422 and r.json()["errors"]


# ---------------------------------------------------------------------- conditions and scripts
@pytest.mark.parametrize("kind, text, ok, words", [
    ("condition", 'urgency == "high"', True, None),
    ("script", "days = 2 if score > 5 else 3", True, None),
    ("script", "import os", False, "import statements are not allowed"),
    ("condition", "().__class__.__mro__", False, 'because it starts with "_"'),
    ("condition", "datetime.now()", False, "reading the clock is refused"),
    ("condition", "${amount > 5}", False, "syntax error"),
    ("condition", "", False, "the condition is empty"),
])
def test_conditions_and_scripts_are_checked_by_the_sandbox(quick, kind, text, ok, words):
    body = quick.post("/api/modeller/expression", {"kind": kind, "text": text}).json()
    assert body["ok"] is ok
    assert (body["problem"] is None) if ok else (words in body["problem"])


def test_a_bad_expression_request_is_422(quick):
    assert quick.post("/api/modeller/expression", {"kind": "sql", "text": "1"}).status_code == 422
    assert quick.post("/api/modeller/expression", {"kind": "script", "text": "x" * 20_001}).status_code == 422


# ---------------------------------------------------------------------- engine: required parameters
def test_parse_bundle_checks_required_parameters_only_when_given_them():
    bpmn = _with_task('<bpmn:serviceTask id="due" name="Due" camunda:type="external" camunda:topic="deadline">'
                      '<bpmn:incoming>f_new</bpmn:incoming><bpmn:outgoing>f_new2</bpmn:outgoing></bpmn:serviceTask>')
    files = {"front_door.bpmn": bpmn.encode(), "screening.dmn": SCREENING.encode()}
    known = {"needs_assessment", "reablement", "safeguarding"}
    names = {"deadline", "local_settings", "search_directory", "record_signposting", "start_process", "update_case"}
    parse_bundle(files, handlers=names, known_processes=known)  # names only: no parameter check
    required = {n: () for n in names} | {"deadline": ("working_days",)}
    with pytest.raises(DefinitionError) as err:
        parse_bundle(files, handlers=required, known_processes=known)
    assert [(p.element_id, p.message) for p in err.value.problems] == [
        ("due", "service task 'Due' does not give handler 'deadline' its required parameter(s): working_days")]


# ---------------------------------------------------------------------- pages
def _draft(owner) -> int:
    r = owner.post("/api/processes/drafts", {"process_id": "front_door", "base_version": 1,
                                             "files": {"front_door.bpmn": FRONT_DOOR, "screening.dmn": SCREENING}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def test_the_modeller_page_is_for_process_owners(world, owner):
    _eng, app = world
    draft_id = _draft(owner)
    r = owner.get(f"/processes/drafts/{draft_id}/edit")
    assert r.status_code == 200
    assert r.template.name == "modeller.html" and r.context["draft"]["id"] == draft_id
    assert f'data-draft-url="/api/processes/drafts/{draft_id}"' in r.text
    assert f'data-csrf="{owner.csrf}"' in r.text and 'src="/static/modeller.js"' in r.text
    assert r.headers["Content-Security-Policy"].startswith("default-src 'self'")
    for role in ("team_manager", "auditor", "social_worker", "administrator"):
        page = Api(app, username(role)).get(f"/processes/drafts/{draft_id}/edit")
        assert page.status_code == 403 and "Only a process owner" in page.text
    assert owner.get("/processes/drafts/999/edit").status_code == 404
    signed_out = TestClient(app).get(f"/processes/drafts/{draft_id}/edit", follow_redirects=False)
    assert signed_out.status_code == 303 and signed_out.headers["location"] == "/sign-in"


def test_without_the_bundle_the_page_says_how_to_build_it(world, owner, monkeypatch):
    draft_id = _draft(owner)
    monkeypatch.setattr(modeller, "bundle_built", lambda: False)
    r = owner.get(f"/processes/drafts/{draft_id}/edit")
    assert r.status_code == 200 and 'id="modeller-missing"' in r.text and "make setup" in r.text
    assert "/static/modeller.js" not in r.text


def test_a_withdrawn_draft_opens_closed(world, owner):
    draft_id = _draft(owner)
    assert owner.post(f"/api/processes/drafts/{draft_id}/withdraw", {"reason": "not needed"}).status_code == 200
    r = owner.get(f"/processes/drafts/{draft_id}/edit")
    assert r.status_code == 200 and 'id="modeller-closed"' in r.text and "withdrawn" in r.text
    assert "/static/modeller.js" not in r.text


def test_the_form_preview_shows_the_form_as_a_caseworker_sees_it(world, owner):
    _eng, app = world
    r = owner.get("/processes/forms/contact/preview")
    assert r.status_code == 200 and r.template.name == "form_preview.html"
    labels = [f.label for f in r.context["fields"]]
    assert r.context["fields"] and all(label in r.text for label in labels)
    assert owner.get("/processes/forms/no_such_form/preview").status_code == 404
    assert owner.get("/processes/forms/..%2Fsecrets/preview").status_code == 404
    assert Api(app, "social-worker").get("/processes/forms/contact/preview").status_code == 403


def test_a_user_task_without_a_team_that_exists_is_a_problem(quick):
    no_team = FRONT_DOOR.replace('camunda:formKey="signposting_call_back" camunda:candidateGroups="front_door"',
                                 'camunda:formKey="signposting_call_back"')
    assert no_team != FRONT_DOOR
    problems = [p for p in _validate(quick, {"front_door.bpmn": no_team, "screening.dmn": SCREENING})
                if p["element_id"] == "signposting_call_back"]
    # without candidate groups the lane's name ("Front Door") is its team, and that is not a team
    assert [p["message"] for p in problems] == [
        "user task 'Call back: was the signposting right?' goes to 'Front Door' (its lane's name), which is not a "
        "team: choose one of " + ", ".join(TEAMS)]
    typo = FRONT_DOOR.replace('camunda:candidateGroups="front_door"', 'camunda:candidateGroups="frontdoor"', 1)
    assert any("goes to 'frontdoor' (its candidate groups), which is not a team" in p["message"]
               for p in _validate(quick, {"front_door.bpmn": typo, "screening.dmn": SCREENING}))


def test_the_bundle_and_its_fonts_are_served_by_name_and_nothing_else_of_the_folder(quick):
    from api.static_assets import DIST

    assert (DIST / "modeller.js").is_file(), "the modeller bundle is missing: run `make setup`"
    client = quick.client
    for name, media in (("modeller.js", "text/javascript"), ("modeller.css", "text/css"),
                        ("review.js", "text/javascript"), ("review.css", "text/css")):
        r = client.get(f"/static/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(media)
        assert r.headers["x-content-type-options"] == "nosniff"
    font = next(p.name for p in DIST.iterdir() if p.name.startswith("bpmn-") and p.name.endswith(".woff2"))
    assert font in client.get("/static/modeller.css").text
    r = client.get(f"/static/{font}")
    assert r.status_code == 200 and r.headers["content-type"] == "font/woff2"
    for bad in ("/static/bpmn-AAAAAAAA.woff2", "/static/dist%2Fmodeller.js", "/static/..%2Fdist%2Freview.js",
                "/static/bpmn-5V7FFMNC.woff2.map", "/static/modeller.js.map"):
        assert client.get(bad).status_code == 404, bad
