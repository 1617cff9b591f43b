"""Acting on a case from its record, closing it, ending one of its processes (issue 10, items 1 and 2).

Actions start the right process on the case with checked start data:

=====================  =========================  ===========================================================
action                 process                    asks
=====================  =========================  ===========================================================
safeguarding           safeguarding               the concern, who raised it, whether it is urgent
review                 review (unplanned)         the CLD reason, who asked, a note (needs a signed-off plan;
                                                  no review already under way)
carers_assessment      carers_assessment          the carer's name and relationship (address and the carer's own
                                                  case reference optional: an unknown reference is refused)
dp_review              direct_payment_review      the trigger (breach, capacity or concern) and a note (needs
                                                  a direct payment in place)
hospital_discharge     hospital_discharge         the reason for admission, the ward (age from the record)
urgent_response        urgent_response            what the crisis is, who responds (or the team decides); none
                                                  already under way
equipment              equipment                  what the person needs help with; none already under way
change_in_circumstances review (unplanned)        what changed, who told us (needs a signed-off plan; no
                                                  review already under way)
=====================  =========================  ===========================================================

Closing a case (``close``) or ending one process (``end``) takes a reason from ``CLOSE_REASONS``
(died needs the date of death, not in the future; moved_away needs the council); every open task
and timer is withdrawn (engine/lifecycle.py) and the CLD events end with the reason's outcome
(handlers/cld.py CLOSURE_OUTCOMES). Who may do what: ``ACTION_ROLES`` / ``CLOSE_ROLES``, written in
docs/security.md ("Acting on a case"). The pages post a one-time token so a double click starts
one process, not two.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import date, datetime, timedelta
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import delete, insert, select

from engine.clock import as_utc
from engine.errors import ConflictError, NotFoundError, StateError, ValidationError
from engine.lifecycle import OPEN_STATUSES, closure
from engine.schema import cases, instances, process_versions, settings, tasks
from handlers.capacity import ADVOCACY_ACTIVE
from handlers.carers import check_carer_start
from handlers.cld import CLOSURE_OUTCOMES, UNPLANNED_REVIEW_REASONS
from handlers.fields import check_text
from handlers.people import check_name, person_of

from . import page_kit as kit
from .auth import OVERSIGHT_ROLES, User, current_user, get_engine
from .cases import open_case
from .errors import forbidden
from .inputs import Id

router = APIRouter()
NOTE_MAX = 2000
SHORT_MAX = 200
REQUESTED_BY = {"person": "The person", "carer": "A carer", "provider": "A provider", "worker": "A worker",
                "other": "Someone else"}
DP_TRIGGERS = {"breach": "A suspected breach of the direct payment agreement",
               "capacity": "A change in the person's capacity",
               "concern": "A concern that the money is not meeting the person's needs"}

CASEWORK = ("social_worker", "occupational_therapist", "team_manager")
ACTION_ROLES: dict[str, tuple[str, ...]] = {
    "safeguarding": ("front_door_advisor", "social_worker", "occupational_therapist", "reablement_coordinator",
                     "team_manager", "finance_officer"),  # anyone who works with the person raises a concern
    "review": CASEWORK,
    "carers_assessment": ("front_door_advisor", *CASEWORK),
    "dp_review": ("finance_officer", *CASEWORK),
    "hospital_discharge": ("reablement_coordinator", *CASEWORK),
    # a crisis may be heard of by anyone who works with the person; equipment is asked for by the teams who visit
    "urgent_response": ("front_door_advisor", "reablement_coordinator", *CASEWORK),
    "equipment": ("reablement_coordinator", *CASEWORK),
    "change_in_circumstances": ("front_door_advisor", "reablement_coordinator", *CASEWORK),
    # substantial difficulty is to be noticed from first contact (Care Act s.67): the front door refers too
    "advocacy": ("front_door_advisor", *CASEWORK),
}
CLOSE_ROLES = ("team_manager",)  # closing a case or ending a process is a manager's decision
TRANSITION_ROLES = ("front_door_advisor", "social_worker", "team_manager")  # a referral from children's services
ACTION_TITLES = {
    "safeguarding": "Raise a safeguarding concern",
    "review": "Request a review",
    "carers_assessment": "Start a carer's assessment",
    "dp_review": "Start a direct payment review",
    "hospital_discharge": "Refer a hospital discharge",
    "urgent_response": "Start an urgent response",
    "equipment": "Ask for equipment or an adaptation",
    "change_in_circumstances": "Record a change in circumstances",
    "advocacy": "Refer for independent advocacy",
}
ADVOCACY_DECISIONS = {  # handlers/capacity.py DECISIONS, as a worker names them
    "needs_assessment": "The assessment of their needs",
    "support_plan": "Planning their care and support",
    "care_home_move": "A move into a care home",
    "safeguarding": "A safeguarding enquiry (the safeguarding team arranges the advocate)",
    "review": "A review of their support plan",
    "carers_assessment": "Their assessment as a carer",
}
CLOSE_REASONS = {
    "died": "The person has died",
    "moved_away": "Moved to another council",
    "declined": "Declined support",
    "nhs_funded": "Now fully NHS-funded (continuing healthcare)",
    "no_longer_needed": "No longer needs support",
}
assert set(CLOSE_REASONS) == set(CLOSURE_OUTCOMES)  # every reason has its CLD outcome


# ---------------------------------------------------------------------- checking what was sent
_text = partial(check_text, limit=NOTE_MAX)  # handlers/fields.py; a note's length unless a call says otherwise


def _choice(data: dict[str, Any], name: str, label: str, options: Any, errors: dict[str, str]) -> str:
    value = data.get(name)
    if value in (None, ""):
        errors[name] = f"Select {label.lower()}"
    elif value not in options:
        errors[name] = f"{label} must be one of: {', '.join(options)}"
    return value if isinstance(value, str) else ""


def _yes_no(data: dict[str, Any], name: str, label: str, errors: dict[str, str]) -> bool:
    value = data.get(name)
    if value in (True, "yes", "true"):
        return True
    if value in (False, "no", "false"):
        return False
    errors[name] = f"Select yes if {label.lower()}"
    return False


def _age(person: dict[str, Any], today: date) -> int | None:
    born = person.get("date_of_birth")
    try:
        d = date.fromisoformat(born) if isinstance(born, str) else None
    except ValueError:
        d = None
    if d is None:
        return person.get("age") if isinstance(person.get("age"), int) else None
    return today.year - d.year - ((today.month, today.day) < (d.month, d.day))


def _open_processes(engine: Any, case_id: int, process_id: str) -> list[int]:
    with engine.db.engine.connect() as conn:
        return list(conn.execute(select(instances.c.id).where(
            instances.c.case_id == case_id, instances.c.process_id == process_id,
            instances.c.status.in_(OPEN_STATUSES))).scalars())


def review_under_way(engine: Any, case_id: int) -> str | None:
    """Why a requested review (or a change in circumstances) is refused: a review of the support plan is already
    under way on the case — an open task of an open `review` process, whether the plan's own cycle fell due, a
    contact's screening started it or a worker asked for it (a second review would be the same work twice in the
    Social Work queue, with a second escalation). A review cycle only waiting for its next date is no review under
    way. None when there is none."""
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(tasks.c.name, tasks.c.team, tasks.c.created_at)
                           .join(instances, instances.c.id == tasks.c.instance_id)
                           .where(tasks.c.case_id == case_id, instances.c.process_id == "review",
                                  instances.c.status.in_(OPEN_STATUSES))
                           .order_by(tasks.c.created_at, tasks.c.id).limit(1)).first()
    if row is None:
        return None
    from .case_record import team_name

    team = f" with the {team_name(row.team)} team" if row.team else ""
    return (f"A review of the support plan is already under way on this case ({row.name}{team} since "
            f"{kit_day(as_utc(row.created_at).date())}): add what has happened to that review instead of "
            "starting another")


def start_data(engine: Any, case: dict[str, Any], action: str, data: dict[str, Any]
               ) -> tuple[str, dict[str, Any], dict[str, str]]:
    """(process id, start data, errors by field) for an action on the case."""
    errors: dict[str, str] = {}
    rec = case["data"]
    person = person_of(rec)
    today = engine.now().date()
    if action == "safeguarding":
        concern = _text(data, "concern", "The concern", errors)
        raised_by = _text(data, "raised_by", "Who raised the concern", errors, limit=SHORT_MAX)
        urgent = _yes_no(data, "urgent", "the person is at immediate risk", errors)
        return "safeguarding", {"concern": concern, "raised_by": raised_by, "urgent": urgent,
                                "contact_date": today.isoformat()}, errors
    if action in ("review", "change_in_circumstances"):
        if action == "review":
            reason = _choice(data, "review_reason", "The reason for the review", UNPLANNED_REVIEW_REASONS, errors)
            note = _text(data, "note", "Why the review is needed", errors)
        else:
            reason = "Other Reason"
            note = "Change in circumstances: " + _text(data, "what_changed", "What has changed", errors)
        by = _choice(data, "requested_by", "Who asked", REQUESTED_BY, errors)
        if not rec.get("current_plan"):
            errors.setdefault("case", "This case has no signed-off support plan to review: record a new contact "
                                      "at the front door for an assessment instead")
        busy = review_under_way(engine, case["id"])
        if busy:
            errors.setdefault("case", busy)
        return "review", {"review_reason": reason, "review_requested_by": by, "review_request_note": note}, errors
    if action == "carers_assessment":
        name = _text(data, "carer_name", "The carer's full name", errors, limit=SHORT_MAX)
        relationship = _text(data, "relationship", "The carer's relationship to the person", errors,
                             limit=SHORT_MAX)
        address = _text(data, "carer_address", "The carer's address", errors, required=False, limit=SHORT_MAX)
        own = _text(data, "carer_case_reference", "The carer's own case reference", errors, required=False,
                    limit=SHORT_MAX)
        if name and " ".join(name.split()).casefold() == " ".join(str(person.get("name", "")).split()).casefold():
            errors["carer_name"] = "The carer must be someone other than the person this case is about"
        carer = {"name": name, "relationship": relationship}
        if address:
            carer["address"] = address
        if own and "carer_case_reference" not in errors:
            carer["case_reference"] = _carer_case(engine, case, own.upper(), name, errors)
        start = {"person": carer, "cared_for": person.get("name") or case["title"],
                 "contact_date": today.isoformat(), "carer_self_contact": False}
        if not errors:  # the diagram's own check (handlers/carers.py), so nothing it would refuse is started
            for field, message in check_carer_start(start).items():
                errors.setdefault({"person.name": "carer_name", "person.relationship": "relationship"}.get(
                    field, "case"), message)
        return "carers_assessment", start, errors
    if action == "dp_review":
        trigger = _choice(data, "dp_review_trigger", "What prompted the review", DP_TRIGGERS, errors)
        note = _text(data, "note", "What happened", errors)
        current = rec.get("current_plan") or {}  # as the diagram checks it (direct_payment_review.bpmn)
        ended = rec.get("direct_payment_ended_at")
        if (current.get("plan") or {}).get("money_management") != "direct_payment" or (
                ended and ended >= current.get("signed_off_at", "")):
            errors.setdefault("case", "This case has no direct payment in place to review")
        return "direct_payment_review", {"dp_review_trigger": trigger, "dp_review_note": note}, errors
    if action == "hospital_discharge":
        reason = _text(data, "reason", "Why the person is in hospital", errors)
        ward = _text(data, "ward", "The hospital and ward", errors, required=False, limit=SHORT_MAX)
        age = _age(person, today)
        if age is None:
            errors.setdefault("case", "The case record has no date of birth: correct the person's details first")
        if _open_processes(engine, case["id"], "hospital_discharge"):
            errors.setdefault("case", "A hospital discharge referral is already open on this case")
        # the date of birth goes too: reablement's 91-day follow-up (ASCOF 2D) is for people 65 or over on the day
        # they leave hospital, which may be after a birthday since the referral
        who = {k: person.get(k) for k in ("name", "address") if person.get(k)} or {"name": case["title"]}
        if person.get("date_of_birth"):
            who["date_of_birth"] = person["date_of_birth"]
        out = {"person": {**who, "age": age}, "reason": reason}
        if ward:
            out["ward"] = ward
        return "hospital_discharge", out, errors
    if action in ("urgent_response", "equipment"):
        return _urgent_or_equipment(engine, case, action, data, person, today, errors)
    if action == "advocacy":
        decision = _choice(data, "decision", "What the advocate is needed for", ADVOCACY_DECISIONS, errors)
        reason = _text(data, "reason", "Why the person needs an advocate", errors)
        advocacy = rec.get("advocacy") or {}
        if advocacy.get("status") in ADVOCACY_ACTIVE:  # as the diagrams check it (handlers/capacity.py)
            errors.setdefault("case", "An independent advocate is already " + (
                "appointed on this case" if advocacy["status"] == "appointed" else "being arranged for this case"))
        who = {k: v for k, v in person.items() if v not in (None, "")} or {"name": case["title"]}
        return "advocacy", {"person": who, "decision": decision, "reason": reason,
                            "contact_date": today.isoformat()}, errors
    raise NotFoundError(f"no action {action!r}: one of {', '.join(ACTION_TITLES)}", action=action)


URGENT_KINDS = {"rapid_response": "A rapid response visit by the reablement team",
                "urgent_assessment": "An urgent assessment by a social worker",
                "team_decides": "Let the social work team decide"}


def _urgent_or_equipment(engine: Any, case: dict[str, Any], action: str, data: dict[str, Any],
                         person: dict[str, Any], today: date, errors: dict[str, str]
                         ) -> tuple[str, dict[str, Any], dict[str, str]]:
    """An urgent response to a crisis, or equipment/telecare/adaptations (processes/urgent_response.bpmn,
    equipment.bpmn), with the start data the front door gives them; one of each open at a time."""
    who = {k: v for k, v in person.items() if v not in (None, "")} or {"name": case["title"]}
    age = _age(person, today)
    if age is not None:
        who["age"] = age
    start: dict[str, Any] = {"person": who, "contact_date": today.isoformat()}
    if action == "urgent_response":
        start["crisis_detail"] = _text(data, "crisis_detail", "What the crisis is", errors)
        kind = _choice(data, "urgent_kind", "Who responds today", URGENT_KINDS, errors)
        if kind in ("rapid_response", "urgent_assessment"):
            start["urgent_kind"] = kind
        busy = "An urgent response is already under way on this case: see its tasks"
    else:
        start["equipment_needs"] = _text(data, "equipment_needs", "What the person needs help with", errors)
        busy = "A request for equipment or adaptations is already open on this case: add to its assessment"
    if _open_processes(engine, case["id"], action):
        errors.setdefault("case", busy)
    return action, start, errors


def _carer_case(engine: Any, case: dict[str, Any], reference: str, name: str, errors: dict[str, str]) -> str:
    """The carer's own case, when the worker gives its reference: it must exist, be someone else's than this
    case's person, and be about the carer named (checked without showing whose case it is)."""
    field = "carer_case_reference"
    if reference == case["reference"]:
        errors[field] = "The carer's own case reference must not be this case's: leave it blank if they have none"
        return reference
    with engine.db.engine.connect() as conn:
        found = conn.execute(select(cases.c.data).where(cases.c.reference == reference)).first()
    if found is None:
        errors[field] = (f"There is no case {reference}: check the carer's own case reference, or leave it blank "
                         "if the carer is not known to us")
        return reference
    theirs = (json.loads(found.data) if isinstance(found.data, str) else found.data or {}).get("person") or {}
    if name and " ".join(str(theirs.get("name", "")).split()).casefold() != " ".join(name.split()).casefold():
        errors[field] = f"Case {reference} is not about {name}: check the carer's name and their case reference"
    return reference


def close_details(engine: Any, reason: Any, data: dict[str, Any],
                  person: dict[str, Any] | None = None, *, safeguarding: bool = False
                  ) -> tuple[dict[str, Any], dict[str, str]]:
    """The closure's details and the errors by field. `person` (the case record's): a date of death may not
    be before their date of birth. `safeguarding`: an open safeguarding concern would be withdrawn, so the
    manager must confirm they passed it on or that it can be closed (kept in the details: the history)."""
    errors: dict[str, str] = {}
    confirmed = safeguarding and data.get(SAFEGUARDING_CONFIRM) in (True, "yes", "true")
    born = _day_or_none((person or {}).get("date_of_birth"))
    if reason not in CLOSE_REASONS:
        errors["reason"] = ("Select the reason" if reason in (None, "")
                            else f"The reason must be one of: {', '.join(CLOSE_REASONS)}")
    details: dict[str, Any] = {}
    if reason == "died":
        raw = data.get("date_of_death")
        try:
            when = date.fromisoformat(raw) if isinstance(raw, str) and raw else None
        except ValueError:
            when = None
            errors["date_of_death"] = "The date of death must be a real date"
        if when is None:
            errors.setdefault("date_of_death", "Enter the date of death")
        elif when > engine.now().date():
            errors["date_of_death"] = "The date of death must be today or in the past"
        elif when < engine.now().date() - timedelta(days=366 * 120):
            errors["date_of_death"] = "The date of death must be within the person's lifetime"
        elif born is not None and when < born:
            errors["date_of_death"] = f"The date of death must be on or after the date of birth ({kit_day(born)})"
        else:
            details["date_of_death"] = when.isoformat()
    if reason == "moved_away":
        details["council"] = _text(data, "council", "The council the person moved to", errors, limit=SHORT_MAX)
    note = _text(data, "note", "A note", errors, required=False)
    if note:
        details["note"] = note
    # shown back on the case record and in its history: no character that hides or reorders what follows
    # (a right-to-left override), by the rule names follow (handlers/people.py check_name)
    for name, title, noun in (("council", "The council the person moved to", "council's name"),
                              ("note", "A note", "note")):
        hidden = check_name(details.get(name), title, noun=noun, lines=name == "note")
        if hidden and name not in errors:
            errors[name] = hidden
            details.pop(name, None)
    if safeguarding and not confirmed:
        errors[SAFEGUARDING_CONFIRM] = ("Confirm that you have passed the safeguarding concern on, or that it can be "
                                        "closed: closing withdraws it")
    if confirmed:
        details[SAFEGUARDING_CONFIRM] = True
    return details, errors


def _day_or_none(value: Any) -> date | None:
    try:
        return date.fromisoformat(value) if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        return None


def kit_day(value: date) -> str:
    return f"{value.day} {value:%B %Y}"


def _raise(errors: dict[str, str], what: str) -> None:
    if errors:
        raise ValidationError(f"{what}: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                              errors=[{"field": k, "message": v} for k, v in errors.items()])


# ---------------------------------------------------------------------- who may
def may_act(user: User, action: str) -> bool:
    return user.has(*ACTION_ROLES.get(action, ()))


def may_close(user: User) -> bool:
    return user.has(*CLOSE_ROLES)


def available(user: User, case: dict[str, Any], today: date | None = None) -> list[dict[str, str]]:
    """The actions this user may take on the case (none while it is closed, but a reopening is by contact).

    `today` (the engine's clock): a young person aged 14 to 17 on it may be referred from children's services."""
    if closure(case["data"]):
        return []
    out = [{"action": a, "title": t, "href": f"/cases/{case['id']}/actions/{a}"} for a, t in ACTION_TITLES.items()
           if may_act(user, a)]
    age = _age(case["data"].get("person") or {}, today) if today is not None else None
    if user.has(*TRANSITION_ROLES) and age is not None and 14 <= age < 18:  # api/transition.py
        out.append({"action": "transition", "title": "Record a referral from children's services",
                    "href": f"/transitions/new?case={case['id']}"})
    if may_close(user):
        out.append({"action": "close", "title": "Close the case", "href": f"/cases/{case['id']}/close"})
    return out


def _check(engine: Any, user: User, case_id: int, allowed: bool, what: str) -> dict[str, Any]:
    open_case(engine, user, case_id, what)  # 404 unknown, 403 may not open (logged)
    if not allowed:
        raise forbidden("your role may read case records but not act on them" if user.has(*OVERSIGHT_ROLES)
                        and not user.is_worker else f"your role may not {what.replace('_', ' ')} on this case")
    case = engine.get_case(case_id)
    shut = closure(case["data"])
    if shut:
        raise StateError(f"case {case['reference']} is closed ({CLOSE_REASONS.get(shut['reason'], shut['reason'])}, "
                         f"{shut['at'][:10]}): nothing can be started on it. A new contact at the front door "
                         "reopens it", case=case_id)
    return case


# ---------------------------------------------------------------------- doing it
def act(engine: Any, user: User, case_id: int, action: str, data: dict[str, Any]) -> dict[str, Any]:
    if action not in ACTION_TITLES:
        raise NotFoundError(f"no action {action!r}: one of {', '.join(ACTION_TITLES)}", action=action)
    case = _check(engine, user, case_id, may_act(user, action), action)
    process_id, start, errors = start_data(engine, case, action, data if isinstance(data, dict) else {})
    _raise(errors, f"{ACTION_TITLES[action]} was not started")
    res = engine.start(process_id, case_id=case_id, data=start, actor=user.username)
    return {"case_id": case_id, "action": action, "process_id": process_id, "instance_id": res.instance_id,
            "status": res.status, "tasks": [{"id": t["id"], "element_id": t["element_id"], "name": t["name"],
                                             "team": t["team"]} for t in res.ready_tasks]}


def close(engine: Any, user: User, case_id: int, reason: Any, data: dict[str, Any],
          instance_id: int | None = None) -> dict[str, Any]:
    _check(engine, user, case_id, may_close(user), "close" if instance_id is None else "end_process")
    person = engine.get_case(case_id)["data"].get("person")
    person = person if isinstance(person, dict) else {}
    if instance_id is not None and instance_id not in _all_instances(engine, case_id):
        raise NotFoundError(f"case {case_id} has no process instance {instance_id}", case=case_id,
                            instance=instance_id)
    details, errors = close_details(engine, reason, data if isinstance(data, dict) else {}, person,
                                    safeguarding=safeguarding_open(withdrawn(engine, case_id, instance_id)))
    _raise(errors, "the case was not closed" if instance_id is None else "the process was not ended")
    if details.get("date_of_death") and person.get("date_of_death") != details["date_of_death"]:
        record_death(engine, user, case_id, person, details["date_of_death"])
    if instance_id is None:
        return engine.close_case(case_id, reason=reason, details=details, actor=user.username)
    return engine.cancel_instance(instance_id, reason=reason, details=details, actor=user.username)


def record_death(engine: Any, user: User, case_id: int, person: dict[str, Any], day: str) -> None:
    """Keep the date of death in the person's details on the case record (the CLD return's Date_of_Death,
    the case record page), as its own step just before the closure: a `case.record_updated` event, so a
    change made meanwhile to the person's details is a conflict, not overwritten."""
    try:
        engine.update_case_record(case_id, {"person": {**person, "date_of_death": day}}, actor=user.username,
                                  reason="date of death recorded as the case was closed (the person has died)",
                                  expected={"person": person or None})
    except ConflictError:
        raise ConflictError("someone changed the person's details at the same moment; nothing was saved, "
                            "try again", case=case_id) from None


SAFEGUARDING = "safeguarding"  # an open s.42 concern is withdrawn only on purpose (findings 10, 5)
SAFEGUARDING_CONFIRM = "safeguarding_passed_on"


def withdrawn(engine: Any, case_id: int, instance_id: int | None = None) -> list[dict[str, Any]]:
    """What closing the case (or ending `instance_id`) withdraws: each open process — that one and the processes it
    started, or every one of the case — by name, with its open tasks and their teams, oldest first."""
    from .case_record import team_name

    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(instances.c.id, instances.c.process_id, instances.c.parent_instance_id,
                                   process_versions.c.name)
                            .join(process_versions, process_versions.c.id == instances.c.process_version_id)
                            .where(instances.c.case_id == case_id, instances.c.status.in_(OPEN_STATUSES))
                            .order_by(instances.c.id)).all()
        open_tasks = conn.execute(select(tasks.c.instance_id, tasks.c.name, tasks.c.team)
                                  .where(tasks.c.case_id == case_id)
                                  .order_by(tasks.c.created_at, tasks.c.id)).all()
    chosen = {r.id for r in rows}
    if instance_id is not None:  # that process and those it started (engine/lifecycle.py cancels them too)
        chosen, grew = {instance_id}, True
        while grew:
            more = {r.id for r in rows if r.parent_instance_id in chosen} - chosen
            chosen |= more
            grew = bool(more)
    return [{"id": r.id, "process_id": r.process_id, "name": r.name,
             "tasks": [{"name": t.name, "team": team_name(t.team)} for t in open_tasks if t.instance_id == r.id]}
            for r in rows if r.id in chosen]


def safeguarding_open(procs: list[dict[str, Any]]) -> bool:
    return any(p["process_id"] == SAFEGUARDING for p in procs)


def _all_instances(engine: Any, case_id: int) -> set[int]:
    with engine.db.engine.connect() as conn:
        return set(conn.execute(select(instances.c.id).where(instances.c.case_id == case_id)).scalars())


# ---------------------------------------------------------------------- JSON API
Who = Annotated[User, Depends(current_user)]
Eng = Annotated[Any, Depends(get_engine)]


class ActionIn(BaseModel):
    data: dict[str, Any] = Field(default_factory=dict)


class CloseIn(BaseModel):
    reason: str = Field(max_length=64)
    details: dict[str, Any] = Field(default_factory=dict)
    instance_id: Id | None = None


@router.get("/api/cases/{case_id}/actions")
def get_actions(case_id: Id, user: Who, engine: Eng) -> dict[str, Any]:
    open_case(engine, user, case_id, "actions")
    case = engine.get_case(case_id)
    return {"case_id": case_id, "closed": closure(case["data"]), "actions": available(user, case, engine.now().date())}


@router.post("/api/cases/{case_id}/actions/{action}", status_code=201)
def post_action(case_id: Id, action: str, body: ActionIn, user: Who, engine: Eng) -> dict[str, Any]:
    return act(engine, user, case_id, action, body.data)


@router.post("/api/cases/{case_id}/close")
def post_close(case_id: Id, body: CloseIn, user: Who, engine: Eng) -> dict[str, Any]:
    return close(engine, user, case_id, body.reason, body.details, body.instance_id)


# ---------------------------------------------------------------------- one-time form tokens (double submit)
TOKEN_PREFIX = "case_action:"


def issue_token(engine: Any, user: User, case_id: int, what: str) -> str:
    raw = secrets.token_urlsafe(24)
    with engine.db.transaction() as conn:
        conn.execute(insert(settings).values(key=TOKEN_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:40],
                                             value=json.dumps({"user": user.username, "case": case_id,
                                                               "what": what})))
    return raw


def token_spent(engine: Any, raw: str) -> bool:
    """True for a token that was sent but is no longer there to use: the form was already sent with it (a
    second click). Nothing is changed."""
    if not raw:
        return False
    key = TOKEN_PREFIX + hashlib.sha256(raw.encode()).hexdigest()[:40]
    with engine.db.engine.connect() as conn:
        return conn.execute(select(settings.c.key).where(settings.c.key == key)).first() is None


def use_token(engine: Any, user: User, case_id: int, what: str, raw: str) -> bool:
    """True once for a token this user was given for this form; False for a second send."""
    key = TOKEN_PREFIX + hashlib.sha256((raw or "").encode()).hexdigest()[:40]
    with engine.db.transaction() as conn:
        row = conn.execute(select(settings.c.value).where(settings.c.key == key)).first()
        if row is None or json.loads(row.value) != {"user": user.username, "case": case_id, "what": what}:
            return False
        return conn.execute(delete(settings).where(settings.c.key == key)).rowcount == 1


# ---------------------------------------------------------------------- pages
FORM_FIELDS = {
    "safeguarding": ("concern", "raised_by", "urgent"),
    "review": ("review_reason", "requested_by", "note"),
    "carers_assessment": ("carer_name", "relationship", "carer_address", "carer_case_reference"),
    "dp_review": ("dp_review_trigger", "note"),
    "hospital_discharge": ("reason", "ward"),
    "urgent_response": ("crisis_detail", "urgent_kind"),
    "equipment": ("equipment_needs",),
    "change_in_circumstances": ("what_changed", "requested_by"),
    "advocacy": ("decision", "reason"),
    "close": ("reason", "date_of_death", "council", "note", SAFEGUARDING_CONFIRM),
}
ANCHORS = {"urgent": "urgent", "review_reason": "review_reason", "requested_by": "requested_by",
           "dp_review_trigger": "dp_review_trigger", "reason": "reason", "urgent_kind": "urgent_kind",
           "decision": "decision",
           "date_of_death": "date_of_death-day", SAFEGUARDING_CONFIRM: SAFEGUARDING_CONFIRM,
           "case": "main-content"}


def _page(request: Request, user: User, case: dict[str, Any], what: str, values: dict[str, Any],
          errors: dict[str, str], status: int = 200, instance: dict[str, Any] | None = None) -> Response:
    engine = request.app.state.engine
    return kit.render(request, "case_action.html", {
        "user": user, "case": case, "what": what, "instance": instance,
        "title": ACTION_TITLES.get(what, f"End {instance['name']}" if instance else "Close the case"),
        "name": (case["data"].get("person") or {}).get("name") or case["title"],
        "values": values, "errors": errors, "error_list": kit.error_summary(errors, ANCHORS),
        "token": issue_token(engine, user, case["id"], what), "review_reasons": UNPLANNED_REVIEW_REASONS,
        "requested_by": REQUESTED_BY, "dp_triggers": DP_TRIGGERS, "close_reasons": CLOSE_REASONS,
        "urgent_kinds": URGENT_KINDS, "advocacy_decisions": ADVOCACY_DECISIONS,
        "withdrawn": withdrawn(engine, case["id"], instance["id"] if instance else None) if what == "close" else [],
        "safeguarding_field": SAFEGUARDING_CONFIRM}, status)


def _form_values(form: dict[str, list[str]], what: str) -> dict[str, Any]:
    values = {k: kit.one(form, k) for k in FORM_FIELDS[what]}
    if what == "close":
        d, m, y, died = kit.posted_date(form, "date_of_death")
        values.update({"dod_day": d, "dod_month": m, "dod_year": y})
        if died:
            values["date_of_death"] = died
    return values


def _instance(engine: Any, case: dict[str, Any], instance_id: int | None) -> dict[str, Any] | None:
    """The open process a manager is ending (its id and its diagram's name), or None for the whole case."""
    if instance_id is None:
        return None
    from engine import definitions

    for i in case["instances"]:
        if i["id"] == instance_id and i["status"] in OPEN_STATUSES:
            with engine.db.engine.connect() as conn:
                name = definitions.resolve_version(conn, i["process_id"]).name
            return {"id": instance_id, "name": name}
    raise NotFoundError(f"case {case['id']} has no open process instance {instance_id}", case=case["id"])


def _known(what: str) -> None:
    if what != "close" and what not in ACTION_TITLES:
        raise NotFoundError(f"no action {what!r}")


def _guard(page: kit.Page, exc: Exception) -> Response:
    return page.guard(exc, not_found="There is no such case or action.", conflict_title="This case is closed")


async def _show(request: Request, case_id: int, what: str, instance_id: int | None = None) -> Response:
    page = kit.Page(request)
    try:
        user = page.open()
        allowed = may_close(user) if what == "close" else may_act(user, what)
        _known(what)
        case = await run_in_threadpool(_check, page.engine, user, case_id, allowed, what)
        instance = await run_in_threadpool(_instance, page.engine, case, instance_id)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return _guard(page, exc)
    return _page(request, user, case, what, {}, {}, instance=instance)


async def _post(request: Request, case_id: int, what: str, instance_id: int | None = None) -> Response:
    page = kit.Page(request)
    engine = page.engine
    try:
        user = await page.post()
        form = page.form
        _known(what)
        allowed = may_close(user) if what == "close" else may_act(user, what)
        case = await run_in_threadpool(_check, engine, user, case_id, allowed, what)
        values = _form_values(form, what)
        if what == "close":
            person = engine.get_case(case_id)["data"].get("person")
            _details, errors = close_details(engine, values.get("reason") or None, values,
                                             person if isinstance(person, dict) else None,
                                             safeguarding=safeguarding_open(withdrawn(engine, case_id, instance_id)))
        else:
            _p, _d, errors = start_data(engine, case, what, values)
        if errors and token_spent(engine, kit.one(form, "action_token")):
            # a second click of a form the first click did (that review is now the one under way)
            return kit.redirect(f"/cases/{case_id}?saved=already")
        if errors:
            instance = await run_in_threadpool(_instance, engine, case, instance_id)
            return _page(request, user, case, what, values, errors, 422, instance=instance)
        if not use_token(engine, user, case_id, what, kit.one(form, "action_token")):
            return kit.redirect(f"/cases/{case_id}?saved=already")  # a second click: the first one did it
        if what == "close":
            await run_in_threadpool(close, engine, user, case_id, values["reason"], values, instance_id)
            return kit.redirect(f"/cases/{case_id}?saved={'ended' if instance_id else 'closed'}")
        await run_in_threadpool(act, engine, user, case_id, what, values)
        return kit.redirect(f"/cases/{case_id}?saved=action_{what}")
    except ValidationError as exc:
        errs = {e["field"]: e["message"] for e in exc.errors}
        return _page(request, user, engine.get_case(case_id), what, {}, errs, 422)
    except Exception as exc:  # noqa: BLE001
        return _guard(page, exc)


@router.get("/cases/{case_id}/actions/{action}", response_class=HTMLResponse)
async def action_form(request: Request, case_id: Id, action: str) -> Response:
    return await _show(request, case_id, action)


@router.post("/cases/{case_id}/actions/{action}", response_class=HTMLResponse)
async def action_post(request: Request, case_id: Id, action: str) -> Response:
    return await _post(request, case_id, action)


@router.get("/cases/{case_id}/close", response_class=HTMLResponse)
async def close_form(request: Request, case_id: Id) -> Response:
    return await _show(request, case_id, "close")


@router.post("/cases/{case_id}/close", response_class=HTMLResponse)
async def close_post(request: Request, case_id: Id) -> Response:
    return await _post(request, case_id, "close")


@router.get("/cases/{case_id}/instances/{instance_id}/end", response_class=HTMLResponse)
async def end_form(request: Request, case_id: Id, instance_id: Id) -> Response:
    return await _show(request, case_id, "close", instance_id)


@router.post("/cases/{case_id}/instances/{instance_id}/end", response_class=HTMLResponse)
async def end_post(request: Request, case_id: Id, instance_id: Id) -> Response:
    return await _post(request, case_id, "close", instance_id)


def closure_view(case: dict[str, Any]) -> dict[str, str] | None:
    """How the case record shows a closed case: the day, the reason in words, its detail."""
    shut = closure(case["data"])
    if not shut:
        return None
    d = shut.get("details") or {}
    detail = (f"date of death {kit.long_date(datetime.fromisoformat(d['date_of_death']))}" if d.get("date_of_death")
              else f"to {d['council']}" if d.get("council") else "")
    return {"day": kit.long_date(datetime.fromisoformat(shut["at"])),
            "reason": CLOSE_REASONS.get(shut["reason"], shut["reason"]), "detail": detail}


# ---------------------------------------------------------------------- the command line (carepath act / close)
def cli_call(fn: Any, *args: Any) -> Any:
    """Run an action for the command line: a refusal is a CarepathError with the web app's message."""
    from engine.errors import CarepathError

    from .errors import ApiError

    try:
        return fn(*args)
    except ApiError as exc:
        raise CarepathError(f"refused: {exc.message}") from None


def cli_user(engine: Any, username: str) -> User:
    """The active user named by `--as`: the command line checks the same roles as the web app."""
    from engine.schema import users

    from .auth import _user

    with engine.db.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == username, users.c.active.is_(True))).first()
    if row is None:
        raise NotFoundError(f"no active user {username!r}: act --as a user of the web app", user=username)
    return _user(row)
