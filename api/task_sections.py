"""Long task forms answered a section at a time (a form schema's `x-sections`, docs/engine.md "Forms").

The task page shows a GOV.UK task list: each section with its status (Not started, In progress,
Completed). Each section is its own page (`/tasks/{id}/sections/{section}`); "Save and continue"
keeps its answers in the task's draft (the same draft as "Save and come back later", so only the
person the task is with can) and shows what is still missing in that section. "Check your answers"
(`/tasks/{id}/check-answers`) lists every answer shown, with Change links, and completes the task
with the saved answers; the engine validates them against the whole schema as for any task.
Same rules as the task page (api/pages.py): signed in, a worker who may see the task, CSRF on POST.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.errors import ConflictError, StateError, ValidationError

from . import page_kit as kit
from . import tasks as task_api
from .inputs import whole
from .page_forms import (
    Section,
    answer_rows,
    engine_errors,
    fields_for,
    fill,
    for_checking,
    in_section,
    read_section,
    section_statuses,
    sections_for,
    set_errors,
    walk,
)

router = APIRouter(include_in_schema=False)


def declared(engine: Any, task: dict[str, Any]) -> list[dict[str, Any]]:
    try:
        return engine.forms.sections(task.get("form"))
    except Exception:  # noqa: BLE001 - an unknown form has no sections
        return []


def assess(engine: Any, task: dict[str, Any], answers: dict[str, Any] | None
           ) -> tuple[list[Any], list[Section], dict[str, str], list[str]]:
    """The form's fields filled with `answers`, its sections with their status, and what is wrong
    (message by field name, and messages for no field)."""
    from .pages import _schema

    fields = fields_for(_schema(engine, task))
    answers = answers if isinstance(answers, dict) else {}
    fill(fields, answers)
    sections = sections_for(fields, declared(engine, task))
    messages: dict[str, str] = {}
    general: list[str] = []
    try:
        engine.forms.validate(task.get("form"), for_checking(sections, answers), task=task["id"])
    except ValidationError as exc:
        messages, general = engine_errors(fields, exc.errors)
    section_statuses(sections, answers, messages)
    return fields, sections, messages, general


def task_list_context(engine: Any, task: dict[str, Any]) -> dict[str, Any]:
    _fields, sections, _m, _g = assess(engine, task, task.get("draft"))
    return {"sections": sections, "completed": sum(s.status == "Completed" for s in sections)}


def _load(request: Request, task_id: str) -> tuple[Any, Any, dict[str, Any]]:
    user = kit.signed_in(request)
    task_api.require_worker(user)
    engine = request.app.state.engine
    try:
        return user, engine, task_api.authorised_task(engine, user, task_id)
    except ConflictError as exc:  # the error page knows who is signed in (no "Sign in" link), in plain words
        raise _Conflict(user, conflict_words(engine, user, exc)) from None


def _guard(request: Request, user: Any, exc: Exception) -> Response:
    if isinstance(exc, _Conflict):
        return kit.error_page(request, exc.user, 409, "This task has changed", exc.words)
    if isinstance(exc, ConflictError) and user is not None:
        engine = request.app.state.engine
        return kit.error_page(request, user, 409, "This task has changed", conflict_words(engine, user, exc))
    return kit.guard(request, user, exc)


class _Conflict(Exception):
    """A task that changed or finished, for the signed-in user, said in plain words."""

    def __init__(self, user: Any, words: str) -> None:
        super().__init__(words)
        self.user, self.words = user, words


_CHANGES = {"task.draft_saved": "saved answers to", "task.claimed": "claimed", "task.assigned": "assigned",
            "task.released": "released", "task.delegated": "delegated", "task.returned": "returned",
            "task.completed": "completed"}


def conflict_words(engine: Any, user: Any, exc: ConflictError, nothing: str = "Nothing you typed was saved.") -> str:
    """A stale or duplicate submission as a person reads it: who did what to the task, and when, in UK time;
    never the task's id or a timestamp in ISO form. `nothing`: what did not happen (a button's action, not typing)."""
    from .case_record import day_and_time
    from .cases import display_name

    ctx = getattr(exc, "context", {}) or {}

    def who(username: Any) -> str:
        if not username:
            return "someone"
        return "you" if user is not None and username == user.username else display_name(engine, str(username))

    when = day_and_time(ctx["at"]) if ctx.get("at") else ""
    at = f" on {when.replace(', ', ' at ')}" if when else ""
    if ctx.get("completed_by"):
        return f"This task was completed by {who(ctx['completed_by'])}{at}. {nothing} Go back to your tasks."
    if ctx.get("withdrawn"):
        return (f"This task was withdrawn{at}: a deadline passed or the process moved on. {nothing} Go back to your "
                "tasks.")
    if ctx.get("changed_by"):
        did = _CHANGES.get(str(ctx.get("change")), "changed")
        to = f" to {who(ctx['to'])}" if ctx.get("to") else ""  # assigned, delegated or returned: who has it now
        return f"This task changed after you opened this page: {who(ctx['changed_by'])} {did} it{to}{at}. {nothing}"
    return f"This task changed after you opened this page. {nothing}"


FROM_CHECK = "check"  # `?from=check` on a Change link: the section goes back to Check your answers once saved


def _from_check(request: Request, form: dict[str, list[str]] | None = None) -> bool:
    """Whether the section was opened from Check your answers (a Change link, or an error listed there): the GOV.UK
    pattern takes the user back there once the answer is saved, not to the task list."""
    sent = kit.one(form, "from") if form is not None else request.query_params.get("from", "")
    return sent == FROM_CHECK


def _section_page(request: Request, user: Any, engine: Any, task: dict[str, Any], section: Section,
                  errors: list[dict[str, Any]] | None = None, status: int = 200, conflict: str | None = None,
                  from_check: bool = False) -> Response:
    from . import prefill
    from .pages import _task_context

    prefill.apply(engine, task, section.fields, task.get("draft"))  # suggested answers, with where they came from
    ctx = _task_context(request, user, task, section.fields, errors=errors or [], conflict=conflict,
                        section=section, from_check=from_check)
    ctx["has_groups"] = any(f.kind == "group" for f in walk(section.fields))
    return kit.render(request, "task_section.html", ctx, status)


def _find(sections: list[Section], section_id: str) -> Section | None:
    return next((s for s in sections if s.id == section_id), None)


@router.get("/tasks/{task_id}/sections/{section_id}", response_class=HTMLResponse)
def section_page(request: Request, task_id: str, section_id: str) -> Response:
    user = None
    try:
        user, engine, task = _load(request, task_id)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    _fields, sections, _m, _g = assess(engine, task, task.get("draft"))
    section = _find(sections, section_id)
    if section is None:
        return kit.error_page(request, user, 404, "Page not found",
                              "This task's form has no section with that name. Go back to the task.")
    if task.get("assignee") != user.username:
        return kit.redirect(f"/tasks/{task['id']}")  # claim it first: the task page says so
    return _section_page(request, user, engine, task, section, from_check=_from_check(request))


@router.post("/tasks/{task_id}/sections/{section_id}", response_class=HTMLResponse)
async def save_section(request: Request, task_id: str, section_id: str) -> Response:
    form = await kit.posted_form(request)
    user = None
    try:
        user, engine, task = await run_in_threadpool(_load, request, task_id)
        kit.check_csrf(user, form)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    from .page_forms import change_items

    _fields, sections, _m, _g = assess(engine, task, task.get("draft"))
    section = _find(sections, section_id)
    if section is None:
        return kit.error_page(request, user, 404, "Page not found",
                              "This task's form has no section with that name. Go back to the task.")
    action = (form.get("action") or ["continue"])[-1]
    from_check = _from_check(request, form)
    if action.startswith(("add:", "remove:")):
        read_section(section, form, task.get("draft"), keep_invalid=True)
        problem = change_items(section.fields, action[:400])
        errors = [{"text": problem, "href": None}] if problem else []
        return _section_page(request, user, engine, task, section, errors, 400 if problem else 200,
                             from_check=from_check)
    answers, _ = read_section(section, form, task.get("draft"), keep_invalid=True)
    rev = kit.one(form, "revision")
    try:
        await run_in_threadpool(task_api.save_draft, task_id,
                                task_api.Draft(data=answers, revision=whole(rev)),
                                user, engine)
    except ConflictError as exc:
        read_section(section, form, task.get("draft"), keep_invalid=True)
        return _section_page(request, user, engine, task, section, [], 409,
                             conflict_words(engine, user, exc) + " What you typed is still below: copy "
                             "anything you need, then go back to your tasks.", from_check=from_check)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    if action == "later":
        return kit.redirect(f"/tasks/{task_id}")
    # saved; now say what is still missing or wrong in this section, on its own page
    task = await run_in_threadpool(task_api.authorised_task, engine, user, task_id)
    _f, sections, messages, _g = assess(engine, task, task.get("draft"))
    section = _find(sections, section_id) or section
    _a, local = read_section(section, form, task.get("draft"), keep_invalid=False)
    mine = {**{n: m for n, m in messages.items() if in_section(section, n)}, **local}
    if mine:
        summary = set_errors(section.fields, mine)
        return _section_page(request, user, engine, task, section, summary, 400, from_check=from_check)
    return kit.redirect(f"/tasks/{task_id}/check-answers" if from_check else f"/tasks/{task_id}")


def _check_page(request: Request, user: Any, engine: Any, task: dict[str, Any], status: int = 200,
                conflict: str | None = None) -> Response:
    from .pages import _task_context

    fields, sections, messages, general = assess(engine, task, task.get("draft"))
    errors: list[dict[str, Any]] = []
    if status == 400:
        for sec in sections:
            for e in set_errors(sec.fields, sec.messages):
                errors.append({"text": f"{sec.title}: {e['text']}",
                               "href": f"/tasks/{task['id']}/sections/{sec.id}?from={FROM_CHECK}{e['href']}"})
        errors += [{"text": g, "href": None} for g in general]
    groups = [{"section": s, "rows": answer_rows(s.fields, f"/tasks/{task['id']}/sections/{s.id}?from={FROM_CHECK}")}
              for s in sections]
    ctx = _task_context(request, user, task, [], errors=errors, conflict=conflict, groups=groups)
    return kit.render(request, "task_check.html", ctx, status)


@router.get("/tasks/{task_id}/check-answers", response_class=HTMLResponse)
def check_answers(request: Request, task_id: str) -> Response:
    user = None
    try:
        user, engine, task = _load(request, task_id)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    if not declared(engine, task):
        return kit.redirect(f"/tasks/{task_id}")
    return _check_page(request, user, engine, task)


async def submit_answers(request: Request, user: Any, engine: Any, task: dict[str, Any], revision: int | None
                         ) -> Response:
    """"Complete task" on Check your answers: the saved answers are the task's data."""
    from .pages import _flash, _name, stopped_after, stopped_page

    _fields, sections, _m, _g = assess(engine, task, task.get("draft"))
    data = for_checking(sections, task.get("draft") or {})
    try:
        await run_in_threadpool(task_api.complete_task, engine, user, task["id"],
                                task_api.Completion(data=data, revision=revision))
    except ValidationError:
        return _check_page(request, user, engine, task, 400)
    except (ConflictError, StateError) as exc:
        from .pages import task_pause

        paused = await run_in_threadpool(task_pause, engine, task) if isinstance(exc, StateError) else None
        return _check_page(request, user, engine, task, 409, paused["text"] if paused else
                           "Someone else completed or changed this task since you opened it, so nothing was "
                           "submitted. Go back to your tasks.")
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc)
    problem = await run_in_threadpool(stopped_after, engine, task)
    if problem:
        return stopped_page(request, user, task, problem)
    return _flash(request, kit.redirect("/tasks?view=mine"), f"Task completed: {_name(task)}")


# ---------------------------------------------------------------------- what a task decides on ("x-showData")
def _budget_rows(b: dict[str, Any]) -> dict[str, Any]:
    from .case_record import humanise, money

    rows = [(label, shown(b[key])) for label, key, shown in (
        ("Annual personal budget", "final_amount", money), ("Weekly equivalent", "weekly_equivalent", money),
        ("Points", "total_points", str), ("Indicative amount from the points", "indicative_amount", money))
        if b.get(key) is not None]  # a budget passed on in part (the support plan's) shows only what it has
    support = b.get("carer_support") if isinstance(b.get("carer_support"), dict) else None
    if support and support.get("amount") not in (None, "0", "0.00", 0):
        rows.append(("Carer support added", money(support.get("amount"))))
    for up in b.get("uplifts") or []:
        if isinstance(up, dict):
            rows.append((f"Uplift: {up.get('reason', '')}", money(up.get("amount"))))
    if b.get("approval_threshold") is not None:
        rows.append(("Approval threshold", money(b.get("approval_threshold"))))
    breakdown = [{"label": d.get("label") or humanise(d.get("domain", "")), "level": humanise(d.get("level", "")),
                  "points": d.get("points_after", d.get("points", "")),
                  "carer": "Yes" if d.get("met_by_carer") else "No"}
                 for d in b.get("domains") or [] if isinstance(d, dict) and d.get("level") != "none"]
    return {"rows": rows, "breakdown": breakdown,
            "explanation": [str(x) for x in b.get("explanation") or []]}


def _budget_change_rows(c: dict[str, Any]) -> dict[str, Any]:
    """A budget change checked at review (handlers.budget.check_budget_change): the amounts, the threshold
    and the reason, in words."""
    from .case_record import money

    rows = [("Budget now", money(c.get("previous_amount"))), ("Proposed budget", money(c.get("new_amount"))),
            ("Change", money(c.get("difference")))]
    if c.get("approval_threshold") is not None:
        rows.append(("Approval threshold", money(c.get("approval_threshold"))))
    if c.get("reason"):
        rows.append(("What changed", str(c["reason"])))
    return {"rows": rows, "breakdown": [], "explanation": [str(c["explanation"])] if c.get("explanation") else []}


def _plan_cost_rows(c: dict[str, Any]) -> dict[str, Any]:
    """A support plan costed against the budget (handlers.budget.cost_support_plan): each service's cost a week,
    the plan's cost, the budget, and the shortfall or what is left, in words."""
    from .case_record import money

    rows = []
    for s in c.get("services") or []:
        if isinstance(s, dict):
            rows.append((str(s.get("label", "")), str(s.get("line", "")).split(": ", 1)[-1].rstrip(".")))
    rows += [("The plan costs", f"{money(c.get('weekly_cost'))} a week"),
             ("The personal budget", f"{money(c.get('budget_weekly'))} a week")]
    if c.get("shortfall"):
        rows.append(("More than the budget by", f"{money(c.get('shortfall_amount'))} a week"))
    else:
        rows.append(("Left in the budget", f"{money(c.get('surplus_amount'))} a week"))
    contribution = c.get("contribution") if isinstance(c.get("contribution"), dict) else None
    if contribution:
        rows += [("The person pays", f"{money(contribution.get('weekly_contribution'))} a week"),
                 ("The council pays", f"{money(contribution.get('council_weekly'))} a week")]
    else:
        rows.append(("The person pays", "Not known yet: the financial assessment is under way"))
    return {"rows": rows, "breakdown": [], "explanation": [str(c["message"])] if c.get("message") else []}


def _carer_funding_rows(c: dict[str, Any]) -> dict[str, Any]:
    """Where the carer's support is paid from (handlers.carers.carer_support_paid_once): both amounts as money,
    and what is wrong in words."""
    from .case_record import money

    rows = [("The carer's budget in this plan", f"{money(c.get('carer_amount'))} a year"),
            ("Carer support in the cared-for person's budget", f"{money(c.get('cared_for_amount'))} a year"),
            ("Where this plan holds the carer's budget",
             "In the cared-for person's budget" if c.get("held_by") == "cared_for" else "The carer's own budget")]
    return {"rows": rows, "breakdown": [], "explanation": [str(c["message"])] if c.get("message") else []}


def _carer_budget_rows(b: dict[str, Any]) -> dict[str, Any]:
    """A carer's budget (handlers.carers, the carer support allocation): the level of support found, the amount a
    year and a week as money, whether the council adds it to the cared-for person's budget, and when it was worked
    out, as a day a person reads, not "600.00" and "2026-12-03T07:38:00+00:00"."""
    from .case_record import humanise, money

    rows = [("Support needs found", humanise(str(b.get("support_level") or "")) or "Not recorded"),
            ("A year", money(b.get("amount"))), ("A week", money(b.get("weekly_amount"))),
            ("Added to the cared-for person's budget", "Yes" if b.get("added_to_cared_for_budget") else "No")]
    when = b.get("worked_out_at")
    if isinstance(when, str) and when:
        try:
            rows.append(("Worked out on", kit.long_date(datetime.fromisoformat(when))))
        except ValueError:
            rows.append(("Worked out on", when))
    return {"rows": rows, "breakdown": [], "explanation": [str(b["explanation"])] if b.get("explanation") else []}


def _answer_text(questions: dict[str, dict[str, Any]], key: str, value: Any) -> str:
    """One answer in words: a list of items ("Keep my job: a sitting service (Northtown Carers Centre)"), an
    object's parts ("Sam Social, social worker"), Yes or No, or a value with its option's name."""
    prop = questions.get(key) or {}
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        parts = []
        for item in value:
            texts = [_answer_text(questions, k, v) for k, v in item.items() if v not in (None, "", [])]
            parts.append(texts[0] + (": " + "; ".join(texts[1:]) if len(texts) > 1 else ""))
        return " / ".join(parts)
    if isinstance(value, dict):
        return ", ".join(_answer_text(questions, k, v) for k, v in value.items() if v not in (None, "", []))
    if isinstance(value, list):
        return ", ".join(_labelled(questions, key, v) for v in value)
    if prop.get("x-money") is True and isinstance(value, (int, float)):
        from .case_record import money

        return money(value)
    return _labelled(questions, key, value)


def _answers_of(engine: Any, data: Any, form: str, title: str) -> dict[str, Any]:
    """`{"answersOf": form}`: the form's answers as the process data holds them (the carer's support plan on its
    sign-off page), each top-level question by its title, in the form's order; unanswered ones are left out."""
    try:
        schema = engine.forms.schema(form)
    except Exception:  # noqa: BLE001 - a missing form: nothing to show, said so
        schema = {}
    questions = _form_questions(engine, form)
    rows = []
    for key, prop in (schema.get("properties") or {}).items():
        value = data.get(key) if isinstance(data, dict) else None
        if value in (None, "", [], {}) or not isinstance(prop, dict):
            continue
        rows.append((str(prop.get("title") or key).rstrip("?"), _answer_text(questions, key, value)))
    if not rows:
        return {"title": title, "rows": [], "breakdown": [], "explanation": [],
                "missing": "Not available: the form has not been answered."}
    return {"title": title, "rows": rows, "breakdown": [], "explanation": []}


def _shown(value: Any) -> str:
    """A plain value shown above a task's questions: a day ("2031-03-03") as a person reads it ("3 March 2031")."""
    from .case_record import long_day, show_value

    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        return long_day(value)
    return show_value(None, value)


def _form_questions(engine: Any, form: Any) -> dict[str, dict[str, Any]]:
    """The questions of the form an `x-showData` entry names in `labelsFrom`, by their last name part, so values
    the process copied from that form's answers are shown with its titles and option names, not as codes."""
    if not isinstance(form, str) or not form:
        return {}
    try:
        schema = engine.forms.schema(form)
    except Exception:  # noqa: BLE001 - a missing form: the values are shown humanised
        return {}
    found: dict[str, dict[str, Any]] = {}

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for name, prop in (node.get("properties") or {}).items():
                if isinstance(prop, dict):
                    found.setdefault(name, prop)
            for value in node.values():
                if isinstance(value, (dict, list)):
                    walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk(schema)
    return found


def _question_title(questions: dict[str, dict[str, Any]], key: str) -> str:
    from .case_record import humanise

    title = (questions.get(key) or {}).get("title")
    return str(title).rstrip("?") if title else humanise(key)


def _labelled(questions: dict[str, dict[str, Any]], key: str, value: Any) -> str:
    """A value, with an option's code shown by its name in the form it came from ("Personal hygiene")."""
    from .case_record import humanise

    prop = questions.get(key) or {}
    options = prop.get("items") if isinstance(prop.get("items"), dict) else prop
    codes = options.get("enum") if isinstance(options.get("enum"), list) else None
    names = options.get("x-enumNames") or options.get("enumNames") or []

    def name(code: Any) -> str:
        if codes is not None and code in codes:
            i = codes.index(code)
            return str(names[i]) if i < len(names) else humanise(str(code))
        return humanise(str(code)) if isinstance(value, list) else _shown(code)

    if isinstance(value, list):
        return ", ".join(name(v) for v in value)
    return name(value) if codes is not None else _shown(value)


def shown_data(engine: Any, task: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The process data a form names in `x-showData` ([{"variable", "title"}]), read-only above the questions:
    a personal budget with its breakdown, or any other object as a list of its plain values."""
    from .case_record import humanise

    wanted = schema.get("x-showData") if isinstance(schema, dict) else None
    if not isinstance(wanted, list) or not wanted:
        return _tasks_shown(engine, task, schema)
    try:
        data = engine.instance_snapshot(task["instance_id"])["data"]
    except Exception:  # noqa: BLE001 - nothing to show is better than no task page
        return []
    out = []
    for w in wanted:
        if isinstance(w.get("answersOf"), str):
            out.append(_answers_of(engine, data, w["answersOf"], w.get("title") or "The answers"))
            continue
        var, title = w.get("variable"), w.get("title") or humanise(str(w.get("variable")))
        value = data.get(var) if isinstance(data, dict) else None
        if isinstance(value, dict) and "final_amount" in value:
            out.append({"title": title, **_budget_rows(value)})
        elif isinstance(value, dict) and {"previous_amount", "new_amount"} <= set(value):
            out.append({"title": title, **_budget_change_rows(value)})
        elif isinstance(value, dict) and {"weekly_cost", "budget_weekly"} <= set(value):
            out.append({"title": title, **_plan_cost_rows(value)})
        elif isinstance(value, dict) and {"conflict", "carer_amount", "cared_for_amount"} <= set(value):
            out.append({"title": title, **_carer_funding_rows(value)})
        elif isinstance(value, dict) and {"support_level", "amount", "weekly_amount"} <= set(value):
            out.append({"title": title, **_carer_budget_rows(value)})
        elif isinstance(value, dict):
            labels = _form_questions(engine, w.get("labelsFrom"))
            rows = [(_question_title(labels, k), _labelled(labels, k, v)) for k, v in value.items()
                    if isinstance(v, (str, int, float, bool)) or (isinstance(v, list) and v
                                                                  and all(isinstance(i, str) for i in v))]
            out.append({"title": title, "rows": rows, "breakdown": [], "explanation": []})
        elif value is not None:
            out.append({"title": title, "rows": [(title, _shown(value))], "breakdown": [],
                        "explanation": []})
        else:
            out.append({"title": title, "rows": [], "breakdown": [], "explanation": [],
                        "missing": "Not available: the process has not worked this out."})
    return out + _tasks_shown(engine, task, schema)


def _late_by(due: Any, now: Any) -> str:
    """How long after its due day a task is, in whole UK calendar days."""
    days = (kit.as_utc(now).astimezone(kit.UK).date() - kit.as_utc(due).astimezone(kit.UK).date()).days
    if now < due:
        return "Not late yet"
    return "Less than a day" if days <= 0 else f"{days} day{'s' if days != 1 else ''}"


def _tasks_shown(engine: Any, task: dict[str, Any], schema: dict[str, Any]) -> list[dict[str, Any]]:
    """The tasks a form names in `x-showTask` ([{"element", "title"}]): the same process's task at that step, as
    it is now — whose it is, when it was due and how late (an escalation shows the task it is about)."""
    from .case_record import team_name

    wanted = schema.get("x-showTask") if isinstance(schema, dict) else None
    if not isinstance(wanted, list) or not wanted:
        return []
    now = engine.now()
    try:
        open_tasks = engine.list_tasks(case_id=task["case_id"])
    except Exception:  # noqa: BLE001 - nothing to show is better than no task page
        return []
    out = []
    for w in wanted:
        found = [t for t in open_tasks if t.get("instance_id") == task.get("instance_id")
                 and t.get("element_id") == w.get("element")]
        if not found:
            out.append({"title": w.get("title"), "rows": [], "breakdown": [], "explanation": [],
                        "missing": "Done: this task is no longer open."})
            continue
        t = found[0]
        due = t.get("due_at")
        who = (t["assignee"] if t.get("assignee")
               else f"Nobody yet: it is in the {team_name(t.get('team'))} team's queue")
        rows = [("Task", str(t.get("name") or "")), ("Team", team_name(t.get("team"))), ("Whose task it is", who),
                ("Due", kit.long_date(due) if due else "No due date")]
        if due is not None:
            rows.append(("Late by", _late_by(due, now)))
        out.append({"title": w.get("title"), "rows": rows, "breakdown": [], "explanation": []})
    return out


# ---------------------------------------------------------------------- the front door: the advisor sees the outcome
def screening_page(request: Request, user: Any, engine: Any, task: dict[str, Any]) -> Response | None:
    """After "Record the contact": a confirmation page with the screening's route and reason
    (processes/screening.dmn), or None for any other task."""
    from .case_record import screening_also, screening_outcome, screening_route_and_reason

    if task.get("element_id") != "record_contact":
        return None
    try:
        data = engine.instance_snapshot(task["instance_id"])["data"]
    except Exception:  # noqa: BLE001 - the task is done; the case record has the rest
        return None
    if screening_outcome(data) is None:
        return None
    route, reason = screening_route_and_reason(data)
    return kit.render(request, "contact_outcome.html", {
        "user": user, "task": task, "route": route, "reason": reason, "also": screening_also(data),
        "case_id": task["case_id"]})
