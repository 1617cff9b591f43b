"""A letter that cannot be posted is never filed "for printing" as if it could be (issue 11, tried as a carer's
worker): Susan's carer's support plan letter, written by the real process for a carer whose start data had no
address, says "Needs an address" on the case record (and a warning at the top of it), with or without GOV.UK
Notify; with Notify it is held (never sent to Notify, where a name-only address would be refused); a person on
the case with no postal address but an email address (and the council's email template) is sent it by email.
SQLite and PostgreSQL; the engine's simulated clock."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from api.app import create_app
from api.demo_users import create_demo_users
from api.letters_pdf import delivery
from engine.schema import letter_sends
from handlers.letter_pdf import address_of
from handlers.letter_sending import address_problem, channel_for, notify_settings, send_due
from tests import casework_helpers
from tests.casework_helpers import casework_engine, page_client
from tests.fake_notify import API_KEY, EMAIL_TEMPLATE
from tests.test_carers import PROCESSES, carer_plan
from tests.test_process_assessment_to_review import PETER, assessment, carer_assessment, complete

notify, configured = casework_helpers.notify, casework_helpers.configured  # the fake GOV.UK Notify (fixtures)


@pytest.fixture
def eng(db_url):
    yield from casework_engine(db_url, PROCESSES)


def susans_letter(eng) -> tuple[int, int]:
    """Susan, recorded at Peter's needs assessment as his carer with her name and relationship only."""
    cid = eng.start("needs_assessment", data={"name": PETER["name"], "person": PETER,
                                             "contact_date": "2031-03-03"}).case_id
    answers = assessment("personal_hygiene", "managing_nutrition", "using_home_safely", carer=True)
    answers["carer"] = {k: v for k, v in answers["carer"].items() if k != "address"}
    complete(eng, cid, "assess_needs", answers)
    complete(eng, cid, "assess_carer", carer_assessment("moderate"))
    complete(eng, cid, "plan_carer_support", carer_plan(months=6))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    [doc] = [d for d in eng.documents(cid) if d["kind"] == "carers_support_plan"]
    return cid, doc["id"]


def test_without_notify_the_carers_letter_with_no_address_needs_an_address_not_printing(eng, monkeypatch):
    monkeypatch.delenv("CAREPATH_NOTIFY_API_KEY", raising=False)
    cid, doc_id = susans_letter(eng)
    shown = delivery(eng, cid)[doc_id]
    assert shown["text"] == "Needs an address" and shown["tag"] == "red"
    assert shown["detail"].startswith("There is no postal address for Susan Clarke, so this letter has not been sent")
    # Susan's eligibility letter as a carer needs one too; Peter's own letters (to 12 Mill Lane) are for printing
    shown = delivery(eng, cid)
    by_addressee = {}
    for d in eng.documents(cid):
        by_addressee.setdefault(address_of(d["body"], {})[0], set()).add(shown[d["id"]]["text"])
    assert by_addressee == {"Susan Clarke": {"Needs an address"}, "Peter Clarke": {"Filed for printing"}}


def test_with_notify_the_letter_is_held_and_never_sent(eng, configured):
    cid, doc_id = susans_letter(eng)
    with eng.db.engine.connect() as conn:
        row = conn.execute(select(letter_sends).where(letter_sends.c.document_id == doc_id)).one()
    assert (row.status, row.next_at, row.last_error) == ("held", None, "no postal address")  # no name stored
    send_due(eng)
    assert configured.sends(row.reference) == []
    assert delivery(eng, cid)[doc_id]["text"] == "Needs an address"
    assert delivery(eng, cid)[doc_id]["may_send_again"] is False


def test_the_case_page_warns_at_the_top(eng, monkeypatch):
    monkeypatch.delenv("CAREPATH_NOTIFY_API_KEY", raising=False)
    cid, doc_id = susans_letter(eng)
    create_demo_users(eng)
    client, _ = page_client(create_app(eng, run_timers=False), "social_worker")
    page = client.get(f"/cases/{cid}").text
    assert 'id="letters-need-address"' in page
    assert "2 letters have not been sent because there is no postal address" in page
    assert f'href="#delivery-{doc_id}"' in page


SETTINGS = {"CAREPATH_NOTIFY_API_KEY": API_KEY, "CAREPATH_NOTIFY_EMAIL_TEMPLATE_ID": EMAIL_TEMPLATE}


@pytest.mark.parametrize(("person", "addressee", "template", "channel"), [
    # no address, an email address and the council's template: by email even without asking for email
    ({"name": "Ann Lee", "email": "ann@example.net"}, ["Ann Lee"], True, "email"),
    # no address and no email: held
    ({"name": "Ann Lee"}, ["Ann Lee"], True, "held"),
    # no address, an email address but no email template: held, not posted
    ({"name": "Ann Lee", "email": "ann@example.net"}, ["Ann Lee"], False, "held"),
    # someone else's letter (a carer on the cared-for person's case) is never emailed to the person
    ({"name": "Peter Clarke", "email": "p@example.net"}, ["Susan Clarke"], True, "held"),
    # an address: by post as before
    ({"name": "Ann Lee", "email": "ann@example.net"}, ["Ann Lee", "4 Rope Walk", "NS3 1CC"], True, "post"),
])
def test_the_channel_of_a_letter_with_and_without_an_address(person, addressee, template, channel):
    env = dict(SETTINGS) if template else {"CAREPATH_NOTIFY_API_KEY": API_KEY}
    assert channel_for(person, addressee, notify_settings(env)) == channel


def test_an_address_is_more_than_a_name():
    assert address_problem(["Susan Clarke"]) == "There is no postal address for Susan Clarke"
    assert address_problem(["Susan Clarke", "  "]) == "There is no postal address for Susan Clarke"
    assert address_problem(["Susan Clarke", "12 Mill Lane, Northtown"]) is None
    # read from a letter's text: the name-only addressee paragraph, not the case's address
    body = "3 March 2031\n\nSusan Clarke\n\nOur reference: CASE-000001\n\nDear Susan,\n"
    assert address_of(body, {"name": "Peter Clarke", "address": ["12 Mill Lane"]}, {}) == ["Susan Clarke"]
