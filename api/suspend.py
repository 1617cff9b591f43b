"""Hospital admissions: pausing reablement or ongoing support, and what happens on discharge.

"Record a hospital admission" suspends the process (engine/suspension.py): its timers stop and
its tasks wait. "Record the discharge" resumes it. What a council does on discharge is its
choice in processes/config/timescales.json:

* reablement, `reablement_on_hospital_discharge`:
  - "resume": reablement goes on with the time it had left (3 weeks left at admission: the
    6-week limit falls 3 weeks after the discharge is recorded);
  - "end_and_refer": reablement ends (CLD outcome "Admitted to hospital") and a hospital
    discharge referral (processes/hospital_discharge.bpmn) starts for the hospital team;
* ongoing support (the review cycle, the direct payment review cycle) always resumes, and, as
  a person home from hospital needs their support checked, an unplanned review starts with the
  CLD review reason "Hospital" — only when the case has a signed-off support plan to review.

A review of a case without a signed-off plan is refused here with a clear message (nothing is
started, so it never becomes an incident): there is no plan to review, and the team assesses
the person instead (`review_refusal`, for every place that starts a review).

Pages (/cases/{id}/instances/{iid}/hospital-admission and /hospital-discharge: the date as a GOV.UK date input,
day, month and year, as on the close page; the admission shown as "6 December 2026"), JSON
(POST /api/cases/{id}/instances/{iid}/suspend and /resume) and the CLI (`carepath suspend|resume`)
call the same functions; casework roles on cases they may open, auditors 403 (docs/security.md).
"""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool

from engine.clock import as_utc, parse_instant
from engine.errors import NotFoundError, StateError, ValidationError
from handlers import settings as local
from handlers.people import person_of

from . import cases as api
from . import page_kit as kit
from .auth import User, current_user, get_engine
from .inputs import Id

router = APIRouter(prefix="/api/cases")
pages = APIRouter(include_in_schema=False)

# processes a hospital admission pauses: reablement, and ongoing support (the review cycles)
SUSPENDABLE = {"reablement": "Reablement", "review": "Ongoing support (reviews)",
               "direct_payment_review": "Ongoing support (direct payment reviews)"}
DISCHARGE_CHOICES = ("resume", "end_and_refer")
SETTING = "reablement_on_hospital_discharge"
TEXT_MAX = 200
UK = ZoneInfo("Europe/London")
NO_PLAN = ("this case has no signed-off support plan to review: a review needs a plan. Start a needs "
           "assessment for the team to assess the person instead")


# ---------------------------------------------------------------------- rules
def review_refusal(case_data: dict[str, Any]) -> str | None:
    """Why an unplanned review cannot start on this case (None when it can)."""
    return None if case_data.get("current_plan") else NO_PLAN


def discharge_choice() -> str:
    value = local.load().get(SETTING, "resume")
    if value not in DISCHARGE_CHOICES:
        raise ValueError(f"processes/config/timescales.json: {SETTING} must be one of "
                         f"{', '.join(DISCHARGE_CHOICES)}, got {value!r}")
    return value


def _instance(engine: Any, case_id: int, instance_id: int) -> dict[str, Any]:
    case = engine.get_case(case_id)
    inst = next((i for i in case["instances"] if i["id"] == instance_id), None)
    if inst is None:
        raise NotFoundError(f"case {case_id} has no process instance {instance_id}", case=case_id,
                            instance=instance_id)
    return {**inst, "case": case}


def long_day(day: date) -> str:
    """"6 December 2026": a date as the pages and messages show it."""
    return f"{day.day} {day:%B %Y}"


def _date(raw: Any, what: str, today: date, *, not_before: tuple[date, str] | None = None) -> tuple[date | None, str]:
    """The date typed (YYYY-MM-DD: the JSON API, or what the page's day, month and year make) and "", or None
    and the message. `not_before` (the earliest day, what it is: "the admission"): a date before it is refused,
    naming it."""
    if not isinstance(raw, str) or not raw.strip():
        return None, f"Enter the date of the {what}"
    try:
        day = date.fromisoformat(raw.strip())
    except ValueError:
        return None, f"The date of the {what} must be a real date"
    if day > today:
        return None, f"The date of the {what} must be today or in the past"
    if not_before is not None and day < not_before[0]:
        return None, f"The date of the {what} must be on or after {not_before[1]} ({long_day(not_before[0])})"
    return day, ""


def earliest_admission(inst: dict[str, Any]) -> tuple[date, str] | None:
    """The earliest day a hospital admission may be recorded for this process: the day it started, or the
    person's date of birth when that is later (a record corrected by hand), with what that day is."""
    bounds = []
    started = inst.get("started_at")
    if started is not None:
        started = parse_instant(started) if isinstance(started, str) else started
        name = SUSPENDABLE.get(inst.get("process_id") or "", "the process").lower()
        bounds.append((as_utc(started).astimezone(UK).date(), f"the day {name} started"))
    born = person_of(inst["case"]["data"]).get("date_of_birth")
    try:
        bounds.append((date.fromisoformat(str(born)[:10]), "the date of birth"))
    except ValueError:
        pass
    return max(bounds, key=lambda b: b[0]) if bounds else None


def admission_errors(engine: Any, hospital: Any, admitted_on: Any, inst: dict[str, Any] | None = None
                     ) -> tuple[list[dict[str, str]], date | None]:
    errors = []
    if not isinstance(hospital, str) or not hospital.strip():
        errors.append({"field": "hospital", "message": "Enter the hospital the person was admitted to"})
    elif len(hospital) > TEXT_MAX:
        errors.append({"field": "hospital", "message": f"The hospital's name must be {TEXT_MAX} characters or fewer"})
    day, msg = _date(admitted_on, "admission", engine.now().astimezone(UK).date(),
                     not_before=earliest_admission(inst) if inst is not None else None)
    if msg:
        errors.append({"field": "admitted_on", "message": msg})
    return errors, day


def record_admission(engine: Any, user: User, case_id: int, instance_id: int, hospital: Any,
                     admitted_on: Any) -> dict[str, Any]:
    """Suspend a running reablement or ongoing-support process: the person is in hospital."""
    api._writer(engine, user, case_id, "hospital_admission")
    inst = _instance(engine, case_id, instance_id)
    if inst["process_id"] not in SUSPENDABLE:
        raise ValidationError(f"a hospital admission pauses reablement or ongoing support, not "
                              f"'{inst['process_id']}'", case=case_id, instance=instance_id)
    errors, day = admission_errors(engine, hospital, admitted_on, inst)
    if errors:
        raise ValidationError("the admission was not recorded: " + "; ".join(e["message"] for e in errors),
                              errors=errors, case=case_id)
    assert day is not None
    return engine.suspend_instance(instance_id, reason="Admitted to hospital", actor=user.username,
                                   details={"kind": "hospital_admission", "hospital": hospital.strip(),
                                            "admitted_on": day.isoformat()})


def admission_of(engine: Any, case_id: int, instance_id: int) -> dict[str, Any]:
    """The details of the suspend that is in force (hospital, admitted_on)."""
    evs = [e for e in engine.history(case_id) if e["type"] == "instance.suspended" and e["instance_id"] == instance_id]
    return dict(evs[-1]["data"].get("details") or {}) if evs else {}


def record_discharge(engine: Any, user: User, case_id: int, instance_id: int, discharged_on: Any) -> dict[str, Any]:
    """Resume the process, or end reablement and refer to the hospital team, as the council chose."""
    api._writer(engine, user, case_id, "hospital_discharge")
    inst = _instance(engine, case_id, instance_id)
    if inst["status"] != "suspended":
        raise StateError(f"process instance {instance_id} is not suspended (it is {inst['status']}): there is "
                         "no hospital stay to end; nothing was changed", case=case_id, instance=instance_id)
    admission = admission_of(engine, case_id, instance_id)
    admitted = admission.get("admitted_on")
    day, msg = _date(discharged_on, "discharge", engine.now().astimezone(UK).date(),
                     not_before=(date.fromisoformat(admitted), "the admission") if admitted else None)
    if msg:
        raise ValidationError(f"the discharge was not recorded: {msg}",
                              errors=[{"field": "discharged_on", "message": msg}], case=case_id)
    assert day is not None
    hospital = admission.get("hospital") or "hospital"
    details = {"kind": "hospital_discharge", "hospital": hospital, "discharged_on": day.isoformat()}
    person = person_of(inst["case"]["data"])
    if inst["process_id"] == "reablement" and discharge_choice() == "end_and_refer":
        res = engine.resume_instance(
            instance_id, actor=user.username, mode="end", details={**details, "outcome": "admitted_to_hospital"},
            reason=f"Reablement ended: admitted to {hospital}; referred to the hospital team on discharge",
            then_start={"process_id": "hospital_discharge", "data": {
                "person": person, "ward": hospital,
                "reason": f"Admitted to {hospital} during reablement; discharged {long_day(day)}"}})
        return {"outcome": "ended_and_referred", "instance_id": instance_id, "started": res.started_instances}
    # a stay moves the review cycle on by its length, but never past the review's limit (the 6-8 week window's
    # end, or 12 months after the last review: review.bpmn review_limit_at; a direct payment's first review
    # within 6 months, then 12: direct_payment_review.bpmn dp_review_limit_at); a limit passed in hospital is now
    timer, key = {"review": ("wait_for_review", "review_limit_at"),
                  "direct_payment_review": ("wait_for_dp_review", "dp_review_limit_at")}.get(inst["process_id"],
                                                                                           (None, None))
    limit = (engine.instance_snapshot(instance_id)["data"] or {}).get(key) if key else None
    not_after = {timer: limit} if isinstance(limit, str) else None
    engine.resume_instance(instance_id, actor=user.username, reason=f"Discharged from {hospital}", details=details,
                           not_after=not_after)
    started: list[int] = []
    if inst["process_id"] != "reablement" and review_refusal(inst["case"]["data"]) is None:
        res = engine.start("review", case_id=case_id, actor=user.username, data={
            "review_reason": "Hospital", "review_requested_by": "worker",
            "review_request_note": f"Discharged from {hospital} on {long_day(day)}: check the support still fits"})
        started.append(res.instance_id)
    return {"outcome": "resumed", "instance_id": instance_id, "started": started}


# ---------------------------------------------------------------------- JSON
Who = Annotated[User, Depends(current_user)]
Eng = Annotated[Any, Depends(get_engine)]


# optional here so that who may act is checked before what was sent (a 403 comes before a 422)
class AdmissionIn(BaseModel):
    hospital: str | None = None
    admitted_on: str | None = None  # YYYY-MM-DD


class DischargeIn(BaseModel):
    discharged_on: str | None = None  # YYYY-MM-DD


@router.post("/{case_id}/instances/{instance_id}/suspend")
def post_suspend(case_id: Id, instance_id: Id, body: AdmissionIn, user: Who, engine: Eng) -> dict[str, Any]:
    return record_admission(engine, user, case_id, instance_id, body.hospital, body.admitted_on)


@router.post("/{case_id}/instances/{instance_id}/resume")
def post_resume(case_id: Id, instance_id: Id, body: DischargeIn, user: Who, engine: Eng) -> dict[str, Any]:
    return record_discharge(engine, user, case_id, instance_id, body.discharged_on)


# ---------------------------------------------------------------------- pages
# each date is a GOV.UK date input (day, month, year; intake_macros.html `date_input`, as on the close page):
# its error links to the day box
ANCHORS: dict[str, str] = {"admitted_on": "admitted_on-day", "discharged_on": "discharged_on-day"}
DATES = {"admission": "admitted_on", "discharge": "discharged_on"}


def _form(request: Request, user: User, engine: Any, case_id: int, instance_id: int, which: str,
          values: dict[str, str], errors: list[dict[str, str]] | None = None, status: int = 200) -> Response:
    inst = _instance(engine, case_id, instance_id)
    errs = {e["field"]: e["message"] for e in errors or []}
    choice = discharge_choice() if inst["process_id"] == "reablement" else "resume"
    today = engine.now().astimezone(UK).date()
    prefix = DATES[which]
    if f"{prefix}-day" not in values:  # a fresh form: today, as it was before a date is typed
        values = {**values, f"{prefix}-day": str(today.day), f"{prefix}-month": str(today.month),
                  f"{prefix}-year": str(today.year)}
    admission = admission_of(engine, case_id, instance_id) if which == "discharge" else {}
    try:
        admitted = long_day(date.fromisoformat(admission["admitted_on"])) if admission.get("admitted_on") else ""
    except ValueError:
        admitted = str(admission.get("admitted_on"))
    return kit.render(request, f"suspend_{which}.html", {
        "user": user, "case": inst["case"], "instance": inst, "process_name": SUSPENDABLE.get(inst["process_id"], ""),
        "values": values, "err": errs, "errors": kit.error_summary(errs, ANCHORS), "choice": choice,
        "admission": admission, "admitted": admitted,
        # an example the field accepts: today (a later day is refused)
        "example": f"{today.day} {today.month} {today.year}"}, status)


def _posted(form: dict[str, list[str]], which: str) -> tuple[dict[str, str], str]:
    """What was typed (kept to show again) and the date as the API takes it: YYYY-MM-DD, "" when nothing was
    typed, "not-a-date" when the day, month and year make no real date."""
    prefix = DATES[which]
    d, m, y, iso = kit.posted_date(form, prefix)
    if iso and iso != "not-a-date" and len(y) != 4:
        iso = "not-a-date"  # "26" is not a year
    return {f"{prefix}-day": d, f"{prefix}-month": m, f"{prefix}-year": y}, iso


def may_pause(user: User) -> bool:
    return api.may_write(user)


def _known(which: str) -> None:
    if which not in ("admission", "discharge"):
        raise NotFoundError(f"no page {which}")


def _guard(page: kit.Page, exc: Exception) -> Response:
    return page.guard(exc, not_found="There is no such process on this case record.",
                      conflict_title="This process has changed")


@pages.get("/cases/{case_id}/instances/{instance_id}/hospital-{which}", response_class=HTMLResponse)
def suspend_form(request: Request, case_id: Id, instance_id: Id, which: str) -> Response:
    page = kit.Page(request)
    try:
        user = page.open()
        _known(which)
        api._writer(page.engine, user, case_id, f"hospital_{which}")
        return _form(request, user, page.engine, case_id, instance_id, which, {})
    except Exception as exc:  # noqa: BLE001 - mapped to pages
        return _guard(page, exc)


@pages.post("/cases/{case_id}/instances/{instance_id}/hospital-{which}", response_class=HTMLResponse)
async def suspend_post(request: Request, case_id: Id, instance_id: Id, which: str) -> Response:
    page = kit.Page(request)
    try:
        user = await page.post()
        engine, form = page.engine, page.form
        _known(which)
        typed, day = _posted(form, which)
        values = {"hospital": kit.one(form, "hospital"), **typed}
        try:
            if which == "admission":
                await run_in_threadpool(record_admission, engine, user, case_id, instance_id, values["hospital"],
                                        day)
            else:
                await run_in_threadpool(record_discharge, engine, user, case_id, instance_id, day)
        except ValidationError as exc:
            if not exc.errors:
                raise
            return _form(request, user, engine, case_id, instance_id, which, values, exc.errors, 400)
    except Exception as exc:  # noqa: BLE001
        return _guard(page, exc)
    return kit.redirect(f"/cases/{case_id}?saved={which}#process-{instance_id}")
