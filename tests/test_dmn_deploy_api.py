"""Process owners deploy a changed decision through the API they deploy with (a draft, reviewed and approved by
another owner): the decision gets a new version of its own, which the process's business rule task uses; a
refused decision stores nothing. SQLite and PostgreSQL."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from api.auth import create_user
from engine.schema import decision_versions, events
from tests.front_door_world import PASSWORD, Api, build

OLD = '"Safeguarding concern: the safeguarding team triages it at once"'
NEW = '"Safeguarding concern: the safeguarding team triages it within the hour"'


@pytest.fixture
def world(db_url):
    eng, app, _people = build(db_url)
    create_user(eng, "process-owner-2", PASSWORD, display_name="Second owner", roles=["process_owner"])
    yield eng, app
    eng.db.dispose()


def versions(eng) -> list[tuple[str, int]]:
    with eng.db.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(select(decision_versions.c.decision_id, decision_versions.c.version)
                                               .order_by(decision_versions.c.id))]


def live_files(api: Api) -> dict[str, str]:
    names = api.client.get("/api/processes/front_door/versions/1/files").json()["files"]
    return {n: api.client.get(f"/api/processes/front_door/versions/1/files/{n}").text for n in names}


def test_a_changed_decision_deployed_from_a_draft_is_a_new_decision_version(world):
    eng, app = world
    assert ("front_door_screening", 1) in versions(eng)  # deployed with the processes
    author, reviewer = Api(app, "process-owner"), Api(app, "process-owner-2")
    files = live_files(author)
    assert OLD in files["screening.dmn"]
    files["screening.dmn"] = files["screening.dmn"].replace(OLD, NEW)
    r = author.post("/api/processes/drafts", {"process_id": "front_door", "base_version": 1, "files": files})
    assert r.status_code == 201, r.text
    did = r.json()["id"]
    assert author.post(f"/api/processes/drafts/{did}/submit", {"note": "triage within the hour"}).status_code == 200
    r = reviewer.post(f"/api/processes/drafts/{did}/approve", {"note": "agreed"})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2
    assert versions(eng).count(("front_door_screening", 2)) == 1
    with eng.db.engine.connect() as conn:
        deployed = [json.loads(d) for d in conn.execute(select(events.c.data).where(
            events.c.type == "definitions.deployed").order_by(events.c.seq)).scalars()]
    assert [d["decision_id"] for d in deployed[-1]["decisions"]] == ["front_door_screening"]


def test_a_draft_with_overlapping_unique_rules_is_refused_and_stores_nothing(world):
    eng, app = world
    author = Api(app, "process-owner")
    files = live_files(author)
    # the safeguarding rule (crisis False, concern True) made to match the urgent one's inputs as well
    files["screening.dmn"] = files["screening.dmn"].replace(
        '<inputEntry id="rule_safeguarding_crisis"><text>False</text></inputEntry>',
        '<inputEntry id="rule_safeguarding_crisis"><text>-</text></inputEntry>')
    before = versions(eng)
    r = author.post("/api/processes/drafts", {"process_id": "front_door", "base_version": 1, "files": files})
    if r.status_code == 201:  # a draft may hold problems; submitting it may not
        r = author.post(f"/api/processes/drafts/{r.json()['id']}/submit", {"note": "x"})
    assert r.status_code == 422, r.text
    assert "rules 1 (rule_urgent_and_safeguarding) and 3 (rule_safeguarding) overlap" in r.text
    assert "dmninput" not in r.text
    assert versions(eng) == before


def _page_client(app, user: str):
    from fastapi.testclient import TestClient

    c = TestClient(app, follow_redirects=False)
    r = c.post("/api/session", json={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return c, r.json()["csrf_token"]


def test_a_dmn_file_uploaded_on_its_own_becomes_a_draft_of_the_process_using_it(world):
    # before: "upload a decision table (.dmn) from the page of the process that uses it"
    eng, app = world
    files = live_files(Api(app, "process-owner"))
    c, csrf = _page_client(app, "process-owner")
    changed = files["screening.dmn"].replace(OLD, NEW).encode()
    r = c.post("/processes/upload", data={"csrf_token": csrf, "note": "triage within the hour"},
               files={"file": ("screening.dmn", changed, "application/xml")})
    assert r.status_code == 303, r.text[:500]
    did = int(r.headers["location"].split("/")[3].split("?")[0])
    draft = c.get(f"/api/processes/drafts/{did}").json()
    assert draft["process_id"] == "front_door" and draft["files"]["screening.dmn"] == changed.decode()


def test_a_dmn_file_no_process_uses_is_refused_on_the_page_naming_its_decisions(world):
    import html

    eng, app = world
    c, csrf = _page_client(app, "process-owner")
    dmn = (Path(__file__).parent / "fixtures" / "dmn" / "two_decisions.dmn").read_bytes()
    r = c.post("/processes/upload", data={"csrf_token": csrf},
               files={"file": ("two_decisions.dmn", dmn, "application/xml")})
    assert r.status_code == 409, r.text[:300]
    text = html.unescape(r.text)
    assert 'class="govuk-error-summary"' in r.text
    assert "No deployed process uses the decisions of two_decisions.dmn ('band', 'route')" in text
    assert versions(eng).count(("band", 1)) == 0
