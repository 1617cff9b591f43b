"""A database with the real front door diagrams, forms and handlers, one user per role and a few people
on cases: shared by the intake and administration tests (tests/test_api_intake.py, tests/test_pages_*.py)."""

from __future__ import annotations

from pathlib import Path

from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import ROLES, create_user
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from tests.conftest import START

ROOT = Path(__file__).resolve().parent.parent
FILES = [ROOT / "processes" / "front_door.bpmn", ROOT / "processes" / "screening.dmn",
         ROOT / "processes" / "reablement.bpmn", ROOT / "processes" / "hospital_follow_up.bpmn",
         ROOT / "processes" / "safeguarding.bpmn",
         ROOT / "tests" / "diagrams_stage1" / "needs_assessment_stub.bpmn"]
PASSWORD = "correct horse battery"
TEAMS = {"front_door_advisor": ["front_door"], "social_worker": ["social_work"],
         "occupational_therapist": ["reablement"], "reablement_coordinator": ["reablement"],
         "team_manager": ["team_manager"], "finance_officer": ["finance"]}
# valid NHS numbers (modulus 11 check digit)
EDITH_NHS = "9434765919"
OTHER_NHS = "4010232137"


def username(role: str) -> str:
    return role.replace("_", "-")


def build(url: str) -> tuple[Engine, object, dict[str, int]]:
    library = FormLibrary.from_folder(ROOT / "forms")
    forms = FormLibrary({**{n: library.schema(n) for n in library.names()},
                         "needs_assessment_stub": {"type": "object"}})
    eng = Engine(url, registry=load_registry("handlers"), forms=forms)
    eng.init(simulated_start=START)
    eng.deploy(FILES)
    for role in ROLES:
        create_user(eng, username(role), PASSWORD, display_name=f"Test {role.replace('_', ' ')}", roles=[role],
                    teams=TEAMS.get(role, []))
    people = {
        # open: a front door process is running on the case
        "edith": eng.start("front_door", case_id=eng.create_case("Edith Clarke", {"person": {
            "name": "Edith Clarke", "date_of_birth": "1944-03-27", "nhs_number": EDITH_NHS,
            "postcode": "NB4 2QS", "age": 87, "area": "north", "address": "4 Mill Lane"}})).case_id,
        # closed: a case with no running process
        "edward": eng.create_case("Edward Clarkson", {"person": {
            "name": "Edward Clarkson", "date_of_birth": "1950-06-01", "postcode": "NB1 7AA"}}),
        "zoe": eng.create_case("Zoë O'Brien-Smith", {"person": {
            "name": "Zoë O'Brien-Smith", "date_of_birth": "1961-12-05", "nhs_number": OTHER_NHS,
            "postcode": "SB9 1ZZ"}}),
        # a look-alike: the same name, another date of birth
        "edith2": eng.create_case("Edith Clarke", {"person": {
            "name": "Edith Clarke", "date_of_birth": "1971-01-15", "postcode": "EB2 3CD"}}),
    }
    app = create_app(eng, run_timers=False)
    return eng, app, people


class Api:
    """A signed-in JSON client that sends its CSRF token on state-changing requests."""

    def __init__(self, app, user: str, password: str = PASSWORD) -> None:
        self.client = TestClient(app)
        r = self.client.post("/api/session", json={"username": user, "password": password})
        assert r.status_code == 200, r.text
        self.csrf = r.json()["csrf_token"]

    def get(self, url: str, **kw):
        return self.client.get(url, **kw)

    def send(self, method: str, url: str, body: dict | None = None):
        return self.client.request(method, url, json=body, headers={"X-CSRF-Token": self.csrf})

    def post(self, url: str, body: dict | None = None):
        return self.send("POST", url, body)


def as_role(app, role: str) -> Api:
    return Api(app, username(role))
