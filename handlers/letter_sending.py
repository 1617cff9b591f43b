"""Sending filed letters through GOV.UK Notify, when the council configures it (docs/letters-sending.md).

Two hooks on the engine's registry, nothing else: the engine knows documents and background jobs, not Notify.

* `queue_filed(conn, docs)` — a document listener: in the transaction that files a letter, a row in
  `letter_sends` (queued, by post or by email) when Notify is configured; nothing otherwise (the letter
  is filed for printing). One row per letter (`document_id` is unique), never one without its letter.
* `send_due(engine)` — a background job: claims the letters due, sends each through Notify's official
  client (`notifications-python-client`): by post as a precompiled letter (the PDF of
  handlers/letter_pdf.py, kept with its SHA-256 before it is sent) or by email (the council's email
  template, with the letter's title and text), each with the reference `<prefix>-<letter id>`. A send
  that failed in a way that may have reached Notify (a time-out, a server error, a lost connection, a
  worker that stopped mid-send) is retried with backoff, and every retry first asks Notify for that
  reference: a letter Notify already has is recorded, never sent again. Notify refusing a letter
  (400: an address it cannot post to, say) is recorded with Notify's message for the worker; it is
  not retried. Sent letters are asked about until Notify says delivered or failed.

Configuration is from the environment (the API key never in the repository or the logs):
CAREPATH_NOTIFY_API_KEY, CAREPATH_NOTIFY_EMAIL_TEMPLATE_ID, CAREPATH_NOTIFY_BASE_URL,
CAREPATH_NOTIFY_POSTAGE, CAREPATH_NOTIFY_TIMEOUT, CAREPATH_NOTIFY_REFERENCE_PREFIX, CAREPATH_NOTIFY_INTERVAL.
The time is the engine's clock (`engine.now()`), never the wall clock; logs carry the send's id, the
status and Notify's status code, never a name, an address or a letter's text.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, insert, select, update

from engine.errors import CarepathError
from engine.registry import HandlerRegistry
from engine.schema import cases, documents, letter_sends

log = logging.getLogger("carepath.letters")
# the client logs each failed request with Notify's message: ours say what happened, without it
logging.getLogger("notifications_python_client").setLevel(logging.ERROR)

POSTAGES = ("first", "second", "economy")
#: minutes to wait before the attempt after attempt n (1, 2, ...); the last repeats
BACKOFF_MINUTES = (1, 5, 15, 60, 240, 720)
MAX_ATTEMPTS = 10
POLL_MINUTES = 60  # how often a sent letter's status is asked for
LEASE_MINUTES = 10  # a send still "sending" after this (its worker stopped) is picked up again, looked up first
BATCH = 50
#: Notify's statuses: the letter reached the person (email delivered; letter printed and posted)
DELIVERED = {"delivered": "delivered", "received": "posted"}
FAILED = {"permanent-failure": "the address or email address could not be delivered to",
          "temporary-failure": "the person's inbox was full or unavailable for 72 hours",
          "technical-failure": "a problem at GOV.UK Notify",
          "validation-failed": "the letter did not meet GOV.UK Notify's rules for printing",
          "virus-scan-failed": "GOV.UK Notify's virus scan refused the PDF",
          "cancelled": "it was cancelled in GOV.UK Notify", "returned-letter": "the letter was returned"}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# ---------------------------------------------------------------------- configuration
@dataclass(frozen=True)
class NotifySettings:
    api_key: str
    base_url: str = "https://api.notifications.service.gov.uk"
    email_template_id: str | None = None
    postage: str = "second"
    timeout: float = 30.0
    prefix: str = "carepath"
    interval: float = 60.0

    def __repr__(self) -> str:  # never the key
        return f"NotifySettings(base_url={self.base_url!r}, postage={self.postage!r})"


def notify_settings(env: Mapping[str, str] | None = None) -> NotifySettings | None:
    """The council's Notify settings, or None when CAREPATH_NOTIFY_API_KEY is not set (letters are filed
    for printing). A setting that cannot work is a clear error naming it (its value is never shown for the key)."""
    env = os.environ if env is None else env
    key = env.get("CAREPATH_NOTIFY_API_KEY", "").strip()
    if not key:
        return None
    if len(key) < 74 or not _UUID.match(key[-73:-37]) or not _UUID.match(key[-36:]):
        raise CarepathError("CAREPATH_NOTIFY_API_KEY is not a GOV.UK Notify API key (its name, then the service "
                            "id and the secret, two UUIDs): copy it again from Notify's API integration page")
    template = env.get("CAREPATH_NOTIFY_EMAIL_TEMPLATE_ID", "").strip() or None
    if template is not None and not _UUID.match(template):
        raise CarepathError(f"CAREPATH_NOTIFY_EMAIL_TEMPLATE_ID must be a template id (a UUID), not {template!r}")
    postage = env.get("CAREPATH_NOTIFY_POSTAGE", "").strip() or "second"
    if postage not in POSTAGES:
        raise CarepathError(f"CAREPATH_NOTIFY_POSTAGE must be one of {', '.join(POSTAGES)}, not {postage!r}")
    numbers = {}
    for name, default in (("CAREPATH_NOTIFY_TIMEOUT", "30"), ("CAREPATH_NOTIFY_INTERVAL", "60")):
        raw = env.get(name, "").strip() or default
        try:
            numbers[name] = float(raw)
        except ValueError:
            numbers[name] = 0.0
        if not numbers[name] > 0:
            raise CarepathError(f"{name} must be a number of seconds above 0, not {raw!r}")
    prefix = env.get("CAREPATH_NOTIFY_REFERENCE_PREFIX", "").strip() or "carepath"
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,40}", prefix):
        raise CarepathError("CAREPATH_NOTIFY_REFERENCE_PREFIX must be 1 to 40 letters, digits, '-' or '_'")
    base = env.get("CAREPATH_NOTIFY_BASE_URL", "").strip() or NotifySettings.base_url
    return NotifySettings(key, base, template, postage, numbers["CAREPATH_NOTIFY_TIMEOUT"], prefix,
                          numbers["CAREPATH_NOTIFY_INTERVAL"])


# ---------------------------------------------------------------------- queued with the letter
def address_problem(addressee: list[str]) -> str | None:
    """Why a letter addressed to these lines (the name, then the address) cannot be posted, or None.

    A letter whose addressee is only a name (the carer's start data had no address, say) has nowhere to go:
    it is never filed "for printing" or sent to GOV.UK Notify as if it could be posted. Words for the
    worker; never logged and never stored (the letter's text has the name)."""
    name = (addressee[0].strip() if addressee else "") or "the person it is addressed to"
    if not [line for line in addressee[1:] if line.strip()]:
        return f"There is no postal address for {name}"
    return None


def channel_for(person: dict[str, Any], addressee: list[str], settings: NotifySettings) -> str:
    """The way a letter goes: "email" when the person asked for letters by email (or has no postal address
    but has an email address), has an email address, the council has an email template and the letter is
    addressed to the person (a letter to a representative goes by post); "held" when it cannot be posted
    and cannot be emailed (no address: the worker is told, nothing is sent); otherwise "post"."""
    to_person = bool(addressee) and addressee[0].strip().lower() == str(person.get("name") or "").strip().lower()
    emailable = bool(person.get("email") and settings.email_template_id and to_person)
    wants_email = str(person.get("contact_preference") or "").strip().lower() == "email"
    if emailable and (wants_email or address_problem(addressee)):
        return "email"
    return "held" if address_problem(addressee) else "post"


def queue_filed(conn: Connection, docs: list[dict[str, Any]], *, env: Mapping[str, str] | None = None) -> None:
    """Document listener: queue each letter just filed, in the same transaction, when Notify is configured.
    A letter that can be neither posted nor emailed is kept as "held" (never sent; the case record says
    what is missing)."""
    settings = notify_settings(env)
    if settings is None or not docs:
        return
    from .letter_pdf import address_of

    case_ids = sorted({d["case_id"] for d in docs})
    people = {r.id: json.loads(r.data or "{}") for r in conn.execute(
        select(cases.c.id, cases.c.data).where(cases.c.id.in_(case_ids)))}
    rows = []
    for d in docs:
        person = people.get(d["case_id"], {})
        channel = channel_for(person, address_of(d["body"], person), settings)
        held = channel == "held"
        rows.append({"document_id": d["id"], "case_id": d["case_id"], "channel": "post" if held else channel,
                     "reference": f"{settings.prefix}-{d['id']}", "status": "held" if held else "queued",
                     "attempts": 0, "next_at": None if held else d["created_at"],
                     "last_error": "no postal address" if held else None,
                     "created_at": d["created_at"], "updated_at": d["created_at"]})
    conn.execute(insert(letter_sends), rows)


# ---------------------------------------------------------------------- sending
def client_for(settings: NotifySettings) -> Any:
    from notifications_python_client.notifications import NotificationsAPIClient

    return NotificationsAPIClient(settings.api_key, base_url=settings.base_url, timeout=settings.timeout)


def _error(exc: Exception) -> tuple[int | None, str]:
    """(Notify's HTTP status, or None when it gave no answer; what went wrong in words)."""
    if getattr(exc, "response", None) is None:  # no answer at all: the client's own 503
        cause = type(exc.__cause__ or exc).__name__.lower()
        if "timeout" in cause:
            return None, "GOV.UK Notify did not answer in time"
        return None, "GOV.UK Notify could not be reached"
    status = getattr(exc, "status_code", None)
    messages = getattr(exc, "message", None)
    if isinstance(messages, list):
        text = "; ".join(str(m.get("message", m)) if isinstance(m, dict) else str(m) for m in messages)
    else:
        text = str(messages or exc)
    return status, f"GOV.UK Notify answered {status}: {text}"[:500]


def _backoff(attempts: int) -> timedelta:
    return timedelta(minutes=BACKOFF_MINUTES[min(attempts, len(BACKOFF_MINUTES)) - 1])


def send_due(engine: Any, *, now: datetime | None = None, settings: NotifySettings | None = None,
             client: Any = None, pdf: Callable[..., bytes] | None = None) -> dict[str, int]:
    """Send the letters due and ask about the ones sent; returns counts by what happened."""
    settings = settings or notify_settings()
    if settings is None:
        return {}
    client = client or client_for(settings)
    now = now or engine.now()
    counts: dict[str, int] = {}
    for row in _claim(engine, now):
        outcome = (_poll if row["status"] == "sent" else _send)(engine, client, settings, row, now, pdf)
        counts[outcome] = counts.get(outcome, 0) + 1
        log.info("letter send %s: %s", row["id"], outcome)
    return counts


def _claim(engine: Any, now: datetime) -> list[dict[str, Any]]:
    """The due rows, marked as being worked on (sending, or a poll pushed on) in one short transaction,
    so two workers never take the same one (FOR UPDATE SKIP LOCKED on PostgreSQL)."""
    due = (letter_sends.c.status.in_(("queued", "retry", "sending", "sent")) & (letter_sends.c.next_at <= now))
    with engine.db.transaction() as conn:
        q = select(letter_sends).where(due).order_by(letter_sends.c.next_at, letter_sends.c.id).limit(BATCH)
        if engine.db.is_postgres:
            q = q.with_for_update(skip_locked=True)
        rows = [dict(r._mapping) for r in conn.execute(q)]
        for r in rows:
            if r["status"] == "sent":
                values = {"next_at": now + timedelta(minutes=POLL_MINUTES)}
            else:
                # a row found "sending" was left by a worker that stopped: its outcome is unknown
                r["unknown"] = r["status"] == "sending" or r["status"] == "retry" or r["attempts"] > 0
                values = {"status": "sending", "attempts": r["attempts"] + 1,
                          "next_at": now + timedelta(minutes=LEASE_MINUTES)}
            conn.execute(update(letter_sends).where(letter_sends.c.id == r["id"]).values(updated_at=now, **values))
    return rows


def _save(engine: Any, send_id: int, now: datetime, **values: Any) -> None:
    with engine.db.transaction() as conn:
        conn.execute(update(letter_sends).where(letter_sends.c.id == send_id).values(updated_at=now, **values))


def _send(engine: Any, client: Any, settings: NotifySettings, row: dict[str, Any], now: datetime,
          pdf: Callable[..., bytes] | None) -> str:
    attempts = row["attempts"] + 1
    try:
        if row.get("unknown"):  # an earlier attempt may have reached Notify: look before sending again
            found = client.get_all_notifications(reference=row["reference"]).get("notifications") or []
            if found:
                n = found[0]
                _save(engine, row["id"], now, status="sent", provider_id=n.get("id"),
                      provider_status=n.get("status"), sent_at=now, last_error=None,
                      next_at=now + timedelta(minutes=POLL_MINUTES))
                return "found already sent"
        doc, person, reference = _letter(engine, row["document_id"])
        if row["channel"] == "post":
            content = row["pdf"]
            if content is None:  # kept before it is sent: what the council posted, byte for byte
                from .letter_pdf import render_pdf

                content = (pdf or render_pdf)(doc, reference=reference, person=person)
                _save(engine, row["id"], now, pdf=content, pdf_sha256=hashlib.sha256(content).hexdigest())
            import io

            answer = client.send_precompiled_letter_notification(row["reference"], io.BytesIO(content),
                                                                 postage=settings.postage)
        else:
            answer = client.send_email_notification(
                person.get("email"), settings.email_template_id, reference=row["reference"],
                personalisation={"title": doc["title"], "body": doc["body"], "case_reference": reference})
    except Exception as exc:  # noqa: BLE001 - every failure is recorded on the letter
        status, message = _error(exc)
        if status is not None and 400 <= status < 500 and status not in (403, 429):
            _save(engine, row["id"], now, status="failed", last_error=message, next_at=None)
            log.warning("letter send %s refused by GOV.UK Notify (%s)", row["id"], status)
            return "refused"
        if attempts >= MAX_ATTEMPTS:
            _save(engine, row["id"], now, status="failed", next_at=None,
                  last_error=f"not sent after {attempts} attempts; the last: {message}")
            log.warning("letter send %s given up after %d attempts (%s)", row["id"], attempts, status or "no answer")
            return "given up"
        _save(engine, row["id"], now, status="retry", last_error=message, next_at=now + _backoff(attempts))
        log.warning("letter send %s failed (%s); will retry", row["id"], status or "no answer")
        return "retry"
    _save(engine, row["id"], now, status="sent", provider_id=str(answer.get("id") or ""),
          provider_status="accepted" if row["channel"] == "post" else "created", sent_at=now, last_error=None,
          next_at=now + timedelta(minutes=POLL_MINUTES))
    return "sent"


def _poll(engine: Any, client: Any, settings: NotifySettings, row: dict[str, Any], now: datetime,
          pdf: Any = None) -> str:
    try:
        answer = client.get_notification_by_id(row["provider_id"])
    except Exception as exc:  # noqa: BLE001 - asked again at the next poll
        status, message = _error(exc)
        _save(engine, row["id"], now, last_error=f"could not get the status: {message}")
        return "status not read"
    said = str(answer.get("status") or "")
    if said in DELIVERED:
        _save(engine, row["id"], now, status="delivered", provider_status=said, next_at=None, last_error=None)
        return "delivered"
    if said in FAILED:
        _save(engine, row["id"], now, status="failed", provider_status=said, next_at=None,
              last_error=f"GOV.UK Notify says {said}: {FAILED[said]}")
        return "failed"
    _save(engine, row["id"], now, provider_status=said[:32] or None)
    return "in progress"


def _letter(engine: Any, document_id: int) -> tuple[dict[str, Any], dict[str, Any], str]:
    with engine.db.engine.connect() as conn:
        d = conn.execute(select(documents).where(documents.c.id == document_id)).one()
        c = conn.execute(select(cases.c.reference, cases.c.data).where(cases.c.id == d.case_id)).one()
    return dict(d._mapping), json.loads(c.data or "{}"), c.reference


def send_again(engine: Any, document_id: int, *, now: datetime | None = None) -> dict[str, Any]:
    """A letter that was not sent (refused by Notify, or given up after the last attempt) queued again, due
    now. Notify is asked for its reference first, as on any retry, so it still cannot go twice. A letter
    Notify accepted (sent, delivered, or accepted and then not delivered) is not sent again: StateError."""
    from engine.errors import StateError

    now = now or engine.now()
    with engine.db.transaction() as conn:
        q = select(letter_sends).where(letter_sends.c.document_id == document_id)
        if engine.db.is_postgres:
            q = q.with_for_update()
        row = conn.execute(q).first()
        if row is None:
            raise StateError("this letter was not queued to send through GOV.UK Notify: print it and post it")
        if row.status != "failed" or row.sent_at is not None:
            raise StateError("only a letter that was not sent can be sent again; this one is "
                             f"{describe(dict(row._mapping))['text'].lower()}")
        conn.execute(update(letter_sends).where(letter_sends.c.id == row.id).values(
            status="retry", attempts=1, next_at=now, last_error=None, updated_at=now))
    log.info("letter send %s queued again", row.id)
    return {"id": row.id, "status": "retry"}


# ---------------------------------------------------------------------- what the case record shows
def sends_for(conn: Connection, case_id: int) -> dict[int, dict[str, Any]]:
    """document id -> its send row (without the PDF bytes) for the case's letters."""
    cols = [c for c in letter_sends.c if c.name != "pdf"]
    return {r.document_id: dict(r._mapping) for r in conn.execute(
        select(*cols).where(letter_sends.c.case_id == case_id))}


def _sentence(text: str | None) -> str:
    """What went wrong as a sentence of its own, ending in a full stop, so the words after it read apart."""
    text = (text or "").strip()
    return text if not text or text[-1] in ".!?" else text + "."


def describe(send: dict[str, Any] | None, problem: str | None = None) -> dict[str, str]:
    """What the worker reads beside the letter: {"text", "tag" (GOV.UK tag colour), "detail"}.
    `problem`: why the letter cannot be posted (`address_problem` of its addressee), if it cannot."""
    if problem and (send is None or send["status"] == "held"):
        return {"text": "Needs an address", "tag": "red",
                "detail": f"{problem}, so this letter has not been sent or filed for printing. "
                          "Give it to them by hand, or ask for their address and send them a new letter."}
    if send is None:
        return {"text": "Filed for printing", "tag": "grey",
                "detail": "Not sent through GOV.UK Notify: print it and post it, or hand it over."}
    how = "by email" if send["channel"] == "email" else "by post"
    status = send["status"]
    if status == "delivered":
        word = DELIVERED.get(send.get("provider_status") or "", "delivered")
        return {"text": f"{word.capitalize()} {how}", "tag": "green", "detail": ""}
    if status == "sent":
        return {"text": f"Sent {how}", "tag": "blue",
                "detail": f"GOV.UK Notify has it ({send.get('provider_status') or 'accepted'})."}
    if status == "failed" and send.get("provider_status") in FAILED:  # Notify had it, then could not deliver it
        return {"text": f"Not delivered {how}", "tag": "red",
                "detail": f"{_sentence(send.get('last_error'))} Check the person's details, then print and post it."}
    if status == "failed":
        return {"text": f"Not sent {how}", "tag": "red",
                "detail": f"{_sentence(send.get('last_error')) or 'GOV.UK Notify refused it.'} "
                          "Nothing was sent: correct the details and print and post it."}
    if status == "retry":
        return {"text": f"Waiting to send {how}", "tag": "yellow",
                "detail": f"{_sentence(send.get('last_error'))} It will be tried again; it will not be sent "
                          "twice.".lstrip()}
    return {"text": f"Queued to send {how}", "tag": "grey", "detail": ""}


def register(registry: HandlerRegistry, env: Mapping[str, str] | None = None) -> None:
    """The queue's listener and the sender's job; Notify settings that cannot work stop the start-up here,
    with the setting named, rather than at the first letter."""
    settings = notify_settings(env)
    registry.on_document_filed(queue_filed)
    registry.every("letters-send", send_due, settings.interval if settings is not None else 60.0)
