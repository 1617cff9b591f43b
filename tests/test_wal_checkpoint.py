"""SQLite's write-ahead log is copied back into the file by a thread of its own (engine/db.py WalCheckpointer):
what a step committed reaches the database file without a step waiting for it, the log stays bounded, and a
process killed while checkpoints run keeps every commit."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from sqlalchemy import func, select

from engine.db import Database, WalCheckpointer
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import instances

ROOT = Path(__file__).resolve().parent.parent
DIAGRAM = ROOT / "tests" / "diagrams" / "three_tasks.bpmn"


def _engine(path: Path) -> Engine:
    eng = Engine(Database(f"sqlite:///{path}"), registry=HandlerRegistry(), forms=FormLibrary())
    eng.init()
    eng.deploy([DIAGRAM])
    return eng


def _run_cases(eng: Engine, n: int) -> None:
    for i in range(n):
        res = eng.start("three_tasks", data={"n": i})
        for step in range(3):
            res = eng.complete_task(res.ready_tasks[0]["id"], {"reason": f"r{step}"}, actor="tester")
        assert res.status == "completed"


def _completed_in_file_alone(path: Path, tmp: Path) -> int:
    """The completed instances a copy of the database file alone holds (its write-ahead log left behind)."""
    copy = tmp / "file-alone.db"
    shutil.copyfile(path, copy)
    conn = sqlite3.connect(copy)
    try:
        return conn.execute("SELECT count(*) FROM instances WHERE status = 'completed'").fetchone()[0]
    finally:
        conn.close()


def test_commits_reach_the_database_file_by_the_checkpointer_not_by_a_step(tmp_path):
    path = tmp_path / "carepath.db"
    eng = _engine(path)
    with eng.db.engine.connect() as conn:  # a step's own connection checkpoints only as a far-off backstop
        assert conn.exec_driver_sql("PRAGMA wal_autocheckpoint").scalar() == WalCheckpointer.BACKSTOP_PAGES
    ck = eng.db.checkpointer
    assert ck is not None and ck.runs == 0
    _run_cases(eng, 100)  # 400 write transactions and more: several checkpoints' worth
    ck.join()
    assert ck.runs >= 3
    # the file itself holds most of what was committed, copied by the checkpoints (each copies what was
    # committed when it started), though no commit came near the backstop's 10,000 pages
    assert _completed_in_file_alone(path, tmp_path) >= 60
    wal = Path(f"{path}-wal")
    assert wal.stat().st_size < WalCheckpointer.BACKSTOP_PAGES * 4096
    eng.db.truncate_log()  # and the whole log on demand, as erasure does
    assert _completed_in_file_alone(path, tmp_path) == 100
    assert wal.stat().st_size == 0
    assert eng.verify()[1] == []
    eng.db.dispose()


def test_an_in_memory_database_has_no_checkpointer():
    assert Database("sqlite://").checkpointer is None
    assert Database("sqlite:///:memory:").checkpointer is None


KILLER = """
import os, sys
sys.path.insert(0, os.getcwd())
from tests.test_wal_checkpoint import _engine, _run_cases
from pathlib import Path
eng = _engine(Path(sys.argv[1]))
_run_cases(eng, int(sys.argv[2]))
print(eng.db.checkpointer.runs, flush=True)
os._exit(9)  # killed: no dispose, whatever checkpoint was going stops with the process
"""


def test_a_process_killed_while_checkpoints_run_keeps_every_commit(tmp_path):
    path = tmp_path / "carepath.db"
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    proc = subprocess.run([sys.executable, str(script), str(path), "120"], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 9, proc.stderr
    assert int(proc.stdout.split()[-1]) >= 3  # checkpoints ran while the cases were worked
    eng = Engine(Database(f"sqlite:///{path}"), registry=HandlerRegistry(), forms=FormLibrary())
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(instances)
                            .where(instances.c.status == "completed")).scalar() == 120
    assert eng.verify()[1] == []
    _run_cases(eng, 2)  # and it carries on
    eng.db.dispose()


def test_a_checkpoint_after_the_file_is_gone_creates_nothing_and_the_database_is_named_absolutely(tmp_path,
                                                                                                    monkeypatch):
    monkeypatch.chdir(tmp_path)
    db = Database("sqlite:///relative.db")
    assert db.checkpointer is not None and db.checkpointer.path == str(tmp_path / "relative.db")
    other = tmp_path / "elsewhere"
    other.mkdir()
    monkeypatch.chdir(other)  # a later change of directory: the checkpoint still names the first file
    db.checkpointer._checkpoint()  # the file was never made: an error, logged by its type, and no file made
    assert not (tmp_path / "relative.db").exists() and not (other / "relative.db").exists()
