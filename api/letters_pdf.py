"""A letter's PDF, downloaded from the case record, and how it was sent (docs/letters-sending.md).

`GET /cases/{case_id}/letters/{doc_id}/pdf` — the letter as the council posts it (A4, letterhead, tagged
PDF/UA-1: handlers/letter_pdf.py), for anyone who may open the case (the same check and access log as
the letter's page, logged as `letter_pdf`); 404 for an unknown case or letter, 403 (logged as refused)
otherwise. A letter sent by post is served exactly as it was sent (the bytes kept when it was sent, whose
SHA-256 the case record shows); any other letter is rendered from its filed text, the same bytes every time.

`POST /cases/{case_id}/letters/{doc_id}/send-again` (csrf_token) — a letter that was not sent (Notify refused
it, or the sender gave up after its last attempt) queued again, by casework roles who may open the case
(auditors 403, logged); a letter already sent is 409 with why. Notify is asked for its reference first.

`delivery(engine, case_id)` is what the case record shows beside each letter: filed for printing, queued,
sent, delivered or posted, or not sent with GOV.UK Notify's reason (handlers/letter_sending.py `describe`);
a letter with no postal address "Needs an address", whether or not Notify is configured.
"""

from __future__ import annotations

import json
import re
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from engine.schema import cases, letter_sends
from handlers.letter_pdf import address_of
from handlers.letter_sending import address_problem, describe, send_again, sends_for
from handlers.letters import load_council

from . import cases as api
from . import page_kit as kit
from .inputs import Id

router = APIRouter(include_in_schema=False)
NOT_FOUND = "This letter could not be found. It may be on another case: go back to the case record."


def delivery(engine: Any, case_id: int) -> dict[int, dict[str, Any]]:
    """document id -> {"text", "tag", "detail", "sha256"} for every letter filed on the case."""
    with engine.db.engine.connect() as conn:
        sends = sends_for(conn, case_id)
        person = json.loads(conn.execute(select(cases.c.data).where(cases.c.id == case_id)).scalar() or "{}")
        docs = engine.documents(case_id)
    council = load_council()
    return {d["id"]: {**describe(sends.get(d["id"]), address_problem(address_of(d["body"], person, council))),
                      "sha256": _sent_hash(sends.get(d["id"])), "may_send_again": _may_send_again(sends.get(d["id"]))}
            for d in docs}


def _may_send_again(send: dict[str, Any] | None) -> bool:
    return bool(send) and send["status"] == "failed" and send.get("sent_at") is None


def _sent_hash(send: dict[str, Any] | None) -> str:
    """The SHA-256 of the PDF posted, once GOV.UK Notify has accepted it (not of one refused or not yet sent)."""
    if not send or not send.get("sent_at"):
        return ""
    return send.get("pdf_sha256") or ""


def letter_pdf(engine: Any, case_id: int, doc_id: int) -> tuple[bytes, str]:
    """(the PDF, its file name) of a letter on the case: as sent when it was posted, else rendered from its text."""
    from handlers.letter_pdf import render_pdf

    doc = api.document(engine, case_id, doc_id)
    with engine.db.engine.connect() as conn:
        case = conn.execute(select(cases.c.reference, cases.c.data).where(cases.c.id == case_id)).one()
        sent = conn.execute(select(letter_sends.c.pdf).where(letter_sends.c.document_id == doc_id)).scalar()
    content = sent or render_pdf(doc, reference=case.reference, person=json.loads(case.data or "{}"))
    safe = re.sub(r"[^A-Za-z0-9-]+", "-", case.reference).strip("-") or "case"
    return content, f"letter-{safe}-{doc_id}.pdf"


@router.get("/cases/{case_id}/letters/{doc_id}/pdf")
def download(request: Request, case_id: Id, doc_id: Id) -> Response:
    page = kit.Page(request)
    try:
        page.open(api.open_case, case_id, "letter_pdf")
        content, name = letter_pdf(page.engine, case_id, doc_id)
    except Exception as exc:  # noqa: BLE001 - mapped to pages (404, 403), re-raised when unknown
        return page.guard(exc, not_found=NOT_FOUND)
    return Response(content, media_type="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff"})


@router.post("/cases/{case_id}/letters/{doc_id}/send-again")
async def post_send_again(request: Request, case_id: Id, doc_id: Id) -> Response:
    page = kit.Page(request)
    try:
        await page.post(api._writer, case_id, "letter_send_again")
        await run_in_threadpool(api.document, page.engine, case_id, doc_id)  # 404 unless a letter of this case
        await run_in_threadpool(send_again, page.engine, doc_id)
    except Exception as exc:  # noqa: BLE001 - mapped to pages (403, 404, 409), re-raised when unknown
        return page.guard(exc, not_found=NOT_FOUND, conflict_title="This letter cannot be sent again")
    return kit.redirect(f"/cases/{case_id}/letters/{doc_id}?saved=again")
