"""The support plan's "Type of service" question, in a real browser (axe-clean, keyboard), on the simulated clock.

A plan written before the question existed and sent back for costing more than the budget opens with its earlier
answers and no type (it still renders); the worker is told which service needs its type, chooses it with the keyboard
and the plan goes on to sign-off with the answer kept. A value outside the list (a tampered form) is refused with the
question named, and nothing is stored. docs/cld.md ("Service components").
"""

from __future__ import annotations

import pytest

from engine.forms import FormLibrary
from tests.test_cld_service_component import old_forms
from tests.test_costed_plan import HOME_CARE, PENDANT, PROCESSES, ROOT, START, costed, to_write_plan
from tests.test_process_assessment_to_review import complete, task

TYPES = ["Home support or domiciliary care", "Community supported living", "Extra care housing", "Shared Lives",
         "Equipment", "Short term residential care (a planned short stay, such as respite)",
         "Short term nursing care (a planned short stay, such as respite)", "Other or none of these"]


def _without_type(service: dict) -> dict:
    return {k: v for k, v in service.items() if k != "service_component"}


@pytest.fixture
def plan_engine(tmp_path):
    """The operating model's processes on SQLite with the demo users, on the simulated clock."""
    from tests.casework_helpers import casework_engine

    files = [ROOT / "processes" / f"{p}.bpmn" for p in PROCESSES if (ROOT / "processes" / f"{p}.bpmn").exists()]
    yield from casework_engine(f"sqlite:///{tmp_path / 'carepath.db'}", files, start=START, users=True)


def test_an_old_plan_sent_back_asks_each_services_type_and_keeps_the_answer(plan_engine):
    from api.app import create_app
    from tests.browser import launch, live_server, run_axe
    from tests.casework_helpers import SW, claimed_task_page

    eng = plan_engine
    cid = to_write_plan(eng)
    eng.forms = old_forms()  # written before the question existed: £350.00 a week against a £341.26 budget
    complete(eng, cid, "write_plan", costed(_without_type({**HOME_CARE, "units_per_week": 14}),
                                            _without_type(PENDANT)))
    eng.forms = FormLibrary.from_folder(ROOT / "forms")
    complete(eng, cid, "plan_over_budget", {"next_step": "change_plan"})
    again = task(eng, cid, "write_plan")
    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        ctx, page = claimed_task_page(browser, base, SW, "social_worker", again["id"])
        # the earlier answers are there; the new question is asked for each service, unanswered
        assert page.input_value("#f-outcomes-0-label") == HOME_CARE["label"]
        group = page.get_by_role("group", name="Type of service").first
        assert [t.strip() for t in group.locator("label").all_inner_texts()] == TYPES
        assert not any(page.is_checked(f"#f-outcomes-{i}-service_component-{n}") for i in (0, 1) for n in range(8))
        run_axe(page, "support plan with the type of service")
        page.fill("#f-outcomes-0-units_per_week", "13")  # within the budget now
        with page.expect_navigation():
            page.get_by_role("button", name="Complete task").click()
        summary = [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()]
        assert summary == ["Outcome 1: select the type of service",
                           "Outcome 2: select the type of service"], summary
        run_axe(page, "support plan: type of service not answered")
        # by keyboard: the error link takes the worker to the question, arrows choose, space confirms
        page.locator(".govuk-error-summary a").first.focus()
        page.keyboard.press("Enter")
        page.locator("#f-outcomes-0-service_component-0").focus()
        page.keyboard.press("Space")
        assert page.is_checked("#f-outcomes-0-service_component-0")  # home support
        page.locator("#f-outcomes-1-service_component-0").focus()
        for _ in range(4):
            page.keyboard.press("ArrowDown")
        assert page.is_checked("#f-outcomes-1-service_component-4")  # equipment (the falls pendant)
        with page.expect_navigation():
            page.get_by_role("button", name="Complete task").click()
        assert "There is a problem" not in page.inner_text("main"), page.inner_text("main")
        ctx.close()
    sign = task(eng, cid, "sign_off_plan")
    data = eng.instance_snapshot(sign["instance_id"])["data"]
    assert [o.get("service_component") for o in data["outcomes"]] == ["home_support", "equipment"]
    assert [s.get("service_component") for s in data["plan_cost"]["services"]] == ["home_support", "equipment"]


def test_a_type_of_service_outside_the_list_is_refused_and_nothing_is_stored(plan_engine):
    from api.app import create_app
    from tests.browser import launch, live_server, run_axe
    from tests.casework_helpers import SW, claimed_task_page

    eng = plan_engine
    cid = to_write_plan(eng)
    complete(eng, cid, "write_plan", costed({**HOME_CARE, "units_per_week": 14}, PENDANT))  # over budget
    complete(eng, cid, "plan_over_budget", {"next_step": "change_plan"})
    again = task(eng, cid, "write_plan")
    before = len(eng.history(cid))
    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        ctx, page = claimed_task_page(browser, base, SW, "social_worker", again["id"])
        assert page.is_checked("#f-outcomes-0-service_component-0")  # the earlier answer: home support
        page.fill("#f-outcomes-0-units_per_week", "13")
        # a tampered form: the chosen radio sends a value that is not in the list
        page.eval_on_selector("#f-outcomes-0-service_component-0", "e => { e.value = 'day_centre'; }")
        with page.expect_navigation():
            page.get_by_role("button", name="Complete task").click()
        summary = [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()]
        assert summary == ["Outcome 1: type of service must be one of the types listed"], summary
        assert page.locator("#f-outcomes-0-service_component-error").count() == 1
        run_axe(page, "support plan: type of service not in the list")
        ctx.close()
    assert task(eng, cid, "write_plan")["id"] == again["id"]  # still to do
    assert not [e for e in eng.history(cid)[before:] if e["type"] == "task.completed"]


def test_the_worker_writing_the_plan_sees_the_budget_it_is_costed_against(plan_engine):
    """The social worker costs each service against the personal budget: the page says the budget, a year and a
    week, before the questions (it used to say nothing, and the worker found the budget only by being sent back
    for a shortfall), with no empty row for what the plan's copy of the budget does not carry."""
    from api.app import create_app
    from tests.browser import launch, live_server, run_axe
    from tests.casework_helpers import SW, claimed_task_page

    eng = plan_engine
    cid = to_write_plan(eng)  # 16 points: £17,745.45 a year, £341.26 a week
    write = task(eng, cid, "write_plan")
    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        ctx, page = claimed_task_page(browser, base, SW, "social_worker", write["id"])
        main = page.inner_text("main")
        assert "The personal budget this plan is costed against" in main
        assert "Annual personal budget\t£17,745.45" in main and "Weekly equivalent\t£341.26" in main
        assert "None" not in main
        run_axe(page, "support plan with the budget shown")
        ctx.close()


def test_the_manager_signing_off_a_plan_sees_the_plan_not_only_its_cost(plan_engine):
    """'Check the plan meets the eligible needs legally, effectively and affordably': the sign-off page showed the
    cost against the budget but not the plan itself (how each outcome is met, how the money is managed, what the
    person may change, who co-ordinates it). It now shows the plan's answers above its cost, as the carer's
    plan sign-off does."""
    from api.app import create_app
    from tests.browser import launch, live_server, run_axe
    from tests.casework_helpers import TM, claimed_task_page

    eng = plan_engine
    cid = to_write_plan(eng)
    complete(eng, cid, "write_plan", costed(HOME_CARE, PENDANT))  # £175.00 a week against £341.26
    sign_off = task(eng, cid, "sign_off_plan")
    with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
        ctx, page = claimed_task_page(browser, base, TM, "team_manager", sign_off["id"])
        main = page.inner_text("main")
        assert "The support plan" in main
        assert "Get washed and dressed every morning: Home care, 1 hour each morning" in main
        assert "Feel safe at home at night: A falls pendant" in main
        assert "How the money is managed\tCouncil managed" in main
        assert "What the person may change without contacting the council\tThe time of the morning visit" in main
        assert "The plan costs\t£175.00 a week" in main  # the cost is still there
        run_axe(page, "plan sign-off with the plan shown")
        ctx.close()
