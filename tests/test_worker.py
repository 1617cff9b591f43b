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
