"""`make run`'s demo database: the operating model deployed, a user per role and cases at each stage."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from api.auth import ROLES
from api.demo_users import demo_username
from engine.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent


def test_the_demo_database_has_cases_at_each_stage_in_the_right_queues(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    heads = tmp_path / "heads"
    out = subprocess.run([sys.executable, "-m", "api.demo", "--db", url, "--heads", str(heads)], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.count("demo case CASE-") == 7
    eng = Engine(url)
    try:
        # the demo's hint signs in (it once printed `demo-front_door_advisor`, which is not the password)
        hint = re.search(r"demo users: one per role, e\.g\. (\S+) / (\S+) ", out.stdout)
        from api.auth import AuthSettings, AuthStore

        user, _token = AuthStore(eng, AuthSettings()).sign_in(hint[1], hint[2], "127.0.0.1")
        assert user.username == hint[1] == "front-door-advisor"
        queues = {(t["title"], t["element_id"], t["team"]) for t in eng.list_tasks(limit=1000)}
        assert ("Joan Barker", "plan_reablement", "reablement") in queues
        assert ("Peter Clarke", "assess_needs", "social_work") in queues
        assert ("Margaret Ellis", "approve_budget", "team_manager") in queues
        # every person found eligible has a financial assessment in the finance officer's queue
        assert ("Margaret Ellis", "assess_finances", "finance") in queues
        assert any(title == "New contact (not yet recorded)" and element == "record_contact"
                   for title, element, _ in queues)
        harriet = [c for c in (eng.get_case(i) for i in range(1, 8)) if c["title"] == "Harriet Jones"][0]
        assert [i["process_id"] for i in harriet["instances"] if i["status"] != "completed"] == [
            "financial_assessment", "review"]
        assert any(d["kind"] for d in eng.documents(harriet["id"]))  # letters filed on the case
        # a person referred straight to social work has their details on the case record, the same as in the
        # letters (Peter, CASE-000005, had none while his letters carried his address), under `person` as the
        # front door keeps them (findings 15 item 4: at the top level, the record page and the subject access
        # export said they were not recorded)
        peter = [c for c in (eng.get_case(i) for i in range(1, 8)) if c["title"] == "Peter Clarke"][0]
        assert peter["reference"] == "CASE-000005"
        assert peter["data"] == {"person": {"name": "Peter Clarke", "address": ["12 Mill Lane", "Northtown",
                                                                                "NS2 4BB"], "area": "north"}}
        for case in (eng.get_case(i) for i in range(1, 8)):
            assert "name" not in case["data"] and "address" not in case["data"], case["title"]
            for d in eng.documents(case["id"]):
                address = (case["data"].get("person") or {}).get("address")
                assert address, (case["title"], "letters but no details on the record")
                lines = address if isinstance(address, list) else [part.strip() for part in address.split(",")]
                assert all(line in d["body"] for line in lines), (case["title"], d["title"])
        for case_id in range(1, 8):
            assert eng.verify(case_id)[1] == []
        # the demo's history is signed outside the database, so an auditor's check compares with it
        from engine.integrity import check_case

        anchored = check_case(eng, 1, actor="auditor", heads_dir=heads / "signed",
                              public_key=heads / "keys" / "heads.key.pub")
        assert anchored["passed"] and anchored["anchor"]["status"] == "anchored", anchored["anchor"]
        assert eng.clock_mode() == "simulated"  # so a newcomer can move time on
        # a demo team manager can give out the social work team's work (trial d: `team-manager`, in the
        # team_manager team only, could assign nobody's task but its own team's approvals)
        from api import tasks as task_api

        [assess] = [t for t in eng.list_tasks(limit=1000) if t["element_id"] == "assess_needs"]
        manager, _token = AuthStore(eng, AuthSettings()).sign_in("social-work-manager",
                                                                 "demo-team_manager-password", "127.0.0.1")
        done = task_api.assign(assess["id"], task_api.Target(to="social-worker"), manager, eng)
        assert done["assignee"] == "social-worker"
    finally:
        eng.db.dispose()
    # moved on as the README says (seven weeks), Harriet's first review is in the social work queue, whatever the
    # weekday the demo was made on (six weeks after a Saturday sign-off the review is due on the Monday)
    period = re.search(r"carepath clock advance (\S+) --db sqlite:///var/demo.db",
                       (ROOT / "README.md").read_text(encoding="utf-8"))[1]
    assert period == "P7W"
    moved = subprocess.run([sys.executable, "-m", "engine.cli", "clock", "advance", period, "--db", url], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert moved.returncode == 0, moved.stderr
    eng = Engine(url)
    try:
        assert ("Harriet Jones", "review_plan", "social_work") in {
            (t["title"], t["element_id"], t["team"]) for t in eng.list_tasks(limit=1000)}
    finally:
        eng.db.dispose()
    again = subprocess.run([sys.executable, "-m", "api.demo", "--db", url, "--heads", str(heads)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "demo case" not in again.stdout  # a second run adds nothing
    assert {demo_username(r) for r in ROLES} <= set(_usernames(url))


def _usernames(url):
    from sqlalchemy import create_engine, text

    e = create_engine(url)
    with e.connect() as conn:
        names = [r[0] for r in conn.execute(text("SELECT username FROM users"))]
    e.dispose()
    return names


def test_every_team_a_diagram_gives_work_to_has_a_demo_worker_who_can_do_it():
    """A new user trying `make run` can reach every user task: the OT's equipment assessment (social work
    team) included. Fails if a team in a shipped diagram has no demo worker in it."""
    import re as _re

    from api.demo_users import DEMO_TEAMS, EXTRA_USERS

    teams_of_workers = {t for ts in DEMO_TEAMS.values() for t in ts}
    teams_of_workers |= {t for _role, ts in EXTRA_USERS.values() for t in (ts or [])}
    wanted = set()
    for path in sorted((ROOT / "processes").glob("*.bpmn")):
        for groups in _re.findall(r'candidateGroups="([^"]+)"', path.read_text()):
            wanted |= {g.strip() for g in groups.split(",")}
    assert wanted and wanted <= teams_of_workers, sorted(wanted - teams_of_workers)
    assert "social_work" in DEMO_TEAMS["occupational_therapist"]  # equipment and adaptations are OT work


def readme_period() -> str:
    return re.search(r"carepath clock advance (\S+) --db sqlite:///var/demo.db",
                     (ROOT / "README.md").read_text(encoding="utf-8"))[1]


@pytest.mark.parametrize("start", [
    "2026-12-05T10:00:00+00:00",  # a Saturday: six weeks on is a Saturday, the review is due on the Monday
    "2026-11-13T09:00:00+00:00",  # six weeks on is Christmas Day, a Friday: due Tuesday 29th after three bank holidays
    "2027-02-12T16:30:00+00:00",  # six weeks on is Good Friday 2027: due the Tuesday after Easter Monday
], ids=["saturday", "before_christmas", "before_easter"])
def test_the_readme_period_brings_harriets_first_review_due_whatever_day_the_demo_starts(tmp_path, start):
    """The README tells a newcomer to move the demo's clock on by one period: Harriet's review must be in the
    queue then, whatever day the demo was made (reviews fall due on working days), and not yet overdue."""
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    made = subprocess.run([sys.executable, "-m", "api.demo", "--db", url, "--heads", str(tmp_path / "heads"),
                           "--start", start], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stderr
    assert f"carepath clock advance {readme_period()} --db" in made.stdout  # what the demo itself says to run
    moved = subprocess.run([sys.executable, "-m", "engine.cli", "clock", "advance", readme_period(), "--db", url],
                           cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert moved.returncode == 0, moved.stderr
    eng = Engine(url)
    try:
        tasks = {(t["title"], t["element_id"], t["team"]) for t in eng.list_tasks(limit=1000)}
        assert ("Harriet Jones", "review_plan", "social_work") in tasks
        assert not any(title == "Harriet Jones" and element == "review_overdue" for title, element, _ in tasks)
    finally:
        eng.db.dispose()


def test_a_start_without_its_offset_is_refused(tmp_path):
    out = subprocess.run([sys.executable, "-m", "api.demo", "--db", f"sqlite:///{tmp_path / 'demo.db'}",
                          "--start", "2027-01-15T09:30"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "give the offset too" in out.stderr and not (tmp_path / "demo.db").exists()
