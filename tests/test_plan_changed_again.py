"""A support plan sent back is changed, not typed again (issue 11 item 5, tried as a new social worker would).

In the demo, a plan costing £750.00 a week against a £560.31 budget was stopped ("Plan costs more than the
budget"); the worker chose "Change the plan" and "Write support plan" opened empty: every service, provider,
unit cost, the co-ordinating worker and the rest had to be typed again. The form (`"x-startFromEarlierAnswers":
true` on forms/support_plan.schema.json) now starts from the answers given last time, from the process data; the
first time it is empty as before. In a real browser, axe-clean, on the simulated clock (SQLite).
"""

from __future__ import annotations

import pytest

from tests.test_costed_plan import FILES, HOME_CARE, PENDANT, ROOT, START, costed, to_write_plan
from tests.test_process_assessment_to_review import complete, task


def test_the_plan_sent_back_opens_with_what_was_written_and_the_first_one_opens_empty(tmp_path):
    from api.app import create_app
    from tests.browser import launch, live_server, run_axe
    from tests.casework_helpers import SW, claimed_task_page, engine_on_file

    with engine_on_file(tmp_path, FILES, start=START, users=True) as eng:
        first_case = to_write_plan(eng)
        first = task(eng, first_case, "write_plan")
        cid = to_write_plan(eng)
        complete(eng, cid, "write_plan", costed({**HOME_CARE, "units_per_week": 14}, PENDANT))  # £350.00 a week
        complete(eng, cid, "plan_over_budget", {"next_step": "change_plan"})
        again = task(eng, cid, "write_plan")
        with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
            ctx, page = claimed_task_page(browser, base, SW, "social_worker", first["id"])
            assert page.input_value("#f-outcomes-0-label") == ""
            assert page.input_value("#f-coordinating_worker-name") == ""
            ctx.close()

            ctx, page = claimed_task_page(browser, base, SW, "social_worker", again["id"])
            assert page.input_value("#f-outcomes-0-label") == HOME_CARE["label"]
            assert page.input_value("#f-outcomes-0-provider") == "Northtown Care"
            assert page.input_value("#f-outcomes-0-unit_cost") == "25.00"
            assert page.input_value("#f-outcomes-0-units_per_week") == "14"
            assert page.input_value("#f-outcomes-1-label") == PENDANT["label"]
            assert page.is_checked("#f-outcomes-0-delivery-2")  # council-commissioned
            assert page.input_value("#f-coordinating_worker-name") == "Jane Smith"
            run_axe(page, "support plan changed after a shortfall")
            # the worker changes only the hours: 13 hours, £325.00, within the £341.26 budget
            page.fill("#f-outcomes-0-units_per_week", "13")
            with page.expect_navigation():
                page.get_by_role("button", name="Complete task").click()
            assert "There is a problem" not in page.inner_text("main"), page.inner_text("main")
            ctx.close()
        sign = task(eng, cid, "sign_off_plan")
        assert sign["element_id"] == "sign_off_plan"
        data = eng.instance_snapshot(sign["instance_id"])["data"]
        assert data["plan_cost"]["weekly_cost"] == "325.00"
        assert [o["label"] for o in data["outcomes"]] == [HOME_CARE["label"], PENDANT["label"]]


def test_units_without_a_unit_cost_names_the_question_in_plain_words(tmp_path):
    """The demo showed "Outcome 1: 'unit_cost' is a dependency of 'units_per_week'" (JSON Schema's own words) when
    the hours were given and the cost of one unit was not. Now the missing answer is named at its question."""
    from engine.errors import ValidationError
    from engine.forms import FormLibrary

    forms = FormLibrary.from_folder(ROOT / "forms")
    service = {"label": "Get washed", "how_met": "Home care", "service_component": "home_support"}
    plan = {**costed(HOME_CARE), "outcomes": [{**service, "units_per_week": 7}]}
    with pytest.raises(ValidationError) as units_without_cost:
        forms.validate("support_plan", plan)
    assert units_without_cost.value.errors == [{"field": "outcomes/0/unit_cost", "message": "'unit_cost' is required"}]
    plan["outcomes"] = [{**service, "unit_cost": 25}]
    with pytest.raises(ValidationError) as cost_without_units:
        forms.validate("support_plan", plan)
    assert cost_without_units.value.errors == [{"field": "outcomes/0/units_per_week",
                                                "message": "'units_per_week' is required"}]
    plan["outcomes"] = [{**service, "unit_cost": 25, "units_per_week": 7}]
    forms.validate("support_plan", plan)


def test_the_page_says_which_answer_is_missing(tmp_path):
    from api.app import create_app
    from tests.browser import launch, live_server, run_axe
    from tests.casework_helpers import SW, claimed_task_page, engine_on_file

    with engine_on_file(tmp_path, FILES, start=START, users=True) as eng:
        cid = to_write_plan(eng)
        write = task(eng, cid, "write_plan")
        with live_server(create_app(eng, run_timers=False)) as base, launch() as browser:
            ctx, page = claimed_task_page(browser, base, SW, "social_worker", write["id"])
            page.fill("#f-outcomes-0-label", "Get washed and dressed")
            page.fill("#f-outcomes-0-how_met", "Home care each morning")
            page.fill("#f-outcomes-0-units_per_week", "7")
            with page.expect_navigation():
                page.get_by_role("button", name="Complete task").click()
            summary = [t.strip() for t in page.locator(".govuk-error-summary a").all_inner_texts()]
            assert "Outcome 1: enter the cost of one unit, as the plan gives units a week" in summary, summary
            assert not any("dependency" in t or "'" in t for t in summary), summary
            run_axe(page, "support plan with units but no unit cost")
            ctx.close()
