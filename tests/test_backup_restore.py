"""`carepath backup` and `carepath restore` (issue 15, item 3), on SQLite and PostgreSQL: a restored database
holds the same events and chain heads, verifies and replays; a backup taken while another thread writes is
consistent; an event edited in the backup makes the restore's verification fail; a missing, truncated, foreign,
altered or newer-schema file is refused with one line and exit 2, touching nothing; a target that is not
empty is refused without --force."""

from __future__ import annotations

import hashlib
import io
import json
import sqlite3
import tarfile
import threading
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import text

from carepath import backup
from carepath.cli import main
from engine.forms import FormLibrary
from engine.replay import replay_case
from engine.runtime import Engine
from tests.conftest import PG_URL

TAKEN = datetime(2031, 5, 1, 2, 0, tzinfo=timezone.utc)


@pytest.fixture
def target_url(db_url, tmp_path):
    """An empty database of the source's kind to restore into: a new SQLite file, or a new PostgreSQL schema."""
    if db_url.startswith("sqlite"):
        yield f"sqlite:///{tmp_path / 'restored' / 'carepath.db'}"
        return
    import psycopg

    schema = f"t_restore_{uuid.uuid4().hex[:12]}"
    base = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')  # as a DBA makes it; empty
    yield f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def _cases(make_engine, calls, n: int = 5) -> Engine:
    """`n` budget cases at different points: one failed and retried, some approved, some with plans agreed."""
    eng = make_engine("budget.bpmn", "annual_review.bpmn", "deadline.bpmn")
    for i in range(n):
        calls.fail_budget = i == 0
        res = eng.start("budget", data={"points": 10 + 20 * i}, title=f"Person {i}")
        calls.fail_budget = False
        if i == 0:
            eng.retry(res.instance_id, actor="admin")
        for _ in range(i % 3):
            tasks = eng.list_tasks(case_id=res.case_id)
            if not tasks:
                break
            data = {"approved": True} if tasks[0]["element_id"] == "approve" else {"agreed": True}
            eng.complete_task(tasks[0]["id"], data, actor="sw1")
        if i == 1:
            eng.start("deadline", case_id=res.case_id)
    eng.advance_clock(timedelta(days=50))
    return eng


def _count(eng: Engine) -> int:
    with eng.db.engine.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM events")).scalar_one()


def _run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_a_restored_database_holds_the_same_history_verifies_and_replays(make_engine, calls, target_url,
                                                                           tmp_path, capsys):
    eng = _cases(make_engine, calls)
    file = tmp_path / "nightly.tar"
    code, out, err = _run(capsys, "--db", eng.db.url, "backup", "--out", str(file))
    assert code == 0, err
    assert f"written to {file}" in out
    assert file.stat().st_mode & 0o077 == 0  # personal data: readable by its owner only
    code, out, err = _run(capsys, "--db", target_url, "restore", str(file), "--replay", "3")
    assert code == 0, out + err
    assert "PASS: the restored database verifies" in out
    assert "replay: 3 of 3 sampled case(s) match" in out

    restored = Engine(target_url, registry=calls.registry())
    try:
        assert restored.chain_heads() == eng.chain_heads()
        assert _count(restored) == _count(eng)
        assert restored.verify() == (_count(eng), [])
        for case_id in range(1, 6):
            assert restored.history(case_id) == eng.history(case_id)
            assert replay_case(restored, case_id).ok
        # the restored database works: its open tasks can be completed, and the chains still verify
        [task, *_] = restored.list_tasks()
        restored.complete_task(task["id"], {"approved": True, "agreed": True}, actor="sw1")
        assert restored.verify()[1] == []
    finally:
        restored.db.dispose()


def test_the_manifest_describes_the_backup(make_engine, calls, tmp_path):
    eng = _cases(make_engine, calls, n=2)
    manifest = backup.backup(eng.db.url, tmp_path / "b.tar", now=TAKEN)
    with tarfile.open(tmp_path / "b.tar") as tar:
        names = tar.getnames()
        stored = json.loads(tar.extractfile(backup.MANIFEST).read())
    assert names == [backup.MANIFEST, backup.PAYLOAD[eng.db.dialect]]
    assert stored == json.loads(json.dumps(manifest))
    revisions, head = backup.known_revisions()
    assert (stored["format"], stored["kind"], stored["migration_head"]) == (1, eng.db.dialect, head)
    assert stored["created_at"] == "2031-05-01T02:00:00+00:00"
    assert stored["events"] == _count(eng) and stored["cases"] == 2
    assert stored["chains"] == eng.chain_heads()
    assert stored["carepath"]["version"]


def test_a_backup_taken_while_another_thread_writes_is_consistent(make_engine, calls, target_url, tmp_path,
                                                                   capsys):
    eng = _cases(make_engine, calls, n=3)
    writer = Engine(eng.db.url, registry=calls.registry())
    stop, started = threading.Event(), []
    failures: list[BaseException] = []

    def write() -> None:
        try:
            while not stop.is_set():
                res = writer.start("budget", data={"points": 30}, title="Busy")
                [task] = writer.list_tasks(case_id=res.case_id)
                writer.complete_task(task["id"], {"approved": True}, actor="sw1")
                started.append(res.case_id)
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            failures.append(exc)

    thread = threading.Thread(target=write)
    thread.start()
    try:
        while len(started) < 2:  # the writer is under way before the backup starts
            thread.join(0.05)
            assert not failures, failures
        manifest = backup.backup(eng.db.url, tmp_path / "busy.tar", now=TAKEN)
        seen = len(started)
        while len(started) < seen + 2:  # ... and still writing after it
            thread.join(0.05)
            assert not failures, failures
    finally:
        stop.set()
        thread.join()
        writer.db.dispose()
    assert not failures, failures
    assert manifest["events"] < _count(eng)
    code, out, err = _run(capsys, "--db", target_url, "restore", str(tmp_path / "busy.tar"), "--replay", "4")
    assert code == 0, out + err
    assert "PASS" in out and "event count and every chain head match" in out


# ---------------------------------------------------------------------------- altered backups
def _repack(src: Path, dst: Path, *, manifest_edit=None, payload_edit=None, keep_checksum: bool = False) -> None:
    """Write `dst`: `src` with its manifest and/or database changed; the checksum is made again (as someone
    who edits a backup would) unless `keep_checksum`."""
    with tarfile.open(src) as tar:
        manifest = json.loads(tar.extractfile(backup.MANIFEST).read())
        name = manifest["payload"]["name"]
        payload = dst.parent / f"{dst.name}.{name}"
        payload.write_bytes(tar.extractfile(name).read())
    if payload_edit:
        payload_edit(payload)
    data = payload.read_bytes()
    if not keep_checksum:
        manifest["payload"].update(bytes=len(data), sha256=hashlib.sha256(data).hexdigest())
    if manifest_edit:
        manifest_edit(manifest)
    with tarfile.open(dst, "w") as tar:
        for member, body in ((backup.MANIFEST, json.dumps(manifest).encode()), (name, data)):
            info = tarfile.TarInfo(member)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))


def _edit_an_event(path: Path) -> None:
    """What a tamperer does to a SQLite backup: drop the append-only guard and change what an event says."""
    conn = sqlite3.connect(path)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET data = replace(data, '\"approved\":true', '\"approved\":false') "
                 "WHERE id = (SELECT min(id) FROM events WHERE type = 'task.completed')")
    assert conn.total_changes == 1
    conn.commit()
    conn.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the edit is made with SQLite on its file
def test_an_event_edited_in_the_backup_fails_the_restores_verification(make_engine, calls, tmp_path, capsys):
    eng = make_engine("budget.bpmn", "annual_review.bpmn")
    for points in (20, 40):
        res = eng.start("budget", data={"points": points})
        [task] = eng.list_tasks(case_id=res.case_id)
        eng.complete_task(task["id"], {"approved": True}, actor="manager1")
    backup.backup(eng.db.url, tmp_path / "good.tar", now=TAKEN)
    _repack(tmp_path / "good.tar", tmp_path / "edited.tar", payload_edit=_edit_an_event)
    target = f"sqlite:///{tmp_path / 'restored.db'}"
    code, out, err = _run(capsys, "--db", target, "restore", str(tmp_path / "edited.tar"))
    assert code == 1
    assert "chains: ALTERED" in out and "task.completed event was edited after it was written" in out
    assert "FAIL: the restored database does NOT verify" in out
    assert "FAILED verification" in err


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_backup_altered_without_its_checksum_made_again_is_refused_before_anything_is_written(
        make_engine, calls, tmp_path, capsys):
    eng = _cases(make_engine, calls, n=2)
    backup.backup(eng.db.url, tmp_path / "good.tar", now=TAKEN)
    _repack(tmp_path / "good.tar", tmp_path / "edited.tar", keep_checksum=True,
            payload_edit=lambda p: p.write_bytes(p.read_bytes().replace(b"Person 1", b"Person 7")))
    target = tmp_path / "restored" / "carepath.db"
    code, out, err = _run(capsys, "--db", f"sqlite:///{target}", "restore", str(tmp_path / "edited.tar"))
    assert code == 2 and out == ""
    assert "was altered or damaged" in err and len(err.strip().splitlines()) == 1
    assert not target.exists()


# ---------------------------------------------------------------------------- refusals
def test_bad_files_are_one_line_exit_2_and_touch_nothing(make_engine, calls, tmp_path, capsys):
    eng = _cases(make_engine, calls, n=2)
    good = tmp_path / "good.tar"
    backup.backup(eng.db.url, good, now=TAKEN)
    whole = good.read_bytes()
    (tmp_path / "half.tar").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "empty.tar").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("minutes of the meeting\n" * 100)
    with tarfile.open(tmp_path / "other.tar", "w") as tar:
        tar.add(tmp_path / "notes.txt", arcname="notes.txt")
    _repack(good, tmp_path / "newer.tar", manifest_edit=lambda m: m.update(migration_head="0099"))
    _repack(good, tmp_path / "format.tar", manifest_edit=lambda m: m.update(format=2))
    target = tmp_path / "restored" / "carepath.db"
    expected = {"missing.tar": "there is no backup file", "half.tar": "is truncated",
                "empty.tar": "is not a carepath backup", "notes.txt": "is not a carepath backup",
                "other.tar": "is not a carepath backup", "newer.tar": "made by a newer carepath",
                "format.tar": "of format 2"}
    for name, message in expected.items():
        code, out, err = _run(capsys, "--db", f"sqlite:///{target}", "restore", str(tmp_path / name))
        assert (code, out) == (2, ""), (name, out, err)
        assert message in err and len(err.strip().splitlines()) == 1, (name, err)
        assert err.strip().endswith("nothing was changed")
        assert not target.exists(), name


def test_a_target_that_is_not_empty_is_refused_without_force(make_engine, calls, target_url, tmp_path, capsys):
    eng = _cases(make_engine, calls, n=3)
    backup.backup(eng.db.url, tmp_path / "b.tar", now=TAKEN)
    other = Engine(target_url, registry=calls.registry(), forms=FormLibrary())
    other.init(simulated_start=TAKEN)
    other.deploy([Path(__file__).parent / "diagrams" / "deadline.bpmn"])
    other.start("deadline", title="Someone else")
    before = other.chain_heads()
    other.db.dispose()
    code, out, err = _run(capsys, "--db", target_url, "restore", str(tmp_path / "b.tar"))
    assert (code, out) == (1, "")
    assert "is not empty" in err and "history events" in err and "--force" in err
    other = Engine(target_url, registry=calls.registry())
    assert other.chain_heads() == before
    other.db.dispose()

    code, out, err = _run(capsys, "--db", target_url, "restore", str(tmp_path / "b.tar"), "--force")
    assert code == 0, out + err
    restored = Engine(target_url, registry=calls.registry())
    assert restored.chain_heads() == eng.chain_heads()
    restored.db.dispose()


def test_a_backup_never_overwrites_a_file(make_engine, calls, tmp_path, capsys):
    eng = _cases(make_engine, calls, n=1)
    (tmp_path / "b.tar").write_text("keep me")
    code, out, err = _run(capsys, "--db", eng.db.url, "backup", "--out", str(tmp_path / "b.tar"))
    assert (code, out) == (2, "") and "already exists" in err
    assert (tmp_path / "b.tar").read_text() == "keep me"


def test_a_backup_of_one_kind_is_not_restored_into_the_other(make_engine, calls, tmp_path, capsys):
    eng = _cases(make_engine, calls, n=1)
    backup.backup(eng.db.url, tmp_path / "b.tar", now=TAKEN)
    other = {"sqlite": "postgresql://nobody@127.0.0.1:1/none", "postgresql": f"sqlite:///{tmp_path / 'x.db'}"}
    code, out, err = _run(capsys, "--db", other[eng.db.dialect], "restore", str(tmp_path / "b.tar"))
    assert (code, out) == (2, "") and "restore it into a" in err
    assert not (tmp_path / "x.db").exists()


def test_the_sample_is_spread_over_the_cases():
    assert backup.sample_cases(list(range(1, 101)), 5) == [1, 26, 51, 75, 100]
    assert backup.sample_cases([3, 1, 2], 10) == [1, 2, 3]
    assert backup.sample_cases([1, 2, 3], 0) == []


def test_the_postgres_tools_get_the_password_from_the_environment_not_the_command_line():
    env = backup.pg_env("postgresql+psycopg://carer:s3cr%40t@db.example:6543/council?sslmode=require")
    assert (env["PGHOST"], env["PGPORT"], env["PGUSER"], env["PGPASSWORD"], env["PGDATABASE"], env["PGSSLMODE"]) \
        == ("db.example", "6543", "carer", "s3cr@t", "council", "require")


def test_a_database_that_is_not_carepaths_is_not_backed_up(tmp_path, capsys):
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE minutes (said TEXT)")
    conn.commit()
    conn.close()
    code, out, err = _run(capsys, "--db", f"sqlite:///{other}", "backup", "--out", str(tmp_path / "b.tar"))
    assert (code, out) == (1, "") and "holds no carepath tables" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "b.tar").exists()


def test_without_out_the_file_is_named_after_the_instant_its_manifest_gives(make_engine, calls, tmp_path, capsys,
                                                                            monkeypatch):
    """The wall clock is read once for both: a file named 10:00:59 must not say 10:01:00 inside."""
    from carepath import cli

    eng = _cases(make_engine, calls, n=1)
    monkeypatch.chdir(tmp_path)
    ticks = iter([datetime(2031, 5, 1, 10, 0, 59, 999_000, tzinfo=timezone.utc),
                  datetime(2031, 5, 1, 10, 1, 0, tzinfo=timezone.utc)])  # a second read would be the next second
    monkeypatch.setattr(cli, "wall_clock", lambda: next(ticks))
    code, _out, err = _run(capsys, "--db", eng.db.url, "backup")
    assert code == 0, err
    [made] = list(tmp_path.glob("carepath-backup-*.tar"))
    with tarfile.open(made) as tar:
        stored = json.loads(tar.extractfile(backup.MANIFEST).read())
    taken = datetime.fromisoformat(stored["created_at"])
    assert made.name == f"carepath-backup-{taken:%Y%m%dT%H%M%SZ}.tar" == "carepath-backup-20310501T100059Z.tar"
