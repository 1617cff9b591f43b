"""The person's case record, read for the case page, the JSON API and the panel beside a task form.

Everything here is read-only and reads each source once per call: the case row, its instances
with their process versions, the history (one read), documents, open tasks, waiting timers,
case notes and the users' display names. Access checks and the access log are the caller's
job (api/cases.py `open_case`), done before any of this is read.

The chronology turns history events into plain-English sentences (`describe`); raw JSON is
never shown. Dates and times are shown in UK time (Europe/London).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select

from engine.clock import as_utc, parse_instant
from engine.schema import case_notes, cases, definition_files, instances, process_versions, timers, users
from handlers.people import person_of

UK = ZoneInfo("Europe/London")
NOTE_KINDS = {"note": "Note", "phone_call": "Phone call", "visit": "Visit",
              "correction": "Correction of an earlier note"}
PANEL_ENTRIES = 5

# ---------------------------------------------------------------------- the person's details
# Used when the form library has no `contact` form (its `person` object is the source of truth).
_FALLBACK_PERSON: dict[str, Any] = {
    "required": ["name"],
    "properties": {
        "name": {"title": "Full name", "type": "string"},
        "preferred_name": {"title": "Preferred name", "type": "string"},
        "date_of_birth": {"title": "Date of birth", "type": "string", "format": "date"},
        "nhs_number": {"title": "NHS number", "type": "string", "pattern": "^[0-9]{10}$"},
        "address": {"title": "Address", "type": "string"},
        "postcode": {"title": "Postcode", "type": "string"},
        "phone": {"title": "Phone number", "type": "string"},
    },
}
# shown first, in this order; the rest follow in the form's order
_FIRST = ("name", "preferred_name", "date_of_birth", "date_of_death", "age", "nhs_number", "address", "postcode",
          "gp_practice_code", "phone")
# details of the person kept on the case record but not asked on the contact form: the date of death is
# recorded when the case is closed because the person died (api/case_actions.py), and can be corrected
RECORDED_ELSEWHERE = {"date_of_death": ("Date of death", "date")}


@dataclass
class PersonField:
    name: str
    title: str
    kind: str  # text | date | integer | choice | boolean | list
    required: bool = False
    choices: list[tuple[str, str]] = field(default_factory=list)  # (value, label)
    pattern: str | None = None
    minimum: int | None = None
    maximum: int | None = None
    hint: str | None = None
    message: str | None = None  # the form's own words for an answer in the wrong format ("x-messages")
    only_when_set: bool = False  # recorded elsewhere than the contact form: shown once it has a value


def person_schema(engine: Any) -> dict[str, Any]:
    try:
        schema = engine.forms.schema("contact")
        person = schema["properties"]["person"]
        if isinstance(person.get("properties"), dict):
            return person
    except Exception:  # noqa: BLE001 - no contact form: the built-in list
        pass
    return _FALLBACK_PERSON


def person_fields(engine: Any) -> list[PersonField]:
    schema = person_schema(engine)
    required = set(schema.get("required") or [])
    out = []
    for name, spec in schema["properties"].items():
        if not isinstance(spec, dict):
            continue
        # a question on the form ("What would they like to be called?") has a short name for the record
        title = spec.get("x-shortTitle") or spec.get("title") or humanise(name)
        if "enum" in spec:
            from .page_forms import _options  # the words the contact form shows ("North", not "north")

            f = PersonField(name, title, "choice", choices=_options(spec) or [])
        elif spec.get("type") == "boolean":
            f = PersonField(name, title, "boolean", choices=[("yes", "Yes"), ("no", "No")])
        elif spec.get("type") == "integer":
            f = PersonField(name, title, "integer", minimum=spec.get("minimum"), maximum=spec.get("maximum"))
        elif spec.get("format") == "date":
            f = PersonField(name, title, "date")
        else:
            messages = spec.get("x-messages") if isinstance(spec.get("x-messages"), dict) else {}
            f = PersonField(name, title, "text", pattern=spec.get("pattern"), message=messages.get("pattern"))
        f.required = name in required
        f.hint = spec.get("description")
        out.append(f)
    out += [PersonField(name, title, kind, only_when_set=True) for name, (title, kind) in RECORDED_ELSEWHERE.items()
            if name not in schema["properties"]]
    out.sort(key=lambda f: (_FIRST.index(f.name) if f.name in _FIRST else len(_FIRST)))
    return out


def humanise(name: str) -> str:
    text = re.sub(r"[_\-]+", " ", str(name)).strip()
    return text[:1].upper() + text[1:]


def show_value(f: PersonField | None, value: Any) -> str:
    """A detail as a person reads it ("3 March 1950", "Yes", "4 Mill Lane, Northby")."""
    if value is None or value == "" or value == []:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list):
        return ", ".join(show_value(None, v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{humanise(k)}: {show_value(None, v)}" for k, v in value.items() if v not in (None, ""))
    if f is not None and f.kind == "choice":
        return next((label for v, label in f.choices if v == str(value)), str(value))
    if f is not None and f.kind == "date":
        try:
            return long_day(date.fromisoformat(str(value)))
        except ValueError:
            return str(value)
    return str(value)


def plan_worker(worker: Any) -> str:
    """The co-ordinating worker a support plan names, as a person writes it: "Rosa Patel, Social worker, 01632
    960000" (not "Name: Rosa Patel, Role: Social worker")."""
    if isinstance(worker, dict):
        return ", ".join(str(worker[k]).strip() for k in ("name", "role", "phone", "email")
                         if worker.get(k) not in (None, ""))
    return show_value(None, worker)


def signed_off_plan_worker(rec: Loaded) -> str:
    """The co-ordinating worker the latest signed-off support plan names (as `plan_and_budget` finds the plan), or
    "": what the case record and the task page's panel say while no co-ordinating worker is set on the record."""
    worker = None
    for i in rec.instances:  # oldest first: the last one wins
        plan = (i["data"] or {}).get("plan")
        if i["process_id"] == "support_plan" and isinstance(plan, dict) and plan.get("signed_off_at"):
            worker = plan.get("coordinating_worker")
    return plan_worker(worker) if worker else ""


def person_rows(engine: Any, person: dict[str, Any]) -> list[dict[str, Any]]:
    """Every known detail (schema order) and any other detail kept on the case, for a summary list."""
    fields = person_fields(engine)
    known = {f.name for f in fields}
    rows = [{"name": f.name, "title": f.title, "value": person.get(f.name), "text": show_value(f, person.get(f.name)),
             "editable": True, "kind": f.kind} for f in fields
            if not f.only_when_set or person.get(f.name) not in (None, "")]
    rows += [{"name": k, "title": humanise(k), "value": v, "text": show_value(None, v), "editable": False,
              "kind": "other"} for k, v in person.items() if k not in known]
    return rows


# ---------------------------------------------------------------------- dates
def uk(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = parse_instant(value)
    return as_utc(value).astimezone(UK)


def long_day(value: date | datetime | str | None) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, str):
        try:
            value = date.fromisoformat(value[:10]) if len(value) <= 10 else uk(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        value = uk(value)
    return f"{value.day} {value:%B %Y}"


def day_and_time(value: datetime | str | None) -> str:
    local = uk(value)
    if local is None:
        return ""
    hour = local.hour % 12 or 12
    return f"{local.day} {local:%B %Y}, {hour}:{local:%M}{'am' if local.hour < 12 else 'pm'}"


def money(value: Any) -> str:
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return str(value)
    if not amount.is_finite():
        return str(value)
    # a reduction is "-£9,136.36", as the letters write it (handlers.letters.money), never "£-9,136.36"
    return f"-£{-amount:,.2f}" if amount < 0 else f"£{amount:,.2f}"


# ---------------------------------------------------------------------- loading a case once
@dataclass
class Version:
    id: int
    process_id: str
    name: str
    version: int
    info: dict[str, Any]

    def element(self, element_id: str) -> dict[str, Any]:
        for group in ("user_tasks", "service_tasks", "timers"):
            found = (self.info.get(group) or {}).get(element_id)
            if found:
                return {**found, "group": group}
        return {}

    def element_name(self, element_id: str | None) -> str:
        if not element_id:
            return ""
        return self.element(element_id).get("name") or humanise(element_id)


@dataclass
class Loaded:
    case: dict[str, Any]
    instances: list[dict[str, Any]]
    versions: dict[int, Version]  # instance id -> version
    history: list[dict[str, Any]]
    documents: list[dict[str, Any]]
    tasks: list[dict[str, Any]]
    timers: list[dict[str, Any]]
    notes: list[dict[str, Any]]
    names: dict[str, str]  # username -> display name
    titles: dict[str, str] = field(default_factory=dict)  # person detail -> its title ("NHS number")
    # the support plan's "Type of service" options: value -> the words the form shows (service_types)
    service_types: dict[str, str] = field(default_factory=dict)

    @property
    def person(self) -> dict[str, Any]:
        return person_of(self.case["data"])  # under `person`, or at the top level of data made by hand

    def who(self, username: str | None) -> str:
        if not username or username == "system":
            return "System"
        return self.names.get(username, username)


def load(engine: Any, case_id: int, *, with_history: bool = True) -> Loaded:
    """Everything the case page shows, a fixed number of queries whatever the case's length."""
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(cases).where(cases.c.id == case_id)).first()
        if row is None:
            from engine.errors import NotFoundError

            raise NotFoundError(f"no case {case_id}", case=case_id)
        inst_rows = conn.execute(
            select(instances.c.id, instances.c.process_id, instances.c.status, instances.c.parent_instance_id,
                   instances.c.started_at, instances.c.completed_at, instances.c.data, instances.c.process_version_id,
                   process_versions.c.name, process_versions.c.version, process_versions.c.info)
            .join(process_versions, process_versions.c.id == instances.c.process_version_id)
            .where(instances.c.case_id == case_id).order_by(instances.c.id)).all()
        timer_rows = conn.execute(select(timers).where(timers.c.case_id == case_id)
                                  .order_by(timers.c.due_at, timers.c.id)).all()
        note_rows = conn.execute(select(case_notes).where(case_notes.c.case_id == case_id)
                                 .order_by(case_notes.c.id)).all()
        name_rows = conn.execute(select(users.c.username, users.c.display_name)).all()
    case = {"id": row.id, "reference": row.reference, "title": row.title, "data": json.loads(row.data),
            "created_at": as_utc(row.created_at), "updated_at": as_utc(row.updated_at)}
    versions: dict[int, Version] = {}
    insts = []
    for r in inst_rows:
        versions[r.id] = _version(r.process_version_id, r.process_id, r.name, r.version, r.info)
        insts.append({"id": r.id, "process_id": r.process_id, "status": r.status, "name": r.name,
                      "version": r.version, "process_version_id": r.process_version_id,
                      "parent_instance_id": r.parent_instance_id, "started_at": as_utc(r.started_at),
                      "completed_at": as_utc(r.completed_at) if r.completed_at else None,
                      "data": json.loads(r.data) if r.data else None})
    notes = [{"id": n.id, "author": n.author, "at": as_utc(n.at), "kind": n.kind, "text": n.text,
              "corrects": n.corrects} for n in note_rows]
    tmrs = [{"instance_id": t.instance_id, "element_id": t.element_id, "name": t.name, "attached_to": t.attached_to,
             "due_at": as_utc(t.due_at)} for t in timer_rows]
    return Loaded(case=case, instances=insts, versions=versions,
                  history=engine.history(case_id) if with_history else [],
                  documents=engine.documents(case_id), tasks=engine.list_tasks(case_id=case_id), timers=tmrs,
                  notes=notes, names={u.username: u.display_name for u in name_rows},
                  titles={f.name: f.title for f in person_fields(engine)}, service_types=service_types(engine))


@lru_cache(maxsize=512)
def _parsed_info(info: str) -> dict[str, Any]:
    return json.loads(info)


def _version(vid: int, process_id: str, name: str, version: int, info: str) -> Version:
    return Version(vid, process_id, name, version, _parsed_info(info))


def diagram_xml(engine: Any, case_id: int, instance_id: int) -> tuple[bytes, str]:
    """The BPMN file of the version an instance of this case runs on, and its process id."""
    from engine.errors import NotFoundError

    with engine.db.engine.connect() as conn:
        row = conn.execute(select(instances.c.id, process_versions.c.process_id, process_versions.c.main_file,
                                  process_versions.c.file_ids)
                           .join(process_versions, process_versions.c.id == instances.c.process_version_id)
                           .where(instances.c.id == instance_id, instances.c.case_id == case_id)).first()
        if row is None:
            raise NotFoundError(f"case {case_id} has no process instance {instance_id}", case=case_id,
                                instance=instance_id)
        ids = json.loads(row.file_ids)
        f = conn.execute(select(definition_files.c.content).where(
            definition_files.c.id.in_(ids), definition_files.c.name == row.main_file)).first()
    if f is None:
        raise NotFoundError(f"the diagram of process instance {instance_id} is not stored", instance=instance_id)
    return bytes(f.content), row.process_id


# ---------------------------------------------------------------------- plan and budget
NOT_RECORDED = "Not recorded"


def service_types(engine: Any) -> dict[str, str]:
    """The support plan's "Type of service" options (forms/support_plan.schema.json
    outcomes[].service_component), value -> the words the form shows; {} when the form does not ask it."""
    from engine.errors import NotFoundError

    try:
        spec = engine.forms.schema("support_plan")["properties"]["outcomes"]["items"]["properties"][
            "service_component"]
    except (NotFoundError, KeyError, TypeError, AttributeError):  # no support plan form, or it does not ask
        return {}
    values = spec.get("enum") or []
    labels = spec.get("x-enumNames") or values
    return {str(v): str(label) for v, label in zip(values, labels, strict=False)}


def service_type(rec: Loaded, outcome: dict[str, Any]) -> str:
    """A plan service's type as the form words it; "Not recorded" for a plan written before the question
    was asked (never a guess from how the service is described). A value the form no longer lists is
    shown as stored."""
    value = outcome.get("service_component")
    if value is None or value == "":
        return NOT_RECORDED
    return rec.service_types.get(str(value), str(value))


def pauses(rec: Loaded) -> dict[int, dict[str, Any]]:
    """The processes paused now (a hospital admission, api/suspend.py): instance id -> {"since" (when the pause was
    recorded: the engine counts the time left from it), "words" ("paused while in hospital")}."""
    paused = {i["id"] for i in rec.instances if i["status"] == "suspended"}
    out: dict[int, dict[str, Any]] = {}
    for e in rec.history:
        if e["type"] == "instance.suspended" and e.get("instance_id") in paused:
            details = (e.get("data") or {}).get("details") or {}
            out[e["instance_id"]] = {"since": parse_instant(e["at"]), "words": "paused while in hospital" if
                                     isinstance(details, dict) and details.get("kind") == "hospital_admission"
                                     else "paused"}
    return out


def time_left(due: datetime, since: datetime) -> str:
    """The time a frozen timer had left when its process was paused, in whole days ("12 days")."""
    seconds = max((as_utc(due) - as_utc(since)).total_seconds(), 0)
    days = math.ceil(seconds / 86400)
    return "less than a day" if days == 0 else f"{days} day{'s' if days != 1 else ''}"


def frozen(t: dict[str, Any], pause: dict[str, Any]) -> str:
    """A waiting timer of a paused process, as the case record says it: it has no date until the process goes on."""
    return f"{pause['words']}; {time_left(t['due_at'], pause['since'])} were left"


def moved_first_review(rec: Loaded, first: Any) -> dict[str, str]:
    """The plan's first review as it stands: a hospital stay on the review cycle moved it (each discharge's
    `instance.resumed` lists the timers it moved, due before and after), or freezes it while the stay goes on.
    {"text": the date to show, "note": why it is not the plan's date} ("" when it did not move)."""
    shown = long_day(first)
    if not shown:
        return {"text": "", "note": ""}
    review_ids = {i["id"] for i in rec.instances if i["process_id"] in ("review", "direct_payment_review")}
    planned, moved = shown, False
    for e in rec.history:
        if e["type"] != "instance.resumed" or e.get("instance_id") not in review_ids:
            continue
        for t in (e.get("data") or {}).get("timers") or []:
            if isinstance(t, dict) and long_day(t.get("due_before")) == shown and t.get("due_after"):
                shown, moved = long_day(t["due_after"]), True
                break
    paused = pauses(rec)
    for t in rec.timers:
        if t["instance_id"] in review_ids and t["instance_id"] in paused and long_day(t["due_at"]) == shown:
            return {"text": "", "note": f"{frozen(t, paused[t['instance_id']])} (planned for {planned}"
                                        + (f", moved to {shown} by an earlier hospital stay)" if moved else ")")}
    return {"text": shown, "note": f"moved from {planned} because of a hospital stay" if moved else ""}


def last_review(rec: Loaded) -> dict[str, str] | None:
    """The newest review of the person's support plan that was done (its *Review support plan* task completed):
    the day and who did it; None when none is in the history loaded (a page that loads none shows none)."""
    for e in reversed(rec.history):
        if e["type"] != "task.completed" or (e.get("data") or {}).get("element_id") != "review_plan":
            continue
        ver = rec.versions.get(e.get("instance_id"))
        if ver is not None and ver.process_id == "review":
            return {"text": long_day(e["at"]), "by": rec.who(e["actor"]), "at": e["at"]}
    return None


def plan_and_budget(rec: Loaded) -> dict[str, Any]:
    """The latest signed-off support plan and latest personal budget (completed instances' final data)."""
    plan = budget = None
    plan_at = budget_at = None
    for i in rec.instances:  # oldest first: the last one wins
        data = i["data"] or {}
        if i["process_id"] == "support_plan" and isinstance(data.get("plan"), dict) \
                and data["plan"].get("signed_off_at"):
            plan, plan_at = data["plan"], i["completed_at"]
        if i["process_id"] == "personal_budget" and isinstance(data.get("budget"), dict):
            budget, budget_at = data["budget"], i["completed_at"]
    next_review = None
    paused = pauses(rec)
    for t in rec.timers:
        ver = next((rec.versions[i["id"]] for i in rec.instances if i["id"] == t["instance_id"]), None)
        if ver is not None and ver.process_id in ("review", "direct_payment_review"):
            pause = paused.get(t["instance_id"])
            next_review = {"what": ver.name, "due_at": t["due_at"], "text": long_day(t["due_at"]),
                           "paused": frozen(t, pause) if pause else ""}
            break
    out: dict[str, Any] = {"plan": None, "budget": None, "next_review": next_review, "carers": carers(rec),
                           "last_review": last_review(rec)}
    if plan is not None:
        pb = plan.get("personal_budget") or {}
        review = plan.get("review") or {}
        out["plan"] = {
            "signed_off": long_day(plan.get("signed_off_at")),
            "outcomes": [{"label": o.get("label", ""), "service_type": service_type(rec, o),
                          "how_met": o.get("how_met", ""), "provided_by": o.get("provider") or o.get("provided_by", "")}
                         for o in plan.get("outcomes") or [] if isinstance(o, dict)],
            "money_management": humanise(plan.get("money_management") or "").replace("Council managed",
                                                                                      "Managed by the council"),
            "may_change": [str(x) for x in plan.get("may_change_without_contacting") or []],
            "coordinating_worker": plan_worker(plan.get("coordinating_worker")),
            "amount": money(pb["final_amount"]) if pb.get("final_amount") is not None else "",
            "weekly": money(pb["weekly_amount"]) if pb.get("weekly_amount") is not None else "",
            "first_review": long_day(review.get("first_review")),
            "first_review_now": moved_first_review(rec, review.get("first_review")),
            "review_every": review.get("frequency_months") or plan.get("review_frequency_months"),
            "at": plan_at,
        }
    if budget is not None:
        out["budget"] = {
            "amount": money(budget.get("final_amount")) if budget.get("final_amount") is not None else "",
            "weekly": money(budget.get("weekly_equivalent")) if budget.get("weekly_equivalent") is not None else "",
            "points": budget.get("total_points"),
            "calculated": long_day(budget.get("calculated_at")),
            "needs_approval": bool(budget.get("needs_approval")),
            "breakdown": [{"label": d.get("label") or humanise(d.get("domain", "")),
                           "level": humanise(d.get("level", "")),
                           "points": d.get("points_after"), "met_by_carer": bool(d.get("met_by_carer"))}
                          for d in budget.get("domains") or [] if isinstance(d, dict) and d.get("level") != "none"],
            "at": budget_at,
        }
    return out


CARER_FUNDED_BY = {"cared_for_personal_budget": "part of the cared-for person's personal budget",
                   "carers_personal_budget": "the carer's own personal budget"}


def carers(rec: Loaded) -> list[dict[str, Any]]:
    """Each carer assessed on this case: the latest decision, and the latest carer's support plan once signed
    off, with its next review — read from what the carer's processes kept on the case (the history's
    case.updated events with carer_assessment and carer_support_plan, whichever element kept them), so running
    processes show too."""
    found: dict[str, dict[str, Any]] = {}
    status = {i["id"]: i["status"] for i in rec.instances}

    def entry(name: str) -> dict[str, Any]:
        return found.setdefault(" ".join(name.split()).casefold(), {"name": name, "decision": None, "plan": None})

    for e in rec.history:  # oldest first: a later decision or plan of the same carer wins
        if e["type"] != "case.updated" or not isinstance(e.get("data"), dict):
            continue
        kept = (e["data"].get("data") or {}) if isinstance(e["data"].get("data"), dict) else {}
        decision, plan = kept.get("carer_assessment"), kept.get("carer_support_plan")
        if isinstance(decision, dict) and decision.get("carer"):
            entry(str(decision["carer"]))["decision"] = {
                "eligible": bool(decision.get("eligible")), "day": long_day(decision.get("decided_at")),
                "level": humanise(str(decision.get("support_level") or ""))}
        if isinstance(plan, dict) and plan.get("carer") and plan.get("signed_off_at"):
            budget = plan.get("budget") if isinstance(plan.get("budget"), dict) else {}
            due = next((t["due_at"] for t in rec.timers if t["instance_id"] == e.get("instance_id")), None)
            entry(str(plan["carer"]))["plan"] = {
                "signed_off": long_day(plan.get("signed_off_at")),
                "amount": money(budget["amount"]) if budget.get("amount") is not None else "",
                "held": CARER_FUNDED_BY.get(budget.get("funded_by"), ""),
                "coordinating_worker": plan_worker(plan.get("coordinating_worker")),
                "next_review": long_day(due) if due else "",
                "ended": status.get(e.get("instance_id")) in ("completed", "cancelled"),
            }
    return list(found.values())


# ---------------------------------------------------------------------- where each process stands
def positions(rec: Loaded) -> list[dict[str, Any]]:
    """Per instance: active elements (open tasks, waiting timers), the completed path, and a text alternative."""
    done: dict[int, list[str]] = {}
    for e in rec.history:
        iid = e.get("instance_id")
        el = (e.get("data") or {}).get("element_id") if isinstance(e.get("data"), dict) else None
        if iid is None or not el:
            continue
        if e["type"] in ("task.completed", "timer.fired", "handler.called", "case.updated",
                         "instance.child_started"):
            lst = done.setdefault(iid, [])
            if el not in lst:
                lst.append(el)
    out = []
    paused = pauses(rec)
    for i in rec.instances:
        ver = rec.versions[i["id"]]
        pause = paused.get(i["id"])
        open_tasks = [t for t in rec.tasks if t["instance_id"] == i["id"]]
        waiting = [t for t in rec.timers if t["instance_id"] == i["id"]]
        active = [t["element_id"] for t in open_tasks] + [t["element_id"] for t in waiting]
        lines = []
        for t in open_tasks:
            team = team_name(t.get("team"))
            who = f", claimed by {rec.who(t['assignee'])}" if t.get("assignee") else ""
            due = (f", {pause['words']}" if pause else f", due {long_day(t['due_at'])}" if t.get("due_at")
                   else "")
            lines.append(f"Waiting for: {t['name']}{f' ({team} team)' if team else ''} since "
                         f"{long_day(t['created_at'])}{who}{due}")
        for t in waiting:
            on = f" on {ver.element_name(t['attached_to'])}" if t.get("attached_to") else ""
            lines.append(f"Timer{on}: {t['name']}, {frozen(t, pause)}" if pause  # no date until the discharge
                         else f"Timer{on}: {t['name']} on {long_day(t['due_at'])}")
        if not lines:
            if i["status"] == "completed":
                lines.append(f"Finished on {long_day(i['completed_at'])}")
            elif i["status"] == "error":
                lines.append("Stopped by a problem: an administrator needs to retry it")
            else:
                lines.append(humanise(i["status"]))
        out.append({"instance_id": i["id"], "process_id": i["process_id"], "name": i["name"],
                    "version": i["version"], "status": i["status"], "status_text": STATUS.get(i["status"], i["status"]),
                    "started": long_day(i["started_at"]), "active": active,
                    "completed": [e for e in done.get(i["id"], []) if e not in active], "lines": lines})
    return out


STATUS = {"waiting": "In progress", "running": "In progress", "completed": "Finished", "error": "Stopped by a problem",
          "cancelled": "Cancelled"}


def team_name(team: str | None) -> str:
    return humanise(team).replace("Social work", "Social Work") if team else ""


# ---------------------------------------------------------------------- the chronology
def chronology(rec: Loaded) -> list[dict[str, Any]]:
    """Every event worth a sentence, and every case note, newest first."""
    completed_tasks = {e["data"].get("task_id") for e in rec.history if e["type"] == "task.completed"}
    inst_by_id = {i["id"]: i for i in rec.instances}
    doc_queue: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for d in rec.documents:
        doc_queue.setdefault((d["instance_id"], d["element_id"]), []).append(d)
    entries = []
    for e in rec.history:
        text, kind, link = describe(e, rec, inst_by_id, completed_tasks, doc_queue)
        if text is None:
            continue
        entries.append({"at": parse_instant(e["at"]), "when": day_and_time(e["at"]), "who": rec.who(e["actor"]),
                        "kind": kind, "text": text, "link": link, "order": (e["at"], 0, e["seq"])})
        screened = (screening_outcome((inst_by_id.get(e.get("instance_id")) or {}).get("data"))
                    if e["type"] == "task.completed" and (e.get("data") or {}).get("element_id") == "record_contact"
                    else None)
        if screened:  # the front door's decision, as the advisor was shown it, just after the contact
            entries.append({"at": parse_instant(e["at"]), "when": day_and_time(e["at"]), "who": "System",
                            "kind": "decision", "text": f"Screening outcome: {screened}", "link": None,
                            "order": (e["at"], 0, e["seq"] + 0.5)})
    for n in rec.notes:
        label = NOTE_KINDS.get(n["kind"], humanise(n["kind"]))
        extra = f" (corrects note {n['corrects']})" if n.get("corrects") else ""
        entries.append({"at": n["at"], "when": day_and_time(n["at"]), "who": rec.who(n["author"]),
                        "kind": "note", "text": f"{label}{extra}: {n['text']}", "link": None,
                        "order": (_iso(n["at"]), 1, n["id"])})
    entries.sort(key=lambda x: x["order"], reverse=True)
    for x in entries:
        x.pop("order")
    return entries


def _iso(at: datetime) -> str:
    from engine.history import iso

    return iso(as_utc(at))


_SKIP = {"task.left", "task.draft_saved", "instance.child_started"}
_DECISIONS = {"adult_eligibility", "carer_eligibility"}


def describe(e: dict[str, Any], rec: Loaded, inst_by_id: dict[int, dict[str, Any]], completed_tasks: set[Any],
             doc_queue: dict[tuple[int, str], list[dict[str, Any]]]) -> tuple[str | None, str, str | None]:
    """(sentence, kind, link) for one history event; sentence None when the event is not worth one."""
    t = e["type"]
    d = e.get("data") if isinstance(e.get("data"), dict) else {}
    iid = e.get("instance_id")
    ver = rec.versions.get(iid) if iid is not None else None
    el = d.get("element_id")
    name = d.get("name") or (ver.element_name(el) if ver else humanise(el or ""))
    who = rec.who(e["actor"])
    if t == "case.created":
        return f"Case {d.get('reference', '')} opened", "case", None
    if t == "case.closed":
        return _closed_sentence(d, who), "case", None
    if t == "case.reopened":
        return f"Case reopened by {who}" + _because(d.get("reason")), "case", None
    if t == "case.restricted":
        names = ", ".join(rec.who(u) for u in d.get("allowed") or [] if isinstance(u, str)) or "nobody"
        return f"Case restricted by {who} to {names}" + _because(d.get("reason")), "access", None
    if t == "case.unrestricted":
        return f"Restriction lifted by {who}" + _because(d.get("reason")), "access", None
    if t == "instance.ended":
        proc = ver.name if ver else humanise(d.get("process_id", "") or "the process")
        why = d.get("reason") if d.get("reason") != "ended on resume" else None
        return f"{proc} ended by {who} instead of resuming" + _because(why), "process", None
    if t == "instance.cancelled":
        return _cancelled_sentence(e, d, ver, rec, who), "process", None
    if t in ("instance.suspended", "instance.resumed"):
        return _pause_sentence(t, d, ver, who), "process", None
    if t == "instance.migrated":
        return _migrated_sentence(d, ver, who), "process", None
    if t == "instance.started":
        proc = ver.name if ver else humanise(d.get("process_id", ""))
        parent = inst_by_id.get(d.get("parent_instance_id")) if d.get("parent_instance_id") else None
        return (f"{proc} started" + (f" (from {parent['name']})" if parent else "")), "process", None
    if t == "instance.completed":
        return f"{ver.name if ver else humanise(d.get('process_id', ''))} finished", "process", None
    if t == "task.ready":
        team = team_name(((ver.element(el).get("candidate_groups") or [None])[0]) if ver else None)
        return f"New task: {name}" + (f" for the {team} team" if team else ""), "task", None
    if t == "task.completed":
        return f"{name} completed by {who}", "task", None
    if t == "task.left":
        if d.get("task_id") in completed_tasks:
            return None, "", None
        return f"Task closed without being completed: {name} (the process moved on)", "task", None
    if t == "task.claimed":
        return f"{name} claimed by {who}", "task", None
    if t == "task.released":
        return f"{name} released by {who}", "task", None
    if t in ("task.assigned", "task.delegated"):
        to = rec.who(d.get("assignee")) if d.get("assignee") else "nobody"
        verb = "delegated" if t == "task.delegated" else "assigned"
        return f"{name} {verb} to {to} by {who}", "task", None
    if t == "task.returned":
        return f"{name} returned by {who}", "task", None
    if t == "timer.set":
        return _timer_sentence("set", d, ver, el), "timer", None
    if t == "timer.fired":
        return _timer_sentence("fired", d, ver, el), "timer", None
    if t == "timer.cleared":
        return _timer_sentence("cleared", d, ver, el), "timer", None
    if t == "handler.called":
        return _handler_sentence(d, name, iid, doc_queue)
    if t == "handler.failed":
        return f"Problem at {name}: it could not be done and needs an administrator", "problem", None
    if t == "incident.opened":
        return f"Problem reported at {name}", "problem", None
    if t == "incident.retried":
        return f"{name} retried by {who}", "problem", None
    if t == "case.updated":
        data = d.get("data") or {}
        what = _detail_names(data)
        return f"Details kept on the case record: {what}", "record", None
    if t == "case.record_updated":
        return _correction_sentence(rec, d, who), "record", None
    if t == "case.break_glass":
        return (f"Break-glass access by {who} until {day_and_time(d.get('until'))}: {d.get('reason', '')}",
                "access", None)
    if t == "case.break_glass_reviewed":
        return f"{who} reviewed {rec.who(d.get('user'))}'s break-glass access: {d.get('note', '')}", "access", None
    if t == "person.subject_access_exported":
        from .subject_access import exported_sentence

        return exported_sentence(d, who), "record", None
    if t in _SKIP:
        return None, "", None
    return f"{humanise(t.replace('.', ' '))}", "other", None


def _because(reason: Any) -> str:
    """": why" for a sentence, from a reason written by a person (first letter lower-cased), or ""."""
    why = str(reason or "").strip()
    return f": {why[:1].lower() + why[1:]}" if why else ""


def _pause_sentence(t: str, d: dict[str, Any], ver: Any, who: str) -> str:
    """A process paused or resumed, in words: "Reablement paused by Sam Smith: admitted to Northby General on
    6 December 2026" (it said "Instance suspended")."""
    proc = ver.name if ver else humanise(d.get("process_id", "") or "the process")
    details = d.get("details") if isinstance(d.get("details"), dict) else {}
    if t == "instance.suspended":
        if details.get("hospital"):
            when = details.get("admitted_on")
            day = _day_in_words(when) if when else None
            why = f"admitted to {details['hospital']}" + (f" on {day}" if day else "")
        else:
            why = str(d.get("reason") or "").strip()
        return f"{proc} paused by {who}" + (f": {why[:1].lower() + why[1:]}" if why else "")
    why = str(d.get("reason") or "").strip()
    return f"{proc} resumed by {who}" + (f": {why[:1].lower() + why[1:]}" if why else "")


def _migrated_sentence(d: dict[str, Any], ver: Any, who: str) -> str:
    """A process moved to another version of its diagram (engine/instance_migration.py), in words: "Reablement
    moved from version 1 to version 2 by Sam Smith: planning step renamed; 'Reablement period reached' now
    due 12 January 2027 (was 19 January 2027)" (it said "Instance migrated")."""
    proc = ver.name if ver else humanise(d.get("process_id", "") or "the process")
    text = f"{proc} moved from version {d.get('from_version')} to version {d.get('to_version')} by {who}"
    why = str(d.get("reason") or "").strip()
    if why:
        text += f": {why[:1].lower() + why[1:]}"
    for t in d.get("timer_due_dates") or []:
        if not isinstance(t, dict) or not t.get("due_after") or t.get("due_after") == t.get("due_before"):
            continue
        el = t.get("to_element_id") or t.get("element_id")
        tname = ver.element_name(el) if ver else humanise(el or "timer")
        text += f"; {tname} now due {long_day(t['due_after'])} (was {long_day(t.get('due_before'))})"
    return text


def _day_in_words(value: Any) -> str | None:
    """"2026-12-06" as "6 December 2026", or None for a value that is not a date."""
    from datetime import date

    try:
        day = date.fromisoformat(str(value)[:10])
    except ValueError:
        return None
    return f"{day.day} {day:%B %Y}"


SCREENING_ROUTES = {"information_and_advice": "information and advice", "needs_assessment": "needs assessment",
                    "reablement": "reablement first", "safeguarding": "safeguarding concern",
                    "signposting": "signposting to community services, with a call back",
                    "urgent_response": "urgent response today", "review": "unplanned review of the support plan",
                    "equipment": "equipment, telecare or minor adaptations"}


def screening_also(data: Any) -> list[str]:
    """What the front door started besides the route for the person's needs (processes/front_door.bpmn):
    the safeguarding process for a concern that comes with a crisis, a carer's assessment for a carer
    asking for support for themselves, signposting for community needs next to equipment."""
    if not isinstance(data, dict):
        return []
    out = []
    route = data.get("screening_route")
    if data.get("safeguarding_concern") is True and route != "safeguarding":
        out.append("safeguarding concern: the safeguarding team triages it")
    carer = data.get("carer")
    if isinstance(carer, dict) and carer.get("name"):
        out.append(f"carer's assessment for {carer['name']}, who asks for support as a carer")
    if route == "equipment" and data.get("needs"):
        out.append("signposting to community services, with a call back")
    return out


#: routes the front door does not take when reablement, an assessment, a budget or a plan is open on the case
#: (processes/front_door.bpmn f_open_work): the team working the case gets the new information instead
OPEN_WORK_ROUTES = ("review", "reablement", "needs_assessment")
_OPEN_WORK_TEAMS = {"reablement": "the reablement team", "social_work": "the social work team"}


def screening_route_and_reason(data: dict[str, Any]) -> tuple[str, str]:
    """The route the front door took, in words, and why: the screening's, unless open work on the case
    held it back (then what is open and who has the new information)."""
    route = str(data["screening_route"])
    text = SCREENING_ROUTES.get(route, humanise(route).lower())
    reason = str(data.get("screening_reason") or "")
    open_work = data.get("open_work")
    if route in OPEN_WORK_ROUTES and isinstance(open_work, list) and open_work:
        team = _OPEN_WORK_TEAMS.get(str(data.get("open_work_team")), "the team working the case")
        what = ", ".join(str(p).replace("_", " ") for p in open_work)
        reason = (f"Already open on the case: {what}. Nothing new was started (screened as {text}); "
                  f"{team} has the new information")
        text = f"new information for {team}"
    return text, reason


def screening_outcome(data: Any) -> str | None:
    """The front door's screening (processes/screening.dmn) in words: "needs assessment (reason)", with
    what else was started ("; also: …")."""
    if not isinstance(data, dict) or not data.get("screening_route"):
        return None
    text, reason = screening_route_and_reason(data)
    text = f"{text} ({reason})" if reason else text
    also = screening_also(data)
    return f"{text}; also: {'; '.join(also)}" if also else text


def _detail_names(data: dict[str, Any]) -> str:
    names = []
    for k, v in data.items():
        if k == "person" and isinstance(v, dict):
            names += [humanise(x).lower() for x in v]
        else:
            names.append(humanise(k).lower())
    return ", ".join(names) or "none"


def _reason_words(reason: Any) -> str:
    from .case_actions import CLOSE_REASONS

    return CLOSE_REASONS.get(reason, humanise(str(reason or "")))


def _closed_sentence(d: dict[str, Any], who: str) -> str:
    details = d.get("details") if isinstance(d.get("details"), dict) else {}
    text = f"Case closed by {who}: {_reason_words(d.get('reason'))}"
    if details.get("safeguarding_passed_on"):
        text += (f". {who} confirmed the open safeguarding concern was passed on or can be closed"
                 + (f" ({details['note']})" if details.get("note") else ""))
    return text


def _cancelled_sentence(e: dict[str, Any], d: dict[str, Any], ver: Version | None, rec: Loaded, who: str) -> str:
    """A process withdrawn by closing the case, or ended on its own: which one, why, and the tasks it withdrew."""
    proc = ver.name if ver else humanise(d.get("process_id", ""))
    closing = any(x["type"] == "case.closed" and x["at"] == e["at"] for x in rec.history)
    why = "case closed" if closing else f"ended by {who}: {_reason_words(d.get('reason'))}"
    names = [f"{t.get('name')}" + (f" ({team_name(t.get('team'))} team)" if t.get("team") else "")
             for t in d.get("tasks_withdrawn") or [] if isinstance(t, dict) and t.get("name")]
    return f"{proc} cancelled: {why}" + (f"; tasks withdrawn: {'; '.join(names)}" if names else "")


def _timer_sentence(what: str, d: dict[str, Any], ver: Version | None, el: str | None) -> str:
    info = ver.element(el) if ver and el else {}
    tname = info.get("name") or humanise(el or "timer")
    on = f" on {ver.element_name(info['attached_to'])}" if ver and info.get("attached_to") else ""
    due = long_day(d.get("due_at"))
    if what == "set":
        label = "Deadline set" if info.get("attached_to") else "Waiting until"
        return f"{label}{on}: {tname}, {due}"
    if what == "fired":
        return f"Time reached{on}: {tname} ({due})" if due else f"Time reached{on}: {tname}"
    return f"Timer no longer needed{on}: {tname}"


def _handler_sentence(d: dict[str, Any], name: str, iid: Any, doc_queue: dict[tuple[int, str], list[dict[str, Any]]]
                      ) -> tuple[str | None, str, str | None]:
    handler = d.get("handler") or ""
    out = d.get("output") if isinstance(d.get("output"), dict) else {}
    docs = doc_queue.get((iid, d.get("element_id")))
    if docs:
        doc = docs.pop(0)
        # written and filed on the case, not necessarily posted: without GOV.UK Notify it waits to be printed, and
        # with it it is queued (its delivery is shown beside the letter); "sent" made workers tell people it was
        return f"Letter written: {doc['title']}", "letter", f"/cases/{doc['case_id']}/letters/{doc['id']}"
    if handler == "local_settings":
        return None, "", None
    if handler in _DECISIONS and "eligible" in out:
        result = "eligible" if out.get("eligible") else "not eligible"
        who = "the carer" if handler == "carer_eligibility" else "the person"
        return f"Decision: {who} is {result} ({name})", "decision", None
    if handler == "personal_budget" and out.get("final_amount") is not None:
        extra = " — needs team manager approval" if out.get("needs_approval") else ""
        return (f"Personal budget worked out: {money(out['final_amount'])} a year "
                f"({out.get('total_points', '?')} points){extra}"), "decision", None
    if handler == "start_process":
        return None, "", None  # the child's own "started" entry says it
    return f"Done by the system: {name}", "system", None


def _correction_sentence(rec: Loaded, d: dict[str, Any], who: str) -> str:
    data, prev = d.get("data") or {}, d.get("previous") or {}
    reason = d.get("reason") or ""
    parts = []
    fields = {}
    for k, v in data.items():
        if k == "person" and isinstance(v, dict):
            old = prev.get("person") if isinstance(prev.get("person"), dict) else {}
            for f in sorted(set(v) | set(old)):
                if v.get(f) != old.get(f):
                    fields[f] = (old.get(f), v.get(f))
        elif k == "coordinating_worker":
            parts.append(f"co-ordinating worker set to {rec.who(v) if isinstance(v, str) else show_value(None, v)}"
                         if v else "co-ordinating worker removed")
        else:
            fields[k] = (prev.get(k), v)
    for f, (old, new) in fields.items():
        title = rec.titles.get(f) or humanise(f)
        if new in (None, ""):
            parts.append(f"{title} removed (was {show_value(None, old)})")
        elif old in (None, ""):
            parts.append(f"{title} added: {show_value(None, new)}")
        else:
            parts.append(f"{title} changed from {show_value(None, old)} to {show_value(None, new)}")
    text = "Record changed by " + who + ": " + ("; ".join(parts) or "no visible change")
    return text + (f". Reason: {reason}" if reason else "")
