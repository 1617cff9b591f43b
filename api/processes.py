"""The process owners' workbench: processes, their versions, drafts, review and four-eyes deploy.

A thin layer over engine/drafts.py, as JSON (`/api/processes/...`) and as pages (`/processes/...`).
Process owners read and change; team managers and auditors only read; everyone else is refused
(docs/security.md). Every change is recorded by the engine in the system history chain.

* JSON: state-changing calls need the session's `X-CSRF-Token` header (api/auth.py).
* Pages: every POST carries the session's token in a hidden `csrf_token` field (api/page_kit.py);
  uploads are multipart forms read with python-multipart.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, Field

from engine import definitions, drafts
from engine.clock import as_utc
from engine.errors import DefinitionError, NotFoundError, UnsafeXmlError

from .auth import User, require_roles
from .errors import ApiError

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


def version_row(engine: Any, process_id: str, version: int) -> tuple[Any, dict[str, bytes]]:
    """A deployed version and its own files (engine.drafts.version_files)."""
    with engine.db.engine.connect() as conn:
        row = definitions.resolve_version(conn, process_id, version)
        return row, drafts.version_files(conn, row)


def xml_response(data: bytes, name: str) -> Response:
    safe = "".join(c for c in name if c.isalnum() or c in "._-") or "diagram.bpmn"
    return Response(data, media_type="application/xml", headers={
        "Content-Disposition": f'inline; filename="{safe}"', "X-Content-Type-Options": "nosniff",
        "Cache-Control": "no-store"})


# ---------------------------------------------------------------------- JSON API: bodies
class NewDraft(BaseModel):
    process_id: str = Field(min_length=1, max_length=255)
    base_version: int | None = None
    files: dict[str, str]
    note: str = Field(default="", max_length=drafts.MAX_NOTE)


class SaveDraft(BaseModel):
    files: dict[str, str]
    revision: int
    example: dict[str, Any] | None = None
    note: str | None = Field(default=None, max_length=drafts.MAX_NOTE)


class Decision(BaseModel):
    note: str = Field(default="", max_length=drafts.MAX_NOTE)
    revision: int | None = None


class Refusal(BaseModel):
    reason: str = Field(min_length=1, max_length=drafts.MAX_NOTE)
    revision: int | None = None


class Withdrawal(BaseModel):
    reason: str = Field(default="", max_length=drafts.MAX_NOTE)


class Rebase(BaseModel):
    revision: int | None = None


# ---------------------------------------------------------------------- JSON API: drafts
# (registered before /api/processes/{process_id} so "drafts" is never read as a process id)
@router.get("/api/processes/drafts")
def api_list_drafts(request: Request, _user: Reader, process_id: str | None = None,
                    all: bool = False) -> dict[str, Any]:  # noqa: A002 - the query parameter's name
    return {"drafts": plain(drafts.list_drafts(request.app.state.engine, process_id=process_id,
                                               open_only=not all))}


@router.post("/api/processes/drafts", status_code=201)
def api_create_draft(body: NewDraft, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.create_draft, request.app.state.engine, process_id=body.process_id,
                      files=body.files, base_version=body.base_version, actor=user.username, note=body.note))


@router.get("/api/processes/drafts/{draft_id}")
def api_get_draft(draft_id: int, request: Request, _user: Reader) -> dict[str, Any]:
    return plain(drafts.get_draft(request.app.state.engine, draft_id))


@router.put("/api/processes/drafts/{draft_id}")
def api_save_draft(draft_id: int, body: SaveDraft, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.save_draft, request.app.state.engine, draft_id, files=body.files,
                      expected_revision=body.revision, actor=user.username, example=body.example, note=body.note))


@router.get("/api/processes/drafts/{draft_id}/files/{name}")
def api_draft_file(draft_id: int, name: str, request: Request, _user: Reader) -> Response:
    draft = drafts.get_draft(request.app.state.engine, draft_id)
    if name not in draft["files"]:
        raise NotFoundError(f"draft {draft_id} has no file '{name}'", draft=draft_id)
    return xml_response(draft["files"][name].encode("utf-8"), name)


@router.get("/api/processes/drafts/{draft_id}/problems")
def api_draft_problems(draft_id: int, request: Request, _user: Reader) -> dict[str, Any]:
    return {"problems": [p.to_dict() for p in drafts.draft_problems(request.app.state.engine, draft_id)]}


@router.get("/api/processes/drafts/{draft_id}/changes")
def api_draft_changes(draft_id: int, request: Request, _user: Reader) -> dict[str, Any]:
    return plain(drafts.draft_changes(request.app.state.engine, draft_id))


@router.post("/api/processes/drafts/{draft_id}/submit")
def api_submit(draft_id: int, body: Decision, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.submit_draft, request.app.state.engine, draft_id, actor=user.username,
                      note=body.note or None, expected_revision=body.revision))


@router.post("/api/processes/drafts/{draft_id}/approve")
def api_approve(draft_id: int, body: Decision, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.approve_draft, request.app.state.engine, draft_id, actor=user.username,
                      note=body.note, expected_revision=body.revision))


@router.post("/api/processes/drafts/{draft_id}/refuse")
def api_refuse(draft_id: int, body: Refusal, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.refuse_draft, request.app.state.engine, draft_id, actor=user.username,
                      reason=body.reason, expected_revision=body.revision))


@router.post("/api/processes/drafts/{draft_id}/withdraw")
def api_withdraw(draft_id: int, body: Withdrawal, request: Request, user: Owner) -> dict[str, Any]:
    return plain(_act(drafts.withdraw_draft, request.app.state.engine, draft_id, actor=user.username,
                      reason=body.reason))


@router.post("/api/processes/drafts/{draft_id}/rebase")
def api_rebase(draft_id: int, body: Rebase, request: Request, user: Owner) -> dict[str, Any]:
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
def api_version_files(process_id: str, version: int, request: Request, _user: Reader) -> dict[str, Any]:
    _row, files = version_row(request.app.state.engine, process_id, version)
    return {"process_id": process_id, "version": version, "files": sorted(files)}


@router.get("/api/processes/{process_id}/versions/{version}/files/{name}")
def api_version_file(process_id: str, version: int, name: str, request: Request, _user: Reader) -> Response:
    _row, files = version_row(request.app.state.engine, process_id, version)
    if name not in files:
        raise NotFoundError(f"version {version} of {process_id} has no file '{name}'", process=process_id)
    return xml_response(files[name], name)
