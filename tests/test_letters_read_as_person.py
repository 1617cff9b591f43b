"""Letters read as the person who gets them (issue 11, tried as new users): the worker's role after their name is
a job title in lower case whatever case it was typed in ("Sam Social, social worker", not "Sam Social, Social
worker"); the direct payment letter quotes the worker's reason as theirs, with a full stop, and says what was
arranged from when, rather than pasting the worker's note as a sentence to the person."""

from __future__ import annotations

import pytest

from handlers import letters
from handlers.letters import role_title
from tests.test_letters_style import CTX, DEV, SIOBHAN, problems


@pytest.mark.parametrize(("typed", "printed"), [
    ("Social worker", "social worker"), ("SOCIAL WORKER", "social worker"), ("Social Worker", "social worker"),
    ("social_worker", "social worker"), ("  social   worker ", "social worker"),
    ("Occupational therapist", "occupational therapist"), ("OT", "occupational therapist"),
    ("Carers' worker", "carers' worker"), ("Carers worker", "carers' worker"),
    ("Team Manager", "team manager"), ("reablement_coordinator", "reablement co-ordinator"),
    # a role carepath does not know: sentence case lowered, capitals inside and abbreviations kept
    ("Community support worker", "community support worker"),
    ("NHS liaison nurse", "NHS liaison nurse"), ("Northshire Carers Centre worker", "Northshire Carers Centre worker"),
    ("SENIOR OT PRACTITIONER", "senior OT practitioner"),
])
def test_a_role_reads_as_a_job_title_in_a_sentence(typed, printed):
    assert role_title(typed) == printed


def _carer_plan(role: str) -> dict:
    return {"carer": "Susan Clarke", "cared_for": "Peter Clarke",
            "outcomes": [{"label": "A break every week", "how_met": "A sitter on Tuesdays"}],
            "support_type": "direct_to_carer", "money_management": "direct_payment",
            "contingency_plan": "Her son is called first",
            "coordinating_worker": {"name": "Sam Social", "role": role, "phone": "01632 960123"},
            "review_frequency_months": 6,
            "budget": {"amount": "600.00", "weekly_amount": "11.54", "support_level": "moderate",
                       "funded_by": "carers_personal_budget"},
            "first_review": "2031-09-03", "signed_off_at": "2031-03-03T09:00:00+00:00"}


def test_the_carers_letter_signs_the_worker_off_with_a_cased_role():
    susan = {"name": "Susan Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"]}
    body = letters.carer_support_plan_letter(CTX, susan, _carer_plan("Social worker"))["body"]
    assert "Your worker is Sam Social, social worker." in " ".join(body.split())
    assert "Social worker" not in body


def test_the_support_plan_letter_signs_the_worker_off_with_a_cased_role():
    from tests.test_letters_style import LETTERS

    plan_letter = LETTERS["support_plan"][0]
    body = plan_letter()["body"]
    flat = " ".join(body.split())
    import re

    worker = re.search(r"Your co-ordinating worker is ([^.]*)\.", flat).group(1)
    name, role = worker.split(", ", 1)
    assert role == role_title(role)  # already a cased title: unchanged


END = ("end_direct_payment", "Peter asks the council to arrange his care instead",
       "2032-09-13", "Council-arranged home care from Northtown Care")


def test_the_direct_payment_letter_quotes_the_reason_and_says_what_was_arranged_from_when():
    body = letters.direct_payment_letter(CTX, DEV, *END)["body"]
    flat = " ".join(body.split())
    assert "The reason your worker recorded: \u201cPeter asks the council to arrange his care instead.\u201d" in flat
    assert "What we have arranged from 13 September 2032: Council-arranged home care from Northtown Care." in flat
    assert "\n\nPeter asks the council" not in body  # never the note on its own, as if we wrote it to him
    assert problems(body, "direct_payment", "Mr Patel") == []


def test_a_reason_that_ends_with_a_full_stop_keeps_one():
    body = letters.direct_payment_letter(
        CTX, SIOBHAN, "nominated_person", "You asked for your son to manage the payments.  ", "2031-04-01",
        "Your son will open a bank account.", recipient={"name": "Cormac O'Brien-Ng", "relationship": "son"})["body"]
    flat = " ".join(body.split())
    assert "\u201cYou asked for your son to manage the payments.\u201d" in flat
    assert ".." not in flat
    assert "What we have arranged from 1 April 2031: Your son will open a bank account." in flat


# ---------------------------------------------------------------- the carer's review, through the real process
@pytest.fixture
def eng(db_url):
    from tests.casework_helpers import casework_engine
    from tests.test_carers import PROCESSES

    yield from casework_engine(db_url, PROCESSES)


def test_the_carer_is_written_to_after_her_review_with_the_date_of_the_next(eng):
    """The carer's review used to end without a word to the carer; now she is told what was found, her budget
    and the next review's date, which is the date the process's timer waits for."""
    from datetime import datetime, timezone

    from tests.test_carer_own_budget import peter_and_susan_eligible
    from tests.test_carers import carer_plan, timers_set
    from tests.test_letters_style import problems
    from tests.test_process_assessment_to_review import calls, complete

    cid = peter_and_susan_eligible(eng, "moderate")
    complete(eng, cid, "plan_carer_support", carer_plan(months=6))
    complete(eng, cid, "sign_off_carer_plan", {"signed_off": True}, actor="manager")
    eng.advance_clock(to=datetime(2031, 9, 3, 9, 0, tzinfo=timezone.utc))
    complete(eng, cid, "review_carer_plan", {"carer_views": "The sitter has made all the difference",
                                             "outcomes_achieved": "fully", "willing_and_able": "yes",
                                             "next_step": "continue", "reason": "Working well"})
    [written] = calls(eng, cid, "carer_review_letter")
    body = written["output"]["body"]
    flat = " ".join(body.split())
    assert "Dear Susan Clarke," in flat
    assert "Your plan carries on as it is." in flat
    assert "You told us you are willing and able to go on caring for Peter Clarke." in flat
    assert "The reason your worker recorded: \u201cWorking well.\u201d" in flat
    assert "Your personal budget as a carer stays at £600.00 a year." in flat
    assert "We will review your plan with you again by 3 March 2032." in flat
    assert ("wait_carer_review", "2032-03-03T09:00:00.000000+00:00") in timers_set(eng, cid)  # the same day
    assert problems(body, "carers_review_outcome", "Susan Clarke") == []
    assert [d["kind"] for d in eng.documents(cid)].count("carers_review_outcome") == 1


def test_a_carers_review_letter_refuses_what_it_cannot_explain():
    from tests.test_letters_style import CARER_PLAN

    with pytest.raises(ValueError, match="next_step must be one of"):
        letters.carer_review_letter(CTX, SIOBHAN, CARER_PLAN, "fully", "yes", "stop", "x")
    with pytest.raises(ValueError, match="reason: the letter gives the reasons"):
        letters.carer_review_letter(CTX, SIOBHAN, CARER_PLAN, "fully", "yes", "end", "  ")
    with pytest.raises(ValueError):  # a plan that continues needs its next review's date
        letters.carer_review_letter(CTX, SIOBHAN, CARER_PLAN, "fully", "yes", "continue", "Fine", None)
