"""Long forms answered a section at a time (`x-sections`, engine/forms.py, api/page_forms.py,
api/task_sections.py): the declaration is checked, the task page is a task list whose statuses follow
the saved answers, each section is its own page saved as you go, Check your answers lists what is
shown (not hidden questions) with Change links and completes the task. Errors name the question and
the item, never refer to a hidden question, and are never said twice.

The real needs_assessment and carers_assessment forms are used on the test diagram's task.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from api.app import create_app
from api.auth import create_user
from api.page_forms import engine_errors, fields_for, read_form, set_errors
from engine.errors import DefinitionError, ValidationError
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.conftest import DIAGRAMS, START, Calls
from tests.test_pages_inbox import PASSWORD, _signin_client

FORMS = Path(__file__).resolve().parent.parent / "forms"
LIB = FormLibrary.from_folder(FORMS)
NEEDS = LIB.schema("needs_assessment")
OUTCOMES = list(NEEDS["properties"]["outcomes"]["properties"])


def _outcome(unable: bool) -> dict:
    return ({"unable": True, "ways": ["needs_assistance_incl_prompting"], "reason": "Cannot cook safely"}
            if unable else {"unable": False, "ways": [], "reason": ""})


# ---------------------------------------------------------------------- the declaration
def _library(tmp_path: Path, sections) -> FormLibrary:
    schema = {"type": "object", "properties": {"a": {"type": "string"},
                                               "o": {"type": "object", "properties": {"x": {"type": "string"},
                                                                                     "y": {"type": "string"}}}},
              "x-sections": sections}
    (tmp_path / "f.schema.json").write_text(json.dumps(schema))
    return FormLibrary.from_folder(tmp_path)


def test_sections_may_split_an_object_and_are_read_back(tmp_path):
    lib = _library(tmp_path, [{"id": "one", "title": "One", "fields": ["a", "o.x"]},
                              {"id": "two", "title": "Two", "fields": ["o.y"]}])
    assert [s["id"] for s in lib.sections("f")] == ["one", "two"]
    assert lib.sections("no_such_form") == [] and lib.sections(None) == []


@pytest.mark.parametrize("sections, problem", [
    ([{"id": "one", "title": "One", "fields": ["a"]}], "'o' is in no section"),
    ([{"id": "one", "title": "One", "fields": ["a", "o", "o.x"]}], "both whole and in parts"),
    ([{"id": "one", "title": "One", "fields": ["a", "o.x"]}], "are in none: y"),
    ([{"id": "one", "title": "One", "fields": ["a", "o", "b"]}], "names 'b'"),
    ([{"id": "one", "title": "One", "fields": ["a"]}, {"id": "one", "title": "Two", "fields": ["o"]}], "unique"),
    ([{"id": "one", "title": "One", "fields": ["a", "o"]}, {"id": "two", "title": "Two", "fields": ["a"]}],
     "already in section 'one'"),
    ([{"id": "one", "title": "", "fields": ["a", "o"]}], "title"),
    ([], "non-empty list"),
])
def test_a_wrong_declaration_is_named(tmp_path, sections, problem):
    with pytest.raises(DefinitionError) as exc:
        _library(tmp_path, sections)
    assert problem in str(exc.value)


# ---------------------------------------------------------------------- errors that help
def _page_errors(schema: dict, form: dict) -> list[str]:
    fields = fields_for(schema)
    data, local = read_form(fields, form)
    try:
        FormLibrary({"f": schema}).validate("f", data)
        messages: dict = {}
    except ValidationError as exc:
        messages, _general = engine_errors(fields, exc.errors)
    return [e["text"] for e in set_errors(fields, {**messages, **local})]


def test_an_empty_needs_assessment_names_each_item_once_and_no_hidden_question():
    texts = _page_errors(NEEDS, {})
    assert len(texts) == len(set(texts)), texts
    assert "Personal hygiene: select whether the person is unable to achieve this" in texts
    assert "Nutrition: select whether the person is unable to achieve this" in texts
    assert sum("unable to achieve this" in t for t in texts) == len(OUTCOMES)
    # "In what way" and "Reasons" show only under Yes, the carer only under "someone cares": not reported
    assert not [t for t in texts if "in what way" in t.lower() or "reasons (these" in t.lower()], texts
    assert not [t for t in texts if "carer" in t.lower() and "care for the person" not in t.lower()], texts
    assert len(texts) == len(OUTCOMES) + 4  # + impairment, wellbeing (impact, reasons), who cares


def test_under_yes_the_revealed_questions_are_named_with_their_item():
    form = {"outcomes.personal_hygiene.unable": ["true"], "carer_present": ["true"]}
    texts = _page_errors(NEEDS, form)
    assert "Personal hygiene: select in what way the person is unable to achieve this" in texts
    assert "Personal hygiene: enter the reasons (they go into the decision letter)" in texts
    assert "Enter carer's name" in texts
    # and the interpreter's language only when an interpreter is needed
    assert not any("interpreter" in t.lower() for t in texts)
    texts = _page_errors(NEEDS, {"interpreter_needed": ["true"]})
    assert "Enter language or kind of interpreter" in texts


def test_the_carers_assessment_is_in_sections_and_its_errors_name_the_carer_and_the_item():
    carers = LIB.schema("carers_assessment")
    assert [s["id"] for s in LIB.sections("carers_assessment")] == ["about", "capacity", "caring", "caring-and-home",
                                                                    "life", "wellbeing"]
    texts = _page_errors(carers, {"outcomes.nutrition.unable": ["true"]})
    assert "Nutrition: select in what way the carer is unable to achieve this" in texts
    assert "Caring for a child: select whether the carer is unable to achieve this" in texts
    assert len(texts) == len(set(texts))
    # the added questions are optional: a carer's assessment without them is still valid
    assert "willing_to_continue" not in carers["required"]


# ---------------------------------------------------------------------- pages
@pytest.fixture
def needs_world(db_url):
    """The test diagram's task with the real needs assessment form, claimed by rosa."""
    eng = Engine(db_url, registry=Calls().registry(),
                 forms=FormLibrary({"reablement_outcome": NEEDS, "overrun": {"type": "object"}}))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    app = create_app(eng, run_timers=False)
    create_user(eng, "rosa", PASSWORD, display_name="Rosa Patel", roles=["reablement_coordinator"],
                teams=["reablement"])
    case = eng.start("deadline", title="Mrs Joan Barker").case_id
    task = next(t for t in eng.list_tasks(case_id=case) if t["element_id"] == "reablement")
    client, csrf = _signin_client(app, "rosa")
    assert client.post(f"/tasks/{task['id']}/claim", data={"csrf_token": csrf}).status_code == 303
    yield eng, client, csrf, task
    eng.db.dispose()


def _statuses(html: str) -> dict[str, str]:
    out = {}
    for sid, status in re.findall(r'id="status-([a-z-]+)">\s*(.*?)\s*</div>', html, re.S):
        out[sid] = re.sub(r"<[^>]+>", "", status).strip()
    return out


def _revision(client, url: str) -> str:
    return re.search(r'name="revision" value="(\d+)"', client.get(url).text).group(1)


def _post_section(client, csrf, task, sid, answers: dict, action="continue"):
    url = f"/tasks/{task['id']}/sections/{sid}"
    data = {"csrf_token": csrf, "revision": _revision(client, url), "action": action, **answers}
    return client.post(url, data=data)


DAILY = {"needs_from_impairment": "true",
         **{f"outcomes.{k}.unable": "false" for k in OUTCOMES[:5]},
         "outcomes.personal_hygiene.unable": "true",
         "outcomes.personal_hygiene.ways": "needs_assistance_incl_prompting",
         "outcomes.personal_hygiene.reason": "Cannot wash without prompting"}


def test_the_task_page_is_a_task_list_and_sections_save_as_you_go(needs_world):
    eng, client, csrf, task = needs_world
    page = client.get(f"/tasks/{task['id']}")
    assert page.status_code == 200 and 'class="govuk-task-list"' in page.text
    assert 'name="outcomes.personal_hygiene.unable"' not in page.text  # not every question on one page
    assert set(_statuses(page.text).values()) == {"Not started"} and len(_statuses(page.text)) == 6

    # half a section: saved, its missing answers said on its own page, named with the item
    half = {k: v for k, v in DAILY.items() if "nutrition" not in k}
    r = _post_section(client, csrf, task, "daily-living", half)
    assert r.status_code == 400
    assert "Nutrition: select whether the person is unable to achieve this" in r.text
    assert "Personal hygiene" not in re.search(r'govuk-error-summary.*?</div>\s*</div>', r.text, re.S).group(0)
    assert eng.get_task(task["id"])["draft"]["outcomes"]["personal_hygiene"]["reason"] == \
        "Cannot wash without prompting"
    assert _statuses(client.get(f"/tasks/{task['id']}").text)["daily-living"] == "In progress"

    r = _post_section(client, csrf, task, "daily-living", DAILY)
    assert r.status_code == 303 and r.headers["location"] == f"/tasks/{task['id']}"
    statuses = _statuses(client.get(f"/tasks/{task['id']}").text)
    assert statuses["daily-living"] == "Completed" and statuses["about"] == "Not started"
    # another section keeps the first one's answers
    r = _post_section(client, csrf, task, "person", {"person_views": "I want to stay at home"})
    assert r.status_code == 303
    draft = eng.get_task(task["id"])["draft"]
    assert draft["person_views"] == "I want to stay at home" and draft["outcomes"]["personal_hygiene"]["unable"]


def test_check_your_answers_lists_what_is_shown_and_completes_the_task(needs_world):
    eng, client, csrf, task = needs_world
    tid = task["id"]
    early = client.post(f"/tasks/{tid}", data={"csrf_token": csrf, "revision": _revision(client, f"/tasks/{tid}"),
                                               "action": "submit-answers"})
    assert early.status_code == 400 and "Eligibility: daily living: Nutrition: select whether" in early.text
    assert f'href="/tasks/{tid}/sections/daily-living?from=check#f-outcomes-managing_nutrition-unable-0"' in early.text
    assert not [e for e in eng.history(task["case_id"]) if e["type"] == "task.completed"]

    assert _post_section(client, csrf, task, "daily-living", DAILY).status_code == 303
    rest = {f"outcomes.{k}.unable": "false" for k in OUTCOMES[5:]}
    assert _post_section(client, csrf, task, "home-and-community", rest).status_code == 303
    assert _post_section(client, csrf, task, "wellbeing", {
        "wellbeing_impact.significant": "true", "wellbeing_impact.reason": "Isolated at home",
        "wellbeing_impact.areas": "personal_dignity"}).status_code == 303
    assert _post_section(client, csrf, task, "carer", {"carer_present": "false"}).status_code == 303
    assert _post_section(client, csrf, task, "about", {"interpreter_needed": "false",
                                                       "consent_to_share": "given"}).status_code == 303
    check = client.get(f"/tasks/{tid}/check-answers")
    assert check.status_code == 200
    assert "Personal hygiene: in what way unable" in check.text and "Cannot wash without prompting" in check.text
    assert "Nutrition: in what way unable" not in check.text  # hidden under No
    assert "Carer&#39;s name" not in check.text and "Language or kind of interpreter" not in check.text
    assert f'href="/tasks/{tid}/sections/about?from=check#f-consent_to_share-0"' in check.text
    r = client.post(f"/tasks/{tid}", data={"csrf_token": csrf, "revision": _revision(client, f"/tasks/{tid}"),
                                           "action": "submit-answers"})
    assert r.status_code == 303, r.text
    done = [e["data"]["data"] for e in eng.history(task["case_id"]) if e["type"] == "task.completed"][-1]
    assert done["outcomes"]["personal_hygiene"]["ways"] == ["needs_assistance_incl_prompting"]
    assert done["consent_to_share"] == "given" and "carer" not in done


def test_section_pages_need_the_token_a_known_section_and_the_task_claimed(needs_world, db_url):
    eng, client, csrf, task = needs_world
    tid = task["id"]
    assert client.get(f"/tasks/{tid}/sections/nope").status_code == 404
    r = client.post(f"/tasks/{tid}/sections/about", data={"consent_to_share": "given"})
    assert r.status_code == 403 and eng.get_task(tid).get("draft") is None
    create_user(eng, "omar", PASSWORD, display_name="Omar Shah", roles=["occupational_therapist"],
                teams=["reablement"])
    other, other_csrf = _signin_client(client.app, "omar")
    assert other.get(f"/tasks/{tid}/sections/about").status_code == 303  # rosa has it: back to the task page
    r = other.post(f"/tasks/{tid}/sections/about", data={"csrf_token": other_csrf, "consent_to_share": "given"})
    assert r.status_code == 403 and eng.get_task(tid).get("draft") is None


# ---------------------------------------------------------------------- approval tasks show what is approved
import tests.test_process_assessment_to_review as scenario  # noqa: E402
from tests.test_process_assessment_to_review import LARGE, assessment, complete, ras, start  # noqa: E402


@pytest.fixture
def process_eng(db_url):
    """Every diagram deployed with the real forms and handlers (as the assessment-to-review scenarios)."""
    engine = Engine(db_url, registry=scenario.load_registry("handlers"), forms=LIB)
    engine.init(simulated_start=scenario.START)
    engine.deploy(scenario.PROCESS_FILES)
    yield engine
    engine.db.dispose()


def test_the_budget_approval_page_shows_the_budget_and_its_breakdown_above_the_decision(process_eng):
    eng = process_eng
    cid = start(eng).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition", "toilet_needs"))
    complete(eng, cid, "score_needs", ras(**LARGE))
    approve = next(t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "approve_budget")
    app = create_app(eng, run_timers=False)
    create_user(eng, "tess", PASSWORD, display_name="Tess Manager", roles=["team_manager"], teams=["team_manager"])
    client, _csrf = _signin_client(app, "tess")
    page = client.get(f"/tasks/{approve['id']}")
    assert page.status_code == 200
    text = page.text
    assert "The budget to approve" in text and "£55,454.55" in text
    assert "How the points were worked out" in text and "Very high" in text
    assert text.index("£55,454.55") < text.index('name="approved"')  # read-only, above the decision
    from tests.browser import launch, live_server, run_axe, sign_in

    with live_server(app) as base, launch() as browser:
        page = browser.new_context(bypass_csp=True).new_page()
        sign_in(page, base, "tess", PASSWORD)
        page.goto(f"{base}/tasks/{approve['id']}")
        assert page.get_by_role("table").locator("caption").inner_text() == "How the points were worked out"
        run_axe(page, "budget approval")


def test_show_data_must_name_variables(tmp_path):
    (tmp_path / "f.schema.json").write_text(json.dumps({"type": "object", "x-showData": ["budget"]}))
    with pytest.raises(DefinitionError) as exc:
        FormLibrary.from_folder(tmp_path)
    assert "x-showData must be a list of {variable, title, labelsFrom}" in str(exc.value)
    (tmp_path / "f.schema.json").write_text(json.dumps(
        {"type": "object", "x-showData": [{"variable": "budget", "labelsFrom": 3}]}))
    with pytest.raises(DefinitionError) as exc:
        FormLibrary.from_folder(tmp_path)
    assert "labelsFrom: the form whose question titles and option names label its values" in str(exc.value)


# ---------------------------------------------------------------------- the advisor sees the screening outcome
def _as_form(data: dict, prefix: str = "") -> dict:
    out: dict = {}
    for k, v in data.items():
        name = prefix + k
        if isinstance(v, dict):
            out.update(_as_form(v, name + "."))
        elif isinstance(v, bool):
            out[name] = "true" if v else "false"
        elif isinstance(v, list):
            out[name] = [str(x) for x in v]
        else:
            out[name] = str(v)
    return out


def test_the_advisor_sees_the_screening_outcome_and_it_is_in_the_chronology(db_url):
    from tests.front_door_world import build, username
    from tests.test_pages_intake import signin
    from tests.test_process_front_door_reablement import contact

    eng, app, people = build(db_url)
    try:
        cid = people["edith"]
        rec = next(t for t in eng.list_tasks(case_id=cid) if t["element_id"] == "record_contact")
        client, csrf = signin(app, username("front_door_advisor"))
        page = client.get(f"/tasks/{rec['id']}")
        assert page.status_code == 200, page.text
        assert client.post(f"/tasks/{rec['id']}/claim", data={"csrf_token": csrf}).status_code == 303
        answers = contact(person_name="Edith Clarke", outcomes_unable=["personal_hygiene", "nutrition"])
        rev = re.search(r'name="revision" value="(\d+)"', client.get(f"/tasks/{rec['id']}").text).group(1)
        r = client.post(f"/tasks/{rec['id']}", data={"csrf_token": csrf, "revision": rev, "action": "complete",
                                                     **_as_form(answers)})
        assert r.status_code == 200, re.search(r"error-summary__list.*?</ul>", r.text, re.S).group(0)
        assert "Contact recorded" in r.text and "Screening outcome" in r.text
        assert "Reablement first" in r.text
        assert "Unable to achieve two or more eligibility outcomes: likely eligible, reablement first" in r.text
        from tests.browser import launch, live_server, run_axe

        with live_server(app) as base, launch() as browser:  # the confirmation page as the advisor sees it
            page = browser.new_context(bypass_csp=True).new_page()
            page.goto(f"{base}/sign-in")
            page.set_content(r.text)
            assert page.get_by_role("heading", level=1).inner_text() == "Contact recorded"
            run_axe(page, "contact recorded, screening outcome")
        case = client.get(f"/cases/{cid}")
        assert "Record the contact completed by" in case.text
        assert "Screening outcome: reablement first (Unable to achieve two or more eligibility outcomes" in case.text
    finally:
        eng.db.dispose()


# ---------------------------------------------------------------------- in the browser, keyboard only
def _focused(page) -> str:
    return page.evaluate("() => document.activeElement.id || document.activeElement.textContent.trim()")


def _tab_to(page, target: str, limit: int = 120) -> None:
    for _ in range(limit):
        page.keyboard.press("Tab")
        if _focused(page) == target:
            return
    raise AssertionError(f"Tab never reached {target!r}")


def _enter(page) -> None:
    with page.expect_navigation():
        page.keyboard.press("Enter")


def test_a_social_worker_completes_the_needs_assessment_by_keyboard_through_the_task_list(db_url):
    from tests.browser import launch, live_server, run_axe, sign_in

    eng = Engine(db_url, registry=Calls().registry(),
                 forms=FormLibrary({"reablement_outcome": NEEDS, "overrun": {"type": "object"}}))
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    app = create_app(eng, run_timers=False)
    create_user(eng, "rosa", PASSWORD, display_name="Rosa Patel", roles=["reablement_coordinator"],
                teams=["reablement"])
    case = eng.start("deadline", title="Mrs Joan Barker").case_id
    task = next(t for t in eng.list_tasks(case_id=case) if t["element_id"] == "reablement")
    try:
        with live_server(app) as base, launch() as browser:
            page = browser.new_context(bypass_csp=True).new_page()
            sign_in(page, base, "rosa", PASSWORD)
            page.goto(f"{base}/tasks/{task['id']}")
            _tab_to(page, "Claim this task")
            _enter(page)
            page.goto(f"{base}/tasks/{task['id']}")
            assert page.locator(".govuk-task-list__item").count() == 6
            run_axe(page, "task list, nothing started")

            # Eligibility: daily living, first with an answer missing: the error names the item
            _tab_to(page, "Eligibility: daily living")
            _enter(page)
            run_axe(page, "section page")
            _tab_to(page, "f-needs_from_impairment-0")
            page.keyboard.press("Space")  # Yes
            _tab_to(page, "f-outcomes-personal_hygiene-unable-0")
            page.keyboard.press("Space")  # Yes: "in what way" and the reasons are revealed
            _tab_to(page, "f-outcomes-personal_hygiene-ways-0")
            page.keyboard.press("Space")
            _tab_to(page, "f-outcomes-personal_hygiene-reason")
            page.keyboard.type("Cannot wash without prompting")
            for key in ("toilet_needs", "being_clothed", "using_home_safely"):
                _tab_to(page, f"f-outcomes-{key}-unable-0")
                page.keyboard.press("ArrowDown")  # No
            _tab_to(page, "Save and continue")
            _enter(page)
            summary = page.locator(".govuk-error-summary")
            assert summary.inner_text().count("\n") >= 1
            assert "Nutrition: select whether the person is unable to achieve this" in summary.inner_text()
            assert "Personal hygiene" not in summary.inner_text()
            run_axe(page, "section page with an error")
            _tab_to(page, "f-outcomes-managing_nutrition-unable-0")
            page.keyboard.press("ArrowDown")
            _tab_to(page, "Save and continue")
            _enter(page)
            assert page.url == f"{base}/tasks/{task['id']}"
            assert page.locator("#status-daily-living").inner_text().strip() == "Completed"

            _tab_to(page, "Eligibility: home, relationships and community")
            _enter(page)
            for key in OUTCOMES[5:]:
                _tab_to(page, f"f-outcomes-{key}-unable-0")
                page.keyboard.press("ArrowDown")
            _tab_to(page, "Save and continue")
            _enter(page)

            _tab_to(page, "Impact on wellbeing")
            _enter(page)
            _tab_to(page, "f-wellbeing_impact-significant-0")
            page.keyboard.press("Space")
            _tab_to(page, "f-wellbeing_impact-reason")
            page.keyboard.type("Isolated at home")
            _tab_to(page, "f-wellbeing_impact-areas-0")
            page.keyboard.press("Space")
            _tab_to(page, "Save and continue")
            _enter(page)

            _tab_to(page, "Carer and other notes")
            _enter(page)
            _tab_to(page, "f-carer_present-0")
            page.keyboard.press("ArrowDown")  # No
            _tab_to(page, "Save and continue")
            _enter(page)

            _tab_to(page, "What matters to the person")
            _enter(page)
            _tab_to(page, "f-person_views")
            page.keyboard.type("I want to stay in my own home")
            _tab_to(page, "Save and continue")
            _enter(page)
            statuses = page.locator(".govuk-task-list__status").all_inner_texts()
            assert [s.strip() for s in statuses] == ["Not started"] + ["Completed"] * 5
            run_axe(page, "task list, five sections completed")

            _tab_to(page, "Check your answers")
            _enter(page)
            assert "I want to stay in my own home" in page.content()
            assert "Nutrition: in what way unable" not in page.inner_text("main")
            run_axe(page, "check your answers")
            _tab_to(page, "Complete task")
            _enter(page)
            assert page.url.endswith("/tasks?view=mine")
        done = [e["data"]["data"] for e in eng.history(case) if e["type"] == "task.completed"][-1]
        assert done["outcomes"]["personal_hygiene"] == {"unable": True, "ways": ["needs_assistance_incl_prompting"],
                                                        "reason": "Cannot wash without prompting"}
        assert done["person_views"] == "I want to stay in my own home" and done["carer_present"] is False
    finally:
        eng.db.dispose()
