"""The process owners' workbench: processes, their versions, drafts, review and four-eyes deploy.

A thin layer over engine/drafts.py, as JSON (`/api/processes/...`) and as pages (`/processes/...`).
Process owners read and change; team managers and auditors only read; everyone else is refused
(docs/security.md). Every change is recorded by the engine in the system history chain.

* JSON: state-changing calls need the session's `X-CSRF-Token` header (api/auth.py).
* Pages: every POST carries the session's token in a hidden `csrf_token` field (api/page_kit.py);
  uploads are multipart forms read with python-multipart.
"""

from __future__ import annotations

import json
import re
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import definitions, drafts, instance_migration
from engine.clock import as_utc
from engine.errors import (
    CarepathError,
    ConflictError,
    DefinitionError,
    NotFoundError,
    StateError,
    UnsafeXmlError,
    ValidationError,
)

from . import page_kit as kit
from . import static_assets
from .auth import User, require_roles
from .errors import ApiError, forbidden
from .inputs import ADDRESS_BAD, BODY_BAD, CONTROL, DIAGRAM_LIMIT, Id, Revision, body_limit, whole

router = APIRouter()

OWNER = "process_owner"
READERS = (OWNER, "team_manager", "auditor")

Reader = Annotated[User, Depends(require_roles(*READERS))]
Owner = Annotated[User, Depends(require_roles(OWNER))]


# ---------------------------------------------------------------------- shared with the pages
def plain(value: Any) -> Any:
    """Engine answers as JSON-ready values: instants in UTC, changes as dicts."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, drafts.Change):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def refusal(exc: Exception) -> ApiError | None:
    """The engine's refusals of a draft action as API errors: 403 four eyes, 422 bad files."""
    if isinstance(exc, drafts.FourEyesError):
        return ApiError(403, exc.code, exc.message)
    if isinstance(exc, DefinitionError):
        return ApiError(422, exc.code, exc.message, problems=[p.to_dict() for p in exc.problems])
    if isinstance(exc, UnsafeXmlError):
        where = {k: exc.context[k] for k in ("file", "line") if k in exc.context}
        return ApiError(422, exc.code, exc.message,
                        problems=[{"file": where.get("file"), "line": where.get("line"), "element_id": None,
                                   "message": exc.message, "rule": None, "severity": "error"}])
    return None


def _act(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        mapped = refusal(exc)
        if mapped is not None:
            raise mapped from None
        raise


def version_row(engine: Any, process_id: str, version: int | None) -> tuple[Any, dict[str, bytes]]:
    """A deployed version (None: the live one) and its own files (engine.drafts.version_files)."""
    with engine.db.engine.connect() as conn:
        row = definitions.resolve_version(conn, process_id, version)
        return row, drafts.version_files(conn, row)


def xml_response(data: bytes, name: str) -> Response:
    safe = "".join(c for c in name if c.isalnum() or c in "._-") or "diagram.bpmn"
    return Response(data, media_type="application/xml", headers={  # opened directly, it runs nothing
        "Content-Disposition": f'inline; filename="{safe}"', "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox", "Cache-Control": "no-store"})


# ---------------------------------------------------------------------- JSON API: bodies
class NewDraft(BaseModel):
    process_id: str = Field(min_length=1, max_length=255)
    base_version: Id | None = None
    files: dict[str, str]
    note: str = Field(default="", max_length=drafts.MAX_NOTE)


class SaveDraft(BaseModel):
    files: dict[str, str]
    revision: Revision
    example: dict[str, Any] | None = None
    note: str | None = Field(default=None, max_length=drafts.MAX_NOTE)


class Decision(BaseModel):
    note: str = Field(default="", max_length=drafts.MAX_NOTE)
    revision: Revision | None = None


class Refusal(BaseModel):
    reason: str = Field(min_length=1, max_length=drafts.MAX_NOTE)
    revision: Revision | None = None


class Withdrawal(BaseModel):
    reason: str = Field(default="", max_length=drafts.MAX_NOTE)


class Rebase(BaseModel):
    revision: Revision | None = None


# ---------------------------------------------------------------------- JSON API: drafts
# (registered before /api/processes/{process_id} so "drafts" is never read as a process id)
@router.get("/api/processes/drafts")
def api_list_drafts(request: Request, _user: Reader, process_id: str | None = None,
                    all: bool = False) -> dict[str, Any]:  # noqa: A002 - the query parameter's name
    return {"drafts": plain(drafts.list_drafts(request.app.state.engine, process_id=process_id,
                                               open_only=not all))}


@router.post("/api/processes/drafts", status_code=201)
@body_limit(DIAGRAM_LIMIT)
def api_create_draft(body: NewDraft, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.create_draft, request.app.state.engine, process_id=body.process_id,
                      files=body.files, base_version=body.base_version, actor=user.username, note=body.note))


@router.get("/api/processes/drafts/{draft_id}")
def api_get_draft(draft_id: Id, request: Request, _user: Reader) -> dict[str, Any]:
    return plain(drafts.get_draft(request.app.state.engine, draft_id))


@router.put("/api/processes/drafts/{draft_id}")
@body_limit(DIAGRAM_LIMIT)
def api_save_draft(draft_id: Id, body: SaveDraft, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.save_draft, request.app.state.engine, draft_id, files=body.files,
                      expected_revision=body.revision, actor=user.username, example=body.example, note=body.note))


@router.get("/api/processes/drafts/{draft_id}/files/{name}")
def api_draft_file(draft_id: Id, name: str, request: Request, _user: Reader) -> Response:
    draft = drafts.get_draft(request.app.state.engine, draft_id)
    if name not in draft["files"]:
        raise NotFoundError(f"draft {draft_id} has no file '{name}'", draft=draft_id)
    return xml_response(draft["files"][name].encode("utf-8"), name)


@router.get("/api/processes/drafts/{draft_id}/problems")
def api_draft_problems(draft_id: Id, request: Request, _user: Reader) -> dict[str, Any]:
    return {"problems": [p.to_dict() for p in drafts.draft_problems(request.app.state.engine, draft_id)]}


@router.get("/api/processes/drafts/{draft_id}/changes")
def api_draft_changes(draft_id: Id, request: Request, _user: Reader) -> dict[str, Any]:
    return plain(drafts.draft_changes(request.app.state.engine, draft_id))


@router.post("/api/processes/drafts/{draft_id}/submit")
def api_submit(draft_id: Id, body: Decision, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.submit_draft, request.app.state.engine, draft_id, actor=user.username,
                      note=body.note or None, expected_revision=body.revision))


@router.post("/api/processes/drafts/{draft_id}/approve")
def api_approve(draft_id: Id, body: Decision, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.approve_draft, request.app.state.engine, draft_id, actor=user.username,
                      note=body.note, expected_revision=body.revision))


@router.post("/api/processes/drafts/{draft_id}/refuse")
def api_refuse(draft_id: Id, body: Refusal, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.refuse_draft, request.app.state.engine, draft_id, actor=user.username,
                      reason=body.reason, expected_revision=body.revision))


@router.post("/api/processes/drafts/{draft_id}/withdraw")
def api_withdraw(draft_id: Id, body: Withdrawal, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.withdraw_draft, request.app.state.engine, draft_id, actor=user.username,
                      reason=body.reason))


@router.post("/api/processes/drafts/{draft_id}/rebase")
def api_rebase(draft_id: Id, body: Rebase, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.rebase_draft, request.app.state.engine, draft_id, actor=user.username,
                      expected_revision=body.revision))


# ---------------------------------------------------------------------- JSON API: processes and versions
@router.get("/api/processes")
def api_processes(request: Request, _user: Reader) -> dict[str, Any]:
    return {"processes": plain(drafts.list_processes(request.app.state.engine))}


@router.get("/api/processes/{process_id}")
def api_process(process_id: str, request: Request, _user: Reader) -> dict[str, Any]:
    engine = request.app.state.engine
    return plain({"process_id": process_id, "versions": drafts.list_versions(engine, process_id),
                  "drafts": drafts.list_drafts(engine, process_id=process_id)})


@router.get("/api/processes/{process_id}/versions/{version}/files")
def api_version_files(process_id: str, version: Id, request: Request, _user: Reader) -> dict[str, Any]:
    _row, files = version_row(request.app.state.engine, process_id, version)
    return {"process_id": process_id, "version": version, "files": sorted(files)}


@router.get("/api/processes/{process_id}/versions/{version}/files/{name}")
def api_version_file(process_id: str, version: Id, name: str, request: Request, _user: Reader) -> Response:
    _row, files = version_row(request.app.state.engine, process_id, version)
    if name not in files:
        raise NotFoundError(f"version {version} of {process_id} has no file '{name}'", process=process_id)
    return xml_response(files[name], name)


# ---------------------------------------------------------------------- pages
MAX_UPLOAD = 6 * 1024 * 1024  # the XML intake's 5 MB limit per file, plus the form around it
DONE = {  # ?done=... after a page action: the success banner's text
    "created": "Draft created", "uploaded": "File uploaded as a new draft", "submitted":
    "Draft submitted: another process owner can now review it", "withdrawn": "Draft withdrawn",
    "rebased": "Draft rebased on the live version: check what changed meanwhile below", "refused": "Draft refused",
}


def when(value: Any) -> str:
    """An instant as UK date and time ("3 March 2031 at 9:05am"), for the pages."""
    if value is None:
        return ""
    local = as_utc(value).astimezone(kit.UK)
    return f"{local.day} {local:%B %Y} at {local:%-I:%M%p}".replace("AM", "am").replace("PM", "pm")


def _render(request: Request, name: str, ctx: dict[str, Any], status: int = 200) -> Response:
    return kit.render(request, name, {"when": when, **ctx}, status)


def waiting_for(engine: Any, user: User) -> list[dict[str, Any]]:
    """Drafts a process owner could review: submitted by someone else (the home page lists them)."""
    if not user.has(OWNER):
        return []
    return [d for d in drafts.list_drafts(engine) if d["status"] == "submitted" and d["author"] != user.username]


def _owner_post(request: Request, form: dict[str, list[str]]) -> User:
    user = kit.signed_in(request)
    kit.check_csrf(user, form)
    if not user.has(OWNER):
        raise forbidden("Only process owners change processes and drafts.")
    return user


def _summary(exc: Exception) -> list[dict[str, Any]]:
    """The error summary's items for an engine refusal: one per problem for a diagram that does not validate."""
    if isinstance(exc, DefinitionError):
        return [{"text": str(p), "href": None} for p in exc.problems]
    message = getattr(exc, "message", str(exc))
    if _FILE_FIRST.match(message):  # "billion.bpmn: refused …": a file's name is said as it is spelt
        return [{"text": message, "href": None}]
    return [{"text": message[:1].upper() + message[1:], "href": None}]


_FILE_FIRST = re.compile(r"[^\s:]+\.(?:bpmn|dmn)\b", re.IGNORECASE)


def _status_of(exc: Exception) -> int:
    mapped = refusal(exc)
    if mapped is not None:
        return mapped.status
    if isinstance(exc, NotFoundError):
        return 404
    if isinstance(exc, ValidationError):
        return 422
    if isinstance(exc, (ConflictError, StateError)):
        return 409
    if isinstance(exc, ApiError):
        return exc.status
    raise exc


def _int(form: dict[str, list[str]], name: str) -> int | None:
    return whole(kit.one(form, name))


def _process_name(engine: Any, process_id: str) -> str:
    with engine.db.engine.connect() as conn:
        row = definitions.latest_version(conn, process_id)
    return row.name if row is not None else process_id


@router.get("/processes", response_class=HTMLResponse, include_in_schema=False)
def processes_page(request: Request) -> Response:
    user = None
    try:
        user = kit.page_user(request, *READERS)
        return _processes_page(request, user)
    except Exception as exc:  # noqa: BLE001 - kit.guard maps refusals to pages and re-raises the rest
        return kit.guard(request, user, exc)


def _processes_page(request: Request, user: User, errors: list[dict[str, Any]] | None = None,
                    status: int = 200, values: dict[str, str] | None = None) -> Response:
    engine = request.app.state.engine
    rows = drafts.list_processes(engine)
    undeployed = {r["process_id"] for r in rows if r["live_version"] is None}
    new_drafts: dict[str, list[dict[str, Any]]] = {}
    for d in drafts.list_drafts(engine) if undeployed else []:  # a new process is reached through its drafts
        if d["process_id"] in undeployed:
            new_drafts.setdefault(d["process_id"], []).append(d)
    ctx = {"user": user, "rows": rows, "can_edit": user.has(OWNER), "new_drafts": new_drafts,
           "errors": errors or [], "values": values or {}, "max_mb": 5}
    if user.has(OWNER):  # one simulation of the live processes (api/simulation_pages.py)
        from . import simulation_pages as sim

        ctx.update(simulations=sim.for_draft(engine, None), sim=sim.single_defaults(), when=when)
    return _render(request, "processes.html", ctx, status)


@router.get("/processes/drafts/{draft_id}", response_class=HTMLResponse, include_in_schema=False)
def draft_page(request: Request, draft_id: Id, done: str = "") -> Response:
    user = None
    try:
        user = kit.page_user(request, *READERS)
        return _draft_page(request, user, draft_id, flash=DONE.get(done))
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found=f"There is no draft {draft_id}.")


def _draft_context(request: Request, user: User, draft_id: int) -> dict[str, Any]:
    engine = request.app.state.engine
    draft = drafts.get_draft(engine, draft_id)
    problems = drafts.draft_problems(engine, draft_id)
    meanwhile: list[drafts.Change] = []
    if not draft["base_is_live"] and draft["live_version"] is not None:
        with engine.db.engine.connect() as conn:
            live = definitions.latest_version(conn, draft["process_id"])
            base = (definitions.resolve_version(conn, draft["process_id"], draft["base_version"])
                    if draft["base_version"] is not None else None)
            meanwhile = drafts.compare_files(drafts.version_files(conn, base) if base is not None else {},
                                             drafts.version_files(conn, live))
    writers = set(draft["editors"]) | {draft["author"]}
    return {"user": user, "draft": draft, "name": _process_name(engine, draft["process_id"]),
            "problems": problems, "blocking": [p for p in problems if p.severity == "error"],
            "changes": drafts.draft_changes(engine, draft_id)["changes"], "meanwhile": meanwhile,
            "is_open": draft["status"] in drafts.OPEN, "can_edit": user.has(OWNER),
            "is_writer": user.username in writers}


def _draft_page(request: Request, user: User, draft_id: int, *, errors: list[dict[str, Any]] | None = None,
                status: int = 200, flash: str | None = None, values: dict[str, str] | None = None) -> Response:
    ctx = _draft_context(request, user, draft_id)
    ctx.update(errors=errors or [], flash=flash, values=values or {})
    return _render(request, "draft.html", ctx, status)


@router.get("/processes/drafts/{draft_id}/review", response_class=HTMLResponse, include_in_schema=False)
def review_page(request: Request, draft_id: Id) -> Response:
    user = None
    try:
        user = kit.page_user(request, *READERS)
        return _review_page(request, user, draft_id)
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found=f"There is no draft {draft_id}.")


def _impact(engine: Any, draft: dict[str, Any]) -> dict[str, Any]:
    """Running cases per version and how many could move to the draft (engine.instance_migration)."""
    files = {k: v.encode("utf-8") for k, v in draft["files"].items()}
    try:
        return instance_migration.impact(engine, draft["process_id"], files)
    except CarepathError as exc:  # the draft does not build: counts only, and why
        versions = drafts.list_versions(engine, draft["process_id"]) if draft["live_version"] else []
        return {"versions": [{"version": v["version"], "running": v["running"], "movable": None,
                              "timers_only": None, "note": ""} for v in reversed(versions) if v["running"]],
                "problem": getattr(exc, "message", str(exc))}


def _review_page(request: Request, user: User, draft_id: int, *, errors: list[dict[str, Any]] | None = None,
                 status: int = 200, values: dict[str, str] | None = None) -> Response:
    engine = request.app.state.engine
    ctx = _draft_context(request, user, draft_id)
    draft = ctx["draft"]
    base_files: list[str] = []
    if draft["base_version"] is not None:  # the live version, unless it must be rebased (the page says so)
        _row, files = version_row(engine, draft["process_id"], draft["base_version"])
        base_files = sorted(files)
    main = draft["main_file"]
    ctx.update(errors=errors or [], values=values or {}, impact=_impact(engine, draft),
               diff_base=main if main in base_files else None, diff_draft=main,
               review_bundle=(static_assets.DIST / "review.js").is_file(),
               can_decide=(user.has(OWNER) and draft["status"] == "submitted"))
    if user.has(OWNER):  # simulating the change against the live version (api/simulation_pages.py)
        from . import simulation_pages as sim

        ctx.update(simulations=sim.for_draft(engine, draft_id), sim=sim.form_defaults(),
                   sim_ahead=sim.ahead_text(getattr(request.app.state, "simulations_ahead", None), draft_id))
    return _render(request, "draft_review.html", ctx, status)


@router.get("/processes/drafts/{draft_id}/approved", response_class=HTMLResponse, include_in_schema=False)
def approved_page(request: Request, draft_id: Id) -> Response:
    user = None
    try:
        user = kit.page_user(request, *READERS)
        draft = drafts.get_draft(request.app.state.engine, draft_id)
        if draft["status"] != "deployed":
            raise NotFoundError(f"draft {draft_id} has not been deployed")
        return _render(request, "draft_approved.html", {
            "user": user, "draft": draft, "name": _process_name(request.app.state.engine, draft["process_id"])})
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found=f"Draft {draft_id} has not been approved and deployed.")


@router.get("/processes/simulations", include_in_schema=False)
def single_simulation_form_again() -> Response:
    """The address the processes page's refused simulation form was shown at (POST /processes/simulations,
    api/simulation_pages.py), reloaded or opened again: the form, not the process called "simulations" (there is
    none: a process id is a diagram's, and this route is before `/processes/{process_id}`)."""
    return kit.redirect("/processes#simulate")


@router.get("/processes/{process_id}", response_class=HTMLResponse, include_in_schema=False)
def process_page(request: Request, process_id: str) -> Response:
    user = None
    try:
        user = kit.page_user(request, *READERS)
        return _process_page(request, user, process_id)
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found=f"There is no process called {process_id[:80]}.")


def _process_page(request: Request, user: User, process_id: str, *, errors: list[dict[str, Any]] | None = None,
                  status: int = 200, values: dict[str, str] | None = None) -> Response:
    engine = request.app.state.engine
    versions = drafts.list_versions(engine, process_id)
    start_inputs: list[dict[str, Any]] = []
    kept: dict[str, dict[str, Any]] = {}
    with engine.db.engine.connect() as conn:
        for v in versions:
            row = definitions.resolve_version(conn, process_id, v["version"])
            v["files"] = sorted(drafts.version_files(conn, row))
            if v is versions[0]:  # what the live version reads as a case starts (docs/engine.md "Start inputs")
                info = json.loads(row.info)
                start_inputs = info.get("start_inputs") or []
                # and what its steps keep on the case record as they complete (docs/engine.md "Case outputs")
                for out in info.get("case_outputs") or []:
                    kept.setdefault(out["element_id"], {"name": out["name"], "keys": []})["keys"].append(out["key"])
    open_drafts = drafts.list_drafts(engine, process_id=process_id)
    return _render(request, "processes_detail.html", {
        "user": user, "process_id": process_id, "name": versions[0]["name"], "versions": versions,
        "live": versions[0], "start_inputs": start_inputs, "case_outputs": list(kept.values()), "drafts": open_drafts,
        "running": sum(v["running"] for v in versions),
        "can_edit": user.has(OWNER), "errors": errors or [], "values": values or {}, "max_mb": 5}, status)


# ---------------------------------------------------------------------- page actions
@router.post("/processes/{process_id}/drafts", response_class=HTMLResponse, include_in_schema=False)
async def start_draft(request: Request, process_id: str) -> Response:
    """A new draft holding the live version's files, opened in the modeller."""
    user = None
    try:
        form = await kit.posted_form(request)
        user = _owner_post(request, form)
        engine = request.app.state.engine
        row, files = await run_in_threadpool(version_row, engine, process_id, None)
        draft = await run_in_threadpool(lambda: drafts.create_draft(
            engine, process_id=process_id, files=files, base_version=row.version, actor=user.username))
        return kit.redirect(f"/processes/drafts/{draft['id']}/edit")
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found=f"There is no process called {process_id[:80]}.")


async def _upload(request: Request) -> tuple[User, dict[str, list[str]], str, bytes]:
    """The signed-in owner and the uploaded file of a multipart form (CSRF checked); ApiError otherwise."""
    if int(request.headers.get("content-length") or 0) > MAX_UPLOAD:
        raise ApiError(413, "too_large", "The file is larger than 5 MB: a diagram is never that large.")
    try:
        data = await request.form(max_files=1, max_fields=5, max_part_size=64 * 1024)
    except StarletteHTTPException as exc:  # a malformed multipart body, too many parts
        raise ApiError(400, "bad_upload", f"The upload could not be read ({exc.detail}); nothing was stored.") from None
    try:
        fields = {k: [v] for k, v in data.items() if isinstance(v, str)}
        user = _owner_post(request, fields)
        upload = data.get("file")
        if upload is None or isinstance(upload, str) or not upload.filename:
            return user, fields, "", b""
        content = await upload.read(MAX_UPLOAD + 1)
        return user, fields, upload.filename, content
    finally:
        await data.close()


@router.post("/processes/upload", response_class=HTMLResponse, include_in_schema=False)
@body_limit(MAX_UPLOAD)
async def upload_new_process(request: Request) -> Response:
    return await _handle_upload(request, None)


@router.post("/processes/{process_id}/upload", response_class=HTMLResponse, include_in_schema=False)
@body_limit(MAX_UPLOAD)
async def upload_draft(request: Request, process_id: str) -> Response:
    return await _handle_upload(request, process_id)


async def _handle_upload(request: Request, process_id: str | None) -> Response:
    user = None
    try:
        user, fields, filename, content = await _upload(request)
    except Exception as exc:  # noqa: BLE001 - refused before anything is read into a draft
        return kit.guard(request, user or kit.session_user(request), exc)
    note = kit.one(fields, "note")

    def page(errors: list[dict[str, Any]], status: int) -> Response:
        if process_id is None:
            return _processes_page(request, user, errors, status)
        return _process_page(request, user, process_id, errors=errors, status=status, values={"note": note})

    if not filename:
        return await run_in_threadpool(page, [{"text": "Select a .bpmn or .dmn file", "href": "#file"}], 400)
    bad = [{"text": f"The {what} {CONTROL}", "href": href} for what, text, pattern, href in (
        ("note", note, BODY_BAD, "#note"), ("file's name", filename, ADDRESS_BAD, "#file")) if pattern.search(text)]
    if bad:  # a multipart form is not read by api/inputs.InputGuard: its text is checked here
        note = BODY_BAD.sub("", note)
        return await run_in_threadpool(page, bad, 422)
    try:
        draft = await run_in_threadpool(lambda: drafts.draft_from_upload(
            request.app.state.engine, process_id=process_id, filename=filename, data=content,
            actor=user.username, note=note))
    except CarepathError as exc:
        items = [{"text": e["text"], "href": "#file"} for e in _summary(exc)]
        return await run_in_threadpool(page, items, _status_of(exc))
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc)
    return kit.redirect(f"/processes/drafts/{draft['id']}?done=uploaded")


async def _draft_action(request: Request, draft_id: int, action: str) -> Response:
    user = None
    engine = request.app.state.engine
    try:
        form = await kit.posted_form(request)
        user = _owner_post(request, form)
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc)
    revision = _int(form, "revision")
    note = kit.one(form, "note")
    reason = kit.one(form, "reason")
    calls = {
        "submit": lambda: drafts.submit_draft(engine, draft_id, actor=user.username, note=note,
                                              expected_revision=revision),
        "withdraw": lambda: drafts.withdraw_draft(engine, draft_id, actor=user.username, reason=reason),
        "rebase": lambda: drafts.rebase_draft(engine, draft_id, actor=user.username, expected_revision=revision),
        "approve": lambda: drafts.approve_draft(engine, draft_id, actor=user.username, note=note,
                                                expected_revision=revision),
        "refuse": lambda: drafts.refuse_draft(engine, draft_id, actor=user.username, reason=reason,
                                              expected_revision=revision),
    }
    on_review = action in ("approve", "refuse")
    try:
        await run_in_threadpool(calls[action])
    except CarepathError as exc:
        if isinstance(exc, NotFoundError):
            return kit.guard(request, user, exc, not_found=f"There is no draft {draft_id}.")
        anchor = {"approve": "#note", "refuse": "#reason", "submit": "#note"}.get(action)
        if isinstance(exc, DefinitionError) or isinstance(exc, drafts.FourEyesError):
            anchor = None
        items = [{"text": e["text"], "href": anchor} for e in _summary(exc)]
        values = {"note": note, "reason": reason, "field": action}
        render = _review_page if on_review else _draft_page
        code = _status_of(exc)
        return await run_in_threadpool(lambda: render(request, user, draft_id, errors=items, status=code,
                                                      values=values))
    if action == "approve":
        return kit.redirect(f"/processes/drafts/{draft_id}/approved")
    done = {"submit": "submitted", "withdraw": "withdrawn", "rebase": "rebased", "refuse": "refused"}[action]
    return kit.redirect(f"/processes/drafts/{draft_id}?done={done}")


def _draft_action_route(action: str) -> None:
    """POST /processes/drafts/{draft_id}/<action>: a draft page's button (`_draft_action` does the work)."""

    async def endpoint(request: Request, draft_id: Id) -> Response:
        return await _draft_action(request, draft_id, action)

    endpoint.__name__ = endpoint.__qualname__ = f"{action}_page"
    router.add_api_route(f"/processes/drafts/{{draft_id}}/{action}", endpoint, methods=["POST"],
                         response_class=HTMLResponse, include_in_schema=False)


# /processes/drafts/{draft_id}/submit, /withdraw, /rebase, /approve and /refuse, in that order
for _action in ("submit", "withdraw", "rebase", "approve", "refuse"):
    _draft_action_route(_action)
