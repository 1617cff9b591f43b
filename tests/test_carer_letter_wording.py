"""The carer's support plan letter read as the carer receiving it (issue 11, tried in the demo, December 2026).

With the council arranging the support it said "We will pay it for the support ourselves: we arrange and pay for
the support in this plan for you." (a sentence built from two halves that do not fit). It now says "We will use it
to arrange and pay for the support in this plan for you." And it says plainly that the carer pays nothing:
carepath never charges carers (docs/charging.md, "Carers are never charged"), so the budget paragraph is
followed by "You do not pay anything towards your support as a carer." A plan with no money says neither.
"""

from __future__ import annotations

import pytest

from handlers import letters
from tests.test_letters_style import CTX, DEV, problems

PLAN = {
    "cared_for": "Peter Clarke", "support_type": "involving_cared_for",
    "outcomes": [{"label": "Keep my job", "how_met": "A sitting service one evening a week"}],
    "budget": {"funded_by": "carers_personal_budget", "amount": "600.00", "weekly_amount": "11.54"},
    "contingency_plan": "Her brother John will stay with Peter.",
    "coordinating_worker": {"name": "Sam Social", "role": "social worker"},
    "first_review": "2027-12-03", "review_frequency_months": 12}


def _flat(mode: str, **budget) -> str:
    plan = {**PLAN, "money_management": mode, "budget": {**PLAN["budget"], **budget}}
    return " ".join(letters.carer_support_plan_letter(CTX, DEV, plan)["body"].split())


@pytest.mark.parametrize("mode, said", [
    ("council_managed", "We will use it to arrange and pay for the support in this plan for you."),
    ("direct_payment", "We will pay it to you as a direct payment, so that you can arrange and pay for the "
                       "support yourself."),
    ("managed_account", "We will pay it to a provider you chose, as a managed account."),
])
def test_how_the_money_is_used_is_one_plain_sentence_and_the_carer_pays_nothing(mode, said):
    text = _flat(mode)
    assert said in text
    assert "for the support ourselves" not in text
    assert "You do not pay anything towards your support as a carer." in text
    assert problems(letters.carer_support_plan_letter(CTX, DEV, {**PLAN, "money_management": mode})["body"],
                    "carers_support_plan", "Mr Patel") == []


def test_a_plan_without_money_says_neither():
    text = _flat("council_managed", amount="0.00", weekly_amount="0.00")
    assert "There is no money in this plan." in text
    assert "We will use it" not in text and "You do not pay anything" not in text
