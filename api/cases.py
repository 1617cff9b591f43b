"""Case records: opened only by those allowed (api/access.py), every opening logged."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy import select

from engine.schema import cases

from .access import can_open_case, log_access, restriction
from .auth import OVERSIGHT_ROLES, User, current_user, get_engine
from .errors import forbidden

router = APIRouter(prefix="/api/cases")


def _open(engine: Any, user: User, case_id: int, action: str) -> None:
    """404 for an unknown case; 403 (logged as refused) when this user may not open it."""
    with engine.db.engine.connect() as conn:
        exists = conn.execute(select(cases.c.id).where(cases.c.id == case_id)).first() is not None
    if not exists:
        engine.get_case(case_id)  # raises NotFoundError with the engine's message
    ok, reason = can_open_case(engine, user, case_id)
    if not ok:
        log_access(engine, case_id, user, f"refused:{action}")
        raise forbidden(reason)
    log_access(engine, case_id, user, action)


@router.get("/{case_id}")
def get_case(case_id: int, user: Annotated[User, Depends(current_user)],
             engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    _open(engine, user, case_id, "open")
    case = engine.get_case(case_id)
    open_tasks = engine.list_tasks(case_id=case_id)
    for t in open_tasks:
        t.pop("draft", None)
    docs = [{k: v for k, v in d.items() if k != "body"} for d in engine.documents(case_id)]
    with engine.db.engine.connect() as conn:
        restricted = restriction(conn, case_id) is not None
    return {**case, "restricted": restricted, "tasks": open_tasks, "documents": docs}


@router.get("/{case_id}/history")
def get_history(case_id: int, user: Annotated[User, Depends(current_user)],
                engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    if not user.has(*OVERSIGHT_ROLES):
        raise forbidden("only auditors and team managers read a case's history")
    _open(engine, user, case_id, "history")
    return {"case_id": case_id, "events": engine.history(case_id)}
