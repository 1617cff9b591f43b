"""Moving running cases to another version of their process: the JSON API and the pages.

A thin layer over engine/instance_migration.py. Process owners dry-run and move cases; team
managers and auditors may look at a dry run (read-only); everyone else is refused (403).

* JSON: `POST /api/processes/{pid}/migrations/dry-run` and `POST /api/processes/{pid}/migrations`
  (CSRF header, as every JSON write).
* Pages: `GET /processes/{pid}/migrate` (choose versions, map renamed elements, choose what
  happens to changed timers) → `POST …/migrate/check` (the dry run: a table of cases, can move or
  not and why, with checkboxes) → `POST …/migrate/move` (a confirmation page: what moved, what
  was refused and why). The dry run's instance versions travel in a hidden field, so a case that
  changed since the owner looked at it is refused, not moved unseen.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy import func, select
from starlette.concurrency import run_in_threadpool

from engine import instance_migration as im
from engine.errors import CarepathError, NotFoundError, ValidationError
from engine.schema import instances, process_versions

from . import page_kit as kit
from .auth import User, get_engine, require_roles
from .errors import forbidden
from .inputs import Id, Revision, to_id, whole

router = APIRouter()

MOVERS = ("process_owner",)
VIEWERS = ("process_owner", "team_manager", "auditor")
SHOWN = 500  # rows of the dry-run table on a page; "move all movable" still covers every case
MAP_ROWS = 3  # empty mapping rows offered on the page
TIMER_CHOICES = {"refuse": (False, False), "keep": (True, False), "recompute": (False, True)}

Viewer = Annotated[User, Depends(require_roles(*VIEWERS))]
Mover = Annotated[User, Depends(require_roles(*MOVERS))]


# ---------------------------------------------------------------------- JSON API
class DryRunBody(BaseModel):
    from_version: Id
    to_version: Id
    mapping: dict[str, str] = Field(default_factory=dict, max_length=200)
    case_ids: list[str] | None = Field(default=None, max_length=10_000)
    timers: Literal["refuse", "keep", "recompute"] = "refuse"


class MigrateBody(DryRunBody):
    reason: str = Field(min_length=1, max_length=500)
    expected_versions: dict[str, Revision] | None = Field(default=None, max_length=100_000)
    batch: int = Field(default=100, ge=1, le=1000)


def _timer_flags(choice: str) -> dict[str, bool]:
    keep, recompute = TIMER_CHOICES[choice]
    return {"keep_timers": keep, "recompute_timers": recompute}


@router.post("/api/processes/{process_id}/migrations/dry-run")
def api_dry_run(process_id: str, body: DryRunBody, engine: Annotated[Any, Depends(get_engine)],
                _user: Viewer) -> dict[str, Any]:
    plan = im.dry_run(engine, process_id, body.from_version, body.to_version, mapping=body.mapping,
                      case_ids=body.case_ids, **_timer_flags(body.timers))
    return plan.to_dict()


@router.post("/api/processes/{process_id}/migrations")
def api_migrate(process_id: str, body: MigrateBody, engine: Annotated[Any, Depends(get_engine)],
                user: Mover) -> dict[str, Any]:
    result = im.migrate(engine, process_id, body.from_version, body.to_version, actor=user.username,
                        reason=body.reason, mapping=body.mapping, case_ids=body.case_ids,
                        expected_versions=body.expected_versions, batch=body.batch, **_timer_flags(body.timers))
    return result.to_dict()


# ---------------------------------------------------------------------- pages
def _page_user(request: Request, roles: tuple[str, ...]) -> User:
    user = kit.signed_in(request)
    if not user.has(*roles):
        if roles == MOVERS:
            raise forbidden("Only process owners can move cases to another version.")
        raise forbidden("This page is for process owners, team managers and auditors.")
    return user


def _versions(engine: Any, process_id: str) -> list[dict[str, Any]]:
    """The process's versions with their open cases (404 when the process was never deployed)."""
    with engine.db.engine.connect() as conn:
        open_ = dict(conn.execute(select(instances.c.process_version_id, func.count())
                                  .where(instances.c.process_id == process_id,
                                         instances.c.status.in_(im.OPEN_STATUSES))
                                  .group_by(instances.c.process_version_id)).all())
        rows = conn.execute(select(process_versions.c.id, process_versions.c.version, process_versions.c.name,
                                   process_versions.c.deployed_at)
                            .where(process_versions.c.process_id == process_id)
                            .order_by(process_versions.c.version)).all()
    if not rows:
        raise NotFoundError(f"there is no process '{process_id}'", process=process_id)
    return [{"version": r.version, "name": r.name, "deployed": kit.long_date(r.deployed_at),
             "running": open_.get(r.id, 0)} for r in rows]


def _int(text: str) -> int | None:
    return whole(text, 1, 99_999_999)


def _choices(form: dict[str, list[str]] | None, query: dict[str, str], versions: list[dict[str, Any]]
             ) -> dict[str, Any]:
    """What the owner chose (versions, mapping rows, timers), read from a posted form or the query."""
    get = (lambda k: kit.one(form, k)) if form is not None else (lambda k: query.get(k, ""))
    from_text, to_text = get("from"), get("to")
    to = _int(to_text) if to_text else versions[-1]["version"]
    others = [v for v in versions if v["version"] != to]  # from: the oldest other version with open cases
    default_from = next((v["version"] for v in others if v["running"]), others[0]["version"] if others else to)
    froms = (form or {}).get("map_from", [])[:50]
    tos = (form or {}).get("map_to", [])[:50]
    rows = [{"from": f.strip()[:255], "to": t.strip()[:255]} for f, t in zip(froms, tos, strict=False)]
    timers = get("timers") if get("timers") in TIMER_CHOICES else "refuse"
    return {"from": _int(from_text) if from_text else default_from,
            "to": to,
            "from_text": from_text, "to_text": to_text, "rows": rows, "timers": timers}


def _mapping(rows: list[dict[str, str]], to_label: str) -> tuple[dict[str, str], dict[str, str]]:
    """The mapping rows as {old: new}, and errors by field for half-filled rows."""
    mapping, errors = {}, {}
    for i, row in enumerate(rows):
        if row["from"] and not row["to"]:
            errors[f"map_to-{i}"] = f"Choose the element in {to_label} that '{row['from']}' becomes"
        elif row["to"] and not row["from"]:
            errors[f"map_from-{i}"] = f"Choose the element that becomes '{row['to']}'"
        elif row["from"]:
            if row["from"] in mapping and mapping[row["from"]] != row["to"]:
                errors[f"map_from-{i}"] = f"'{row['from']}' is mapped twice: map it to one element"
            mapping[row["from"]] = row["to"]
    return mapping, errors


def _version_errors(choice: dict[str, Any], versions: list[dict[str, Any]]) -> dict[str, str]:
    known = {v["version"] for v in versions}
    errors = {}
    if choice["from"] not in known:
        errors["from"] = "Choose the version the cases are on"
    if choice["to"] not in known:
        errors["to"] = "Choose the version to move the cases to"
    if not errors and choice["from"] == choice["to"]:
        errors["to"] = f"Choose a different version from version {choice['from']}: the cases are already on it"
    return errors


def _form_page(request: Request, user: User, process_id: str, versions: list[dict[str, Any]],
               choice: dict[str, Any], by_field: dict[str, str] | None = None, status: int = 200) -> Response:
    by_field = dict(by_field or {})
    elements: dict[str, list[dict[str, str]]] = {"source": [], "target": []}
    if not _version_errors(choice, versions):
        plan = im.plan_for(request.app.state.engine, process_id, choice["from"], choice["to"])
        elements = {"source": plan.source_elements(), "target": plan.target_elements()}
    rows = list(choice["rows"]) + [{"from": "", "to": ""}] * max(1, MAP_ROWS - len(choice["rows"]))
    return kit.render(request, "process_migrate.html", {
        "user": user, "process_id": process_id, "versions": versions, "choice": choice, "rows": rows,
        "elements": elements, "field_errors": by_field,
        "errors": kit.error_summary(by_field, {k: k for k in by_field}),
        "can_move": user.has(*MOVERS)}, status)


@router.get("/processes/{process_id}/migrate", response_class=HTMLResponse, include_in_schema=False)
def migrate_page(request: Request, process_id: str) -> Response:
    user = None
    try:
        user = _page_user(request, VIEWERS)
        versions = _versions(request.app.state.engine, process_id)
        choice = _choices(None, dict(request.query_params), versions)
        errors = _version_errors(choice, versions) if choice["from_text"] or choice["to_text"] else {}
        return _form_page(request, user, process_id, versions, choice, errors, 400 if errors else 200)
    except Exception as exc:  # noqa: BLE001 - kit.guard re-raises anything it does not handle
        return kit.guard(request, user, exc, not_found=f"There is no process '{process_id}'.")


def _expected_text(plan: im.DryRun) -> str:
    """The movable cases as the dry run saw them: "case.instance.version,…" (the stale check)."""
    return ",".join(f"{c.case_id}.{c.instance_id}.{c.instance_version}" for c in plan.movable)


def _parse_expected(text: str) -> dict[int, tuple[int, int]]:
    out: dict[int, tuple[int, int]] = {}
    for part in text.split(","):
        bits = part.strip().split(".")
        numbers = [to_id(bits[0]), to_id(bits[1]), whole(bits[2])] if len(bits) == 3 else []
        if numbers and None not in numbers:
            out[numbers[1]] = (numbers[0], numbers[2])
    return out


async def _dry_run(request: Request, user: User, process_id: str, form: dict[str, list[str]],
                   *, move_errors: dict[str, str] | None = None, status: int = 200,
                   expected: str | None = None, reason: str = "") -> Response:
    engine = request.app.state.engine
    versions = await run_in_threadpool(_versions, engine, process_id)
    choice = _choices(form, {}, versions)
    by_field = _version_errors(choice, versions)
    mapping, map_errors = _mapping(choice["rows"], f"version {choice['to']}")
    by_field.update(map_errors)
    if by_field:
        return await run_in_threadpool(_form_page, request, user, process_id, versions, choice, by_field, 422)
    try:
        plan = await run_in_threadpool(lambda: im.dry_run(engine, process_id, choice["from"], choice["to"],
                                                          mapping=mapping, **_timer_flags(choice["timers"])))
    except ValidationError as exc:  # a mapping naming an element that is not there
        by_field = {"map_from-0": exc.errors[0]["message"]} if exc.errors else {"from": exc.message}
        return await run_in_threadpool(_form_page, request, user, process_id, versions, choice, by_field, 422)
    move_errors = move_errors or {}
    return kit.render(request, "process_migrate_results.html", {
        "user": user, "process_id": process_id, "plan": plan, "choice": choice, "mapping": mapping,
        "cases": plan.cases[:SHOWN], "hidden_rows": max(0, len(plan.cases) - SHOWN),
        "renamed": [m for m in plan.moves if m["how"] != "same id"],
        "expected": expected if expected is not None else _expected_text(plan),
        "selected": set(form.get("case", [])), "reason": reason, "can_move": user.has(*MOVERS),
        "field_errors": move_errors,
        "errors": kit.error_summary(move_errors, {"case": "case-0"} if "case" in move_errors else {})}, status)


@router.post("/processes/{process_id}/migrate/check", response_class=HTMLResponse, include_in_schema=False)
async def check_page(request: Request, process_id: str) -> Response:
    user = None
    try:
        form = await kit.posted_form(request)
        user = _page_user(request, VIEWERS)
        kit.check_csrf(user, form)
        return await _dry_run(request, user, process_id, form)
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found=f"There is no process '{process_id}'.")


@router.post("/processes/{process_id}/migrate/move", response_class=HTMLResponse, include_in_schema=False)
async def move_page(request: Request, process_id: str) -> Response:
    user = None
    try:
        form = await kit.posted_form(request)
        user = _page_user(request, MOVERS)
        kit.check_csrf(user, form)
        engine = request.app.state.engine
        expected_text = kit.one(form, "expected")
        expected = _parse_expected(expected_text)
        reason = kit.one(form, "reason").strip()[:500]
        everything = kit.one(form, "action") == "all"
        picked = {to_id(v) for v in form.get("case", [])} - {None}
        chosen = expected if everything else {iid: v for iid, v in expected.items() if iid in picked}
        errors = {}
        if not reason:
            errors["reason"] = "Enter why the cases are being moved"
        if not chosen:
            errors["case"] = ("There are no cases that can move" if everything or not expected
                              else "Select the cases to move, or choose Move all movable cases")
        if errors:
            return await _dry_run(request, user, process_id, form, move_errors=errors, status=422,
                                  expected=expected_text, reason=reason)
        versions = await run_in_threadpool(_versions, engine, process_id)
        choice = _choices(form, {}, versions)
        mapping, _ = _mapping(choice["rows"], "")
        try:
            result = await run_in_threadpool(lambda: im.migrate(
                engine, process_id, choice["from"], choice["to"], actor=user.username, reason=reason,
                mapping=mapping, case_ids=sorted({case for case, _v in chosen.values()}),
                expected_versions={iid: v for iid, (_c, v) in chosen.items()}, **_timer_flags(choice["timers"])))
        except CarepathError as exc:
            return kit.error_page(request, user, 422 if isinstance(exc, ValidationError) else 404,
                                  "Sorry, there is a problem", exc.message)
        names = await run_in_threadpool(lambda: {e["id"]: e["name"] for e in im.plan_for(
            engine, process_id, choice["from"], choice["to"]).target_elements()})
        return kit.render(request, "process_migrate_done.html", {
            "user": user, "process_id": process_id, "result": result, "reason": reason, "names": names})
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found=f"There is no process '{process_id}'.")
