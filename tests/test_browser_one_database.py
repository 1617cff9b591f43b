"""Browser tests run on one database each, chosen from their names (tests/conftest.py), and every other test
that takes the database parameter still runs on both: checked on what pytest collects for two files."""

from __future__ import annotations

import importlib
import inspect
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

from tests.conftest import browser_database

ROOT = Path(__file__).resolve().parent.parent
FILES = ["tests/test_pages_case.py", "tests/test_pages_replay.py"]


def _collected(env_pg: str | None) -> dict[str, set[str]]:
    env = {k: v for k, v in os.environ.items() if k not in ("CAREPATH_TEST_POSTGRES_URL", "CAREPATH_REQUIRE_POSTGRES")}
    if env_pg:
        env["CAREPATH_TEST_POSTGRES_URL"] = env_pg
    proc = subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           "-p", "no:randomly", *FILES], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    out: dict[str, set[str]] = defaultdict(set)
    for line in proc.stdout.splitlines():
        if "::" in line and line.endswith("]"):
            name, param = line.rsplit("[", 1)
            out[name].add(param[:-1])
    return out


def _calls_launch(nodeid: str) -> bool:
    path, fn = nodeid.split("::")
    module = importlib.import_module(path[:-3].replace("/", "."))
    return "launch()" in inspect.getsource(getattr(module, fn))


def test_a_browser_test_runs_on_one_database_and_the_others_on_both():
    got = _collected("postgresql://postgres@127.0.0.1:5432/test")
    browser = {name for name in got if _calls_launch(name)}
    assert {"tests/test_pages_case.py::test_a_reablement_coordinator_reads_joans_record_and_adds_a_note_by_keyboard",
            "tests/test_pages_case.py::test_a_letter_cannot_inject_script",
            "tests/test_pages_replay.py::test_the_auditor_steps_through_the_journey_by_keyboard_and_sees_the_path_grow",
            } <= browser
    for name in browser:
        assert got[name] == {browser_database(name.split("::")[1], with_postgres=True)}, name
    assert {"sqlite", "postgres"} == {p for name in browser for p in got[name]}  # both databases are driven
    others = [name for name in got if name not in browser]
    assert len(others) > 10 and all(got[name] == {"sqlite", "postgres"} for name in others), got


def test_without_a_postgresql_every_browser_test_runs_on_sqlite():
    got = _collected(None)
    name = "tests/test_pages_case.py::test_a_letter_cannot_inject_script"
    assert browser_database(name.split("::")[1], with_postgres=True) == "postgres"
    assert got[name] == {"sqlite"}  # picked for PostgreSQL when one is configured (the test above)
