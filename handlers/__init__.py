"""carepath's service-task handlers for adult social care.

`register(registry)` is what the engine calls (CAREPATH_HANDLERS=handlers, the default): it
registers every handler by the name diagrams use, and the working-day functions that
expressions in diagrams may call.
"""

from __future__ import annotations

from engine.registry import HandlerRegistry

from . import (
    budget,
    capacity,
    carers,
    charging,
    charging_letters,
    directory,
    eligibility,
    equipment,
    letter_sending,
    letters,
    people,
    retention,
    settings,
    transition,
    urgent_response,
    working_days,
)
from .teams import TEAMS


def register(registry: HandlerRegistry) -> None:
    for module in (eligibility, budget, carers, directory, letters, settings, working_days, urgent_response,
                   equipment, transition, capacity, charging, charging_letters):
        module.register(registry)
    for name, fn in working_days.EXPRESSION_FUNCTIONS.items():
        registry.expression_function(name, fn, bounded=True)  # days capped at 3,660
    registry.teams = TEAMS
    # filed letters queued and sent through GOV.UK Notify when the council configures it
    letter_sending.register(registry)
    retention.register(registry)  # the daily list of cases due for erasure
    # names checked and normalised on every save of a case's details; the people table kept in step
    registry.on_case_saved(check=people.check_case_data, saved=people.keep_in_step)
