"""The integrity check of one case (engine/integrity.py) and its panel on the case record
(api/integrity.py, _integrity_panel.html): verify + replay, recorded in the system chain with who
asked; an attacker's edit in the database (trigger dropped) is reported with the event it names."""

from __future__ import annotations

import json
import re

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, text

from engine.cli import main as cli_main
from engine.errors import NotFoundError
from engine.history import ERASED_DATA, SYSTEM_CHAIN
from engine.integrity import CHECKED, check_case, last_check
from engine.replay import replay_case
from engine.schema import events
from tests.front_door_world import PASSWORD, build, username
from tests.test_history import _bypass_triggers


@pytest.fixture
def world(db_url):
    eng, app, people = build(db_url)
    yield eng, app, people
    eng.db.dispose()


def _checks(eng) -> list[dict]:
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(events).where(events.c.chain == SYSTEM_CHAIN, events.c.type == CHECKED)
                            .order_by(events.c.seq)).all()
    return [{"actor": r.actor, "at": r.at, "data": json.loads(r.data)} for r in rows]


def _tamper_data(eng, case_id: int, seq: int, old: str, new: str) -> None:
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, :old, :new) WHERE chain = :c AND seq = :s",
                     old=old, new=new, c=f"case:{case_id}", s=seq)


def test_an_untouched_case_passes_and_the_check_is_recorded_with_who_asked(world):
    eng, _app, p = world
    assert last_check(eng, p["edith"]) is None
    result = check_case(eng, p["edith"], actor="auditor")
    assert result["verified"] and result["replay_ok"] and result["first_bad_event"] is None
    assert result["verify_findings"] == [] and result["replay_divergence"] is None
    assert result["events_checked"] == len(eng.history(p["edith"]))
    assert result["checked_by"] == "auditor" and result["checked_at"] == eng.now().isoformat(timespec="microseconds")
    [recorded] = _checks(eng)
    assert recorded["actor"] == "auditor"
    assert recorded["data"]["case_id"] == p["edith"] and recorded["data"]["result"] == "passed"
    assert last_check(eng, p["edith"]) == result
    # the record of a check is itself in the hash chain, which still verifies; the case's own chain is untouched
    assert eng.verify()[1] == []
    assert all(e["type"] != CHECKED for e in eng.history(p["edith"]))


def test_last_check_is_the_newest_one_of_that_case_only(world):
    eng, _app, p = world
    check_case(eng, p["edith"], actor="auditor")
    check_case(eng, p["edward"], actor="team-manager")
    assert last_check(eng, p["edith"])["checked_by"] == "auditor"
    assert last_check(eng, p["edward"])["checked_by"] == "team-manager"
    check_case(eng, p["edith"], actor="process-owner")
    assert last_check(eng, p["edith"])["checked_by"] == "process-owner"
    assert last_check(eng, p["zoe"]) is None


def test_an_attackers_edit_is_reported_naming_the_event(world):
    eng, _app, p = world
    created = eng.history(p["edith"])[0]
    assert created["type"] == "case.created"
    _tamper_data(eng, p["edith"], created["seq"], "Mill Lane", "Mill Road")
    result = check_case(eng, p["edith"], actor="auditor")
    assert not result["verified"]
    assert result["first_bad_event"] == created["seq"] == result["verify_first_event"]
    assert any(f"event #{created['seq']}" in f and "edited" in f for f in result["verify_findings"])
    assert _checks(eng)[-1]["data"]["result"] == "failed"
    assert last_check(eng, p["edith"])["first_bad_event"] == created["seq"]


def test_data_too_damaged_to_read_is_a_finding_not_a_crash(world):
    eng, _app, p = world
    last = eng.history(p["edith"])[-1]
    _bypass_triggers(eng, "UPDATE events SET data = '{not json' WHERE chain = :c AND seq = :s",
                     c=f"case:{p['edith']}", s=last["seq"])
    result = check_case(eng, p["edith"], actor="auditor")
    assert not result["verified"] and not result["replay_ok"]
    assert result["first_bad_event"] == last["seq"]
    assert "could not be replayed" in result["replay_divergence"]


def test_a_case_whose_whole_history_was_deleted_fails(world):
    eng, _app, p = world
    _bypass_triggers(eng, "DELETE FROM events WHERE chain = :c", c=f"case:{p['edith']}")
    with eng.db.transaction() as conn:
        conn.execute(text("DELETE FROM chains WHERE chain = :c"), {"c": f"case:{p['edith']}"})
    result = check_case(eng, p["edith"], actor="auditor")
    assert not result["verified"] and result["events_checked"] == 0
    assert any("no history at all" in f for f in result["verify_findings"])
    assert _checks(eng)[-1]["data"]["result"] == "failed"


def test_checking_an_unknown_case_is_refused_and_records_nothing(world):
    eng, _app, _p = world
    with pytest.raises(NotFoundError):
        check_case(eng, 999999, actor="auditor")
    assert _checks(eng) == []


# ---------------------------------------------------------------------- the panel
def _client(app, role: str) -> tuple[TestClient, str]:
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    r = client.post("/sign-in", data={"form_token": token, "username": username(role), "password": PASSWORD})
    assert r.status_code == 303, r.text
    return client, client.cookies


def _csrf(client, case_id: int) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', client.get(f"/cases/{case_id}").text).group(1)


def _panel(html: str) -> str:
    return re.search(r'<section class="app-integrity".*?</section>', html, re.S).group(0)


def test_an_auditor_checks_a_case_from_its_record_and_sees_a_failure_plainly(world):
    eng, app, p = world
    client, _ = _client(app, "auditor")
    page = client.get(f"/cases/{p['edith']}")
    assert page.status_code == 200
    assert "has not been checked yet" in _panel(page.text)
    csrf = _csrf(client, p["edith"])
    r = client.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": csrf})
    assert r.status_code == 303 and r.headers["location"] == f"/cases/{p['edith']}#integrity"
    panel = _panel(client.get(f"/cases/{p['edith']}").text)
    assert "Passed" in panel and "Matches" in panel and "by auditor" in panel
    assert "govuk-error-summary" not in panel

    second = eng.history(p["edith"])[1]
    _tamper_data(eng, p["edith"], second["seq"], '"', '" ')  # any change at all
    client.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": csrf, "back": "replay"})
    panel = _panel(client.get(f"/cases/{p['edith']}").text)
    assert "govuk-error-summary" in panel and 'role="alert"' in panel
    assert f"has been altered at event #{second['seq']}" in panel
    assert f"case:{p['edith']} event #{second['seq']}" in panel and "Altered" in panel


@pytest.mark.parametrize("recompute", [False, True], ids=["edited", "edited-and-rehashed"])
def test_a_failed_check_edited_in_the_database_to_read_passed_is_not_believed(world, recompute):
    # the panel shows the last recorded check without running it: a tamperer who edited a case, saw the check
    # fail, then edited that check's record (a system event) to say "passed" had the panel show "Passed"
    from engine.history import canonical_json, event_hash

    eng, app, p = world
    second = eng.history(p["edith"])[1]
    _tamper_data(eng, p["edith"], second["seq"], '"', '" ')
    assert check_case(eng, p["edith"], actor="auditor")["passed"] is False
    with eng.db.engine.connect() as conn:
        row = conn.execute(select(events).where(events.c.chain == SYSTEM_CHAIN, events.c.type == CHECKED)
                           .order_by(events.c.seq.desc())).first()
    data = json.loads(row.data)
    data.update(passed=True, verified=True, replay_ok=True, first_bad_event=None, verify_first_event=None,
                verify_findings=[], replay_divergence=None, replay_divergence_event=None, result="passed",
                findings_count=0)
    forged = canonical_json(data)
    new_hash = event_hash(row.prev_hash, row.chain, row.seq, row.step, row.type, row.at, row.actor, row.instance_id,
                          forged) if recompute else row.hash
    with eng.db.transaction() as conn:  # the triggers are still off (_tamper_data above)
        conn.execute(text("UPDATE events SET data = :d, hash = :h WHERE id = :id"),
                     {"d": forged, "h": new_hash, "id": row.id})
    got = last_check(eng, p["edith"])
    assert got["passed"] is False and got["record_altered"] == row.seq
    client, _ = _client(app, "auditor")
    panel = _panel(client.get(f"/cases/{p['edith']}").text)
    assert "govuk-error-summary" in panel and ">Passed<" not in panel
    assert f"the record of this case's last check was altered after it was written (system event #{row.seq})" in panel
    assert "press Check now" in panel and ">Altered<" not in panel and "Not known" in panel
    # checking again tells the truth about the case
    assert check_case(eng, p["edith"], actor="auditor")["first_bad_event"] == second["seq"]


def test_the_check_needs_the_csrf_token_and_a_case_the_user_may_open(world):
    eng, app, p = world
    client, _ = _client(app, "auditor")
    assert client.post(f"/cases/{p['edith']}/integrity/check", data={}).status_code == 403
    assert client.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": "x"}).status_code == 403
    csrf = _csrf(client, p["edith"])
    r = client.post("/cases/999999/integrity/check", data={"csrf_token": csrf})
    assert r.status_code == 404 and "text/html" in r.headers["content-type"]
    finance, _ = _client(app, "finance_officer")  # a role that does not open case records
    fcsrf = re.search(r'name="csrf_token" value="([^"]+)"', finance.get("/").text or "")
    token = fcsrf.group(1) if fcsrf else "none"
    assert finance.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": token}).status_code == 403
    assert finance.get(f"/api/cases/{p['edith']}/integrity").status_code == 403
    anon = TestClient(app, follow_redirects=False)
    assert anon.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": csrf}).status_code == 303
    assert _checks(eng) == []
    with eng.db.engine.connect() as conn:  # nothing else was written either
        assert conn.execute(select(func.count()).select_from(events)
                            .where(events.c.type == CHECKED)).scalar() == 0


def test_the_last_check_as_json(world):
    eng, app, p = world
    client, _ = _client(app, "auditor")
    assert client.get(f"/api/cases/{p['edith']}/integrity").json() == {"case_id": p["edith"], "last_check": None}
    check_case(eng, p["edith"], actor="auditor")
    got = client.get(f"/api/cases/{p['edith']}/integrity").json()["last_check"]
    assert got["verified"] and got["replay_ok"] and got["checked_by"] == "auditor"
    assert client.get("/api/cases/999999/integrity").status_code == 404


def test_in_the_browser_an_auditor_sees_the_panel_turn_red_after_an_edit_in_the_database(world):
    from tests.browser import launch, live_server, run_axe, sign_in

    eng, app, p = world
    case_id = p["edith"]
    with live_server(app) as base, launch() as browser:
        context = browser.new_context(bypass_csp=True)  # for axe's inline script
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        sign_in(page, base, username("auditor"), PASSWORD, then=None)
        page.goto(f"{base}/cases/{case_id}")
        panel = page.locator("#integrity")
        assert "has not been checked yet" in panel.inner_text()
        page.focus("#integrity-check")  # by keyboard
        page.keyboard.press("Enter")
        page.wait_for_url(f"{base}/cases/{case_id}#integrity")
        assert "Passed" in panel.inner_text() and "by auditor" in panel.inner_text()
        run_axe(page, "case record, integrity passed")

        # an attacker drops the trigger and edits what the person said at the front door
        created = eng.history(case_id)[0]
        _tamper_data(eng, case_id, created["seq"], "Mill Lane", "Mill Road")
        page.focus("#integrity-check")
        with page.expect_navigation():
            page.keyboard.press("Enter")
        result = page.locator("#integrity-result")
        assert f"has been altered at event #{created['seq']}" in result.inner_text()
        assert "govuk-error-summary" in result.get_attribute("class")
        assert "Altered" in page.locator("#integrity-verify").inner_text()
        assert f"event #{created['seq']}" in page.locator("#integrity-verify").inner_text()
        run_axe(page, "case record, integrity failed")
        assert errors == []
        context.close()


def test_the_panel_says_whether_the_case_matches_the_newest_signed_heads_file(world, tmp_path, monkeypatch):
    """The anchor outside the database, in the browser's words: configured by the folder the schedule
    signs into and the public key (docs/auditing.md)."""
    from engine.anchoring import generate_keys, sign_heads_to_dir

    eng, app, p = world
    key, pub, _pem = generate_keys(tmp_path / "heads.key")
    folder = tmp_path / "heads"
    folder.mkdir()
    client, _ = _client(app, "auditor")
    csrf = _csrf(client, p["edith"])
    client.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": csrf})
    assert "Not checked: no heads files are configured" in _panel(client.get(f"/cases/{p['edith']}").text)

    monkeypatch.setenv("CAREPATH_HEADS_DIR", str(folder))
    monkeypatch.setenv("CAREPATH_HEADS_KEY", str(key))  # the public key is found beside it (.pub)
    signed = sign_heads_to_dir(eng, key, folder)
    client.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": csrf})
    panel = _panel(client.get(f"/cases/{p['edith']}").text)
    assert "Passed" in panel and f"Matches {signed.name}" in panel

    monkeypatch.setenv("CAREPATH_HEADS_PUBLIC_KEY", str(generate_keys(tmp_path / "other.key")[1]))
    client.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": csrf})
    panel = _panel(client.get(f"/cases/{p['edith']}").text)
    assert "The heads file cannot be trusted" in panel and "does not match its signature" in panel
    assert pub.is_file()


def _result_and_anchor(client, case_id: int) -> tuple[str, str]:
    panel = _panel(client.get(f"/cases/{case_id}").text)
    text_of = lambda id_: re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", re.search(  # noqa: E731
        rf'id="{id_}"[^>]*>(.*?)</(?:div|dd|p)>', panel, re.S).group(1))).strip()
    return text_of("integrity-result"), text_of("integrity-anchor")


def test_the_panel_says_what_it_compared_and_names_the_right_events(world, tmp_path, monkeypatch):
    """Findings 9 #7: (A) an edited event under a matching signed head — the signed-heads row says only
    the head was compared; (B) the newest event deleted — the headline names it, not the one before;
    (C) a wholesale rewrite — the headline says where it lies ("somewhere in events #1 to #N")."""
    from engine.anchoring import generate_keys, sign_heads_to_dir
    from tests.test_anchoring import _rewrite_chain

    eng, app, p = world
    key, _pub, _pem = generate_keys(tmp_path / "heads.key")
    folder = tmp_path / "heads"
    folder.mkdir()
    monkeypatch.setenv("CAREPATH_HEADS_DIR", str(folder))
    monkeypatch.setenv("CAREPATH_HEADS_KEY", str(key))
    signed = sign_heads_to_dir(eng, key, folder)
    client, _ = _client(app, "auditor")
    ids = [p["edith"], p["edward"], p["zoe"]]
    heads = {cid: eng.history(cid)[-1]["seq"] for cid in ids}
    # (C) edith: a wholesale rewrite from her first event, every hash and the head recomputed
    _rewrite_chain(eng, f"case:{p['edith']}", 1, "Mill Lane", "Mill Road")
    # (A) edward: his first event edited in place, its hash left as it was
    _sql_edit = "UPDATE events SET data = data || ' ' WHERE chain = :c AND seq = 1"
    with eng.db.transaction() as conn:
        conn.execute(text(_sql_edit), {"c": f"case:{p['edward']}"})
    # (B) zoe: her newest event deleted, nothing else touched
    with eng.db.transaction() as conn:
        conn.execute(text("DELETE FROM events WHERE chain = :c AND seq = :s"),
                     {"c": f"case:{p['zoe']}", "s": heads[p["zoe"]]})
    for cid in ids:
        client.post(f"/cases/{cid}/integrity/check", data={"csrf_token": _csrf(client, cid)})

    result, anchor = _result_and_anchor(client, p["edward"])
    assert "altered at event #1" in result
    assert anchor.startswith(f"Matches {signed.name}")
    assert "only the signed heads were compared" in anchor and "are the ones signed" not in anchor

    result, _anchor = _result_and_anchor(client, p["zoe"])
    assert f"altered at event #{heads[p['zoe']]}" in result, result

    result, anchor = _result_and_anchor(client, p["edith"])
    assert f"since its heads were signed, somewhere in events #1 to #{heads[p['edith']]}" in result, result
    assert anchor.startswith(f"Does not match {signed.name}")
    assert f"somewhere in events #1 to #{heads[p['edith']]}" in anchor


def _remove_data(eng, case_id: int, seq: int) -> None:
    """What the events_no_update trigger allows (the erasure marker and nothing else), done by hand, with no
    case.erased event recording it: no trigger needs dropping."""
    with eng.db.transaction() as conn:
        conn.execute(text("UPDATE events SET data = :mark WHERE chain = :c AND seq = :s"),
                     {"mark": ERASED_DATA, "c": f"case:{case_id}", "s": seq})


def test_an_event_whose_data_was_removed_is_named_plainly_by_the_replay_the_cli_and_the_panel(world, capsys):
    eng, app, p = world
    started = eng.history(p["edith"])[1]
    assert started["type"] == "instance.started"
    _remove_data(eng, p["edith"], started["seq"])
    plain = f"event #{started['seq']}'s data was removed, so the case cannot be re-run from there"
    report = replay_case(eng, p["edith"])
    assert not report.ok and report.divergence.seq == started["seq"] and report.divergence.message == plain
    # the command line: the same sentence, no traceback
    assert cli_main(["--db", eng.db.url, "replay", str(p["edith"])]) == 1
    out = capsys.readouterr()
    assert plain in out.out and "Traceback" not in out.out + out.err and "KeyError" not in out.out + out.err
    # the integrity panel
    result = check_case(eng, p["edith"], actor="auditor")
    assert not result["replay_ok"] and plain in result["replay_divergence"]
    assert result["replay_divergence_event"] == started["seq"]
    client, _ = _client(app, "auditor")
    client.post(f"/cases/{p['edith']}/integrity/check", data={"csrf_token": _csrf(client, p["edith"])})
    panel = _panel(client.get(f"/cases/{p['edith']}").text)
    assert f"event #{started['seq']}&#39;s data was removed, so the case cannot be re-run from there" in panel
    assert "KeyError" not in panel


def test_an_event_missing_what_the_engine_wrote_is_named_not_a_keyerror(world):
    eng, _app, p = world
    started = eng.history(p["edith"])[1]
    _bypass_triggers(eng, "UPDATE events SET data = '{}' WHERE chain = :c AND seq = :s",
                     c=f"case:{p['edith']}", s=started["seq"])
    report = replay_case(eng, p["edith"])
    assert report.divergence.seq == started["seq"]
    assert report.divergence.message == (f"event #{started['seq']}'s data is not what the engine wrote (it has no "
                                         "'process_version_id'), so the case cannot be re-run from there")
