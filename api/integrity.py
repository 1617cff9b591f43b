"""The integrity panel's actions: check a case's history now, and read the last check.

`POST /cases/{id}/integrity/check` (a form carrying the session's CSRF token) runs
engine.integrity.check_case — verify of the case's hash chain and a replay — and records it in
the system chain as `integrity.checked`, with the user as actor. Anyone who may open the case may
ask for a check, auditors included: it changes nothing in the case, it only adds the record of the
check (an explicit exception to "auditors change nothing", docs/security.md).
`GET /api/cases/{id}/integrity` gives the last check as JSON.

`panel(engine, case_id)` is the context the partial `_integrity_panel.html` takes as `integrity`.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.integrity import check_case, last_check

from . import case_record as cr
from . import page_kit as kit
from .cases import Eng, Who, open_case
from .inputs import Id

router = APIRouter(include_in_schema=False)
api_router = APIRouter(prefix="/api/cases")
# where the form may send the user back to (never a URL taken from the form)
BACK = {"case": "/cases/{id}#integrity", "replay": "/cases/{id}/replay#integrity"}


def heads_settings() -> dict[str, str | None]:
    """Where the signed heads files are and the public key that checks them (docs/auditing.md): the
    folder CAREPATH_HEADS_DIR that the schedule writes to, and CAREPATH_HEADS_PUBLIC_KEY (default: the
    private key file CAREPATH_HEADS_KEY with .pub, as `carepath audit keygen` writes it)."""
    folder = os.environ.get("CAREPATH_HEADS_DIR") or None
    public = os.environ.get("CAREPATH_HEADS_PUBLIC_KEY") or None
    if public is None and os.environ.get("CAREPATH_HEADS_KEY"):
        public = os.environ["CAREPATH_HEADS_KEY"] + ".pub"
    return {"heads_dir": folder, "public_key": public}


def panel(engine: Any, case_id: int) -> dict[str, Any] | None:
    """The last check of a case with its time in words, for the partial; None when never checked."""
    found = last_check(engine, case_id)
    if found is None:
        return None
    return {**found, "when": cr.day_and_time(found["checked_at"]), "who": found["checked_by"]}


@router.post("/cases/{case_id}/integrity/check", response_class=HTMLResponse)
async def check_now(request: Request, case_id: Id) -> Response:
    page = kit.Page(request)
    try:
        user = await page.post(open_case, case_id, "integrity check")
        await run_in_threadpool(check_case, page.engine, case_id, actor=user.username, **heads_settings())
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page.guard(exc, not_found="There is no case record at this address.")
    form = page.form
    back = BACK.get(kit.one(form, "back"), BACK["case"])
    return kit.redirect(back.format(id=case_id))


@api_router.get("/{case_id}/integrity")
def get_integrity(case_id: Id, user: Who, engine: Eng) -> dict[str, Any]:
    open_case(engine, user, case_id, "integrity")
    return {"case_id": case_id, "last_check": last_check(engine, case_id)}
