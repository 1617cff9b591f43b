"""Retention and erasure (issue 15, item 2): engine/erasure.py, handlers/retention.py, history.verify on erased
chains, migration 0021's triggers — on SQLite and PostgreSQL, the real diagrams and handlers, simulated clock."""

from __future__ import annotations

import json
import os
import subprocess
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import insert, select, text

from engine import anchoring, erasure, history
from engine.errors import NotFoundError, StateError, ValidationError
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.replay import replay_case
from engine.runtime import Engine
from engine.schema import break_glass, break_glass_reviews, case_notes, cases, events, people
from handlers import retention
from tests.test_process_assessment_to_review import assessment, complete

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)
NAME, NHS, POSTCODE = "Zebedee Quillfeather", "9434765919", "NS9 7QZ"
NOTE = "Visited Zebedee at home; daughter worried about falls"


def _rules(tmp_path, *rules):
    path = tmp_path / "retention.json"
    path.write_text(json.dumps({"rules": list(rules)}), encoding="utf-8")
    return path


EIGHT = {"id": "asc", "name": "Adult social care case records", "applies_to": "*", "years_after_closure": 8}


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init(simulated_start=START)
    engine.deploy([ROOT / "processes" / f"{p}.bpmn" for p in (
        "needs_assessment", "carers_assessment", "personal_budget", "financial_assessment", "support_plan")])
    yield engine
    engine.db.dispose()


def _closed_case(eng, name=NAME):
    person = {"name": name, "nhs_number": NHS, "postcode": POSTCODE, "date_of_birth": "1941-05-17",
              "address": ["7 Quill Row", "Northtown", POSTCODE]}
    cid = eng.start("needs_assessment", data={"name": name, "person": person,
                                              "contact_date": "2031-03-03"}).case_id
    complete(eng, cid, "assess_needs", assessment("personal_hygiene", "managing_nutrition"))
    with eng.db.transaction() as conn:
        conn.execute(insert(case_notes).values(case_id=cid, author="sw_jane", at=eng.now(conn), kind="visit",
                                               text=NOTE))
        # a break-glass use whose reason and review name the person (api/break_glass.py)
        now = eng.now(conn)
        grant = conn.execute(insert(break_glass).values(
            case_id=cid, username="sw_ola", reason=f"Police at the door asking about {name}", at=now,
            expires_at=now + timedelta(hours=4))).inserted_primary_key[0]
        conn.execute(insert(break_glass_reviews).values(grant_id=grant, reviewer="admin_ann", at=now,
                                                        note=f"Checked with the police: {name} was safe"))
    eng.close_case(cid, reason="moved_away", details={"note": f"{name} moved to another council"}, actor="sw_jane")
    return cid


def _dump(eng) -> bytes:
    """Everything the database stores, as bytes: the SQLite file and its log, or pg_dump of the test's schema."""
    url = eng.db.url
    if url.startswith("sqlite"):
        eng.db.dispose()
        path = Path(url.split("///", 1)[1])
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal")) if p.exists())
    parts = urlsplit(url.replace("+psycopg", ""))
    options = parse_qs(parts.query)["options"][0].split()  # -csearch_path=SCHEMA and other session settings
    schema = next(o for o in options if o.startswith("-csearch_path=")).split("=", 1)[1]
    base = parts._replace(query="").geturl()
    return subprocess.run(["pg_dump", "--no-owner", "-n", schema, base], check=True, capture_output=True,
                          env={**os.environ}).stdout


def test_erasure_destroys_the_persons_data_and_every_chain_still_verifies(eng, tmp_path, capsys):
    rules = _rules(tmp_path, EIGHT)
    cid = _closed_case(eng)
    other = eng.create_case("Another person", {"person": {"name": "Keeps Data"}}, actor="sw_jane")
    assert NAME.encode() in _dump(eng) and NHS.encode() in _dump(eng)
    eng.advance_clock(to=START + timedelta(days=8 * 366))
    assert retention.list_due(eng, path=rules) == [cid]
    out = retention.erase(eng, cid, actor="dpo_dee", path=rules)
    assert out["events_erased"] > 5 and out["rule"] == "asc"

    dump = _dump(eng)
    for secret in (NAME, NHS, "Quillfeather", "Quill Row", "daughter worried", "1941-05-17", "Police at the door",
                   "Checked with the police"):
        assert secret.encode() not in dump, f"{secret!r} is still in the database"
    checked, findings = eng.verify()
    assert findings == [] and checked > 10
    case = eng.get_case(cid)
    assert case["title"] == erasure.ERASED_TITLE and erasure.erased(case["data"])["rule"] == "asc"
    assert "person" not in case["data"]
    recorded = eng.history(cid)
    assert recorded[-1]["type"] == "case.erased" and recorded[-1]["data"]["approved_by"] == "dpo_dee"
    assert all(e["data"] == {"_erased": True} for e in recorded[:-1])
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(case_notes.c.text).where(case_notes.c.case_id == cid)).scalars().all() == [
            "[erased]"]
        assert conn.execute(select(people.c.case_id).where(people.c.case_id == cid)).first() is None
        # the break-glass use stays (who, when, until when), its free text does not
        assert conn.execute(select(break_glass.c.username, break_glass.c.reason).where(
            break_glass.c.case_id == cid)).all() == [("sw_ola", "[erased]")]
        assert conn.execute(select(break_glass_reviews.c.reviewer, break_glass_reviews.c.note)).all() == [
            ("admin_ann", "[erased]")]
    assert erasure.erased_chains(eng) == {f"case:{cid}": {**erasure.erased_chains(eng)[f"case:{cid}"],
                                                          "rule": "asc", "by": "dpo_dee"}}
    assert replay_case(eng, cid).ok  # nothing left to replay is not a divergence; it says why
    from engine.cli import main
    capsys.readouterr()
    assert main(["audit", "verify", "--db", eng.db.url]) == 0
    said = capsys.readouterr().out
    assert "every hash chain unbroken" in said
    assert f"chain case:{cid} verified; data erased on " in said and "under rule asc (approved by dpo_dee" in said
    assert "Keeps Data" in eng.get_case(other)["data"]["person"]["name"]  # only the due case
    with pytest.raises(StateError, match="erased"):
        retention.erase(eng, cid, actor="dpo_dee", path=rules)


def test_the_due_list_respects_the_period_to_the_day_on_the_engine_clock(eng, tmp_path):
    rules = _rules(tmp_path, EIGHT)
    cid = _closed_case(eng)
    closed = datetime.fromisoformat(json.loads(_case_data(eng, cid))["case_closed"]["at"])
    eight = closed.replace(year=closed.year + 8)
    eng.advance_clock(to=eight - timedelta(days=1))
    assert retention.list_due(eng, path=rules) == []
    with pytest.raises(NotFoundError):  # not on the list: cannot be erased
        retention.erase(eng, cid, actor="dpo_dee", path=rules)
    eng.advance_clock(to=eight)
    assert retention.list_due(eng, path=rules) == [cid]
    assert retention.list_due(eng, path=rules) == []  # listed once
    # the rules change to a longer period before approval: the erasure is refused on the day
    longer = _rules(tmp_path, {**EIGHT, "years_after_closure": 10})
    with pytest.raises(StateError, match="cannot be erased before"):
        retention.erase(eng, cid, actor="dpo_dee", path=longer)
    assert eng.verify(cid)[1] == [] and NAME in _case_data(eng, cid)


def test_a_longer_rule_for_a_process_wins_and_a_case_under_no_rule_is_kept(eng, tmp_path):
    cid = _closed_case(eng)
    eng.advance_clock(to=START + timedelta(days=9 * 366))
    both = _rules(tmp_path, EIGHT, {"id": "na", "name": "Needs assessments", "applies_to": ["needs_assessment"],
                                    "years_after_closure": 12})
    assert retention.list_due(eng, path=both) == []
    none = _rules(tmp_path, {**EIGHT, "applies_to": ["safeguarding"]})
    assert retention.list_due(eng, path=none) == []
    assert retention.list_due(eng, path=_rules(tmp_path, EIGHT)) == [cid]


def test_a_legal_hold_prevents_erasure_until_released(eng, tmp_path):
    rules = _rules(tmp_path, EIGHT)
    cid = _closed_case(eng)
    eng.advance_clock(to=START + timedelta(days=8 * 366))
    retention.list_due(eng, path=rules)
    for unreadable in ("\u200b\u200b", "Legal \u202edloh", "--"):  # the reason must read as typed
        with pytest.raises(ValidationError):
            retention.hold(eng, cid, actor="dpo_dee", reason=unreadable)
    assert retention.review(eng, cid)["status"] == "due"  # nothing held
    retention.hold(eng, cid, actor="dpo_dee", reason="Legal hold: claim against the council")
    with pytest.raises(StateError, match="held"):
        retention.erase(eng, cid, actor="dpo_dee", path=rules)
    assert NAME in _case_data(eng, cid)
    assert retention.list_due(eng, path=rules) == []  # a held case is not listed again
    retention.release(eng, cid, actor="dpo_dee")
    retention.erase(eng, cid, actor="dpo_dee", path=rules)
    assert NAME not in _case_data(eng, cid)


def _case_data(eng, cid):
    with eng.db.engine.connect() as conn:
        return conn.execute(select(cases.c.data).where(cases.c.id == cid)).scalar_one()


def _drop_triggers(eng):
    """What an attacker with the database's owner rights does first."""
    with eng.db.transaction() as conn:
        if eng.db.is_postgres:
            conn.execute(text("DROP TRIGGER events_append_only ON events"))
        else:
            conn.execute(text("DROP TRIGGER events_no_update"))


@pytest.mark.parametrize("edit", ["erased_actor", "erased_hash", "erasure_event", "unattested_marker"])
def test_verify_fails_when_an_erased_history_is_altered(eng, tmp_path, edit):
    rules = _rules(tmp_path, EIGHT)
    cid = _closed_case(eng)
    other = _closed_case(eng, "Otto Other")
    eng.advance_clock(to=START + timedelta(days=8 * 366))
    retention.list_due(eng, path=rules)
    retention.erase(eng, cid, actor="dpo_dee", path=rules)
    assert eng.verify()[1] == []
    chain = f"case:{cid}"
    if edit == "unattested_marker":  # the one change the triggers allow, used outside an erasure
        with eng.db.transaction() as conn:
            conn.execute(events.update().where(events.c.chain == f"case:{other}", events.c.seq == 2)
                         .values(data=history.ERASED_DATA))
    else:
        _drop_triggers(eng)
        with eng.db.transaction() as conn:
            if edit == "erased_actor":
                conn.execute(events.update().where(events.c.chain == chain, events.c.seq == 3)
                             .values(actor="someone_else"))
            elif edit == "erased_hash":
                h = conn.execute(select(events.c.hash).where(events.c.chain == chain, events.c.seq == 3)).scalar()
                conn.execute(events.update().where(events.c.chain == chain, events.c.seq == 3)
                             .values(hash=("0" if h[0] != "0" else "1") + h[1:]))
            else:
                conn.execute(events.update().where(events.c.chain == chain, events.c.type == "case.erased")
                             .values(data=json.dumps({"rule": "asc"})))
    findings = [str(f) for f in eng.verify()[1]]
    assert findings, "the alteration was not found"
    if edit == "unattested_marker":
        assert any("without a case.erased event" in f for f in findings)
    elif edit == "erasure_event":
        assert any("case.erased event was edited" in f for f in findings)
    else:
        assert any(f.startswith(f"{chain} event #") for f in findings)


def test_the_triggers_allow_the_erasure_marker_and_nothing_else(eng):
    cid = _closed_case(eng)
    chain = f"case:{cid}"
    for change in ({"data": '{"_erased":false}'}, {"data": history.ERASED_DATA, "actor": "x"},
                   {"type": "case.created"}):
        with pytest.raises(Exception, match="append-only"):
            with eng.db.transaction() as conn:
                conn.execute(events.update().where(events.c.chain == chain, events.c.seq == 1).values(**change))
    with pytest.raises(Exception, match="append-only"):
        with eng.db.transaction() as conn:
            conn.execute(events.delete().where(events.c.chain == chain))
    with pytest.raises(Exception, match="append-only"):
        with eng.db.transaction() as conn:
            conn.execute(case_notes.update().where(case_notes.c.case_id == cid).values(text="rewritten"))
    assert eng.verify()[1] == []


def test_an_open_case_or_an_altered_history_is_not_erased(eng):
    cid = eng.start("needs_assessment", data={"name": NAME, "person": {"name": NAME},
                                               "contact_date": "2031-03-03"}).case_id
    with pytest.raises(StateError, match="open"):
        erasure.erase_case(eng, cid, actor="dpo_dee", rule="asc")
    eng.close_case(cid, reason="moved_away", actor="sw_jane")
    _drop_triggers(eng)
    with eng.db.transaction() as conn:
        conn.execute(events.update().where(events.c.chain == f"case:{cid}", events.c.seq == 1)
                     .values(actor="forged"))
    with pytest.raises(StateError, match="does not verify"):
        erasure.erase_case(eng, cid, actor="dpo_dee", rule="asc")
    assert NAME in json.dumps(eng.history(cid))  # nothing erased


def test_a_database_from_before_the_feature_still_verifies_and_matches_its_signed_heads(db_url, tmp_path):
    """Events written at revision 0018 are stored and hashed exactly as before; 0021 changes no row."""
    from engine.db import Database
    from engine.migrate import upgrade

    db = Database(db_url)
    upgrade(db, "0018")
    eng = Engine(db, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    with eng.db.transaction() as conn:
        from engine.runtime import SCHEMA_VERSION
        from engine.schema import settings
        conn.execute(insert(settings), [{"key": "schema", "value": SCHEMA_VERSION},
                                        {"key": "clock_mode", "value": "simulated"},
                                        {"key": "clock_now", "value": history.iso(START)}])
    cid = eng.create_case("Before", {"person": {"name": NAME}}, actor="sw_jane")
    eng.close_case(cid, reason="moved_away", actor="sw_jane")
    private, public, _ = anchoring.generate_keys(tmp_path / "k", tmp_path / "k.pub")
    heads = tmp_path / "heads.json"
    anchoring.sign_heads(eng, private, heads)
    upgrade(db, "head")
    assert eng.verify()[1] == []
    doc = anchoring.read_heads_file(heads, anchoring.load_public_key(public))
    assert anchoring.verify_against(eng, doc) == []
    # and a case from before the feature is erased like any other
    erasure.erase_case(eng, cid, actor="dpo_dee", rule="asc")
    assert eng.verify()[1] == [] and anchoring.verify_against(eng, doc) == []
    # and the signer, which checks the history extends the previous file before signing, signs the erasure
    after = anchoring.sign_heads(eng, private, tmp_path / "after.json", previous=heads)
    assert {h["chain"]: h["seq"] for h in after["heads"]}[history.case_chain(cid)] == len(eng.history(cid))
    db.dispose()


@pytest.mark.parametrize("rules, message", [
    ({"rules": []}, "at least one rule"),
    ({"rules": [{"id": "a", "name": "A", "applies_to": "*", "years_after_closure": 0}]},
     'rule 1 (a): "years_after_closure" must be a whole number'),
    ({"rules": [{"id": "a", "name": "A", "applies_to": "*", "years_after_closure": "8"}]}, "not '8'"),
    ({"rules": [{"id": "a", "name": "A", "applies_to": "some", "years_after_closure": 8}]}, '"applies_to"'),
    ({"rules": [{"id": "a", "name": "A", "applies_to": "*", "years_after_closure": 8},
                {"id": "a", "name": "B", "applies_to": "*", "years_after_closure": 9}]}, "rule 2 (a): the id"),
])
def test_bad_retention_rules_are_refused_with_the_rule_and_field_named(tmp_path, rules, message):
    path = tmp_path / "retention.json"
    path.write_text(json.dumps(rules), encoding="utf-8")
    with pytest.raises(retention.RetentionConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        retention.load_rules(path)


def test_a_rules_file_that_cannot_be_read_or_is_not_json_is_named(tmp_path):
    path = tmp_path / "retention.json"
    with pytest.raises(retention.RetentionConfigError) as exc:
        retention.load_rules(path)
    assert str(exc.value) == f"the retention rules file {path} cannot be read: No such file or directory"
    path.write_text('{"rules": [', encoding="utf-8")
    with pytest.raises(retention.RetentionConfigError) as exc:
        retention.load_rules(path)
    assert str(exc.value).startswith(f"the retention rules file {path} is not JSON: Expecting value: line 1")


def test_the_shipped_rules_load():
    assert [r["id"] for r in retention.load_rules()] == ["adult_social_care"]


def test_the_worker_lists_what_is_due_every_day():
    reg = load_registry("handlers")
    assert ("retention-due", retention.list_due, retention.JOB_SECONDS) in reg.background_jobs
    assert retention.JOB_SECONDS == 24 * 3600
