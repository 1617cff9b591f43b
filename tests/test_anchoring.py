"""Anchoring the history outside the database (engine/anchoring.py): a signed heads file, written on
demand (`carepath audit sign-heads`) and on a schedule, and `carepath audit verify --against` that finds
a history rewritten after the heads were signed — even a wholesale rewrite that verifies on its own."""

from __future__ import annotations

import json
import stat
import time
from datetime import timedelta

import pytest
from sqlalchemy import select, text

from carepath.cli import main
from engine import anchoring, history
from engine.errors import CarepathError
from engine.schema import chains
from engine.worker import background_scheduler, heads_settings, sign_heads_once
from tests.test_history import _bypass_triggers


@pytest.fixture
def keys(tmp_path):
    assert main(["audit", "keygen", "--out", str(tmp_path / "heads.key")]) == 0
    return tmp_path / "heads.key", tmp_path / "heads.key.pub"


def _case(make_engine):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks", data={"name": "Peter"})
    eng.complete_task(res.ready_tasks[0]["id"], {"reason": "memory loss"}, actor="advisor1")
    return eng, res.case_id


def _signed(eng, keys, tmp_path, name="heads.json"):
    out = tmp_path / name
    assert main(["audit", "sign-heads", "--db", eng.db.url, "--key", str(keys[0]), "--out", str(out)]) == 0
    return out


def _verify(eng, heads, keys) -> int:
    return main(["audit", "verify", "--db", eng.db.url, "--against", str(heads), "--public-key", str(keys[1])])


def _rewrite_chain(eng, chain: str, from_seq: int, old: str, new: str) -> None:
    """What someone with full database access could do: edit an event, then recompute every hash
    after it and move the head, so the chain verifies against itself."""
    with eng.db.engine.connect() as conn:
        rows = [dict(r._mapping) for r in conn.execute(text(
            "SELECT id, chain, seq, step, type, at, actor, instance_id, data, prev_hash FROM events "
            "WHERE chain = :c ORDER BY seq"), {"c": chain})]
    sql = []
    prev = None
    for r in rows:
        if r["seq"] < from_seq:
            prev = None
            continue
        if r["seq"] == from_seq:
            r["data"] = r["data"].replace(old, new)
            prev = r["prev_hash"]
        h = history.event_hash(prev, r["chain"], r["seq"], r["step"], r["type"], r["at"], r["actor"],
                               r["instance_id"], r["data"])
        sql.append((r["id"], r["data"], prev, h))
        prev = h
    with eng.db.transaction() as conn:
        if eng.db.is_postgres:
            conn.execute(text("ALTER TABLE events DISABLE TRIGGER events_append_only"))
        else:
            conn.execute(text("DROP TRIGGER events_no_update"))
            conn.execute(text("DROP TRIGGER events_no_delete"))
        for id_, data, p, h in sql:
            conn.execute(text("UPDATE events SET data = :d, prev_hash = :p, hash = :h WHERE id = :id"),
                         {"d": data, "p": p, "h": h, "id": id_})
        conn.execute(text("UPDATE chains SET hash = :h WHERE chain = :c"), {"h": prev, "c": chain})


def test_keygen_writes_a_private_key_only_its_owner_reads_and_never_overwrites(tmp_path, capsys):
    assert main(["audit", "keygen", "--out", str(tmp_path / "k")]) == 0
    out = capsys.readouterr().out
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600
    pub = (tmp_path / "k.pub").read_text()
    assert pub.startswith("-----BEGIN PUBLIC KEY-----") and pub.strip() in out
    assert "PRIVATE" not in out
    anchoring.load_private_key(tmp_path / "k")
    before = (tmp_path / "k").read_bytes()
    assert main(["audit", "keygen", "--out", str(tmp_path / "k")]) == 1
    assert "already exists" in capsys.readouterr().err
    assert (tmp_path / "k").read_bytes() == before


def test_signed_heads_hold_every_chain_and_an_untouched_history_verifies_against_them(make_engine, keys, tmp_path,
                                                                                       capsys):
    eng, case_id = _case(make_engine)
    heads = _signed(eng, keys, tmp_path)
    doc = json.loads(heads.read_text())
    with eng.db.engine.connect() as conn:
        stored = [{"chain": r.chain, "seq": r.seq, "hash": r.hash} for r in conn.execute(select(chains)
                                                                                         .order_by(chains.c.chain))]
    assert doc["heads"] == stored and {h["chain"] for h in stored} == {"system", f"case:{case_id}"}
    assert doc["signed_at"] == eng.now().isoformat(timespec="microseconds")  # the engine's (simulated) clock
    capsys.readouterr()
    assert _verify(eng, heads, keys) == 0
    assert "anchored: all 2 chains hold the heads signed at 2031-03-03" in capsys.readouterr().out
    # the history goes on after the signing: still fine
    eng.complete_task(eng.list_tasks(case_id=case_id)[0]["id"], {}, actor="advisor1")
    eng.start("three_tasks", data={"name": "Another"})
    assert _verify(eng, heads, keys) == 0
    # never overwritten
    assert main(["audit", "sign-heads", "--db", eng.db.url, "--key", str(keys[0]), "--out", str(heads)]) == 1
    assert json.loads(heads.read_text()) == doc


def test_a_wholesale_rewrite_verifies_on_its_own_but_not_against_the_signed_heads(make_engine, keys, tmp_path,
                                                                                 capsys):
    eng, case_id = _case(make_engine)
    heads = _signed(eng, keys, tmp_path)
    chain = f"case:{case_id}"
    last = eng.history(case_id)[-1]["seq"]
    _rewrite_chain(eng, chain, 4, "memory loss", "no concerns")
    assert eng.history(case_id)[3]["data"]["data"] == {"reason": "no concerns"}
    assert eng.verify()[1] == []  # the rewrite hides from a verify of the database alone
    capsys.readouterr()
    assert _verify(eng, heads, keys) == 1
    out = capsys.readouterr().out
    assert "ALTERED" in out and f"{chain} event #{last}: event #{last} is not the one signed at" in out


def test_a_chain_cut_short_with_its_head_moved_back_is_found(make_engine, keys, tmp_path, capsys):
    eng, case_id = _case(make_engine)
    heads = _signed(eng, keys, tmp_path)
    chain = f"case:{case_id}"
    rows = eng.history(case_id)
    _bypass_triggers(eng, "DELETE FROM events WHERE chain = :c AND seq = :s", c=chain, s=rows[-1]["seq"])
    with eng.db.transaction() as conn:
        conn.execute(text("UPDATE chains SET seq = :s, hash = :h WHERE chain = :c"),
                     {"s": rows[-2]["seq"], "h": rows[-2]["hash"], "c": chain})
    assert eng.verify()[1] == []
    capsys.readouterr()
    assert _verify(eng, heads, keys) == 1
    assert f"event #{rows[-1]['seq']}, the head signed at" in capsys.readouterr().out


def test_a_tampered_or_wrongly_signed_heads_file_is_a_clear_error(make_engine, keys, tmp_path, capsys):
    eng, _case_id = _case(make_engine)
    heads = _signed(eng, keys, tmp_path)
    doc = json.loads(heads.read_text())
    # someone "corrects" the signed head to match a rewritten history
    forged = dict(doc, heads=[dict(h, hash="a" * 64) for h in doc["heads"]])
    (tmp_path / "forged.json").write_text(json.dumps(forged))
    capsys.readouterr()
    assert _verify(eng, tmp_path / "forged.json", keys) == 1
    assert "does not match its signature" in capsys.readouterr().err
    # signed with another key
    assert main(["audit", "keygen", "--out", str(tmp_path / "other.key")]) == 0
    other = main(["audit", "sign-heads", "--db", eng.db.url, "--key", str(tmp_path / "other.key"),
                  "--out", str(tmp_path / "other.json")])
    assert other == 0
    capsys.readouterr()
    assert _verify(eng, tmp_path / "other.json", keys) == 1
    assert "signed with another key" in capsys.readouterr().err
    # not JSON, not a heads file, unsigned, a damaged signature, a missing file
    cases = {"garbage.json": "{not json", "list.json": "[]", "unsigned.json": json.dumps({**doc, "signature": ""}),
             "damaged.json": json.dumps({**doc, "signature": "***"})}
    for name, body in cases.items():
        (tmp_path / name).write_text(body)
    for name, says in [("garbage.json", "is not JSON"), ("list.json", "not a carepath heads file"),
                       ("unsigned.json", "is not signed"), ("damaged.json", "damaged signature"),
                       ("missing.json", "cannot read the heads file")]:
        assert _verify(eng, tmp_path / name, keys) == 1, name
        assert says in capsys.readouterr().err, name
    # a public key that is not one
    (tmp_path / "bad.pub").write_text("hello")
    assert main(["audit", "verify", "--db", eng.db.url, "--against", str(heads), "--public-key",
                 str(tmp_path / "bad.pub")]) == 1
    assert "is not a PEM public key" in capsys.readouterr().err
    # --against without the key is a usage error
    assert main(["audit", "verify", "--db", eng.db.url, "--against", str(heads)]) == 2
    assert "--public-key" in capsys.readouterr().err


def test_heads_are_signed_on_a_schedule_with_the_engines_clock(make_engine, keys, tmp_path):
    eng, case_id = _case(make_engine)
    folder = tmp_path / "heads"
    folder.mkdir()
    first = sign_heads_once(eng, str(keys[0]), str(folder))
    assert first.name == "heads-20310303T090000Z.json"
    assert sign_heads_once(eng, str(keys[0]), str(folder)) is None  # nothing moved: no new file
    eng.complete_task(eng.list_tasks(case_id=case_id)[0]["id"], {}, actor="advisor1")
    second = sign_heads_once(eng, str(keys[0]), str(folder))
    assert second.name == "heads-20310303T090000Z-2.json"  # same simulated time, a new file beside it
    for f in (first, second):
        anchoring.read_heads_file(f, anchoring.load_public_key(keys[1]))
    assert _verify(eng, second, keys) == 0

    # the same job in the scheduler `carepath serve` and `carepath worker` run
    env = {"CAREPATH_HEADS_KEY": str(keys[0]), "CAREPATH_HEADS_DIR": str(folder), "CAREPATH_HEADS_INTERVAL": "600"}
    eng.start("three_tasks", data={"name": "Later"})
    sched = background_scheduler(eng, interval=600, env=env)
    assert sched.get_job("carepath-heads").trigger.interval.total_seconds() == 600
    sched.start()
    try:
        deadline = time.monotonic() + 10
        while len(list(folder.glob("heads-*.json"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        sched.shutdown(wait=True)
    assert len(list(folder.glob("heads-*.json"))) == 3


def test_the_schedule_settings_are_checked_at_start(keys, tmp_path):
    assert heads_settings({}) is None
    good = {"CAREPATH_HEADS_KEY": str(keys[0]), "CAREPATH_HEADS_DIR": str(tmp_path)}
    assert heads_settings(good) == (str(keys[0]), str(tmp_path), 3600.0)
    for env, says in [({"CAREPATH_HEADS_KEY": str(keys[0])}, "set both"),
                      ({**good, "CAREPATH_HEADS_INTERVAL": "soon"}, "CAREPATH_HEADS_INTERVAL"),
                      ({**good, "CAREPATH_HEADS_INTERVAL": "0"}, "above 0"),
                      ({**good, "CAREPATH_HEADS_KEY": str(keys[1])}, "not an unencrypted PEM private key"),
                      ({**good, "CAREPATH_HEADS_DIR": str(tmp_path / "nowhere")}, "is not a folder")]:
        with pytest.raises(CarepathError, match=says):
            heads_settings(env)


def test_serve_and_worker_refuse_to_start_with_a_bad_heads_setting(keys, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CAREPATH_HEADS_KEY", str(keys[1]))  # the public key by mistake
    monkeypatch.setenv("CAREPATH_HEADS_DIR", str(tmp_path))
    url = f"sqlite:///{tmp_path / 'never.db'}"
    assert main(["worker", "--db", url, "--once"]) == 1
    assert "is not an unencrypted PEM private key" in capsys.readouterr().err
    monkeypatch.delenv("CAREPATH_HEADS_DIR")
    assert main(["serve", "--db", url, "--port", "1"]) == 1
    assert "set both CAREPATH_HEADS_KEY and CAREPATH_HEADS_DIR" in capsys.readouterr().err
    assert not (tmp_path / "never.db").exists()


# ---------------------------------------------------------------- one case's check against the newest heads file
def test_a_cases_check_compares_it_with_the_newest_signed_heads_file(make_engine, keys, tmp_path):
    from engine.anchoring import sign_heads_to_dir
    from engine.integrity import check_case, last_check

    eng, case_id = _case(make_engine)
    folder = tmp_path / "heads"
    folder.mkdir()
    settings = {"heads_dir": folder, "public_key": keys[1]}
    # nothing configured, or nothing written yet: said, and the check still passes on its own evidence
    unconfigured = check_case(eng, case_id, actor="auditor1")
    assert unconfigured["anchor"]["status"] == "unavailable" and unconfigured["passed"]
    assert check_case(eng, case_id, actor="auditor1", **settings)["anchor"]["status"] == "unavailable"

    first = sign_heads_to_dir(eng, keys[0], folder)
    result = check_case(eng, case_id, actor="auditor1", **settings)
    assert result["anchor"]["status"] == "anchored" and result["anchor"]["file"] == first.name
    assert result["passed"] and last_check(eng, case_id)["anchor"]["status"] == "anchored"

    # a case begun after the newest file is not signed yet (and not a failure)
    later = eng.start("three_tasks", data={"name": "Ann"}).case_id
    assert check_case(eng, later, actor="auditor1", **settings)["anchor"]["status"] == "not_yet"

    # someone with the database rewrites the case's chain wholesale: it verifies against itself,
    # but not against the signed head
    chain = history.case_chain(case_id)
    _rewrite_chain(eng, chain, 2, "Peter", "Petra")
    assert eng.verify(case_id)[1] == []
    rewritten = check_case(eng, case_id, actor="auditor1", **settings)
    assert rewritten["verified"] and rewritten["anchor"]["status"] == "altered"
    assert not rewritten["passed"] and "rewritten after the heads were signed" in rewritten["anchor"]["message"]


def test_a_damaged_or_wrongly_signed_newest_heads_file_is_said_plainly(make_engine, keys, tmp_path):
    from engine.anchoring import sign_heads_to_dir
    from engine.integrity import check_case

    eng, case_id = _case(make_engine)
    folder = tmp_path / "heads"
    folder.mkdir()
    path = sign_heads_to_dir(eng, keys[0], folder)
    doc = json.loads(path.read_text())
    doc["heads"][0]["hash"] = "f" * 64
    path.chmod(0o600)
    path.write_text(json.dumps(doc))
    result = check_case(eng, case_id, actor="auditor1", heads_dir=folder, public_key=keys[1])
    assert result["anchor"]["status"] == "error" and "does not match its signature" in result["anchor"]["message"]


# ---------------------------------------------------------------- the signer refuses a history it cannot vouch for
def test_the_signer_refuses_a_rewritten_history_writes_nothing_and_alerts(make_engine, keys, tmp_path, caplog):
    """Findings 9 #1: after a wholesale rewrite (hashes and head recomputed) the next scheduled signing
    anchored the rewrite. Now it refuses: no file, an ALERT in the log naming chains and event numbers
    only, and GET /api/health says so."""
    from fastapi.testclient import TestClient

    from api.app import create_app

    eng, case_id = _case(make_engine)
    folder = tmp_path / "heads"
    folder.mkdir()
    first = sign_heads_once(eng, str(keys[0]), str(folder))
    assert eng.heads_signing["status"] == "signed"
    signed_seq = eng.history(case_id)[-1]["seq"]
    eng.complete_task(eng.list_tasks(case_id=case_id)[0]["id"], {}, actor="advisor1")  # honest events after it
    _rewrite_chain(eng, history.case_chain(case_id), 2, "Peter", "Petra")
    assert eng.verify()[1] == []  # the rewrite hides from a verify of the database alone
    caplog.clear()
    assert sign_heads_once(eng, str(keys[0]), str(folder)) is None
    assert sorted(folder.glob("heads-*.json")) == [first]  # nothing signed
    alert = [r.getMessage() for r in caplog.records if "ALERT" in r.getMessage()]
    assert len(alert) == 1 and f"case:{case_id} #{signed_seq}" in alert[0] and first.name in alert[0]
    assert "Peter" not in caplog.text and "Petra" not in caplog.text
    assert eng.heads_signing["status"] == "refused"
    health = TestClient(create_app(eng, run_timers=False)).get("/api/health")
    assert health.status_code == 200 and health.json()["status"] == "alert"
    assert health.json()["heads_signing"]["status"] == "refused" and "Petra" not in health.text
    # the command line refuses too, naming the previous file's head, and creates no file
    out = tmp_path / "by-hand.json"
    assert main(["audit", "sign-heads", "--db", eng.db.url, "--key", str(keys[0]), "--out", str(out),
                 "--previous", str(first)]) == 1
    assert not out.exists()
    with pytest.raises(anchoring.SigningRefused) as refused:
        anchoring.sign_heads(eng, keys[0], folder / "heads-by-hand.json")  # finds the newest file beside it
    assert refused.value.previous == first.name and refused.value.findings[0].seq == signed_seq


def _sql(eng, sql: str, **params) -> None:
    """Once the triggers are dropped (tests.test_history._bypass_triggers): more of the same."""
    with eng.db.transaction() as conn:
        conn.execute(text(sql), params)


def test_the_signer_refuses_an_edit_since_the_last_file_and_a_first_signing_of_an_altered_history(
        make_engine, keys, tmp_path):
    eng, case_id = _case(make_engine)
    folder = tmp_path / "heads"
    folder.mkdir()
    # the first signing verifies every chain from its first event
    _bypass_triggers(eng, "UPDATE events SET data = replace(data, 'Peter', 'Pete') WHERE chain = :c AND seq = 2",
                     c=history.case_chain(case_id))
    with pytest.raises(anchoring.SigningRefused, match="do not verify"):
        anchoring.sign_heads_to_dir(eng, keys[0], folder)
    assert list(folder.iterdir()) == []
    _sql(eng, "UPDATE events SET data = replace(data, 'Pete', 'Peter') WHERE chain = :c AND seq = 2",
                     c=history.case_chain(case_id))
    first = anchoring.sign_heads_to_dir(eng, keys[0], folder)
    # an event written after the signed head, edited in place (its hash left): only the new events are hashed
    eng.complete_task(eng.list_tasks(case_id=case_id)[0]["id"], {"note": "seen"}, actor="advisor1")
    edited = next(e["seq"] for e in eng.history(case_id) if "seen" in json.dumps(e["data"]))
    _sql(eng, "UPDATE events SET data = replace(data, 'seen', 'unseen') WHERE chain = :c AND seq = :s",
                     c=history.case_chain(case_id), s=edited)
    with pytest.raises(anchoring.SigningRefused) as refused:
        anchoring.sign_heads_to_dir(eng, keys[0], folder)
    assert [(f.chain, f.seq) for f in refused.value.findings] == [(history.case_chain(case_id), edited)]
    assert sorted(folder.glob("heads-*.json")) == [first]
    # a head moved back below the signed one (the newest event deleted) is refused too
    _sql(eng, "UPDATE events SET data = replace(data, 'unseen', 'seen') WHERE chain = :c AND seq = :s",
                     c=history.case_chain(case_id), s=edited)
    second = anchoring.sign_heads_to_dir(eng, keys[0], folder)
    assert second is not None and second != first
    rows = eng.history(case_id)
    _sql(eng, "DELETE FROM events WHERE chain = :c AND seq = :s", c=history.case_chain(case_id),
                     s=rows[-1]["seq"])
    with eng.db.transaction() as conn:
        conn.execute(text("UPDATE chains SET seq = :s, hash = :h WHERE chain = :c"),
                     {"s": rows[-2]["seq"], "h": rows[-2]["hash"], "c": history.case_chain(case_id)})
    eng.start("three_tasks", data={"name": "Another"})  # so that the heads moved
    with pytest.raises(anchoring.SigningRefused, match=second.name):
        anchoring.sign_heads_to_dir(eng, keys[0], folder)


def test_heads_files_sort_by_time_then_number(tmp_path):
    for name in ["heads-20310303T090000Z-2.json", "heads-20310303T090000Z.json", "heads-20310303T090000Z-10.json",
                 "heads-20310304T000000Z.json"]:
        (tmp_path / name).write_text("{}")
    assert [p.name for p in anchoring.heads_files(tmp_path)] == [
        "heads-20310303T090000Z.json", "heads-20310303T090000Z-2.json", "heads-20310303T090000Z-10.json",
        "heads-20310304T000000Z.json"]
    assert anchoring.newest_heads_file(tmp_path).name == "heads-20310304T000000Z.json"


def test_a_case_is_checked_against_every_signed_file_and_the_oldest_that_disagrees_is_named(
        make_engine, keys, tmp_path, capsys):
    """A newer file signed from a rewritten history (as the signer did before it checked) no longer hides
    the rewrite: the case is compared with every file, and the panel names the older file that
    disagrees and where the rewrite lies."""
    from engine.integrity import check_case

    eng, case_id = _case(make_engine)
    chain = history.case_chain(case_id)
    folder = tmp_path / "heads"
    folder.mkdir()
    assert anchoring.sign_heads_to_dir(eng, keys[0], folder) is not None
    early_seq = eng.history(case_id)[-1]["seq"]
    eng.complete_task(eng.list_tasks(case_id=case_id)[0]["id"], {}, actor="advisor1")
    honest = anchoring.sign_heads_to_dir(eng, keys[0], folder)
    honest_seq = eng.history(case_id)[-1]["seq"]
    assert early_seq < honest_seq
    settings = {"heads_dir": folder, "public_key": keys[1]}
    ok = check_case(eng, case_id, actor="auditor1", **settings)["anchor"]
    assert ok["status"] == "anchored" and ok["file"] == honest.name and ok["seq"] == honest_seq
    assert f"event #{honest_seq}, the head signed for this case in {honest.name}" in ok["message"]
    assert "1 older heads file(s)" in ok["message"]
    assert f"events #1 to #{honest_seq} are the ones signed" in ok["message"]

    # someone rewrites an event signed in the honest file but not in the early one, and every hash after it
    with eng.db.engine.connect() as conn:
        seq_to_edit = conn.execute(text("SELECT min(seq) FROM events WHERE chain = :c AND seq > :s AND data LIKE :d"),
                                   {"c": chain, "s": early_seq, "d": "%:%"}).scalar()
    _rewrite_chain(eng, chain, seq_to_edit, ":", ": ")
    assert eng.verify()[1] == []
    laundered = folder / "heads-20310303T090000Z-9.json"  # what the old signer wrote from it
    anchoring._write_new(laundered, anchoring.heads_document(eng, anchoring.load_private_key(keys[0])))
    result = check_case(eng, case_id, actor="auditor1", **settings)
    anchor = result["anchor"]
    assert result["verified"] and not result["passed"] and anchor["status"] == "altered"
    assert anchor["file"] == honest.name and anchor["seq"] == honest_seq
    assert (anchor["altered_from"], anchor["altered_to"]) == (early_seq + 1, honest_seq)
    assert f"somewhere in events #{early_seq + 1} to #{honest_seq}" in anchor["message"]
    assert f"newer heads files from {laundered.name} on match the history as it is now" in anchor["message"]
    # and from the command line, against every file of the folder
    capsys.readouterr()
    assert main(["audit", "verify", "--db", eng.db.url, "--case", str(case_id), "--heads-dir", str(folder),
                 "--public-key", str(keys[1])]) == 1
    out = capsys.readouterr().out
    assert f"{chain} event #{honest_seq}: event #{honest_seq} is not the one signed in {honest.name}" in out
    assert main(["audit", "verify", "--db", eng.db.url, "--against", str(laundered), "--public-key",
                 str(keys[1])]) == 0  # the newest file alone is fooled: the reason for checking every file


def test_a_case_begun_after_the_older_files_is_not_said_to_be_in_them(make_engine, keys, tmp_path):
    """The panel (and the evidence pack) said "as is each head signed for it in the 1 older heads file(s)" for a
    case created after that older file was signed: it counted every file, not those that name the case."""
    from engine.integrity import check_case

    eng, first_case = _case(make_engine)
    folder = tmp_path / "heads"
    folder.mkdir()
    assert anchoring.sign_heads_to_dir(eng, keys[0], folder) is not None
    eng.advance_clock(timedelta(hours=1))
    later = eng.start("three_tasks", data={"name": "Zoë"}).case_id
    newest = anchoring.sign_heads_to_dir(eng, keys[0], folder)
    settings = {"heads_dir": folder, "public_key": keys[1]}
    msg = check_case(eng, later, actor="auditor1", **settings)["anchor"]["message"]
    assert f"the head signed for this case in {newest.name}" in msg and "older heads file" not in msg, msg
    # the first case is in both files, with the same head: nothing older than the run that signed its head
    msg = check_case(eng, first_case, actor="auditor1", **settings)["anchor"]["message"]
    assert "older heads file" not in msg, msg
