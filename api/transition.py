"""A referral from children's services (Care Act 2014 s.58-66): JSON API, page and command line.

Children's services refer a young person aged 14 to 17 who is likely to need care and support after
18. The referral starts the `transition` process (processes/transition.bpmn) on a new case titled
with the young person's name, or on an existing case (`case_id`, e.g. a young person already known as
a young carer). Checked before anything is stored (handlers/transition.py `check_referral`): the
young person's name (no control or hidden characters), date of birth (aged 14 to 17 today: an adult
goes to the front door), address, whether there is an EHC plan, why needs are likely after 18 and the
children's social worker. Every problem is named by field; nothing is stored.

* `POST /api/transitions` `{"data": {...}, "case_id": optional}` -> 201 with the case and the first task.
* `/transitions/new` (and `?case=ID`): the page, with a one-time token so a double click starts one
  process, not two.
* `carepath transition --as USER --data JSON [--case ID]`: the same checks and roles.

Who may: `REFERRAL_ROLES` (docs/security.md, "Referral from children's services"). Refused: 403 (a
refusal on an existing case is written to the case access log); an unknown case 404; a closed case,
a transition already open on the case, or a new case for someone who already has a case the user can
see (same name and date of birth: refer on that case instead) 409.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from engine.errors import ConflictError, NotFoundError, StateError, ValidationError
from engine.lifecycle import OPEN_STATUSES, closure
from engine.schema import instances, people, settings
from handlers.letters import long_date
from handlers.transition import check_referral

from . import page_kit as kit
from .access import hidden_cases, log_access
from .auth import OVERSIGHT_ROLES, User, current_user, get_engine
from .case_actions import TOKEN_PREFIX, TRANSITION_ROLES, issue_token, use_token
from .cases import open_case
from .errors import forbidden
from .inputs import Id, to_id

router = APIRouter()
PROCESS = "transition"
REFERRAL_ROLES = TRANSITION_ROLES  # front door advisors, social workers, team managers
FIELDS = ("name", "date_of_birth", "address", "postcode", "ehc_plan", "likely_needs", "childrens_social_worker",
          "childrens_team", "childrens_phone")


def may_refer(user: User) -> bool:
    return user.has(*REFERRAL_ROLES)


def _refuse(user: User) -> Exception:
    if user.has(*OVERSIGHT_ROLES) and not user.is_worker:
        return forbidden("your role may read case records but not take referrals")
    return forbidden("your role may not take a referral from children's services")


def _check_case(engine: Any, user: User, case_id: int) -> dict[str, Any]:
    """The existing case the referral is made on: visible to the user, open, no transition open on it."""
    open_case(engine, user, case_id, "transition_referral")  # 404 unknown, 403 may not open (logged)
    case = engine.get_case(case_id)
    if closure(case["data"]):
        raise StateError(f"case {case['reference']} is closed: nothing can be started on it. A new contact at "
                         "the front door reopens it", case=case_id)
    with engine.db.engine.connect() as conn:
        open_one = conn.execute(select(instances.c.id).where(
            instances.c.case_id == case_id, instances.c.process_id == PROCESS,
            instances.c.status.in_(OPEN_STATUSES))).first()
    if open_one is not None:
        raise StateError(f"case {case['reference']} already has a referral from children's services in progress",
                         case=case_id)
    return case


def existing_cases(engine: Any, user: User, name: str, born: str) -> list[dict[str, Any]]:
    """Cases this user can see for someone with the same name (case ignored) and date of birth."""
    with engine.db.engine.connect() as conn:
        hidden = set(hidden_cases(conn, user))
        rows = conn.execute(select(people.c.case_id, people.c.name).where(people.c.date_of_birth == born)).all()
        found = [r.case_id for r in rows if r.name.casefold() == name.casefold() and r.case_id not in hidden]
    return [{"id": cid, "reference": engine.get_case(cid)["reference"]} for cid in sorted(found)]


def checked(engine: Any, user: User, data: dict[str, Any], case_id: int | None
            ) -> tuple[dict[str, Any], dict[str, str], list[dict[str, Any]]]:
    """(start data, errors by field, existing cases for the same person) -- nothing stored."""
    start, errors = check_referral(data if isinstance(data, dict) else {}, engine.now().date())
    existing: list[dict[str, Any]] = []
    if case_id is None and not errors:
        existing = existing_cases(engine, user, start["person"]["name"], start["person"]["date_of_birth"])
        if existing:
            refs = ", ".join(c["reference"] for c in existing)
            errors["name"] = (f"{start['person']['name']}, born {long_date(start['person']['date_of_birth'])}"
                              f", already has a case ({refs}): make the referral on that case")
    return start, errors, existing


def refer(engine: Any, user: User, data: dict[str, Any], case_id: int | None = None) -> dict[str, Any]:
    if not may_refer(user):
        if case_id is not None:
            open_case(engine, user, case_id, "transition_referral")  # an unknown case is still a 404
        raise _refuse(user)
    if case_id is not None:
        _check_case(engine, user, case_id)
    start, errors, existing = checked(engine, user, data, case_id)
    if existing and set(errors) == {"name"}:
        raise ConflictError(errors["name"], cases=[c["id"] for c in existing])
    if errors:
        raise ValidationError("the referral was not recorded: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                              errors=[{"field": k, "message": v} for k, v in errors.items()])
    res = engine.start(PROCESS, case_id=case_id, data=start, actor=user.username, title=start["person"]["name"])
    if case_id is None:
        log_access(engine, res.case_id, user, "transition_referral")
    case = engine.get_case(res.case_id)
    return {"case_id": res.case_id, "reference": case["reference"], "process_id": PROCESS,
            "instance_id": res.instance_id, "status": res.status,
            "tasks": [{"id": t["id"], "element_id": t["element_id"], "name": t["name"], "team": t["team"]}
                      for t in res.ready_tasks]}


def childrens_services_text(case: dict[str, Any]) -> str:
    """What the case record says about children's services (the `transition` process keeps it), or ""."""
    cs = (case.get("data") or {}).get("childrens_services")
    if not isinstance(cs, dict):
        return ""
    worker = (cs.get("social_worker") or {}).get("name")
    tail = f" Children's social worker: {worker}." if worker else ""

    def day(key: str) -> str:
        try:
            return long_date(cs[key])
        except (KeyError, ValueError):
            return "a date not recorded"

    if cs.get("status") == "continuing":
        return (f"Children's services go on supporting the young person until adult support is in place "
                f"(referred {day('since')}; 18 on {day('eighteenth_birthday')}).{tail}")
    if cs.get("status") == "ended":
        by = f", with {cs['adult_worker']} as their adult social care worker" if cs.get("adult_worker") else ""
        return f"Children's services ended on {day('ended_on')}: adult support is in place{by}.{tail}"
    reason = {"not_eligible": "not eligible for adult care and support",
              "declined": "adult care and support declined"}.get(cs.get("reason"), str(cs.get("reason") or ""))
    return f"Children's services ended on {day('ended_on')} without adult support ({reason}).{tail}"


kit.templates.env.globals["childrens_services_text"] = childrens_services_text  # the case record (case.html)


# ---------------------------------------------------------------------- JSON API
Who = Annotated[User, Depends(current_user)]
Eng = Annotated[Any, Depends(get_engine)]


class ReferralIn(BaseModel):
    data: dict[str, Any] = Field(default_factory=dict)
    case_id: Id | None = None


@router.post("/api/transitions", status_code=201)
def post_referral(body: ReferralIn, user: Who, engine: Eng) -> dict[str, Any]:
    return refer(engine, user, body.data, body.case_id)


# ---------------------------------------------------------------------- the page
ANCHORS = {"date_of_birth": "date_of_birth-day", "ehc_plan": "ehc_plan"}


def _form_values(form: dict[str, list[str]]) -> dict[str, Any]:
    values: dict[str, Any] = {k: kit.one(form, k) for k in FIELDS if k != "date_of_birth"}
    d, m, y, born = kit.posted_date(form, "date_of_birth")
    values.update({"dob_day": d, "dob_month": m, "dob_year": y, "date_of_birth": born})
    return values


def _page(request: Request, user: User, case: dict[str, Any] | None, values: dict[str, Any],
          errors: dict[str, str], existing: list[dict[str, Any]] | None = None, status: int = 200) -> Response:
    engine = request.app.state.engine
    return kit.render(request, "transition_referral.html", {
        "user": user, "case": case, "values": values, "errors": errors, "existing": existing or [],
        "error_list": kit.error_summary(errors, ANCHORS),
        "token": issue_token(engine, user, case["id"] if case else 0, PROCESS)}, status)


def _token_unused(engine: Any, raw: str) -> bool:
    """Whether the page's one-time token is still there (use_token checks whose it is and uses it up)."""
    key = TOKEN_PREFIX + hashlib.sha256((raw or "").encode()).hexdigest()[:40]
    with engine.db.engine.connect() as conn:
        return conn.execute(select(settings.c.key).where(settings.c.key == key)).first() is not None


def _page_case(engine: Any, user: User, case: str | int | None) -> dict[str, Any] | None:
    if case in (None, ""):
        return None
    case_id = to_id(str(case))
    if case_id is None:
        raise NotFoundError(f"no case {str(case)[:40]!r}")
    return _check_case(engine, user, case_id)


def _referrer(_engine: Any, user: User) -> None:
    if not may_refer(user):
        raise _refuse(user)


@router.get("/transitions/new", response_class=HTMLResponse)
async def referral_form(request: Request, case: str = "") -> Response:
    page = kit.Page(request)
    try:
        user = page.open(_referrer)
        found = await run_in_threadpool(_page_case, page.engine, user, case)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page.guard(exc, not_found="There is no such case.",
                          conflict_title="This referral cannot be made on this case")
    return _page(request, user, found, {}, {})


@router.post("/transitions/new", response_class=HTMLResponse)
async def referral_post(request: Request) -> Response:
    page = kit.Page(request)
    try:
        user = await page.post(_referrer)
        engine, form = page.engine, page.form
        found = await run_in_threadpool(_page_case, engine, user, kit.one(form, "case"))
        case_id = found["id"] if found else None
        if not _token_unused(engine, kit.one(form, "action_token")):  # a second click: the first one did it
            return kit.redirect(f"/cases/{case_id}?saved=already" if case_id else "/tasks")
        values = _form_values(form)
        _start, errors, existing = await run_in_threadpool(checked, engine, user, values, case_id)
        if errors:
            return _page(request, user, found, values, errors, existing, 422)
        if not use_token(engine, user, case_id or 0, PROCESS, kit.one(form, "action_token")):
            return kit.redirect(f"/cases/{case_id}?saved=already" if case_id else "/tasks")
        out = await run_in_threadpool(refer, engine, user, values, case_id)
        return kit.redirect(f"/cases/{out['case_id']}?saved=transition")
    except Exception as exc:  # noqa: BLE001
        return page.guard(exc, not_found="There is no such case.", conflict_title="The referral was not recorded")
