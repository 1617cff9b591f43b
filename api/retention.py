"""The retention page: cases whose retention period has ended, for an administrator to erase or hold.

/admin/retention lists the cases the daily job (handlers/retention.py `list_due`) found due, those held and those
erased; "List what is due now" runs the job at once. Each due case has a check-your-answers page
(/admin/retention/{case_id}) saying what will be destroyed and what stays, and the erasure needs the box
"I have checked..." ticked: it cannot be undone. Holding a case (a legal hold, a complaint, the person's request)
needs a reason; a held case is released from the list page. Administrators only; every decision is in the system
history (retention.held, retention.released, retention.case_erased) and the erasure in the case's own
(case.erased). docs/security.md, "Retention and erasure".
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from starlette.concurrency import run_in_threadpool

from engine.errors import ValidationError
from handlers import retention

from . import page_kit
from .admin import ADMIN, _posted, _render_flash, _with_flash
from .errors import ApiError
from .inputs import Id

router = APIRouter()
PATH = "/admin/retention"


@router.get(PATH, response_class=HTMLResponse, include_in_schema=False)
def retention_page(request: Request) -> Response:
    user = None
    try:
        user = page_kit.page_user(request, ADMIN)
        rows = retention.reviews(request.app.state.engine)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page_kit.guard(request, user, exc)
    by: dict[str, list[dict[str, Any]]] = {"due": [], "held": [], "erased": []}
    for r in rows:
        by.setdefault(r["status"], []).append(r)
    return _render_flash(request, "admin_retention.html", {"user": user, **by}, PATH)


@router.post(f"{PATH}/list", response_class=HTMLResponse, include_in_schema=False)
async def list_now(request: Request) -> Response:
    user = None
    try:
        user, _form = await _posted(request, ADMIN)
        added = await run_in_threadpool(retention.list_due, request.app.state.engine)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc)
    text = f"{len(added)} case(s) added to the list" if added else "No more cases are due for erasure"
    return _with_flash(request, page_kit.redirect(PATH), text, "/admin")


def _check_page(request: Request, user: Any, row: dict[str, Any], by_field: dict[str, str] | None = None,
                values: dict[str, str] | None = None, status: int = 200) -> Response:
    return page_kit.render(request, "admin_retention_case.html", {
        "user": user, "row": row, "field_errors": by_field or {}, "values": values or {},
        "errors": page_kit.error_summary(by_field or {}, {"confirm": "confirm", "reason": "reason"})}, status)


@router.get(PATH + "/{case_id}", response_class=HTMLResponse, include_in_schema=False)
def case_page(request: Request, case_id: Id) -> Response:
    user = None
    try:
        user = page_kit.page_user(request, ADMIN)
        row = retention.review(request.app.state.engine, case_id)
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc, not_found="This case is not on the retention list.")
    return _check_page(request, user, row)


@router.post(PATH + "/{case_id}", response_class=HTMLResponse, include_in_schema=False)
async def case_action(request: Request, case_id: Id) -> Response:
    """`action` erase (with `confirm` ticked), hold (with a `reason`) or release."""
    user = None
    engine = request.app.state.engine
    try:
        user, form = await _posted(request, ADMIN)
        row = retention.review(engine, case_id)
        action = page_kit.one(form, "action")
        if action == "erase":
            if page_kit.one(form, "confirm") != "yes":
                return _check_page(request, user, row, {"confirm": "Confirm you have checked that nothing needs "
                                                                   "this record kept"}, status=400)
            out = await run_in_threadpool(lambda: retention.erase(engine, case_id, actor=user.username))
            text = f"{row['reference']} erased: {out['events_erased']} events' data destroyed"
        elif action == "hold":
            reason = page_kit.one(form, "reason")[:500]
            try:
                await run_in_threadpool(lambda: retention.hold(engine, case_id, actor=user.username, reason=reason))
            except ValidationError:
                return _check_page(request, user, row, {"reason": "Say why the record must be kept"},
                                   {"reason": reason}, 400)
            text = f"{row['reference']} held: it will not be erased until released"
        elif action == "release":
            await run_in_threadpool(lambda: retention.release(engine, case_id, actor=user.username))
            text = f"{row['reference']} released: it is due for erasure again"
        else:
            raise ApiError(400, "invalid", "Unknown action; nothing was changed.")
    except Exception as exc:  # noqa: BLE001
        return page_kit.guard(request, user, exc, not_found="This case is not on the retention list.",
                              conflict_title="This case cannot be erased now")
    return _with_flash(request, page_kit.redirect(PATH), text, "/admin")
