"""Demo cases for the demo database only: people at different stages of the journey.

Each case is driven through the real diagrams, handlers and forms exactly as caseworkers
would (every completion is validated and recorded in the case's history), so the demo inbox,
case records and letters are what a council would see. The people are fictional.

Never run this against a real council's database (docs/security.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.runtime import Engine
from handlers.eligibility import ADULT_OUTCOMES

ADVISOR, COORDINATOR, SOCIAL_WORKER, MANAGER = (
    "front-door-advisor", "reablement-coordinator", "social-worker", "team-manager")

def _contact(name: str, age: int, address: str, reason: str, **extra: Any) -> dict[str, Any]:
    data = {
        "caller": {"name": "Dr Amy Shah", "relationship": "gp_or_social_prescriber", "organisation": "Riverside GP"},
        "reason": reason,
        "person": {"name": name, "age": age, "address": address, "area": "north", "lives_alone": True},
        "needs": [], "outcomes_unable": [], "safeguarding_concern": False, "crisis": False,
        "consents_to_referral": True, "from_hospital": False,
    }
    data.update(extra)
    return data


def _assessment(name: str, *unable: str) -> dict[str, Any]:
    outcomes = {code: ({"unable": True, "ways": ["needs_assistance_incl_prompting"],
                        "reason": f"{name} needs help and prompting with this"}
                       if code in unable else {"unable": False, "ways": [], "reason": ""})
                for code in ADULT_OUTCOMES}
    return {"needs_from_impairment": True, "outcomes": outcomes, "carer_present": False,
            "wellbeing_impact": {"significant": True, "reason": f"{name} is anxious and mostly housebound",
                                 "areas": ["health_and_emotional_wellbeing", "control_over_day_to_day_life"]}}


def _ras(**levels: str) -> dict[str, Any]:
    domains = ("personal_care", "nutrition", "safety_and_supervision", "mobility_at_home", "home_environment",
               "relationships", "work_learning_volunteering", "community_access", "parenting")
    return {"needs": {d: {"level": levels.get(d, "none"), "met_by_carer": False} for d in domains}}


def _plan(worker: str) -> dict[str, Any]:
    return {"outcomes": [{"label": "Get washed and dressed every morning",
                          "how_met": "A home care visit of 45 minutes each morning", "provider": "Northtown Care",
                          "unit": "visit", "unit_cost": 18.5, "units_per_week": 7,
                          "delivery": "council_commissioned", "service_component": "home_support"}],
            "money_management": "council_managed", "may_change_without_contacting": ["The time of the visit"],
            "coordinating_worker": {"name": worker, "role": "social worker", "phone": "01632 960123"},
            "review_frequency_months": 12}


class _Driver:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def task(self, case_id: int, element_id: str) -> dict[str, Any]:
        found = [t for t in self.engine.list_tasks(case_id=case_id) if t["element_id"] == element_id]
        if len(found) != 1:
            open_ = [t["element_id"] for t in self.engine.list_tasks(case_id=case_id)]
            raise RuntimeError(f"demo case {case_id}: expected one open '{element_id}' task, found {open_}")
        return found[0]

    def complete(self, case_id: int, element_id: str, data: dict[str, Any], actor: str) -> None:
        task = self.task(case_id, element_id)
        self.engine.claim(task["id"], actor)
        self.engine.complete_task(task["id"], data, actor=actor)

    def front_door(self, form: dict[str, Any]) -> int:
        res = self.engine.start("front_door", actor=ADVISOR, title=form["person"]["name"])
        self.complete(res.case_id, "record_contact", form, ADVISOR)
        return res.case_id

    def referred(self, person: dict[str, Any]) -> int:
        """A needs assessment for someone referred straight to social work (not through the front door): the
        case record keeps their details under `person`, as the front door's case output does, so the record,
        the search, the subject access export and the letters agree."""
        case_id = self.engine.create_case(person["name"], {"person": dict(person)}, actor=SOCIAL_WORKER)
        self.engine.start("needs_assessment", case_id=case_id, actor=SOCIAL_WORKER, data={"person": dict(person)})
        return case_id

    def assessed(self, name: str, address: str, *unable: str) -> int:
        case_id = self.referred({"name": name, "address": [part.strip() for part in address.split(",")],
                                 "area": "north"})
        self.complete(case_id, "assess_needs", _assessment(name, *unable), SOCIAL_WORKER)
        return case_id


def _waiting_for_contact(d: _Driver) -> int:
    res = d.engine.start("front_door", actor=ADVISOR, title="New contact (not yet recorded)")
    return res.case_id


def _awaiting_reablement_plan(d: _Driver) -> int:
    return d.front_door(_contact("Joan Barker", 78, "4 Mill Lane, Northby", "Falls at home since her husband died",
                                 outcomes_unable=["personal_hygiene", "being_appropriately_clothed",
                                                  "using_the_home_safely"]))


def _in_reablement(d: _Driver) -> int:
    cid = d.front_door(_contact("Arthur Penn", 82, "7 Church Street, Northby", "Home from hospital after a fall",
                                outcomes_unable=["personal_hygiene", "being_appropriately_clothed",
                                                 "using_the_home_safely"]))
    d.complete(cid, "plan_reablement", {"goals": ["Wash and dress without help", "Make a hot meal"],
                                        "setting": "home", "start_type": "planned", "visits_per_day": 2}, COORDINATOR)
    return cid


def _signposted(d: _Driver) -> int:
    return d.front_door(_contact("Kyle Morgan", 34, "Flat 2, 9 Station Road, Northby",
                                 "Anxiety and insomnia, finding it hard to get out",
                                 needs=["mental_wellbeing", "transport", "physical_activity"]))


def _awaiting_assessment(d: _Driver) -> int:
    return d.referred({"name": "Peter Clarke", "address": ["12 Mill Lane", "Northtown", "NS2 4BB"], "area": "north"})


def _budget_awaiting_approval(d: _Driver) -> int:
    cid = d.assessed("Margaret Ellis", "3 Quay Road, Southport Bay", "personal_hygiene", "managing_nutrition",
                     "using_home_safely")
    d.complete(cid, "score_needs", _ras(personal_care="very_high", safety_and_supervision="high"), SOCIAL_WORKER)
    return cid


def _plan_signed_off(d: _Driver) -> int:
    cid = d.assessed("Harriet Jones", "22 Elm Road, Northby", "personal_hygiene", "managing_nutrition",
                     "using_home_safely")
    d.complete(cid, "score_needs", _ras(personal_care="moderate", nutrition="low"), SOCIAL_WORKER)
    d.complete(cid, "write_plan", _plan("Demo social worker"), SOCIAL_WORKER)
    d.complete(cid, "sign_off_plan", {"signed_off": True}, MANAGER)
    return cid


STAGES: list[tuple[str, Callable[[_Driver], int]]] = [
    ("a contact waiting to be recorded (Front Door queue)", _waiting_for_contact),
    ("Kyle Morgan: signposted, call-back in 14 days", _signposted),
    ("Joan Barker: reablement to plan (Reablement queue)", _awaiting_reablement_plan),
    ("Arthur Penn: in reablement, 6-week limit running", _in_reablement),
    ("Peter Clarke: needs assessment to do (Social Work queue)", _awaiting_assessment),
    ("Margaret Ellis: budget above the threshold, awaiting a manager", _budget_awaiting_approval),
    ("Harriet Jones: plan signed off, first review in 6 weeks", _plan_signed_off),
]


def create_demo_cases(engine: Engine) -> list[tuple[str, str]]:
    """Add the demo cases once (a second run adds nothing); returns (case reference, stage) pairs."""
    if _has_demo_cases(engine):
        return []
    d = _Driver(engine)
    made = []
    for label, build in STAGES:
        cid = build(d)
        made.append((engine.get_case(cid)["reference"], label))
    return made


def _has_demo_cases(engine: Engine) -> bool:
    from sqlalchemy import func, select

    from engine.schema import cases

    with engine.db.engine.connect() as conn:
        return bool(conn.execute(select(func.count()).select_from(cases)).scalar())
