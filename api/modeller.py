"""The browser modeller: its page, the form preview, and the API that checks a diagram as it is drawn.

* `GET /processes/drafts/{id}/edit` — the modeller page (bpmn-js Modeler, properties panel, dmn-js,
  problems list; the bundle is built from modeller/src by `make setup`, see modeller/build.mjs).
* `GET /processes/forms/{name}/preview` — a form of the library as a caseworker sees it.
* `GET /api/modeller/catalogue` — the lists the properties panel offers: teams, forms, handlers
  (with the parameters each declares) and local settings.
* `POST /api/modeller/validate` — the server's full deploy validation of a draft's files
  (`engine.bpmn.parse_bundle` with the registered handlers and their required parameters, the
  form library and the deployed ids) plus the layout rules (`engine.lint.lint_files`).
* `POST /api/modeller/timer` — a timer's plain-English reading, or its problem.
* `POST /api/modeller/expression` — the sandbox's deploy-time check of a condition or script.

Only process owners use any of it (docs/security.md); every POST needs the CSRF header
(api/auth.current_user). Nothing here stores anything.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.engine import Connection

from engine import drafts
from engine.bpmn import parse_bundle
from engine.bpmn_timers import (
    EXAMPLES,
    LITERAL_PATTERNS,
    is_literal,
    literal_problem,
    looks_like_iso,
    parse_date,
    parse_duration,
)
from engine.definitions import known_ids
from engine.errors import CarepathError, DefinitionError, NotFoundError, Problem
from engine.expressions import check_expression
from engine.xmlsafe import MAX_XML_BYTES, parse_xml

from . import page_kit as kit
from .auth import User, require_roles
from .errors import ApiError
from .inputs import DIAGRAM_LIMIT, Id, body_limit
from .page_forms import fields_for
from .page_kit import UK
from .static_assets import bundle_built

OWNER = "process_owner"
MAX_FILES = 20
FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}\.(bpmn|dmn)$")
FORM_NAME = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
router = APIRouter()
Owner = Annotated[User, Depends(require_roles(OWNER))]


# ---------------------------------------------------------------------- the catalogue
def local_settings() -> dict[str, Any]:
    """The council's local settings (processes/config/timescales.json), through the handlers package
    that reads them; none when another handler package is in use."""
    try:
        from handlers import settings
    except ImportError:
        return {}
    try:
        return dict(settings.load())
    except ValueError:
        return {}


def _forms(engine: Any) -> list[dict[str, str]]:
    library = getattr(engine, "forms", None)
    if library is None:
        return []
    return [{"name": n, "title": str(library.schema(n).get("title") or n)} for n in sorted(library.names())]


@router.get("/api/modeller/catalogue")
def catalogue(request: Request, _user: Owner) -> dict[str, Any]:
    engine = request.app.state.engine
    registry = engine.registry
    return {
        "teams": list(registry.teams or ()),
        "forms": _forms(engine),
        "handlers": [{"name": n, "params": registry.parameters(n)} for n in registry],
        "settings": [{"name": k, "value": v} for k, v in sorted(local_settings().items())
                     if isinstance(v, (str, int, float)) and not isinstance(v, bool)],
    }


# ---------------------------------------------------------------------- validation
class Files(BaseModel):
    files: dict[str, str] = Field(description="file name (.bpmn or .dmn) -> XML text")
    process_id: str | None = Field(default=None, max_length=200)


def _problem_dict(p: Problem) -> dict[str, Any]:
    return {"file": p.file, "element_id": p.element_id, "line": p.line, "message": p.message,
            "severity": getattr(p, "severity", None) or "error", "rule": getattr(p, "rule", None) or "carepath"}


def checked_files(files: Mapping[str, str]) -> dict[str, bytes]:
    """The files as bytes, refused (422, nothing checked) when there are none, too many, badly named,
    too large or hostile (engine/xmlsafe: DTDs, entities, ...)."""
    if not files:
        raise ApiError(422, "invalid", "no files were sent: send {\"files\": {\"name.bpmn\": \"<xml>\"}}")
    if len(files) > MAX_FILES:
        raise ApiError(422, "invalid", f"{len(files)} files were sent; a draft holds at most {MAX_FILES}")
    out: dict[str, bytes] = {}
    for name, text in files.items():
        if not FILE_NAME.match(name):
            raise ApiError(422, "invalid", f"file name {name[:120]!r} must end in .bpmn or .dmn and use only "
                                           "letters, digits, '.', '_' and '-'", file=name[:120])
        data = text.encode("utf-8")
        if len(data) > MAX_XML_BYTES:
            raise ApiError(413, "too_large", f"{name} is larger than {MAX_XML_BYTES // (1024 * 1024)} MB", file=name)
        try:
            parse_xml(data, name)
        except DefinitionError:
            pass  # not well-formed: parse_bundle reports it as a problem with its line
        except CarepathError as exc:  # UnsafeXmlError: refused before it was parsed
            raise ApiError(422, "xml_refused", exc.message, file=name) from None
        out[name] = data
    return out


def _known(conn: Connection) -> tuple[set[str], set[str]]:
    return known_ids(conn)


def validate_files(engine: Any, files: Mapping[str, bytes]) -> list[dict[str, Any]]:
    """Every problem carepath finds in the files: deploy validation (handlers and their required
    parameters, forms, teams: `Engine.definition_checks`), then the layout rules."""
    with engine.db.engine.connect() as conn:
        known_processes, known_decisions = _known(conn)
    problems: list[Problem] = []
    try:
        parse_bundle(files, **engine.definition_checks(), known_processes=known_processes,
                     known_decisions=known_decisions)
    except DefinitionError as exc:
        problems.extend(exc.problems)
    try:
        from engine.lint import lint_files  # the layout rules (engine/lint), when that package is there
    except ImportError:
        lint_files = None
    if lint_files is not None:
        # rule None: a file the intake refuses or cannot parse, which parse_bundle reported already
        problems.extend(p for p in lint_files(files) if getattr(p, "rule", None) is not None)
    return [_problem_dict(p) for p in problems]


@router.post("/api/modeller/validate")
@body_limit(DIAGRAM_LIMIT)
def validate(body: Files, request: Request, _user: Owner) -> dict[str, Any]:
    files = checked_files(body.files)
    return {"problems": validate_files(request.app.state.engine, files)}


# ---------------------------------------------------------------------- expressions
class ExpressionCheck(BaseModel):
    kind: Literal["condition", "expression", "script"]
    text: str = Field(max_length=20_000)


@router.post("/api/modeller/expression")
def expression(body: ExpressionCheck, _user: Owner) -> dict[str, Any]:
    if not body.text.strip():
        return {"ok": False, "problem": f"the {body.kind} is empty"}
    problem = check_expression(body.text, "exec" if body.kind == "script" else "eval")
    return {"ok": problem is None, "problem": problem}


# ---------------------------------------------------------------------- timers in words
class TimerCheck(BaseModel):
    kind: Literal["date", "duration", "cycle"]
    expression: str = Field(max_length=2_000)
    event: Literal["boundary", "catch", "start"] | None = None


_UNITS = (("years", "year"), ("months", "month"), ("weeks", "week"), ("days", "day"), ("hours", "hour"),
          ("minutes", "minute"), ("seconds", "second"))
BANK_HOLIDAYS = "excluding weekends and bank holidays (England and Wales)"


def _number(n: float) -> str:
    return str(int(n)) if float(n).is_integer() else str(n)


def duration_words(text: str) -> str:
    """An ISO 8601 duration in words: P42D -> "6 weeks", PT24H -> "24 hours", P1Y2M -> "1 year and 2 months"."""
    parts = dict(parse_duration(text))
    if set(parts) == {"days"} and parts["days"] and parts["days"] % 7 == 0:
        parts = {"weeks": parts["days"] / 7}
    words = [f"{_number(parts[key])} {one if parts[key] == 1 else key}" for key, one in _UNITS if parts.get(key)]
    if not words:
        return "no time at all"
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def _when(event: str | None) -> str:
    return {"boundary": "this task starts", "catch": "the case reaches this timer",
            "start": "the timer is set up"}.get(event or "", "the timer starts")


def date_words(text: str) -> str:
    if "T" not in text:
        d = parse_date(text)
        return f"on {d.day} {d:%B %Y} (midnight UTC)"
    local = parse_date(text).astimezone(UK)
    return f"on {local:%A} {local.day} {local:%B %Y} at {local:%H:%M} UK time"


def _cycle_words(text: str, event: str | None) -> str:
    reps, start_s, start_dur, end_dur, end_s, only_dur = LITERAL_PATTERNS["cycle"].fullmatch(text.strip()).groups()
    every = re.sub(r"^1 (\w+)$", r"\1", duration_words(start_dur or end_dur or only_dur))  # "every year"
    times = "for ever" if not reps else f"{reps} time{'s' if reps != '1' else ''}"
    if only_dur:
        return f"every {every}, {times}; the first one {every if ' ' in every else 'a ' + every} after {_when(event)}"
    if start_s:
        return f"every {every}, {times}, starting {date_words(start_s)}"
    return f"every {every}, {times}, ending {date_words(end_s)}"


def _setting_name(node: ast.AST) -> str | None:
    """`settings["x"]` -> "x"."""
    if (isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "settings"
            and isinstance(node.slice, ast.Constant) and isinstance(node.slice.value, str)):
        return node.slice.value
    return None


class _Unreadable(Exception):
    pass


def _count(node: ast.AST, settings: dict[str, Any], unit: str) -> str:
    """A number of days (or other units) written as a number or as a local setting, in words."""
    if isinstance(node, ast.Constant) and isinstance(node.value, int):
        return f"{node.value} {unit}"
    name = _setting_name(node)
    if name is not None:
        if name not in settings:
            raise ValueError(f"there is no local setting '{name}' in processes/config/timescales.json")
        return f"{settings[name]} {unit} (the local setting {name})"
    return f"the number of {unit} in {ast.unparse(node)}"


def _start(node: ast.AST, event: str | None) -> str:
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "now":
        return _when(event)
    if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "isoformat"
            and isinstance(node.func.value, ast.Call) and isinstance(node.func.value.func, ast.Name)
            and node.func.value.func.id == "now"):
        return _when(event)
    return f"the date in {ast.unparse(node)}"


def _expression_words(kind: str, text: str, event: str | None, settings: dict[str, Any]) -> str:
    node = ast.parse(text.strip(), mode="eval").body
    name = _setting_name(node)
    if name is not None:
        if name not in settings:
            raise ValueError(f"there is no local setting '{name}' in processes/config/timescales.json")
        value = settings[name]
        if kind == "duration" and isinstance(value, str) and is_literal("duration", value):
            return f"{duration_words(value)} after {_when(event)} (the local setting {name}, now {value})"
        if kind == "date" and isinstance(value, str) and is_literal("date", value):
            return f"{date_words(value)} (the local setting {name})"
        if kind == "cycle" and isinstance(value, str) and is_literal("cycle", value):
            return f"{_cycle_words(value, event)} (the local setting {name})"
        raise ValueError(f"the local setting {name} is {value!r}, which is not an ISO 8601 {kind} "
                         f"(for example {EXAMPLES[kind]})")
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
        fn, args = node.func.id, node.args
        if fn == "working_day_deadline" and len(args) >= 2:
            at = args[2].value if len(args) > 2 and isinstance(args[2], ast.Constant) else "17:00"
            if kind != "date":
                raise ValueError("working_day_deadline gives a date: use it in a date timer (timeDate)")
            return (f"{_count(args[1], settings, 'working days')} after {_start(args[0], event)}, at {at} UK time, "
                    f"{BANK_HOLIDAYS}")
        if fn == "add_working_days" and len(args) == 2:
            if kind != "date":
                raise ValueError("add_working_days gives a date: use it in a date timer (timeDate)")
            return (f"{_count(args[1], settings, 'working days')} after {_start(args[0], event)} (at midnight UTC), "
                    f"{BANK_HOLIDAYS}")
    if (kind == "duration" and isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod)
            and isinstance(node.left, ast.Constant) and isinstance(node.left.value, str)):
        unit = {"P%dD": "days", "P%dW": "weeks", "P%dM": "months", "P%dY": "years", "PT%dH": "hours"}.get(
            node.left.value)
        if unit:
            return f"{_count(node.right, settings, unit)} after {_when(event)}"
    what = {"date": "the date", "duration": "the length of time", "cycle": "the repeating interval"}[kind]
    if isinstance(node, (ast.Name, ast.Subscript)):
        suffix = f" after {_when(event)}" if kind == "duration" else ""
        return f"{what} in the case's data {ast.unparse(node)}, worked out earlier in the process{suffix}"
    return f"{what} worked out when {_when(event)} from {ast.unparse(node)}"


def timer_reading(kind: str, text: str, event: str | None = None,
                  settings: dict[str, Any] | None = None) -> tuple[str | None, str | None]:
    """(reading, None) or (None, problem) for a timer of this kind (date, duration, cycle)."""
    text = text.strip()
    if not text:
        return None, f"the timer has no value: write an ISO 8601 {kind} (for example {EXAMPLES[kind]}) or an expression"
    if is_literal(kind, text) or looks_like_iso(text):
        problem = literal_problem(kind, text)
        if problem:
            return None, problem
        if kind == "duration":
            return f"{duration_words(text)} after {_when(event)}", None
        if kind == "date":
            return date_words(text), None
        return _cycle_words(text, event), None
    problem = check_expression(text, "eval")
    if problem:
        return None, problem
    try:
        return _expression_words(kind, text, event, local_settings() if settings is None else settings), None
    except ValueError as exc:
        return None, str(exc)


@router.post("/api/modeller/timer")
def timer(body: TimerCheck, _user: Owner) -> dict[str, Any]:
    reading, problem = timer_reading(body.kind, body.expression, body.event)
    return {"ok": problem is None, "reading": reading, "problem": problem}


# ---------------------------------------------------------------------- pages
def _owner_page(request: Request) -> User:
    user = kit.signed_in(request)
    if not user.has(OWNER):
        raise ApiError(403, "forbidden", "Only a process owner can edit a draft of the operating model. Team "
                                         "managers and auditors can read drafts on the processes pages.")
    return user


@router.get("/processes/forms/{name}/preview", response_class=HTMLResponse, include_in_schema=False)
def form_preview(request: Request, name: str) -> Response:
    user = None
    try:
        user = _owner_page(request)
        library = request.app.state.engine.forms
        if library is None or not FORM_NAME.match(name):
            raise NotFoundError(f"no form named {name!r}")
        schema = library.schema(name)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc, not_found="There is no form with that name in the form library.")
    return kit.render(request, "form_preview.html", {"user": user, "name": name,
                                                     "title": schema.get("title") or name,
                                                     "description": schema.get("description"),
                                                     "fields": fields_for(schema)})




@router.get("/processes/drafts/{draft_id}/edit", response_class=HTMLResponse, include_in_schema=False)
def modeller_page(request: Request, draft_id: Id) -> Response:
    user = None
    try:
        user = _owner_page(request)
        draft = drafts.get_draft(request.app.state.engine, draft_id)
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found="There is no draft at this address.")
    # a diagram with no drawing (BPMN DI) cannot be shown by bpmn-js, which says only "no diagram to display"
    undrawn = sorted(name for name, text in draft["files"].items()
                     if name.lower().endswith(".bpmn") and "BPMNShape" not in text)
    return kit.render(request, "modeller.html", {
        "user": user, "draft": draft, "editable": draft["status"] in drafts.OPEN, "bundle": bundle_built(),
        "draft_url": f"/api/processes/drafts/{draft_id}", "undrawn": undrawn})
