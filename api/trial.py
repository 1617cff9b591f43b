"""Testing a draft before it goes live: replay recent cases against it, run its example case.

A thin layer over engine/trial.py, as JSON (`/api/processes/drafts/{id}/trial/...`) and as pages
(`/processes/drafts/{id}/trial`, `/processes/drafts/{id}/example`). A trial changes nothing: it
runs on a throwaway in-memory database, so everyone who may read the review page (process owners,
team managers, auditors) may run one. Only process owners change a draft's example case.

What a trial shows of a case is its reference and the path it took (element names), never the
person's details or the answers given; restricted cases are left out for everyone not named on
them (api/access.py), and naming one is refused.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from engine import drafts, trial
from engine.clock import parse_instant
from engine.errors import CarepathError, ConflictError, NotFoundError, ValidationError
from engine.xmlsafe import parse_xml

from . import page_kit as kit
from .access import hidden_cases
from .auth import User, require_roles
from .errors import ApiError, forbidden
from .inputs import Id, is_whole, to_id, whole
from .processes import OWNER, READERS, plain, refusal, when

router = APIRouter()
Reader = Annotated[User, Depends(require_roles(*READERS))]
MAX_CASES = 20
OUTCOME_TAGS = {"same": ("Same path", "govuk-tag--green"), "differs": ("Different path", "govuk-tag--yellow"),
                "cannot_replay": ("Cannot replay", "govuk-tag--red")}
ENDED = {"completed": "Ran to the end", "waiting": "Still waiting", "incident": "Stopped at an incident",
         "stopped": "Stopped"}


# ---------------------------------------------------------------------- shared with the pages
def _files(draft: dict[str, Any]) -> dict[str, bytes]:
    return {name: xml.encode("utf-8") for name, xml in draft["files"].items()}


def _mapped(exc: Exception) -> Exception:
    """A draft that does not deploy is a 422 naming every problem (as the drafts API says it)."""
    return refusal(exc) or exc


def choose_cases(engine: Any, user: User, process_id: str, case_ids: list[int] | None,
                 limit: int = MAX_CASES) -> list[int]:
    """The cases to replay: those named (refusing unknown and restricted ones), or the most recent ones."""
    with engine.db.engine.connect() as conn:
        hidden = set(hidden_cases(conn, user))
    if not case_ids:
        return [c["case_id"] for c in trial.recent_cases(engine, process_id, limit=limit, exclude=hidden)]
    if len(case_ids) > MAX_CASES:
        raise ValidationError(f"choose at most {MAX_CASES} cases to replay at once (you chose {len(case_ids)})",
                              errors=[{"field": "case_ids", "message": f"at most {MAX_CASES} cases"}])
    for cid in case_ids:
        if cid in hidden:
            raise forbidden(f"case {cid} is restricted to named people: it cannot be replayed")
    return list(dict.fromkeys(case_ids))


def replay_cases(engine: Any, draft: dict[str, Any], case_ids: list[int]) -> list[dict[str, Any]]:
    files = _files(draft)
    try:
        return [trial.replay_against(engine, cid, files, draft["process_id"]).to_dict() for cid in case_ids]
    except Exception as exc:
        raise _mapped(exc) from None


def run_draft_example(engine: Any, draft: dict[str, Any], example: dict[str, Any] | None = None) -> dict[str, Any]:
    example = example if example is not None else draft.get("example")
    if not example:
        raise ValidationError(f"draft {draft['id']} has no example case yet: a process owner adds one on "
                              f"/processes/drafts/{draft['id']}/example",
                              errors=[{"field": "example", "message": "no example case saved with the draft"}])
    try:
        result = trial.run_example(_files(draft), draft["process_id"], example, start=engine.now(),
                                   registry=engine.registry, forms=engine.forms, source=engine)
    except Exception as exc:
        raise _mapped(exc) from None
    return result.to_dict()


def user_tasks(draft: dict[str, Any]) -> set[str] | None:
    """The user task ids of the draft's process (its main file), or None when the file does not parse."""
    main = draft.get("main_file")
    if not main or main not in draft["files"]:
        return None
    try:
        tree = parse_xml(draft["files"][main].encode("utf-8"), main)
    except CarepathError:
        return None
    found = tree.xpath("//*[local-name()='process'][@id=$pid]//*[local-name()='userTask']/@id",
                       pid=draft["process_id"])
    return {str(x) for x in found}


# ---------------------------------------------------------------------- JSON API
class ReplayBody(BaseModel):
    case_ids: list[Id] | None = Field(default=None, description="cases to replay; none: the most recent")
    limit: int = Field(default=MAX_CASES, ge=1, le=MAX_CASES)


class ExampleBody(BaseModel):
    example: dict[str, Any] | None = Field(default=None, description="an example to try; none: the saved one")


@router.post("/api/processes/drafts/{draft_id}/trial/replay")
def api_replay(draft_id: Id, body: ReplayBody, request: Request, user: Reader) -> dict[str, Any]:
    engine = request.app.state.engine
    draft = drafts.get_draft(engine, draft_id)
    chosen = choose_cases(engine, user, draft["process_id"], body.case_ids, body.limit)
    return {"draft_id": draft_id, "process_id": draft["process_id"],
            "results": replay_cases(engine, draft, chosen)}


@router.post("/api/processes/drafts/{draft_id}/trial/example")
def api_example(draft_id: Id, request: Request, user: Reader, body: ExampleBody | None = None) -> dict[str, Any]:
    engine = request.app.state.engine
    draft = drafts.get_draft(engine, draft_id)
    result = run_draft_example(engine, draft, body.example if body else None)
    return {"draft_id": draft_id, "main_file": draft["main_file"], **plain(result)}


# ---------------------------------------------------------------------- pages
def _guard(request: Request, user: User | None, exc: Exception, draft_id: int) -> Response:
    exc = _mapped(exc)
    if isinstance(exc, ApiError) and exc.status == 422:
        return kit.error_page(request, user, 422, "This draft cannot be tried yet", exc.message)
    return kit.guard(request, user, exc, not_found=f"There is no draft {draft_id}.",
                     conflict_title="This draft has changed")


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] + "."


def _fmt(value: str | None) -> str:
    return when(parse_instant(value)) if value else ""


def _trial_page(request: Request, user: User, draft: dict[str, Any], *, chosen: list[int] | None = None,
                results: list[dict[str, Any]] | None = None, example: dict[str, Any] | None = None,
                errors: list[dict[str, Any]] | None = None, flash: str | None = None, status: int = 200) -> Response:
    engine = request.app.state.engine
    with engine.db.engine.connect() as conn:
        hidden = set(hidden_cases(conn, user))
    recent = trial.recent_cases(engine, draft["process_id"], limit=MAX_CASES, exclude=hidden)
    rows = []
    for r in results or []:
        text, tag = OUTCOME_TAGS[r["outcome"]]
        said = [r["message"]]
        if r["outcome"] == "cannot_replay" and r["reason"]:  # the tag says it cannot: why, then where they part
            said = [r["reason"]] + ([r["parted"]["message"]] if r["parted"] else [])
        rows.append({**r, "tag_text": text, "tag": tag, "sentence": " ".join(_sentence(x) for x in said)})
    ex_view = None
    if example is not None:
        ex_view = {**example, "ended": ENDED.get(example["outcome"], example["outcome"]),
                   "sentence": _sentence(example["message"]),
                   "completed_ids": " ".join(dict.fromkeys(s["element_id"] for s in example["path"])),
                   "active_ids": " ".join(w["element_id"] for w in example["waiting_at"])
                   + (" " + example["incident"]["element_id"] if example.get("incident") else "")}
    return kit.render(request, "trial.html", {
        "user": user, "draft": draft, "recent": recent, "chosen": set(chosen or []), "results": rows,
        "example": ex_view, "errors": errors or [], "flash": flash, "fmt": _fmt, "when": when,
        "can_edit": user.has(OWNER), "has_example": bool(draft.get("example"))}, status)


@router.get("/processes/drafts/{draft_id}/trial", response_class=HTMLResponse, include_in_schema=False)
def trial_page(request: Request, draft_id: Id, saved: str = "") -> Response:
    user = None
    try:
        user = kit.page_user(request, *READERS)
        draft = drafts.get_draft(request.app.state.engine, draft_id)
        return _trial_page(request, user, draft, flash="Example case saved" if saved == "example" else None)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return _guard(request, user, exc, draft_id)


@router.post("/processes/drafts/{draft_id}/trial", response_class=HTMLResponse, include_in_schema=False)
async def trial_post(request: Request, draft_id: Id) -> Response:
    form = await kit.posted_form(request)
    user: User | None = None
    draft: dict[str, Any] | None = None
    try:
        user = kit.page_user(request, *READERS)
        kit.check_csrf(user, form)
        engine = request.app.state.engine
        draft = await run_in_threadpool(drafts.get_draft, engine, draft_id)
        if kit.one(form, "action") == "example":
            result = await run_in_threadpool(run_draft_example, engine, draft)
            return _trial_page(request, user, draft, example=result)
        picked = [n for v in form.get("case", []) if (n := to_id(v)) is not None]
        if not picked:
            return _trial_page(request, user, draft, status=400, errors=[
                {"text": "Select at least one case to replay", "href": "#case-0"}])
        chosen = await run_in_threadpool(choose_cases, engine, user, draft["process_id"], picked)
        results = await run_in_threadpool(replay_cases, engine, draft, chosen)
        return _trial_page(request, user, draft, chosen=chosen, results=results)
    except ValidationError as exc:
        if user is None or draft is None:
            return _guard(request, user, exc, draft_id)
        return _trial_page(request, user, draft, status=422, errors=[
            {"text": exc.message[:1].upper() + exc.message[1:], "href": None}])
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc, draft_id)


# ---------------------------------------------------------------------- the example case
def _example_page(request: Request, user: User, draft: dict[str, Any], *, start_data: str, answers: str,
                  errors: dict[str, str] | None = None, conflict: str | None = None, status: int = 200) -> Response:
    errors = errors or {}
    summary = kit.error_summary(errors, {"start_data": "start_data", "answers": "answers"})
    return kit.render(request, "draft_example.html", {
        "user": user, "draft": draft, "start_data": start_data, "answers": answers, "err": errors,
        "errors": summary, "conflict": conflict, "tasks": sorted(user_tasks(draft) or [])}, status)


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False)


@router.get("/processes/drafts/{draft_id}/example", response_class=HTMLResponse, include_in_schema=False)
def example_page(request: Request, draft_id: Id) -> Response:
    user = None
    try:
        user = kit.page_user(request, OWNER)
        draft = drafts.get_draft(request.app.state.engine, draft_id)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc, draft_id)
    example = draft.get("example") or {}
    answers = example.get("answers") or {t: {} for t in sorted(user_tasks(draft) or [])}
    return _example_page(request, user, draft, start_data=_pretty(example.get("start_data") or {}),
                         answers=_pretty(answers))


def _parse(text: str, what: str, errors: dict[str, str], field: str) -> Any:
    if not text.strip():
        return {}
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        errors[field] = f"{what} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        return None


@router.post("/processes/drafts/{draft_id}/example", response_class=HTMLResponse, include_in_schema=False)
async def example_post(request: Request, draft_id: Id) -> Response:
    form = await kit.posted_form(request)
    user = None
    try:
        user = kit.page_user(request, OWNER)
        kit.check_csrf(user, form)
        engine = request.app.state.engine
        draft = await run_in_threadpool(drafts.get_draft, engine, draft_id)
    except Exception as exc:  # noqa: BLE001
        return _guard(request, user, exc, draft_id)
    start_text, answers_text = kit.one(form, "start_data"), kit.one(form, "answers")
    revision = kit.one(form, "revision").strip()
    errors: dict[str, str] = {}
    start_data = _parse(start_text, "Start data", errors, "start_data")
    answers = _parse(answers_text, "Answers", errors, "answers")
    if not errors:
        example = {"start_data": start_data, "answers": answers}
        for e in trial.check_example(example, user_tasks=user_tasks(draft)):
            field = "answers" if e["field"].startswith("answers") else "start_data"
            where = f" ({e['field']})" if e["field"] not in ("answers", "start_data") else ""
            errors.setdefault(field, e["message"][:1].upper() + e["message"][1:] + where)
    if not errors:
        try:
            await run_in_threadpool(lambda: drafts.save_draft(
                engine, draft_id, files=draft["files"], expected_revision=whole(revision) if is_whole(revision)
                else -1, actor=user.username, example=example))
        except ConflictError as exc:
            fresh = await run_in_threadpool(drafts.get_draft, engine, draft_id)
            return _example_page(request, user, fresh, start_data=start_text, answers=answers_text, status=409,
                                 conflict=exc.message[:1].upper() + exc.message[1:] + ". What you typed is still "
                                          "below: check the draft and save again.")
        except ValidationError as exc:
            errors["answers"] = exc.message[:1].upper() + exc.message[1:]
        except (NotFoundError, CarepathError) as exc:
            return _guard(request, user, exc, draft_id)
    if errors:
        return _example_page(request, user, draft, start_data=start_text, answers=answers_text, errors=errors,
                             status=400)
    return kit.redirect(f"/processes/drafts/{draft_id}/trial?saved=example")
