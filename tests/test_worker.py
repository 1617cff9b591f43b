"""The timer job runs inside `carepath serve` and as `carepath worker`; both fire due timers
at start-up."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from fastapi.testclient import TestClient

from api.app import create_app
from engine.cli import main
from engine.clock import FixedClock
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.conftest import DIAGRAMS, START


def _waiting_case(db_url, calls, wall):
    eng = Engine(db_url, registry=calls.registry(), forms=FormLibrary(), wall_clock=wall)
    eng.init()
    eng.deploy([DIAGRAMS / "deadline.bpmn"])
    return eng, eng.start("deadline").case_id


def test_the_server_fires_timers_that_fell_due_while_it_was_down(db_url, calls):
    wall = FixedClock(START)
    eng, case_id = _waiting_case(db_url, calls, wall)
    wall.set(START + timedelta(days=43))
    with TestClient(create_app(eng)) as client:
        assert client.get("/api/health").json()["status"] == "ok"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            names = [t["element_id"] for t in eng.list_tasks(case_id=case_id)]
            if names == ["review_overrun"]:
                break
            time.sleep(0.1)
    assert names == ["review_overrun"]
    eng.db.dispose()


def test_worker_once_fires_what_is_due_by_the_real_clock(tmp_path, calls, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng, case_id = _waiting_case(url, calls, FixedClock(datetime(2020, 1, 6, tzinfo=timezone.utc)))
    eng.db.dispose()
    monkeypatch.setenv("CAREPATH_HANDLERS", "tests.tour_handlers")
    assert main(["worker", "--once", "--db", url]) == 0  # the wall clock is long past both timers
    assert "fired timers for 1" in capsys.readouterr().out
    assert [t["element_id"] for t in eng.list_tasks(case_id=case_id)] == ["review_overrun"]


def test_the_worker_logs_carepath_not_every_task_state_change(tmp_path, calls):
    """`carepath worker` set the root logger to INFO, so SpiffWorkflow's `spiff.task` wrote "State changed to
    READY/COMPLETED" five times for every timer fired (5,000 lines for 1,000 timers), where `carepath serve` logs
    carepath's loggers only. Run as an operator runs it, in a process of its own."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parent.parent
    url = f"sqlite:///{tmp_path / 'w.db'}"
    eng, case_id = _waiting_case(url, calls, FixedClock(datetime(2020, 1, 6, tzinfo=timezone.utc)))
    eng.db.dispose()
    env = dict(os.environ, CAREPATH_HANDLERS="tests.tour_handlers", PYTHONPATH=str(root))
    proc = subprocess.run([sys.executable, "-m", "carepath", "worker", "--once", "--db", url], cwd=root, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and "fired timers for 1 instance step(s)" in proc.stdout, proc.stderr
    assert "spiff" not in proc.stderr and "State changed" not in proc.stderr, proc.stderr[:500]
    assert [t["element_id"] for t in eng.list_tasks(case_id=case_id)] == ["review_overrun"]
