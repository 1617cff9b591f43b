"""Starting a process on a case by its id: `POST /api/cases/{case_id}/processes/{process_id}` (issue 14 item 4).

For processes a council deploys beyond the ones carepath ships (a local pathway, the benchmark's
three-task diagram): the shipped processes each start from their own checked route — the case
actions (api/case_actions.py), the front door (api/intake.py), transitions (api/transition.py) —
or from another process, and are refused here (422 naming where they start), so no start-data
check is bypassed.

Who may: team managers, checked before the body is read (any other role gets 403 whatever it
sends), and only on a case they may open (the opening is logged as `start_process`, a refusal as
`refused:start_process`). An unknown case or process is a 404, a bad body a 422, a closed case a 409;
nothing is stored on any refusal.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from engine.errors import ValidationError

from .access import case_access, log_access, refusal, restriction, write_access
from .auth import User, current_user
from .errors import forbidden
from .inputs import Id

router = APIRouter()
START_ROLES = ("team_manager",)
_SHIPPED = Path(__file__).resolve().parent.parent / "processes"
SHIPPED_PROCESSES = frozenset(m for f in sorted(_SHIPPED.glob("*.bpmn"))
                              for m in re.findall(r'<bpmn:process id="([^"]+)"', f.read_text(encoding="utf-8")))


class StartIn(BaseModel):
    data: dict[str, Any] = Field(default_factory=dict)


async def process_starter(user: Annotated[User, Depends(current_user)]) -> User:
    """Team managers only, checked before the body is read."""
    if not user.has(*START_ROLES):
        raise forbidden(f"starting a process by its id needs one of the roles: {', '.join(START_ROLES)}")
    return user


@router.post("/api/cases/{case_id}/processes/{process_id}", status_code=201)
async def start_process(case_id: Id, process_id: str, user: Annotated[User, Depends(process_starter)],
                        body: StartIn, request: Request) -> dict[str, Any]:
    # the work in one worker thread; the answer checked on the event loop; the engine read from the app
    # (api/tasks.py `complete`)
    return await run_in_threadpool(start, request.app.state.engine, user, case_id, process_id, body)


def start(engine: Any, user: User, case_id: int, process_id: str, body: StartIn) -> dict[str, Any]:
    if process_id in SHIPPED_PROCESSES:
        raise ValidationError(f"process {process_id!r} starts from its own page or from another process "
                              "(a case action, the front door, a transition), where its start data is checked; "
                              "nothing was started", field="process_id")
    # `open_case`'s checks and its access-log row, made in the start's own transaction (one connection and one
    # commit instead of three; docs/performance.md) once the engine has found the case (an unknown case is its
    # 404, "no case N", as `open_case` words it): 403 may not open it, 404 restricted to others
    seen: dict[str, Any] = {}

    def authorise(conn: Any) -> None:
        seen.clear()
        ok, reason = case_access(conn, user, case_id, restriction(conn, case_id))
        if not ok:
            seen["refused"] = reason
            raise refusal(case_id, reason)
        write_access(conn, engine, case_id, user, "start_process")
        seen["opened"] = True

    try:
        res = engine.start(process_id, case_id=case_id, data=body.data, actor=user.username, authorise=authorise)
    except Exception:
        # the log row went with the transaction: the refusal, or the opening of a start that then failed
        # (unknown process, closed case, bad data), is logged on its own, as `open_case` logs it
        if "refused" in seen:
            log_access(engine, case_id, user, "refused:start_process")
        elif seen.get("opened"):
            log_access(engine, case_id, user, "start_process")
        raise
    return {"case_id": case_id, "process_id": process_id, "instance_id": res.instance_id, "status": res.status,
            "tasks": [{"id": t["id"], "element_id": t["element_id"], "name": t["name"], "team": t["team"]}
                      for t in res.ready_tasks]}
