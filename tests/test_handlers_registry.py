"""The handlers package registers everything diagrams call, and expressions can count working days."""

from __future__ import annotations

from engine.registry import load_registry
from engine.scripting import CarepathScriptEngine


def test_every_social_care_handler_is_registered_by_name():
    reg = load_registry("handlers")
    assert {"adult_eligibility", "carer_eligibility", "personal_budget", "check_budget_change", "deadline",
            "search_directory", "record_signposting", "eligibility_letter", "budget_letter",
            "support_plan_letter", "start_process"} <= reg.names()


def test_diagram_expressions_can_count_england_and_wales_working_days():
    reg = load_registry("handlers")
    engine = CarepathScriptEngine(reg, reg.functions)
    # Christmas 2026: 25 Dec is a Friday, Boxing Day is substituted on Monday 28 Dec
    assert engine.environment.evaluate("add_working_days('2026-12-24', 1)", {}) == "2026-12-29"
