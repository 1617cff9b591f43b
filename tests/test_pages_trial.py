"""Testing a draft from the review page (api/trial.py): the JSON API and the pages, who may use them,
restricted cases, the example case's own page — and in a real browser, axe-clean and by keyboard."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from api.access import restrict_case
from engine import definitions, drafts
from tests.browser import launch, live_server, run_axe, sign_in
from tests.front_door_world import PASSWORD, Api, build
from tests.test_trial import CALLED_BACK, KYLE

LIKELY_ELIGIBLE = dict(KYLE, needs=[], outcomes_unable=["personal_hygiene", "being_appropriately_clothed",
                                                         "using_the_home_safely"])
EXAMPLE = {"start_data": {}, "answers": {"record_contact": KYLE, "signposting_call_back": CALLED_BACK}}
OWNER, OTHER_OWNER = "process-owner", "process-owner-2"


def _front_door_case(eng, contact) -> int:
    res = eng.start("front_door", actor="front-door-advisor")
    eng.complete_task(res.ready_tasks[0]["id"], contact, actor="front-door-advisor")
    return res.case_id


def _live_files(eng) -> dict[str, bytes]:
    with eng.db.engine.connect() as conn:
        return drafts.version_files(conn, definitions.latest_version(conn, "front_door"))


@pytest.fixture
def world(db_url):
    """The real front door with two contacts recorded: Kyle signposted, Joan referred to reablement; a
    draft of the front door that never signposts, and one that is the live version with an example."""
    from api.auth import create_user

    eng, app, people = build(db_url)
    create_user(eng, OTHER_OWNER, PASSWORD, roles=["process_owner"])
    kyle = _front_door_case(eng, KYLE)
    joan = _front_door_case(eng, LIKELY_ELIGIBLE)
    files = _live_files(eng)
    main = next(n for n in files if n.endswith(".bpmn"))
    never = files[main].replace(b'screening_route == "signposting"', b'screening_route == "no longer used"')
    assert never != files[main]
    changed = drafts.create_draft(eng, process_id="front_door", files={**files, main: never}, base_version=None,
                                  actor=OWNER, note="signposting retired")
    same = drafts.create_draft(eng, process_id="front_door", files=files, base_version=None, actor=OWNER)
    same = drafts.save_draft(eng, same["id"], files=files, expected_revision=same["revision"], actor=OWNER,
                             example=EXAMPLE)
    ids = {"kyle": kyle, "joan": joan, "changed": changed["id"], "same": same["id"], "edith": people["edith"],
           "edward": people["edward"]}
    yield eng, app, ids
    eng.db.dispose()


def _signin(app, username: str) -> tuple[TestClient, str]:
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username, "password": PASSWORD})
    assert r.status_code == 303, r.text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/home").text).group(1)
    return client, csrf


# ---------------------------------------------------------------------- JSON API
def test_replaying_chosen_cases_says_which_take_the_same_path_and_where_others_part(world):
    eng, app, ids = world
    api = Api(app, OTHER_OWNER)
    r = api.post(f"/api/processes/drafts/{ids['changed']}/trial/replay", {"case_ids": [ids["kyle"], ids["joan"]]})
    assert r.status_code == 200, r.text
    kyle, joan = r.json()["results"]
    assert kyle["case_id"] == ids["kyle"] and kyle["outcome"] == "differs" and kyle["same_path"] is False
    assert kyle["message"] == ("the draft would have gone to 'Information and advice given' at 'Screening route?' "
                               "where the case went to 'Signposting'")
    assert joan["outcome"] == "same" and joan["same_path"] is True
    assert "Kyle" not in r.text  # a case's reference and path, never the person's details or answers


def test_without_chosen_cases_the_most_recent_are_replayed_leaving_out_restricted_ones(world):
    eng, app, ids = world
    restrict_case(eng, ids["joan"], ["social-worker"])
    api = Api(app, OWNER)
    r = api.post(f"/api/processes/drafts/{ids['same']}/trial/replay", {})
    assert r.status_code == 200, r.text
    results = r.json()["results"]
    assert [x["case_id"] for x in results] == [ids["kyle"], ids["edith"]]  # newest first; Joan's is restricted
    assert [x["outcome"] for x in results] == ["same", "same"]
    refused = api.post(f"/api/processes/drafts/{ids['same']}/trial/replay", {"case_ids": [ids["joan"]]})
    assert refused.status_code == 403 and "restricted" in refused.json()["message"]
    too_many = api.post(f"/api/processes/drafts/{ids['same']}/trial/replay", {"case_ids": list(range(1, 22))})
    assert too_many.status_code == 422 and "at most 20" in too_many.json()["message"]
    unknown = api.post(f"/api/processes/drafts/{ids['same']}/trial/replay", {"case_ids": [999]})
    assert unknown.status_code == 404 and unknown.json()["message"] == "no case 999"


def test_the_saved_example_runs_to_its_end_and_a_draft_without_one_is_told_so(world):
    eng, app, ids = world
    api = Api(app, "auditor")  # a trial changes nothing: every reader of the review page may run one
    r = api.post(f"/api/processes/drafts/{ids['same']}/trial/example")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["outcome"] == "completed" and body["main_file"] == "front_door.bpmn"
    assert [s["element_id"] for s in body["path"]][-3:] == ["wait_for_call_back", "signposting_call_back",
                                                            "end_signposted"]
    none = api.post(f"/api/processes/drafts/{ids['changed']}/trial/example")
    assert none.status_code == 422
    assert none.json()["message"].startswith(f"draft {ids['changed']} has no example case yet")
    tried = api.post(f"/api/processes/drafts/{ids['changed']}/trial/example",
                     {"example": {"answers": {"record_contact": KYLE}}})
    assert tried.status_code == 200 and tried.json()["outcome"] == "completed"  # never signposted: ends at once


def test_a_draft_that_does_not_deploy_is_refused_naming_its_problems(world):
    eng, app, ids = world
    files = _live_files(eng)
    broken = {**files, "front_door.bpmn": files["front_door.bpmn"].replace(
        b'camunda:topic="search_directory"', b'camunda:topic="no_such_handler"')}
    d = drafts.create_draft(eng, process_id="front_door", files=broken, base_version=None, actor=OWNER)
    r = Api(app, OWNER).post(f"/api/processes/drafts/{d['id']}/trial/replay", {"case_ids": [ids["kyle"]]})
    assert r.status_code == 422
    assert any("no_such_handler" in p["message"] for p in r.json()["problems"])


def test_who_may_test_a_draft(world):
    eng, app, ids = world
    url = f"/api/processes/drafts/{ids['same']}/trial/replay"
    for role, status in (("process-owner", 200), ("team-manager", 200), ("auditor", 200), ("social-worker", 403),
                         ("front-door-advisor", 403), ("administrator", 403)):
        assert Api(app, role).post(url, {"case_ids": [ids["kyle"]]}).status_code == status, role
    assert TestClient(app).post(url, json={}).status_code == 401
    no_csrf = Api(app, OWNER)
    assert no_csrf.client.post(url, json={}).status_code == 403
    for role, status in (("team-manager", 200), ("social-worker", 403)):
        client, _csrf = _signin(app, role)
        assert client.get(f"/processes/drafts/{ids['same']}/trial").status_code == status, role
    client, _csrf = _signin(app, "team-manager")  # reads, but does not change the example
    assert client.get(f"/processes/drafts/{ids['same']}/example").status_code == 403
    assert client.get("/processes/drafts/999/trial").status_code == 404


# ---------------------------------------------------------------------- pages
def test_the_trial_page_lists_recent_cases_and_reports_the_replay(world):
    eng, app, ids = world
    client, csrf = _signin(app, OTHER_OWNER)
    page = client.get(f"/processes/drafts/{ids['changed']}/trial")
    assert page.status_code == 200
    refs = {k: eng.get_case(ids[k])["reference"] for k in ("kyle", "joan", "edith")}
    assert page.text.index(refs["joan"]) < page.text.index(refs["kyle"]) < page.text.index(refs["edith"])
    assert "Kyle Morgan" not in page.text and "Edith Clarke" not in page.text  # references, not names
    empty = client.post(f"/processes/drafts/{ids['changed']}/trial", data={"csrf_token": csrf, "action": "replay"})
    assert empty.status_code == 400 and "Select at least one case to replay" in empty.text
    done = client.post(f"/processes/drafts/{ids['changed']}/trial", data={
        "csrf_token": csrf, "action": "replay", "case": [str(ids["kyle"]), str(ids["joan"])]})
    assert done.status_code == 200
    assert "Different path" in done.text and "Same path" in done.text
    assert ("The draft would have gone to &#39;Information and advice given&#39; at &#39;Screening route?&#39; "
            "where the case went to &#39;Signposting&#39;.") in done.text
    never = client.post(f"/processes/drafts/{ids['changed']}/trial", data={
        "csrf_token": csrf, "action": "replay", "case": [str(ids["edward"])]})  # a case with no front door
    assert never.status_code == 200
    assert "Cannot replay" in never.text and "The case never ran &#39;front_door&#39;." in never.text
    forged = client.post(f"/processes/drafts/{ids['changed']}/trial", data={"action": "replay",
                                                                           "case": [str(ids["kyle"])]})
    assert forged.status_code == 403


def test_the_example_page_saves_the_example_and_names_what_is_wrong(world):
    eng, app, ids = world
    client, csrf = _signin(app, OWNER)
    d = drafts.get_draft(eng, ids["changed"])
    form = client.get(f"/processes/drafts/{d['id']}/example")
    assert form.status_code == 200 and "record_contact" in form.text
    url = f"/processes/drafts/{d['id']}/example"
    bad_json = client.post(url, data={"csrf_token": csrf, "revision": d["revision"], "start_data": "{",
                                      "answers": "{}"})
    assert bad_json.status_code == 400
    assert "Start data is not valid JSON: Expecting property name enclosed in double quotes at line 1, column 2" \
        in bad_json.text
    unknown = client.post(url, data={"csrf_token": csrf, "revision": d["revision"], "start_data": "{}",
                                     "answers": '{"record_kontact": {}}'})
    assert unknown.status_code == 400
    assert "&#39;record_kontact&#39; is not a user task of this draft" in unknown.text
    assert drafts.get_draft(eng, d["id"])["example"] is None  # nothing saved on an error
    stale = client.post(url, data={"csrf_token": csrf, "revision": d["revision"] - 1, "start_data": "{}",
                                   "answers": '{"record_contact": {}}'})
    assert stale.status_code == 409
    saved = client.post(url, data={"csrf_token": csrf, "revision": d["revision"], "start_data": "{}",
                                   "answers": '{"record_contact": {"reason": "x"}}'})
    assert saved.status_code == 303 and saved.headers["location"] == f"/processes/drafts/{d['id']}/trial?saved=example"
    assert drafts.get_draft(eng, d["id"])["example"] == {"start_data": {},
                                                         "answers": {"record_contact": {"reason": "x"}}}
    ran = client.post(f"/processes/drafts/{d['id']}/trial", data={"csrf_token": csrf, "action": "example"})
    assert ran.status_code == 200
    assert "does not fit its form" in ran.text and "Stopped" in ran.text


# ---------------------------------------------------------------------- in a browser
def test_a_reviewer_replays_cases_and_runs_the_example_by_keyboard(world):
    eng, app, ids = world
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True)
        page = context.new_page()
        sign_in(page, base, OTHER_OWNER, PASSWORD, then=None)
        page.goto(f"{base}/processes/drafts/{ids['same']}/review")
        page.get_by_role("link", name="Test this draft").click()
        page.wait_for_url(f"{base}/processes/drafts/{ids['same']}/trial")
        run_axe(page, "test a draft")

        # choose two cases with the keyboard: Space on the first checkbox, Tab, Space, then Tab to the button
        page.focus("#case-0")
        page.keyboard.press("Space")
        page.keyboard.press("Tab")
        page.keyboard.press("Space")
        assert page.is_checked("#case-0") and page.is_checked("#case-1") and not page.is_checked("#case-2")
        for _ in range(5):  # on past the other cases to the button
            page.keyboard.press("Tab")
            if page.evaluate("() => document.activeElement.textContent.trim()") == "Replay the chosen cases":
                break
        assert page.evaluate("() => document.activeElement.textContent.trim()") == "Replay the chosen cases"
        with page.expect_navigation():
            page.keyboard.press("Enter")
        table = page.locator("#results + table")
        assert table.locator("tbody tr").count() == 2
        assert table.inner_text().count("Same path") == 2
        run_axe(page, "test a draft with replay results")

        page.get_by_role("button", name="Run the example case").focus()
        with page.expect_navigation():
            page.keyboard.press("Enter")
        assert page.locator("#example-result").inner_text() == "Ran to the end"
        path = page.locator("#example-path li").all_inner_texts()
        assert path[0].startswith("Contact received") and path[-1].startswith("Signposting checked")
        diagram = page.locator("#example-diagram")
        page.wait_for_function("() => document.querySelector('#example-diagram').dataset.rendered === 'true'")
        # every step of the path, on the drawing (14 since the copy-data steps keep_person and note_contact went)
        assert diagram.locator(".app-marker-done").count() == 14
        run_axe(page, "test a draft with the example's path")
        context.close()
