"""Case outputs: an element keeps values on the case record as it completes (`case:KEY` = expression,
declared on the element instead of drawn as an update_case step), and Camunda 7 execution listeners
with an inline Python script run as the element's pre/postScript — on SQLite and PostgreSQL, on the
simulated clock. The engine knows nothing of what the values mean."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from engine.errors import DefinitionError, ValidationError
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.replay import replay_case
from engine.runtime import Engine
from engine.schema import cases, process_versions
from handlers import people
from tests.conftest import START

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
    xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"
    id="defs_keeps" targetNamespace="http://carepath.test">
  <bpmn:process id="keeps" name="Keep what was recorded" isExecutable="true">{process_ext}
"""
# 'record' keeps the person and the day on the case, and its end listener works out the contact kind;
# 'check' (a script task in the same step) reads the case; 'follow' waits; the end event keeps one more
RECORD_EXT = """<bpmn:extensionElements>
        <camunda:properties>
          <camunda:property name="case:person" value="person" />
          <camunda:property name="case:contact_on" value="now().date().isoformat()" />
          <camunda:property name="case:contact_kind" value="kind" />
          <camunda:property name="colour" value="blue" />
        </camunda:properties>
        <camunda:executionListener event="end">
          <camunda:script scriptFormat="python">kind = how or "phone"
heard_on = now().date().isoformat()</camunda:script>
        </camunda:executionListener>
      </bpmn:extensionElements>"""
BODY = """
    <bpmn:startEvent id="begin"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="record" name="Record the contact" camunda:candidateGroups="team_a" camunda:formKey="note">
      {record_ext}
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:scriptTask id="check" name="Check" scriptFormat="python">
      <bpmn:incoming>f2</bpmn:incoming><bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>seen = case()["person"]["name"] + " by " + case()["contact_kind"]</bpmn:script></bpmn:scriptTask>
    <bpmn:userTask id="follow" name="Follow up" camunda:candidateGroups="team_a" camunda:formKey="note">
      {follow_ext}
      <bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="done" name="Done">
      <bpmn:extensionElements><camunda:properties>
        <camunda:property name="case:followed_up" value="True" /></camunda:properties></bpmn:extensionElements>
      <bpmn:incoming>f4</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="begin" targetRef="record"/>
    <bpmn:sequenceFlow id="f2" sourceRef="record" targetRef="check"/>
    <bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="follow"/>
    <bpmn:sequenceFlow id="f4" sourceRef="follow" targetRef="done"/>
  </bpmn:process>
</bpmn:definitions>
"""
FOLLOW_SUMS = """<bpmn:extensionElements><camunda:properties>
        <camunda:property name="case:visits" value="case()['visits'] + int(extra)" />
      </camunda:properties></bpmn:extensionElements>"""


def diagram(record_ext: str = RECORD_EXT, follow_ext: str = FOLLOW_SUMS, process_ext: str = "") -> bytes:
    return (HEAD.format(process_ext=process_ext) + BODY.format(record_ext=record_ext, follow_ext=follow_ext)).encode()


@pytest.fixture
def eng(db_url):
    reg = HandlerRegistry()
    reg.on_case_saved(check=people.check_case_data)  # the person-name checks every save of a case passes
    e = Engine(db_url, registry=reg, forms=FormLibrary({"note": {"type": "object"}}))
    e.init(simulated_start=START)
    yield e
    e.db.dispose()


def started(eng, **record):
    eng.deploy(files={"keeps.bpmn": diagram()})
    res = eng.start("keeps", data={"name": "A"})
    [task] = eng.list_tasks(case_id=res.case_id)
    return res, eng.complete_task(task["id"], {"person": {"name": "Ann Lee"}, "how": None, **record})


def case_updates(eng, case_id):
    return [(ev["data"]["element_id"], ev["data"]["data"]) for ev in eng.history(case_id)
            if ev["type"] == "case.updated"]


def test_the_element_keeps_its_outputs_on_the_case_as_it_completes(eng):
    eng.deploy(files={"keeps.bpmn": diagram()})
    res = eng.start("keeps", data={"name": "A"})
    assert eng.get_case(res.case_id)["data"] == {}  # nothing kept before the element completes
    [task] = eng.list_tasks(case_id=res.case_id)
    eng.advance_clock(timedelta(days=2))
    step = eng.complete_task(task["id"], {"person": {"name": "Ann Lee"}, "how": "visit"})
    assert step.status == "waiting"
    day = (START + timedelta(days=2)).date().isoformat()  # the simulated day, not today's
    record = eng.get_case(res.case_id)["data"]
    assert record == {"person": {"name": "Ann Lee"}, "contact_on": day, "contact_kind": "visit"}
    # one case.updated event at the element, in the order written; 'colour' is not a case output
    assert case_updates(eng, res.case_id) == [
        ("record", {"person": {"name": "Ann Lee"}, "contact_on": day, "contact_kind": "visit"})]
    # the script task after it, in the same step, read the case through case()
    data = eng.instance_snapshot(res.instance_id)["data"]
    assert data["seen"] == "Ann Lee by visit"
    assert data["heard_on"] == day  # the end listener ran as the element completed


def test_the_end_execution_listener_runs_before_the_outputs_are_evaluated(eng):
    res, _ = started(eng)  # no 'how' given: the listener's script defaults the kind
    assert eng.get_case(res.case_id)["data"]["contact_kind"] == "phone"
    assert eng.instance_snapshot(res.instance_id)["data"]["kind"] == "phone"


def test_an_end_event_keeps_its_outputs_when_the_process_ends(eng):
    res, _ = started(eng)
    eng.update_case_record(res.case_id, {"visits": 1}, actor="worker")
    [follow] = eng.list_tasks(case_id=res.case_id)
    assert eng.complete_task(follow["id"], {"extra": "2"}).status == "completed"
    record = eng.get_case(res.case_id)["data"]
    assert (record["visits"], record["followed_up"]) == (3, True)
    assert case_updates(eng, res.case_id)[1:] == [("follow", {"visits": 3}), ("done", {"followed_up": True})]


def test_the_person_name_checks_apply_to_what_an_element_keeps(eng):
    eng.deploy(files={"keeps.bpmn": diagram()})
    res = eng.start("keeps", data={"name": "A"})
    [task] = eng.list_tasks(case_id=res.case_id)
    # a name hiding a zero-width space is refused: the task stays ready and nothing is stored
    with pytest.raises(ValidationError) as err:
        eng.complete_task(task["id"], {"person": {"name": "Ann\u200b Lee"}, "how": None})
    assert "must only contain characters you can see" in err.value.message
    assert eng.get_case(res.case_id)["data"] == {}
    assert [t["element_id"] for t in eng.list_tasks(case_id=res.case_id)] == ["record"]
    assert case_updates(eng, res.case_id) == []
    # a decomposed accent is kept in its composed form
    eng.complete_task(task["id"], {"person": {"name": "Jose\u0301 Lee"}, "how": None})
    assert eng.get_case(res.case_id)["data"]["person"] == {"name": "Jos\u00e9 Lee"}


def test_a_failing_output_is_an_incident_naming_element_and_key_and_a_retry_after_the_fix_keeps_it(eng):
    res, _ = started(eng)
    eng.update_case_record(res.case_id, {"visits": "none"}, actor="worker")  # not a number: the sum fails
    [follow] = eng.list_tasks(case_id=res.case_id)
    step = eng.complete_task(follow["id"], {"extra": "2"})
    assert step.status == "error"
    assert step.incident["element_id"] == "follow"
    assert "case output 'case:visits' of 'Follow up' (follow) failed" in step.incident["message"]
    assert "TypeError" in step.incident["message"]
    assert eng.get_case(res.case_id)["data"]["visits"] == "none"  # nothing of the element's outputs kept
    assert [u[0] for u in case_updates(eng, res.case_id)] == ["record"]
    eng.update_case_record(res.case_id, {"visits": 4}, actor="worker")  # the fix
    again = eng.retry(res.instance_id, actor="admin")
    [follow] = eng.list_tasks(case_id=res.case_id)  # the user task is ready again: its data is kept
    assert again.status == "waiting"
    assert eng.complete_task(follow["id"], {"extra": "2"}).status == "completed"
    assert eng.get_case(res.case_id)["data"]["visits"] == 6
    assert replay_case(eng, res.case_id).ok


def test_a_value_the_case_record_cannot_hold_is_an_incident(eng):
    eng.deploy(files={"keeps.bpmn": diagram(follow_ext="""<bpmn:extensionElements><camunda:properties>
        <camunda:property name="case:when" value="now" /></camunda:properties></bpmn:extensionElements>""")})
    res = eng.start("keeps", data={"name": "A"})
    eng.complete_task(eng.list_tasks(case_id=res.case_id)[0]["id"], {"person": {"name": "Ann Lee"}, "how": None})
    step = eng.complete_task(eng.list_tasks(case_id=res.case_id)[0]["id"], {})
    assert step.status == "error" and step.incident["element_id"] == "follow"
    assert "case output 'case:when' of 'Follow up' (follow) gives a value the case record cannot hold" \
        in step.incident["message"]
    assert "when" not in eng.get_case(res.case_id)["data"]


def test_replay_reproduces_the_record_and_its_history(eng):
    res, _ = started(eng, how="letter")
    eng.update_case_record(res.case_id, {"visits": 0}, actor="worker")
    eng.complete_task(eng.list_tasks(case_id=res.case_id)[0]["id"], {"extra": "1"})
    report = replay_case(eng, res.case_id)
    assert report.ok, str(report)
    assert report.events_replayed == len(eng.history(res.case_id))


def test_the_spiffworkflow_dialect_declares_them_the_same_way(eng):
    spiff = RECORD_EXT.replace("camunda:properties", "spiffworkflow:properties").replace(
        "camunda:property ", "spiffworkflow:property ")
    eng.deploy(files={"keeps.bpmn": diagram(record_ext=spiff)})
    res = eng.start("keeps")
    eng.complete_task(eng.list_tasks(case_id=res.case_id)[0]["id"], {"person": {"name": "Ann Lee"}, "how": "email"})
    assert eng.get_case(res.case_id)["data"]["contact_kind"] == "email"


def test_the_version_says_what_its_elements_keep(eng):
    eng.deploy(files={"keeps.bpmn": diagram()})
    with eng.db.engine.connect() as conn:
        info = json.loads(conn.execute(select(process_versions.c.info)).scalar_one())
    assert [(o["element_id"], o["name"], o["key"]) for o in info["case_outputs"]] == [
        ("record", "Record the contact", "person"), ("record", "Record the contact", "contact_on"),
        ("record", "Record the contact", "contact_kind"), ("follow", "Follow up", "visits"),
        ("done", "Done", "followed_up")]


def _prop(name: str, value: str) -> str:
    return (f'<bpmn:extensionElements><camunda:properties><camunda:property name="{name}" value="{value}" />'
            "</camunda:properties></bpmn:extensionElements>")


def _listener(inner: str, event: str = "end") -> str:
    return f'<bpmn:extensionElements><camunda:executionListener event="{event}" {inner}' \
           "</camunda:executionListener></bpmn:extensionElements>"


@pytest.mark.parametrize(("where", "ext", "element", "message"), [
    ("follow", _prop("case:2nd", "1"), "follow", "case output 'case:2nd': '2nd' is not a name for a case detail"),
    ("follow", _prop("case:", "1"), "follow", "case output 'case:': '' is not a name"),
    ("follow", _prop("case:total", ""), "follow", "case output 'case:total' has no value"),
    ("follow", _prop("case:x", "1").replace("</camunda:properties>",
                                            '<camunda:property name="case:x" value="2" /></camunda:properties>'),
     "follow", "case output 'case:x': 'x' is given more than once on this element"),
    ("follow", _prop("case:x", "__import__('os')"), "follow", "case output 'case:x' of 'Follow up' is refused"),
    ("process", _prop("case:x", "1"), "keeps",
     "case output 'case:x' is on the process 'Keep what was recorded': a case output is kept when an element "
     "completes; put it on the element whose completion gives the value"),
    ("follow", _listener('class="org.example.Notify">'), "follow",
     "an execution listener with a Java class ('org.example.Notify') cannot run: carepath runs only an inline "
     "Python script"),
    ("follow", _listener('expression="${x}">'), "follow", "execution listener with a Java expression"),
    ("follow", _listener('delegateExpression="${bean}">'), "follow", "with a Java delegateExpression"),
    ("follow", _listener('><camunda:script scriptFormat="javascript">x = 1</camunda:script>'), "follow",
     "script is written in javascript: carepath runs only an inline Python script"),
    ("follow", _listener('><camunda:script scriptFormat="python" resource="deployment://a.py" />'), "follow",
     "script is in an external resource ('deployment://a.py'): write the script inline"),
    ("follow", _listener('><camunda:script scriptFormat="python">x = 1</camunda:script>', event="take"),
     "follow", "an execution listener on event 'take' cannot run"),
    ("follow", _listener('><camunda:script scriptFormat="python">import os</camunda:script>'), "follow",
     "the execution listener script on event 'end' of 'Follow up' is refused"),
    ("process", _listener('><camunda:script scriptFormat="python">x = 1</camunda:script>'), "keeps",
     "process 'Keep what was recorded' has an execution listener"),
])
def test_a_wrong_case_output_or_listener_is_refused_at_deploy_naming_it_and_nothing_is_stored(
        eng, where, ext, element, message):
    files = diagram(follow_ext=ext) if where == "follow" else diagram(process_ext=ext)
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files={"keeps.bpmn": files})
    problems = err.value.problems
    assert any(message in p.message and p.element_id == element and p.file == "keeps.bpmn" for p in problems), \
        [p.message for p in problems]
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(process_versions)).first() is None
        assert conn.execute(select(cases)).first() is None


def test_outputs_on_a_gateway_or_a_repeated_task_are_refused(eng):
    gateway = diagram().replace(
        b'<bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="follow"/>',
        b'<bpmn:exclusiveGateway id="fork" name="Fork">' + _prop("case:x", "1").encode()
        + b'<bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f5</bpmn:outgoing></bpmn:exclusiveGateway>'
          b'<bpmn:sequenceFlow id="f3" sourceRef="check" targetRef="fork"/>'
          b'<bpmn:sequenceFlow id="f5" sourceRef="fork" targetRef="follow"/>').replace(
        b"<bpmn:incoming>f3</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing></bpmn:userTask>",
        b"<bpmn:incoming>f5</bpmn:incoming><bpmn:outgoing>f4</bpmn:outgoing>"
        b"<bpmn:multiInstanceLoopCharacteristics><bpmn:loopCardinality>2</bpmn:loopCardinality>"
        b"</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>")
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files={"keeps.bpmn": gateway})
    messages = {p.element_id: p.message for p in err.value.problems}
    assert "'Fork' is a exclusiveGateway, which cannot keep case outputs" in messages["fork"]
    assert "'Follow up' repeats (a loop or multi-instance)" in messages["follow"]


def test_a_postscript_and_an_end_listener_on_one_element_are_refused(eng):
    both = RECORD_EXT.replace("<camunda:properties>",
                              "<spiffworkflow:postScript>x = 1</spiffworkflow:postScript><camunda:properties>")
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files={"keeps.bpmn": diagram(record_ext=both)})
    assert any("'Record the contact' has both a postScript and an execution listener on event 'end': keep one"
               in p.message for p in err.value.problems)


def test_a_start_listener_runs_as_the_element_begins(eng):
    start = _listener('><camunda:script scriptFormat="python">extra = "5"</camunda:script>', event="start")
    eng.deploy(files={"keeps.bpmn": diagram(follow_ext=start.replace(
        "</bpmn:extensionElements>", '<camunda:properties><camunda:property name="case:visits" '
                                     'value="int(extra)" /></camunda:properties></bpmn:extensionElements>'))})
    res = eng.start("keeps")
    eng.complete_task(eng.list_tasks(case_id=res.case_id)[0]["id"], {"person": {"name": "Ann Lee"}, "how": None})
    [follow] = eng.list_tasks(case_id=res.case_id)
    eng.complete_task(follow["id"], {})  # no 'extra' submitted: the start listener set it as the task began
    assert eng.get_case(res.case_id)["data"]["visits"] == 5



def test_the_process_page_says_what_its_steps_keep_on_the_case(tmp_path):
    """The live version's case outputs in words, beside what it reads at start: the front door keeps the
    person's details when the contact is recorded; a process declaring none says so."""
    from tests.browser import launch, live_server, run_axe, sign_in
    from tests.front_door_world import PASSWORD, build

    eng, app, _people = build(f"sqlite:///{tmp_path / 'carepath.db'}")
    try:
        with launch() as browser, live_server(app) as base:
            page = browser.new_context(bypass_csp=True).new_page()  # axe is injected as an inline script
            sign_in(page, base, "process-owner", PASSWORD, then=None)
            page.goto(f"{base}/processes/front_door")
            row = page.locator(".govuk-summary-list__row", has_text="Kept on the case as its steps complete")
            assert row.locator("li").all_inner_texts() == ["person, when \u2018Record the contact\u2019 completes"]
            run_axe(page, "process page with its case outputs")
            page.goto(f"{base}/processes/needs_assessment")  # the test stub: its steps keep nothing
            assert "Nothing declared on its steps." in page.locator(
                ".govuk-summary-list__row", has_text="Kept on the case as its steps complete").inner_text()
    finally:
        eng.db.dispose()


BEFORE_CASE_OUTPUTS = "18bb377"  # the front door and safeguarding still drew their copy-data steps


def test_cases_on_the_versions_with_the_drawn_steps_keep_running_and_keep_the_same_details(db_url):
    """Deployed versions never change: a front door case started on the version that drew 'Keep the person's
    details on the case' and 'Note the contact' goes on with them after the new version is deployed, and
    ends with the same case record and route as a case on the new version (each replays); safeguarding
    started on the version that drew 'Note the concern date' notes the same date and person."""
    import subprocess
    from pathlib import Path

    from engine.registry import load_registry
    from tests.front_door_world import FILES

    root = Path(__file__).resolve().parent.parent

    def old(name: str) -> bytes:
        return subprocess.run(["git", "show", f"{BEFORE_CASE_OUTPUTS}:processes/{name}.bpmn"], cwd=root,
                              check=True, capture_output=True).stdout

    library = FormLibrary.from_folder(root / "forms")
    forms = FormLibrary({**{n: library.schema(n) for n in library.names()},
                         "needs_assessment_stub": {"type": "object"}})
    eng = Engine(db_url, registry=load_registry("handlers"), forms=forms)
    try:
        eng.init(simulated_start=START)
        current = {p.name: p.read_bytes() for p in FILES}
        eng.deploy(files={**current, "front_door.bpmn": old("front_door"), "safeguarding.bpmn": old("safeguarding")})
        first = eng.start("front_door")
        first_concern = eng.start("safeguarding", data={"contact_date": "2031-03-01T10:00:00+00:00"})
        eng.deploy(files=current)  # version 2 of both
        second = eng.start("front_door")
        second_concern = eng.start("safeguarding", data={"contact_date": "2031-03-01T10:00:00+00:00"})
        contact = {
            "caller": {"name": "Sam Okafor", "relationship": "gp_or_social_prescriber",
                       "organisation": "GP social prescribing"},
            "reason": "Finding it hard to get out", "needs": ["transport", "physical_activity"],
            "person": {"name": "Kyle Morgan", "age": 34, "address": "9 Station Road", "area": "north",
                       "lives_alone": True},
            "outcomes_unable": [], "safeguarding_concern": False, "crisis": False, "consents_to_referral": True,
            "from_hospital": False}
        for res in (first, second):
            [task] = eng.list_tasks(case_id=res.case_id)
            assert eng.complete_task(task["id"], dict(contact)).status == "waiting"
        records = [eng.get_case(r.case_id)["data"] for r in (first, second)]
        assert records[0] == records[1] and records[0]["person"]["name"] == "Kyle Morgan"
        assert [u[0] for u in case_updates(eng, first.case_id)] == ["keep_person"]  # the old version's step
        assert [u[0] for u in case_updates(eng, second.case_id)] == ["record_contact"]
        calls = [[(ev["data"]["element_id"], ev["data"]["handler"]) for ev in eng.history(r.case_id)
                  if ev["type"] == "handler.called"] for r in (first, second)]
        assert calls[0] == calls[1]  # the same route: signposted, the call back waiting on its timer
        assert ("record_signposting", "record_signposting") in calls[0]
        for key in ("contact_date", "plan_in_effect", "open_work"):
            assert eng.instance_snapshot(first.instance_id)["data"][key] == \
                eng.instance_snapshot(second.instance_id)["data"][key], key
        # new_information changed on purpose after the steps went (lists the task page labels, not joined codes):
        # the same contact, in the old version's strings and the new version's lists
        old, new = (eng.instance_snapshot(r.instance_id)["data"]["new_information"] for r in (first, second))
        assert old["needs"] == ", ".join(new["needs"]) and old["outcomes_unable"] == ", ".join(new["outcomes_unable"])
        assert old["caller"] == f"{new['caller']} ({new['relationship']})" and old["reason"] == new["reason"]
        concern = [eng.instance_snapshot(r.instance_id)["data"] for r in (first_concern, second_concern)]
        assert [(c["concern_date"], c["person"], c["alleged_source_of_harm"]) for c in concern] == \
            [("2031-03-01", {}, None)] * 2
        assert [t["element_id"] for t in eng.list_tasks(case_id=second_concern.case_id)] == ["record_concern"]
        for res in (first, second, first_concern, second_concern):
            assert replay_case(eng, res.case_id).ok
    finally:
        eng.db.dispose()


def test_the_modeller_panel_says_what_an_element_keeps_on_the_case(tmp_path):
    """In the modeller, a task's carepath panel lists its case outputs (what the process page shows for the live
    version); a task that keeps nothing says how to add one; a gateway has no such entry."""
    from tests.browser import launch, live_server, run_axe, sign_in
    from tests.front_door_world import PASSWORD, build
    from tests.modeller_browser import open_carepath_group, open_new_draft, select

    eng, app, _people = build(f"sqlite:///{tmp_path / 'carepath.db'}")
    try:
        with launch() as browser, live_server(app) as base:
            page = browser.new_context(bypass_csp=True, viewport={"width": 1500, "height": 1000}).new_page()
            sign_in(page, base, "process-owner", PASSWORD, then=None)
            open_new_draft(page, base, "front_door")
            select(page, "record_contact")
            open_carepath_group(page)
            entry = page.locator("[data-entry-id='carepath-case-outputs']")
            entry.wait_for()
            assert "Kept on the case when it completes" in entry.inner_text()
            assert entry.locator("li").all_inner_texts() == ["person: person"]
            run_axe(page, "modeller (a task's case outputs)")
            select(page, "screen_contact")
            assert page.locator("[data-entry-id='carepath-case-outputs'] li").all_inner_texts() == [
                "Nothing: add a property case:NAME = an expression to keep a value on the case."]
            select(page, "route_gw")
            assert page.locator("[data-entry-id='carepath-case-outputs']").count() == 0
    finally:
        eng.db.dispose()
