"""A letter's PDF downloaded from the case record, and how each letter was sent, in a real browser.

Peter Clarke's case (tests/test_api_cases.py `build_world`) is built with GOV.UK Notify configured
(the fake the fixture starts): his letters are queued as they are filed; the worker's job sends them,
one refused by Notify. The social worker sees beside each letter how it was sent, downloads a letter's
PDF from the case record (a PDF whose text has the letter's first lines, byte for byte what was posted)
and the letter page shows the SHA-256 of the PDF sent. axe-core checks both pages. Someone who may not
open the case gets 403 (logged), an unknown letter 404, never a 500.
"""

from __future__ import annotations

import hashlib
import io
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from api.access import access_log, restrict_case
from api.app import create_app
from engine.schema import letter_sends
from handlers.letter_sending import send_due
from tests.browser import AXE, launch, live_server, run_axe, sign_in
from tests.fake_notify import API_KEY, FakeNotify
from tests.test_api_cases import PASSWORD, build_world


@pytest.fixture
def world(db_url, monkeypatch):
    fake = FakeNotify().start()
    monkeypatch.setenv("CAREPATH_NOTIFY_API_KEY", API_KEY)
    monkeypatch.setenv("CAREPATH_NOTIFY_BASE_URL", fake.url)
    eng, cases = build_world(db_url)
    app = create_app(eng, run_timers=False)
    yield eng, app, cases, fake
    eng.db.dispose()
    fake.stop()


def _pdf_text(content: bytes) -> str:
    from pypdf import PdfReader

    return " ".join(" ".join(p.extract_text().split()) for p in PdfReader(io.BytesIO(content)).pages)


def _first_line(body: str) -> str:
    return next(line.strip() for line in body.splitlines() if line.strip())


def _sends(eng, case_id):
    with eng.db.engine.connect() as conn:
        return {r.document_id: r for r in conn.execute(select(letter_sends).where(letter_sends.c.case_id == case_id))}


def test_a_social_worker_downloads_a_sent_letter_from_the_case_record(world):
    eng, app, cases, fake = world
    peter = cases["peter"]
    letters = eng.documents(peter)
    assert len(letters) >= 2 and len(_sends(eng, peter)) == len(letters)  # each queued as it was filed
    fake.fail_next(400, message="Address lines must not start with any of the following characters")
    send_due(eng, now=eng.now())
    sends = _sends(eng, peter)
    refused = next(d for d in letters if sends[d["id"]].status == "failed")
    sent = next(d for d in letters if sends[d["id"]].status == "sent")
    assert AXE.is_file(), "node_modules/axe-core is missing: run `npm ci`"

    with live_server(app) as base, launch() as browser:
        context = browser.new_context(accept_downloads=True)
        page = context.new_page()
        sign_in(page, base, "sam", PASSWORD)
        page.goto(f"{base}/cases/{peter}#letters")
        assert page.locator(f"#delivery-{sent['id']}").inner_text() == "Sent by post"
        assert page.locator(f"#delivery-{refused['id']}").inner_text() == "Not sent by post"
        row = page.locator("tr", has=page.locator(f"#delivery-{refused['id']}")).inner_text()
        assert "Address lines must not start" in row and "print and post it" in row

        link = page.locator(f"#letter-pdf-{sent['id']}")
        assert link.inner_text().startswith("Download PDF")
        link.focus()  # by keyboard
        with page.expect_download() as info:
            page.keyboard.press("Enter")
        download = info.value
        content = open(download.path(), "rb").read()
        assert content.startswith(b"%PDF-")
        assert download.suggested_filename == f"letter-{eng.get_case(peter)['reference']}-{sent['id']}.pdf"
        assert content == sends[sent["id"]].pdf  # exactly what was posted
        text = _pdf_text(content)
        assert _first_line(sent["body"]) in text and sent["title"] in text

        _axe(browser, base, context, f"/cases/{peter}", "case")
        page.goto(f"{base}/cases/{peter}/letters/{sent['id']}")
        assert page.locator("#delivery").inner_text() == "Sent by post"
        assert hashlib.sha256(content).hexdigest() in page.locator(".app-hash").inner_text()
        _axe(browser, base, context, f"/cases/{peter}/letters/{sent['id']}", "letter")
        context.close()

    assert "letter_pdf" in [a["action"] for a in access_log(eng, peter) if a["user"] == "sam"]


def _axe(browser, base, context, path, name):
    ctx = browser.new_context(bypass_csp=True)  # axe is an injected inline script
    try:
        ctx.add_cookies(context.cookies())
        page = ctx.new_page()
        page.goto(base + path)
        page.wait_for_load_state("networkidle")
        run_axe(page, name)
    finally:
        ctx.close()


def _client(app, username: str) -> TestClient:
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    assert client.post("/sign-in", data={"form_token": token, "username": username,
                                         "password": PASSWORD}).status_code == 303
    return client


def test_a_letter_filed_for_printing_is_rendered_from_its_text_the_same_every_time(world, monkeypatch):
    eng, app, cases, fake = world
    peter = cases["peter"]
    [doc, *_] = eng.documents(peter)  # not sent (the worker has not run): rendered from the filed text
    sam = _client(app, "sam")
    first = sam.get(f"/cases/{peter}/letters/{doc['id']}/pdf")
    assert first.status_code == 200 and first.headers["content-type"] == "application/pdf"
    assert first.headers["content-disposition"].startswith("attachment;")
    assert _first_line(doc["body"]) in _pdf_text(first.content)
    assert sam.get(f"/cases/{peter}/letters/{doc['id']}/pdf").content == first.content
    from pypdf import PdfReader

    reader = PdfReader(io.BytesIO(first.content))
    assert reader.trailer["/Root"]["/Lang"] == "en-GB" and reader.trailer["/Root"]["/MarkInfo"]["/Marked"]
    assert reader.metadata.title.startswith(doc["title"])
    box = reader.pages[0].mediabox
    assert (round(float(box.width) / 72 * 25.4), round(float(box.height) / 72 * 25.4)) == (210, 297)  # A4


def test_who_may_not_read_the_case_gets_403_or_404_never_500(world):
    eng, app, cases, fake = world
    peter, joan = cases["peter"], cases["joan"]
    [doc, *_] = eng.documents(peter)
    restrict_case(eng, peter, ["sam"])
    rosa = _client(app, "rosa")
    refused = rosa.get(f"/cases/{peter}/letters/{doc['id']}/pdf")
    assert refused.status_code == 404 and "%PDF" not in refused.text  # as an unknown case: existence not disclosed
    assert ("rosa", "refused:letter_pdf") in [(a["user"], a["action"]) for a in access_log(eng, peter)]
    other = rosa.get(f"/cases/{joan}/letters/{doc['id']}/pdf")  # Joan's case, which Rosa may read: not its letter
    assert other.status_code == 404 and "This letter could not be found" in other.text
    sam = _client(app, "sam")
    assert sam.get(f"/cases/{peter}/letters/999999/pdf").status_code == 404
    assert sam.get(f"/cases/999999/letters/{doc['id']}/pdf").status_code == 404
    anonymous = TestClient(app, follow_redirects=False).get(f"/cases/{peter}/letters/{doc['id']}/pdf")
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/sign-in"


def test_the_evidence_pack_says_how_each_letter_was_sent_and_the_hash_of_the_pdf_posted(world):
    from api.evidence import build_pack, user_named

    eng, app, cases, fake = world
    peter = cases["peter"]
    send_due(eng, now=eng.now())
    sends = _sends(eng, peter)
    pack = build_pack(eng, peter, user_named(eng, "mary"), "A complaint about a letter")
    text = _pdf_text(pack.files["evidence.pdf"])
    assert text.count("Sent by post") == len(sends)
    for send in sends.values():
        assert send.pdf_sha256 and send.pdf_sha256 in text.replace(" ", "")


def test_a_letter_given_up_during_a_notify_outage_is_sent_again_by_keyboard_and_only_once(world):
    from datetime import timedelta

    from handlers.letter_sending import MAX_ATTEMPTS

    eng, app, cases, fake = world
    peter = cases["peter"]
    letters = eng.documents(peter)
    fake.fail_next(503, times=MAX_ATTEMPTS * len(letters))  # Notify down for days
    now = eng.now()
    for _ in range(MAX_ATTEMPTS):
        now += timedelta(hours=12)
        send_due(eng, now=now)
    doc = letters[0]
    assert _sends(eng, peter)[doc["id"]].status == "failed"
    fake.plan.clear()  # Notify is back

    with live_server(app) as base, launch() as browser:
        context = browser.new_context()
        page = context.new_page()
        sign_in(page, base, "sam", PASSWORD)
        page.goto(f"{base}/cases/{peter}/letters/{doc['id']}")
        assert page.locator("#delivery").inner_text() == "Not sent by post"
        assert f"not sent after {MAX_ATTEMPTS} attempts" in page.locator("main").inner_text()
        page.locator("#send-again").focus()
        page.keyboard.press("Enter")
        page.wait_for_url(re.compile(rf".*/letters/{doc['id']}\?saved=again$"))
        assert "The letter will be sent again" in page.locator(".govuk-notification-banner").inner_text()
        assert page.locator("#delivery").inner_text() == "Waiting to send by post"
        assert page.locator("#send-again").count() == 0
        _axe(browser, base, context, page.url.removeprefix(base), "letter sent again")
        context.close()

    assert send_due(eng, now=now) == {"sent": 1}
    assert len(fake.sends(_sends(eng, peter)[doc["id"]].reference)) == 1


def test_only_a_letter_not_sent_can_be_sent_again_and_only_by_casework_roles(world):
    eng, app, cases, fake = world
    peter = cases["peter"]
    first, second, *_ = eng.documents(peter)
    fake.fail_next(400, message="Address lines must not start with any of the following characters")
    send_due(eng, now=eng.now())
    sends = _sends(eng, peter)
    refused = first if sends[first["id"]].status == "failed" else second
    sent = second if refused is first else first

    sam = _client(app, "sam")
    page = sam.get(f"/cases/{peter}/letters/{sent['id']}")
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', sam.get(f"/cases/{peter}/notes/new").text).group(1)
    assert 'id="send-again"' not in page.text
    again = sam.post(f"/cases/{peter}/letters/{sent['id']}/send-again", data={"csrf_token": csrf})
    assert again.status_code == 409 and "only a letter that was not sent can be sent again" in again.text
    assert sam.post(f"/cases/{peter}/letters/{refused['id']}/send-again", data={}).status_code == 403  # no token
    assert _sends(eng, peter)[refused["id"]].status == "failed"

    audrey = _client(app, "audrey")
    assert 'id="send-again"' not in audrey.get(f"/cases/{peter}/letters/{refused['id']}").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', audrey.get(f"/cases/{peter}").text).group(1)
    assert audrey.post(f"/cases/{peter}/letters/{refused['id']}/send-again",
                       data={"csrf_token": token}).status_code == 403
    assert ("audrey", "refused:letter_send_again") in [(a["user"], a["action"]) for a in access_log(eng, peter)]
    assert sam.post(f"/cases/{peter}/letters/999999/send-again", data={"csrf_token": csrf}).status_code == 404

    assert 'id="send-again"' in sam.get(f"/cases/{peter}/letters/{refused['id']}").text
    ok = sam.post(f"/cases/{peter}/letters/{refused['id']}/send-again", data={"csrf_token": csrf})
    assert ok.status_code == 303 and ok.headers["location"].endswith("?saved=again")
    assert _sends(eng, peter)[refused["id"]].status == "retry"
