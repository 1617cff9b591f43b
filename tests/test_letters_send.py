"""Letters sent through GOV.UK Notify (handlers/letter_sending.py) against the fake Notify the fixture starts.

A letter is queued in the transaction that files it and sent once; a 500, an answer lost after Notify kept
the letter, or a time-out is retried without a second copy reaching Notify; a refusal (400) is recorded
with Notify's message and not retried; with Notify not configured letters are filed for printing. SQLite
and PostgreSQL (the `db_url` fixture); the engine's simulated clock.
"""

from __future__ import annotations

import base64
import hashlib
import io
import logging
from datetime import timedelta

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from api.letters_pdf import delivery
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import documents, letter_sends
from handlers import letter_sending
from handlers.letter_sending import describe, send_due
from tests import casework_helpers
from tests.conftest import START
from tests.fake_notify import API_KEY, EMAIL_TEMPLATE

PERSON = {"name": "Margaret Okafor", "address": ["14 Quarry Row", "Northtown"], "postcode": "NS3 4QT",
          "email": "margaret.okafor@example.net"}
FIRST_LINE = "We have looked at the help you need with washing and dressing."
BODY = f"""3 March 2031

Margaret Okafor
14 Quarry Row
Northtown
NS3 4QT

Our reference: CASE-000001

Dear Margaret Okafor,

Your care and support needs: our decision

{FIRST_LINE}

Yours sincerely,

The Adult Social Care team
"""
DIAGRAM = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="http://carepath.test">
  <bpmn:process id="decision_letter" name="Decision letter" isExecutable="true">
    <bpmn:startEvent id="start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:serviceTask id="write" name="Write the decision letter" camunda:type="external"
        camunda:topic="decision_letter"
        camunda:resultVariable="letter">
      <bpmn:incoming>f1</bpmn:incoming><bpmn:outgoing>f2</bpmn:outgoing>
    </bpmn:serviceTask>
    <bpmn:endEvent id="end"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="write"/>
    <bpmn:sequenceFlow id="f2" sourceRef="write" targetRef="end"/>
  </bpmn:process>
</bpmn:definitions>
"""


notify, configured = casework_helpers.notify, casework_helpers.configured  # the fake GOV.UK Notify (fixtures)


@pytest.fixture
def engine(db_url):
    reg = HandlerRegistry()

    @reg.register("decision_letter", document=True)
    def decision_letter(ctx):
        return {"title": "Your care and support needs: our decision", "body": BODY, "kind": "eligibility"}

    letter_sending.register(reg)
    eng = Engine(db_url, registry=reg, forms=None)
    eng.init(simulated_start=START)
    eng.deploy(files={"decision_letter.bpmn": DIAGRAM})
    yield eng
    eng.db.dispose()


def file_letter(engine, person=PERSON) -> int:
    case_id = engine.create_case(person["name"], dict(person))
    engine.start("decision_letter", case_id=case_id)
    return case_id


def rows(engine):
    with engine.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(letter_sends).order_by(letter_sends.c.id))]


def docs(engine):
    with engine.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(select(documents).order_by(documents.c.id))]


def pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return "\n".join(page.extract_text() for page in PdfReader(io.BytesIO(content)).pages)


def test_a_letter_is_queued_with_its_document_sent_once_by_post_and_its_delivery_recorded(engine, configured):
    file_letter(engine)
    [doc] = docs(engine)
    [row] = rows(engine)
    assert (row["document_id"], row["channel"], row["status"]) == (doc["id"], "post", "queued")
    assert describe(row)["text"] == "Queued to send by post"

    now = engine.now()
    assert send_due(engine, now=now) == {"sent": 1}
    [row] = rows(engine)
    [sent] = configured.sends(row["reference"])
    posted = base64.b64decode(sent["body"]["content"])
    assert posted.startswith(b"%PDF-") and sent["postage"] == "second"
    assert row["pdf"] == posted and row["pdf_sha256"] == hashlib.sha256(posted).hexdigest()
    assert FIRST_LINE in pdf_text(posted).replace("\n", " ")
    assert (row["status"], row["sent_at"] is not None) == ("sent", True)
    assert describe(row)["text"] == "Sent by post"

    # the worker runs again, and again later: nothing is sent a second time
    assert send_due(engine, now=now) == {}
    configured.set_status(row["provider_id"], "received")
    assert send_due(engine, now=now + timedelta(minutes=61)) == {"delivered": 1}
    [row] = rows(engine)
    assert (row["status"], row["provider_status"]) == ("delivered", "received")
    assert describe(row)["text"] == "Posted by post"
    assert delivery(engine, row["case_id"])[doc["id"]]["sha256"] == hashlib.sha256(posted).hexdigest()
    assert configured.attempts(row["reference"]) == 1 and len(configured.sends(row["reference"])) == 1


def test_a_letter_by_email_when_the_person_asked_for_email(engine, configured):
    file_letter(engine, dict(PERSON, contact_preference="email"))
    now = engine.now()
    assert send_due(engine, now=now) == {"sent": 1}
    [row] = rows(engine)
    [sent] = configured.sends(row["reference"])
    assert row["channel"] == "email" and sent["type"] == "email"
    assert sent["body"]["email_address"] == PERSON["email"] and sent["body"]["template_id"] == EMAIL_TEMPLATE
    assert FIRST_LINE in sent["body"]["personalisation"]["body"]
    configured.set_status(row["provider_id"], "delivered")
    send_due(engine, now=now + timedelta(minutes=61))
    assert describe(rows(engine)[0])["text"] == "Delivered by email"


def test_a_letter_notify_could_not_deliver_says_so(engine, configured):
    file_letter(engine, dict(PERSON, contact_preference="email"))
    now = engine.now()
    send_due(engine, now=now)
    configured.set_status(rows(engine)[0]["provider_id"], "permanent-failure")
    assert send_due(engine, now=now + timedelta(minutes=61)) == {"failed": 1}
    shown = describe(rows(engine)[0])
    assert shown["text"] == "Not delivered by email"
    assert "could not be delivered to" in shown["detail"] and "print and post it" in shown["detail"]


def test_notify_500_is_retried_with_backoff_and_the_letter_sent_once(engine, configured):
    file_letter(engine)
    configured.fail_next(500)
    now = engine.now()
    assert send_due(engine, now=now) == {"retry": 1}
    [row] = rows(engine)
    assert row["status"] == "retry" and "500" in row["last_error"]
    assert "will be tried again" in describe(row)["detail"]
    assert send_due(engine, now=now + timedelta(seconds=59)) == {}  # not before the backoff
    assert send_due(engine, now=now + timedelta(minutes=1)) == {"sent": 1}
    [row] = rows(engine)
    assert row["status"] == "sent" and row["attempts"] == 2 and row["last_error"] is None
    assert configured.attempts(row["reference"]) == 2 and len(configured.sends(row["reference"])) == 1


def test_a_send_notify_kept_but_answered_500_is_found_by_its_reference_not_sent_again(engine, configured):
    file_letter(engine)
    configured.accept_then_fail(500)
    now = engine.now()
    assert send_due(engine, now=now) == {"retry": 1}
    assert send_due(engine, now=now + timedelta(minutes=1)) == {"found already sent": 1}
    [row] = rows(engine)
    assert row["status"] == "sent" and row["provider_id"] == configured.sends(row["reference"])[0]["id"]
    assert configured.attempts(row["reference"]) == 1 and len(configured.sends(row["reference"])) == 1


def test_a_time_out_is_retried_and_never_sent_twice(engine, configured):
    file_letter(engine)
    configured.hang_next(2.0)  # Notify keeps the letter but answers after the client's 0.5 s
    now = engine.now()
    assert send_due(engine, now=now) == {"retry": 1}
    [row] = rows(engine)
    assert row["last_error"] == "GOV.UK Notify did not answer in time"
    assert describe(row)["detail"] == ("GOV.UK Notify did not answer in time. It will be tried again; it will not be "
                                       "sent twice.")  # two sentences, as the case record shows them
    assert send_due(engine, now=now + timedelta(minutes=1)) == {"found already sent": 1}
    assert len(configured.sends(row["reference"])) == 1 and configured.attempts(row["reference"]) == 1


def test_a_worker_stopped_mid_send_leaves_the_letter_to_be_looked_up_not_resent(engine, configured):
    file_letter(engine)
    now = engine.now()
    letter_sending._claim(engine, now)  # claimed, then the worker stops before Notify answers
    assert rows(engine)[0]["status"] == "sending"
    assert send_due(engine, now=now + timedelta(minutes=5)) == {}  # still within the lease
    assert send_due(engine, now=now + timedelta(minutes=10)) == {"sent": 1}
    assert len(configured.sends(rows(engine)[0]["reference"])) == 1


def test_a_letter_notify_refuses_is_recorded_with_its_message_and_not_retried(engine, configured):
    file_letter(engine)
    configured.fail_next(400, message="Address must be at least 3 lines")
    now = engine.now()
    assert send_due(engine, now=now) == {"refused": 1}
    [row] = rows(engine)
    assert row["status"] == "failed" and "Address must be at least 3 lines" in row["last_error"]
    shown = describe(row)
    assert shown["text"] == "Not sent by post"
    assert "Address must be at least 3 lines. Nothing was sent" in shown["detail"]
    assert "print and post it" in shown["detail"]
    assert send_due(engine, now=now + timedelta(days=2)) == {}
    assert configured.attempts(row["reference"]) == 1 and not configured.sends(row["reference"])
    assert len(docs(engine)) == 1  # the letter is still filed
    assert delivery(engine, row["case_id"])[row["document_id"]]["sha256"] == ""  # no hash of a PDF never sent


def test_a_letter_still_failing_after_the_last_attempt_is_given_up_and_shown(engine, configured):
    file_letter(engine)
    configured.fail_next(503, times=letter_sending.MAX_ATTEMPTS)
    now = engine.now()
    for _ in range(letter_sending.MAX_ATTEMPTS):
        now += timedelta(hours=12)
        send_due(engine, now=now)
    [row] = rows(engine)
    assert row["status"] == "failed" and row["last_error"].startswith(f"not sent after {letter_sending.MAX_ATTEMPTS}")
    assert not configured.sends(row["reference"])


def test_without_notify_letters_are_filed_for_printing_and_nothing_is_queued(engine, notify, monkeypatch):
    monkeypatch.delenv("CAREPATH_NOTIFY_API_KEY", raising=False)
    file_letter(engine)
    assert len(docs(engine)) == 1 and rows(engine) == []
    assert send_due(engine) == {}
    assert describe(None)["text"] == "Filed for printing"
    assert notify.requests == []


def test_a_letter_is_queued_once(engine, configured):
    file_letter(engine)
    [row] = rows(engine)
    with pytest.raises(IntegrityError), engine.db.transaction() as conn:
        conn.execute(insert(letter_sends).values(
            document_id=row["document_id"], case_id=row["case_id"], channel="post", reference="again",
            status="queued", attempts=0, created_at=row["created_at"], updated_at=row["created_at"]))
    assert len(rows(engine)) == 1


def test_a_wrong_api_key_is_a_clear_error_that_names_the_setting_not_the_key(monkeypatch):
    from engine.errors import CarepathError

    with pytest.raises(CarepathError) as err:
        letter_sending.notify_settings({"CAREPATH_NOTIFY_API_KEY": "not-a-key-secret-value"})
    assert "CAREPATH_NOTIFY_API_KEY" in str(err.value) and "secret-value" not in str(err.value)
    with pytest.raises(CarepathError, match="CAREPATH_NOTIFY_POSTAGE"):
        letter_sending.notify_settings({"CAREPATH_NOTIFY_API_KEY": API_KEY, "CAREPATH_NOTIFY_POSTAGE": "pigeon"})
    assert "secret" not in repr(letter_sending.notify_settings({"CAREPATH_NOTIFY_API_KEY": API_KEY}))


def test_no_personal_data_or_key_in_the_logs(engine, configured, caplog):
    caplog.set_level(logging.DEBUG)
    file_letter(engine, dict(PERSON, contact_preference="email"))
    file_letter(engine, dict(PERSON, name="Margaret Okafor-Brown"))
    configured.fail_next(400, message="email_address Not a valid email address")
    configured.hang_next(2.0)
    now = engine.now()
    send_due(engine, now=now)
    send_due(engine, now=now + timedelta(minutes=5))
    text = caplog.text
    assert "letter send" in text  # the sender did log
    for secret in ("Okafor", "Quarry Row", "NS3 4QT", "margaret.okafor", FIRST_LINE[:20], API_KEY[-36:],
                   "Not a valid email"):
        assert secret not in text


def test_the_queue_row_and_the_letter_are_stored_together_or_not_at_all(engine, configured, monkeypatch):
    """A queue that cannot be written (here: a postage Notify does not offer) fails the step that files the
    letter with an error naming the setting; neither the letter nor a queue row is stored."""
    from engine.errors import CarepathError

    monkeypatch.setenv("CAREPATH_NOTIFY_POSTAGE", "pigeon")
    case_id = engine.create_case(PERSON["name"], dict(PERSON))
    with pytest.raises(CarepathError, match="CAREPATH_NOTIFY_POSTAGE"):
        engine.start("decision_letter", case_id=case_id)
    assert docs(engine) == [] and rows(engine) == []
    monkeypatch.setenv("CAREPATH_NOTIFY_POSTAGE", "first")
    engine.start("decision_letter", case_id=case_id)
    assert len(docs(engine)) == 1 and len(rows(engine)) == 1
    send_due(engine, now=engine.now())
    assert configured.sends(rows(engine)[0]["reference"])[0]["postage"] == "first"


def test_bad_notify_settings_stop_the_start_up_naming_the_setting():
    from engine.errors import CarepathError

    with pytest.raises(CarepathError, match="CAREPATH_NOTIFY_TIMEOUT"):
        letter_sending.register(HandlerRegistry(), env={"CAREPATH_NOTIFY_API_KEY": API_KEY,
                                                        "CAREPATH_NOTIFY_TIMEOUT": "soon"})


def test_the_worker_runs_the_sender_beside_the_timers(engine, configured, monkeypatch):
    from engine.worker import background_scheduler, run_job

    monkeypatch.setenv("CAREPATH_NOTIFY_INTERVAL", "15")
    reg = HandlerRegistry()
    letter_sending.register(reg)
    assert [(name, seconds) for name, _job, seconds in reg.background_jobs] == [("letters-send", 15.0)]
    sched = background_scheduler(engine)
    assert sched.get_job("carepath-letters-send") is not None and sched.get_job("carepath-timers") is not None
    file_letter(engine)
    assert run_job(engine, "letters-send", send_due) == {"sent": 1}
    assert len(configured.sends(rows(engine)[0]["reference"])) == 1


def test_the_pdf_puts_the_addressee_in_the_envelope_window_notify_reads():
    """GOV.UK Notify reads a precompiled letter's address from 24.6 mm x 50.3 mm, 95.4 mm wide and 26.8 mm
    tall; the letterhead stays clear of it and the letter starts below it."""
    import weasyprint

    from handlers.letter_pdf import letter_html
    from handlers.letters import load_council

    doc = {"id": 1, "title": "Your care and support needs: our decision", "body": BODY, "created_at": START}
    rendered = weasyprint.HTML(string=letter_html(doc, reference="CASE-000001", council=load_council())).render()
    mm = 25.4 / 96
    boxes = {}

    def walk(box):
        element = getattr(box, "element", None)
        name = element.get("class") if element is not None and hasattr(element, "get") else None
        if name and name not in boxes:
            boxes[name] = (box.content_box_x() * mm, box.content_box_y() * mm, box.width * mm, box.height * mm, box)
        for child in getattr(box, "children", []):
            walk(child)

    walk(rendered.pages[0]._page_box)
    x, y, w, h, window = boxes["addressee"]
    assert (round(x, 1), round(y, 1), round(w, 1), round(h, 1)) == (24.6, 50.3, 95.4, 26.8)
    lines = [b.text for b in _texts(window)]
    assert lines == ["Margaret Okafor", "14 Quarry Row", "Northtown", "NS3 4QT"]
    hx, hy, hw, hh, _ = boxes["letterhead"]
    assert hx >= x + w or hy >= y + h  # clear of the window
    assert round(hy) == 15  # at the top of the first page
    assert boxes["dated"][1] >= y + h  # the letter starts below the window


def _texts(box):
    if hasattr(box, "text"):
        yield box
    for child in getattr(box, "children", []):
        yield from _texts(child)


def test_the_addressee_is_read_from_either_letter_layout_or_else_from_the_case():
    from handlers.letter_pdf import split_letter
    from handlers.letters import load_council

    council = load_council()
    with_letterhead = "\n".join([council["name"], council["department"], *council["address"],
                                 f"Telephone: {council['phone']}", f"Email: {council['email']}", "", BODY])
    for text in (BODY, with_letterhead):
        addressee, dated, rest = split_letter(text, council, PERSON)
        assert addressee == ["Margaret Okafor", "14 Quarry Row", "Northtown", "NS3 4QT"] and dated == "3 March 2031"
        assert rest[0] == ["Our reference: CASE-000001"]
    addressee, dated, rest = split_letter("Dear Margaret,\n\nA short note.", council, PERSON)
    assert addressee == ["Margaret Okafor", "14 Quarry Row", "Northtown", "NS3 4QT"] and dated is None
    assert rest == [["Dear Margaret,"], ["A short note."]]


def test_markup_in_a_letter_is_printed_as_text_and_nothing_is_fetched():
    from handlers.letter_pdf import render_pdf

    body = BODY.replace(FIRST_LINE, '<img src="http://198.51.100.7/track.png"> <b>bold</b> & more')
    doc = {"id": 7, "title": "<script>x</script>", "body": body, "created_at": START}
    text = pdf_text(render_pdf(doc, reference="CASE-000001", person=PERSON)).replace("\n", " ")
    assert '<img src="http://198.51.100.7/track.png"> <b>bold</b> & more' in text and "<script>x</script>" in text


def test_two_workers_at_once_send_each_letter_once(engine, configured):
    import threading

    for n in range(6):
        file_letter(engine, dict(PERSON, name=f"Person {n}"))
    now = engine.now()
    results: list[dict] = []
    go = threading.Barrier(2)

    def worker():
        go.wait()
        results.append(send_due(engine, now=now))

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(r.get("sent", 0) for r in results) == 6
    for row in rows(engine):
        assert row["status"] == "sent" and len(configured.sends(row["reference"])) == 1


@pytest.mark.parametrize("status", [403, 429])
def test_a_key_notify_refuses_or_too_many_requests_is_retried_not_given_up(engine, configured, status):
    """403 (the key: the council can fix it) and 429 (rate limit) are not the letter's fault: retried."""
    file_letter(engine)
    configured.fail_next(status, message="Invalid token: API key not found" if status == 403 else "Exceeded rate limit")
    now = engine.now()
    assert send_due(engine, now=now) == {"retry": 1}
    assert str(status) in rows(engine)[0]["last_error"]
    assert send_due(engine, now=now + timedelta(minutes=1)) == {"sent": 1}
    assert len(configured.sends(rows(engine)[0]["reference"])) == 1
