"""Diagrams a service manager reads (issue 10, item 9) and the smaller corrections, on the simulated
clock, on SQLite and PostgreSQL:

* settings are read when a process starts (the process property `load:settings`), not in a drawn
  "Load local timescales" step; defaults for missing start data likewise (`default:...`);
* no diagram draws a step that only copies data (an `update_case` call, a script that only copies start
  data): what it kept on the case is a case output (`case:KEY`) on the element whose completion gives it;
* no label bakes in a value that lives in configuration ("Set the 6-week period");
* the direct payment review is done by the team that decides it (social work), also on a concern
  that the money is not meeting needs;
* the team manager approving a budget increase sees the check (old and new amounts, threshold);
* the review form is answered a section at a time;
* `carepath resume --mode end --then-start PROCESS` starts the next process in the same step.
"""

from __future__ import annotations

import ast
import html
import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from lxml import etree

from api.app import create_app
from api.auth import create_user
from engine.bpmn import parse_bundle
from engine.bpmn_parser import read_service
from engine.cli import main
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from handlers import settings as local_settings
from tests.case_helpers import events, handlers_called, instances, the_task
from tests.conftest import START
from tests.test_pages_inbox import PASSWORD, _signin_client
from tests.test_process_assessment_to_review import (
    PROCESS_FILES,
    SMALL,
    assessment,
    complete,
    plan,
    ras,
    task,
)

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ROOT / "processes"
MINE = ("reablement", "review", "direct_payment_review", "personal_budget", "hospital_discharge",
        "hospital_follow_up")
FILES = sorted({*PROCESS_FILES, *(PROCESSES / f"{p}.bpmn" for p in MINE), PROCESSES / "discharge_pathway.dmn"})
BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
PERSON = {"name": "Joan Barker", "age": 78, "address": "4 Mill Lane, Northby"}
PETER = {"name": "Peter Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "salutation": "Mr Clarke"}
# a duration written into a name: "6-week", "91 days", "28-day", "12 months", "5 working days"
BAKED = re.compile(r"\b\d+(\s|-)?(working\s)?(day|week|month|year|hour)s?\b", re.IGNORECASE)


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy(FILES)
    yield engine
    engine.db.dispose()


def names(path: Path) -> list[tuple[str, str]]:
    root = etree.parse(str(path)).getroot()
    return [(el.get("id"), el.get("name")) for el in root.iter() if isinstance(el.tag, str) and el.get("name")
            and el.tag.startswith(f"{{{BPMN}}}")]


def offending_labels(path: Path) -> list[tuple[str, str]]:
    return [(eid, name) for eid, name in names(path) if BAKED.search(name)]


# ---------------------------------------------------------------- (a) and (b): what the picture shows


@pytest.mark.parametrize("process", MINE)
def test_my_diagrams_draw_no_settings_step_and_bake_no_configured_value_into_a_label(process):
    path = PROCESSES / f"{process}.bpmn"
    text = path.read_text(encoding="utf-8")
    assert 'camunda:topic="local_settings"' not in text  # no "Load local timescales" step
    assert "Load local timescales" not in text and "Note the" not in text
    assert offending_labels(path) == []
    info = parse_bundle({path.name: path.read_bytes()}, known_processes=(
        "needs_assessment", "support_plan", "hospital_follow_up", "reablement", "review", "direct_payment_review"),
        known_decisions=("discharge_pathway",)).processes[process]
    uses_settings = "settings[" in text or "settings.get(" in text
    assert (("load", "settings", "local_settings") in [(i.kind, i.variable, i.source) for i in info.start_inputs]) \
        == uses_settings
    if uses_settings:  # and the documentation tells a reader where the settings come from
        assert "load:settings = local_settings" in text


def test_the_label_check_finds_a_baked_in_value():
    old = PROCESSES / "reablement.bpmn"
    baked = old.read_text(encoding="utf-8").replace('name="Set the reablement period"', 'name="Set the 6-week period"')
    assert BAKED.search("Set the 6-week period") and BAKED.search("Still at home at 91 days")
    assert BAKED.search("Decide within 28 days") and not BAKED.search("Review (Care Act s.27)")
    assert not BAKED.search("Direct payment review (Direct Payments Regulations 2014, reg 7)")
    assert [n for _i, n in names(old) if n == "Set the 6-week period"] == []
    assert "Set the 6-week period" in baked


def test_reablement_reads_its_settings_and_contact_date_as_it_starts(eng):
    res = eng.start("reablement", data={"person": PERSON, "age": 78, "reason": "Falls at home",
                                        "from_hospital": False, "discharge_date": None})
    cid = res.case_id
    # one handler call, at the start event; no step for it in the route
    assert handlers_called(eng, cid) == [("reablement_referred", "local_settings")]
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["contact_date"] == "2031-03-03"  # the start day: no contact date was given
    assert data["settings"]["reablement_length"] == "P42D"
    assert [(t["element_id"], t["team"]) for t in res.ready_tasks] == [("plan_reablement", "reablement")]
    eng.complete_task(the_task(eng, cid, "plan_reablement")["id"], {
        "goals": ["Wash and dress without help"], "setting": "home", "start_type": "planned", "visits_per_day": 2})
    assert dict(eng.instance_snapshot(res.instance_id)["timers"]) == {
        "end_reminder": "2031-04-07T09:00:00.000000+00:00", "period_ended": "2031-04-14T09:00:00.000000+00:00"}
    given = eng.start("reablement", data={"person": PERSON, "age": 78, "reason": "Falls", "from_hospital": False,
                                          "discharge_date": None, "contact_date": "2031-02-27"})
    assert eng.instance_snapshot(given.instance_id)["data"]["contact_date"] == "2031-02-27"


def test_a_running_case_keeps_the_settings_it_started_with(eng, monkeypatch):
    res = eng.start("hospital_follow_up", data={"person": PERSON, "age": 78, "discharge_date": "2031-03-03"})
    real = local_settings.load()
    monkeypatch.setattr(local_settings, "load", lambda *a, **k: {**real, "hospital_follow_up_after_discharge": "P60D"})
    later = eng.start("hospital_follow_up", data={"person": PERSON, "age": 78, "discharge_date": "2031-03-03"})
    assert dict(eng.instance_snapshot(res.instance_id)["timers"]) == {
        "wait_after_discharge": "2031-06-02T00:00:00.000000+00:00"}  # 91 days, as when it started
    assert dict(eng.instance_snapshot(later.instance_id)["timers"]) == {
        "wait_after_discharge": "2031-05-02T00:00:00.000000+00:00"}
    assert [e["data"]["element_id"] for e in events(eng, res.case_id, "handler.called")] == ["follow_up_scheduled"]


def test_a_discharge_referral_is_dated_as_it_arrives_without_a_step(eng):
    res = eng.start("hospital_discharge", actor="ward7", data={"person": PERSON, "reason": "Fall", "ward": "Ward 7"})
    assert handlers_called(eng, res.case_id) == [("referral_received", "local_settings"),
                                                  ("set_response_deadline", "deadline")]
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert (data["referral_date"], data["support_arranged"], data["letter_to"]) == ("2031-03-03", None, None)
    assert [(t["element_id"], t["team"]) for t in res.ready_tasks] == [("respond_to_referral", "hospital_team")]


# ---------------------------------------------------------------- (c) (d) the direct payment review


def to_plan(eng, money_management="direct_payment"):
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                              "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "using_home_safely"))
    complete(eng, cid, "score_needs", ras(**SMALL))
    complete(eng, cid, "write_plan", plan(money_management))
    complete(eng, cid, "sign_off_plan", {"signed_off": True}, actor="manager")
    return cid


def test_a_concern_about_the_money_starts_a_review_for_social_work_who_decide_it(eng):
    cid = to_plan(eng)
    eng.advance_clock(timedelta(days=10))
    app = create_app(eng, run_timers=False)
    # "worker" did the assessment (tests.test_process_assessment_to_review.complete): the case is theirs
    create_user(eng, "worker", PASSWORD, display_name="Sam Worker", roles=["social_worker"], teams=["social_work"])
    client, csrf = _signin_client(app, "worker")
    r = client.post(f"/api/cases/{cid}/actions/dp_review", headers={"X-CSRF-Token": csrf},
                    json={"data": {"dp_review_trigger": "concern", "note": "Care hours not delivered for 3 weeks"}})
    assert r.status_code == 201, r.text
    dp = task(eng, cid, "review_direct_payment")
    assert (dp["team"], dp["form"]) == ("social_work", "direct_payment_review")
    assert dp["due_at"] == START + timedelta(days=10 + 14)  # direct_payment_unplanned_review_within, a working day
    started = [e for e in events(eng, cid, "instance.started") if e["data"]["process_id"] == "direct_payment_review"]
    assert started[-1]["data"]["data"]["dp_review_trigger"] == "concern"
    # a trigger outside the list is refused, naming the field, and nothing starts
    before = len(eng.history(cid))
    r = client.post(f"/api/cases/{cid}/actions/dp_review", headers={"X-CSRF-Token": csrf},
                    json={"data": {"dp_review_trigger": "audit", "note": "x"}})
    assert r.status_code == 422 and "dp_review_trigger" in r.text
    assert len(eng.history(cid)) == before


def test_the_direct_payment_review_is_drawn_in_the_social_work_lane():
    root = etree.parse(str(PROCESSES / "direct_payment_review.bpmn")).getroot()
    ns = {"bpmn": BPMN}
    lanes = {lane.get("name"): [r.text for r in lane.findall("bpmn:flowNodeRef", ns)]
             for lane in root.iter(f"{{{BPMN}}}lane")}
    assert set(lanes) == {"Social Work and OT", "Team Manager"}
    assert {"review_direct_payment", "arrange_change", "dp_outcome_gw"} <= set(lanes["Social Work and OT"])
    assert lanes["Team Manager"] == ["dp_review_overdue", "dp_overdue_handled"]


# ---------------------------------------------------------------- (e) the budget check on the approval


def test_the_manager_approving_a_budget_increase_sees_the_check_above_the_decision(eng):
    cid = to_plan(eng, "council_managed")
    eng.advance_clock(timedelta(days=43))  # day 42 is Easter Monday: the first review is on Tuesday 15 April
    complete(eng, cid, "review_plan", {"needs_changed": False, "proposed_new_amount": 30000.01})
    approval = task(eng, cid, "approve_budget_change")
    app = create_app(eng, run_timers=False)
    create_user(eng, "tess", PASSWORD, display_name="Tess Manager", roles=["team_manager"], teams=["team_manager"])
    client, _csrf = _signin_client(app, "tess")
    page = client.get(f"/tasks/{approval['id']}")
    assert page.status_code == 200
    text = page.text
    assert "The budget change to approve" in text
    for shown in ("Budget now", "£17,745.45", "Proposed budget", "£30,000.01", "£12,254.56", "Approval threshold",
                  "£30,000.00",
                  "a team manager must approve it before it takes effect"):
        assert shown in text, shown
    assert text.index("£30,000.01") < text.index('name="approved"')


# ---------------------------------------------------------------- (f) the review form in sections


def test_the_review_is_answered_a_section_at_a_time(eng):
    sections = eng.forms.sections("review")
    assert [(s["id"], s["title"]) for s in sections] == [
        ("how", "How the review was done"), ("capacity", "Capacity and advocacy"),
        ("views", "The person's and carer's views"),
        ("outcomes", "Outcomes achieved"), ("changes", "Changes in needs and the budget")]
    assert sections[0]["fields"] == ["review_method", "who_took_part", "review_participants", "full_review"]
    cid = to_plan(eng, "council_managed")
    eng.advance_clock(timedelta(days=43))
    review = task(eng, cid, "review_plan")
    app = create_app(eng, run_timers=False)
    create_user(eng, "sam", PASSWORD, display_name="Sam Worker", roles=["social_worker"], teams=["social_work"])
    client, csrf = _signin_client(app, "sam")
    eng.claim(review["id"], "sam")
    page = client.get(f"/tasks/{review['id']}")
    assert page.status_code == 200
    text = html.unescape(page.text)
    for s in sections:
        assert s["title"] in text and f"/tasks/{review['id']}/sections/{s['id']}" in text
    r = client.post(f"/tasks/{review['id']}/sections/views", data={
        "csrf_token": csrf, "person_views": "I want to go to the day centre twice a week",
        "carer_views": "Susan can do evenings again"}, follow_redirects=False)
    assert r.status_code in (200, 303)
    assert eng.get_task(review["id"])["draft"]["person_views"] == "I want to go to the day centre twice a week"


# ---------------------------------------------------------------- (h) resume --then-start on the command line


def suspended_reablement(eng):
    res = eng.start("reablement", data={"person": PERSON, "age": 78, "reason": "Falls at home",
                                        "from_hospital": False, "discharge_date": None})
    eng.complete_task(the_task(eng, res.case_id, "plan_reablement")["id"], {
        "goals": ["Wash and dress without help"], "setting": "home", "start_type": "planned", "visits_per_day": 2})
    eng.suspend_instance(res.instance_id, reason="Admitted to hospital", actor="worker1")
    return res.case_id, res.instance_id


def test_the_command_line_ends_a_paused_process_and_starts_the_next_in_one_step(eng, db_url, capsys):
    cid, iid = suspended_reablement(eng)
    data = json.dumps({"person": PERSON, "reason": "Fractured hip", "ward": "Ward 7"})
    before = len(eng.history(cid))
    # refused, nothing changes: start data without a process; a start when the process resumes
    assert main(["resume", str(iid), "--mode", "end", "--data", data, "--as", "worker1", "--db", db_url]) != 0
    assert "--then-start PROCESS" in capsys.readouterr().err
    assert main(["resume", str(iid), "--then-start", "hospital_discharge", "--data", data, "--as", "worker1",
                 "--db", db_url]) != 0
    assert "only when the suspended one ends" in capsys.readouterr().err
    assert main(["resume", str(iid), "--mode", "end", "--then-start", "no_such_process", "--as", "worker1",
                 "--db", db_url]) != 0
    assert "no_such_process" in capsys.readouterr().err
    assert len(eng.history(cid)) == before
    eng.advance_clock(timedelta(days=3))
    assert main(["resume", str(iid), "--mode", "end", "--reason", "Not going home yet", "--then-start",
                 "hospital_discharge", "--data", data, "--as", "worker1", "--db", db_url]) == 0
    out = capsys.readouterr().out
    assert f"instance {iid} ended" in out and "hospital_discharge started as instance" in out
    assert "Respond to discharge referral" in out
    assert instances(eng, cid) == [("reablement", "cancelled"), ("hospital_discharge", "waiting")]
    resumed = events(eng, cid, "instance.resumed")[-1]["data"]
    assert (resumed["mode"], resumed["then_start"]["process_id"]) == ("end", "hospital_discharge")
    assert resumed["then_start"]["data"]["reason"] == "Fractured hip"
    assert the_task(eng, cid, "respond_to_referral")["team"] == "hospital_team"
    assert eng.list_tasks(case_id=cid, team="reablement") == []  # Deliver reablement withdrawn
    # its timers were withdrawn with it, the referral's deadline set (next working day after 6 March)
    assert the_task(eng, cid, "respond_to_referral")["due_at"].date().isoformat() == "2031-03-07"


# ---------------------------------------------------------------- (a) what a process owner sees in the modeller


def test_the_process_page_and_the_modeller_panel_say_what_the_process_reads_when_a_case_starts(tmp_path):
    from api import static_assets
    from tests.browser import launch, live_server, run_axe, sign_in
    from tests.front_door_world import PASSWORD as OWNER_PASSWORD
    from tests.front_door_world import build
    from tests.modeller_browser import open_carepath_group, open_new_draft, select

    assert static_assets.bundle_built(), "the modeller bundle is missing: run `make setup` (node modeller/build.mjs)"
    eng, app, _people = build(f"sqlite:///{tmp_path / 'carepath.db'}")
    try:
        with launch() as browser, live_server(app) as base:
            page = browser.new_context(bypass_csp=True, viewport={"width": 1500, "height": 1000}).new_page()
            sign_in(page, base, "process-owner", OWNER_PASSWORD, then=None)
            # the process's page says it too, for the live version
            page.goto(f"{base}/processes/reablement")
            row = page.locator(".govuk-summary-list__row", has_text="Read when a case starts")
            assert row.locator("li").all_inner_texts() == [
                "settings: what the handler local_settings gives",
                "contact_date: uk_date(now()), when the start data does not give it"]
            run_axe(page, "process page with its start inputs")
            page.goto(f"{base}/processes/needs_assessment")  # the test stub: it reads nothing at start
            assert "Nothing but its start data." in page.locator(
                ".govuk-summary-list__row", has_text="Read when a case starts").inner_text()
            open_new_draft(page, base, "reablement")
            select(page, "pool_reablement")
            open_carepath_group(page)
            entry = page.locator("[data-entry-id='carepath-start-inputs']")
            entry.wait_for()
            assert entry.locator("li").all_inner_texts() == [
                "settings: what the handler local_settings gives (recorded in the case's history)",
                "contact_date: uk_date(now()), when the start data does not give it"]
            assert "Read when a case starts" in entry.inner_text()
            run_axe(page, "modeller (the process's start inputs)")
            select(page, "plan_reablement")  # a task has no such entry
            assert page.locator("[data-entry-id='carepath-start-inputs']").count() == 0
    finally:
        eng.db.dispose()


# ---------------------------------------------------------------- (a) no drawn step only copies data

# diagrams as they were at commit 18bb377, when they still drew copy-data steps (issue 10 item 9)
DREW_COPY_STEPS = ROOT / "tests" / "fixtures" / "copy_steps"
# a script that only copies may read start data, the case record and the clock, and nothing else
COPY_CALLS = frozenset({"now", "case"})
COPY_METHODS = frozenset({"get", "date", "isoformat", "strip"})
COPY_NODES = (ast.Name, ast.Load, ast.Store, ast.Constant, ast.Subscript, ast.Slice, ast.Attribute, ast.Dict,
              ast.List, ast.Tuple, ast.IfExp, ast.BoolOp, ast.Or, ast.And, ast.Call)


def _only_copies(statements: list[ast.stmt]) -> bool:
    """Every statement assigns a name from names, constants, now() and case() (or defaults one when the start
    data lacks it: try/except NameError): no comparison, no loop, no function of the council's."""
    for st in statements:
        if isinstance(st, ast.Try):
            if not all(isinstance(h.type, ast.Name) and h.type.id == "NameError" for h in st.handlers) \
                    or st.orelse or st.finalbody or not _only_copies(st.body) \
                    or not all(_only_copies(h.body) for h in st.handlers):
                return False
            continue
        if isinstance(st, ast.Pass):
            continue
        if not isinstance(st, ast.Assign) or not all(isinstance(t, ast.Name) for t in st.targets):
            return False
        for node in ast.walk(st.value):
            if not isinstance(node, COPY_NODES):
                return False
            if isinstance(node, ast.Call) and not (
                    (isinstance(node.func, ast.Name) and node.func.id in COPY_CALLS)
                    or (isinstance(node.func, ast.Attribute) and node.func.attr in COPY_METHODS)):
                return False
    return True


def copy_steps(xml: bytes) -> list[tuple[str, str]]:
    """The drawn steps whose only work is copying data, (id, why):

    * a service task (or send task) calling update_case: its values belong in `case:KEY` properties on the
      element whose completion gives them (docs/engine.md "Case outputs");
    * a script task straight after the start event that only copies or defaults start data, the case record
      or today's date: `default:VARIABLE` process properties (docs/engine.md "Start inputs").
    A copying script later in the flow sets a decision's result where paths meet (the review's 'The new
    budget takes effect'): that is the process's work, drawn on purpose."""
    root = etree.fromstring(xml)
    found = []
    for process in root.iter(f"{{{BPMN}}}process"):
        starts = {el.get("id") for el in process if el.tag == f"{{{BPMN}}}startEvent"}
        from_start = {f.get("targetRef") for f in process if f.tag == f"{{{BPMN}}}sequenceFlow"
                      and f.get("sourceRef") in starts}
        for el in process.iter(f"{{{BPMN}}}serviceTask", f"{{{BPMN}}}sendTask"):
            if read_service(el).handler == "update_case":
                found.append((el.get("id"), "update_case"))
        for el in process.iter(f"{{{BPMN}}}scriptTask"):
            script = el.findtext(f"{{{BPMN}}}script") or ""
            if el.get("id") in from_start and script.strip() and _only_copies(ast.parse(script).body):
                found.append((el.get("id"), "copies start data"))
    return found


@pytest.mark.parametrize("path", sorted(PROCESSES.glob("*.bpmn")), ids=lambda p: p.stem)
def test_no_diagram_draws_a_step_that_only_copies_data(path):
    assert copy_steps(path.read_bytes()) == []


def test_the_copy_step_check_finds_the_steps_the_diagrams_drew_before():
    def old(name: str) -> bytes:
        return (DREW_COPY_STEPS / f"{name}.bpmn").read_bytes()

    assert copy_steps(old("review")) == [("record_review", "update_case")]
    assert copy_steps(old("advocacy")) == [("note_referral", "update_case"), ("keep_advocate", "update_case")]
    assert copy_steps(old("safeguarding")) == [("note_concern", "copies start data")]
    assert ("keep_person", "update_case") in copy_steps(old("front_door"))
    # the review's 'The new budget takes effect' copies too, but an approved amount where paths meet
    assert "record_new_amount" in old("review").decode() and "record_new_amount" not in dict(copy_steps(old("review")))
    # and a script that decides something is work, even straight after the start
    work = old("safeguarding").replace(b"alleged_source_of_harm = None", b"urgent = concern_date &lt; '2031-01-01'")
    assert copy_steps(work) == []


def test_what_the_copy_steps_kept_is_kept_by_the_element_before_them_at_the_same_moment(eng):
    def kept(cid):
        return [(e["data"]["element_id"], sorted(e["data"]["data"])) for e in events(eng, cid, "case.updated")]

    def order(cid):
        return [(e["type"], e["data"].get("element_id")) for e in eng.history(cid) if isinstance(e.get("data"), dict)]

    cid = to_plan(eng, "council_managed")
    assert ("assemble_plan", ["current_budget_amount", "current_plan"]) in kept(cid)
    assert order(cid).index(("case.updated", "assemble_plan")) < order(cid).index(
        ("handler.called", "write_plan_letter"))  # before the letter, as the drawn step was
    plan_kept = eng.get_case(cid)["data"]["current_plan"]
    assert plan_kept["plan"]["money_management"] == "council_managed" and plan_kept["budget_amount"]
    eng.advance_clock(timedelta(days=43))
    complete(eng, cid, "review_plan", {"needs_changed": False, "plan_working": True})
    # the planned review keeps itself on the case as it ends, in the step that starts the next one
    assert kept(cid)[-1] == ("review_end", ["current_budget_amount", "last_full_review_at", "last_review"])
    case = eng.get_case(cid)["data"]
    assert case["last_full_review_at"] == eng.now().isoformat()
    assert case["last_review"] == {"at": eng.now().isoformat(), "reason": "Planned", "full": True}
    assert case["current_budget_amount"] == plan_kept["budget_amount"]
    assert not [e for e in kept(cid) if e[0] in ("keep_plan", "record_review")]
