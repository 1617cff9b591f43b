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

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from engine.errors import ValidationError

from .auth import User, current_user, get_engine
from .cases import open_case
from .errors import forbidden

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
def start_process(case_id: int, process_id: str, user: Annotated[User, Depends(process_starter)], body: StartIn,
                  engine: Annotated[Any, Depends(get_engine)]) -> dict[str, Any]:
    if process_id in SHIPPED_PROCESSES:
        raise ValidationError(f"process {process_id!r} starts from its own page or from another process "
                              "(a case action, the front door, a transition), where its start data is checked; "
                              "nothing was started", field="process_id")
    open_case(engine, user, case_id, "start_process")  # 404 unknown case, 403 may not open it (logged)
    res = engine.start(process_id, case_id=case_id, data=body.data, actor=user.username)
    return {"case_id": case_id, "process_id": process_id, "instance_id": res.instance_id, "status": res.status,
            "tasks": [{"id": t["id"], "element_id": t["element_id"], "name": t["name"], "team": t["team"]}
                      for t in res.ready_tasks]}
