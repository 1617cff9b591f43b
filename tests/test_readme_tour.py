"""The README's CLI tour works exactly as written (on SQLite, and on PostgreSQL when configured)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def tour_lines() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    m = re.search(r"<!-- tour:.*?-->\s*```sh\n(.*?)```", text, re.S)
    assert m, "README.md has no tour block"
    return m.group(1).strip().splitlines()


def run_tour(tmp_path: Path, db_url: str | None = None) -> str:
    bindir = Path(sys.executable).parent
    assert (bindir / "carepath").exists(), "the carepath console script is not installed in this environment"
    script = "set -euo pipefail\n" + "\n".join(tour_lines())
    # the tour exactly as written, but on a database of this test's own (runs may overlap)
    url = db_url or f"sqlite:///{tmp_path / 'tour.db'}"
    script = script.replace("sqlite:///var/tour.db", url).replace("rm -f var/tour.db*", "true")
    # this checkout's code, whichever checkout the installed script was made from
    env = dict(os.environ, PATH=f"{bindir}:{os.environ['PATH']}", PYTHONPATH=str(ROOT))
    env.pop("CAREPATH_TOUR_RATES", None)
    proc = subprocess.run(["bash", "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"tour failed:\nSTDOUT:\n{proc.stdout}\nSTDERR:\n{proc.stderr}"
    # a newcomer sees no lint warnings: the tour's diagrams are drawn cleanly (engine/lint)
    assert "warning" not in proc.stderr, proc.stderr
    return proc.stdout


def check_output(out: str) -> None:
    assert "deadline version 1" in out and "(unchanged)" in out
    assert "Deliver reablement" in out
    assert "Review overrun" in out
    assert "timer.fired" in out and "handler.called" in out
    assert "intact:" in out
    assert "replay of case 1 matches" in out
    assert "the rates table is missing" in out  # the incident, listed
    assert re.search(r"case 2, instance 2: waiting\n\s+ready: \S+\s+Approve budget", out)


def test_readme_tour_runs_as_written_on_sqlite(tmp_path):
    check_output(run_tour(tmp_path))


@pytest.mark.postgres
def test_readme_tour_runs_as_written_on_postgres(tmp_path, pg_url):
    check_output(run_tour(tmp_path, pg_url))


def test_tour_json_output_is_machine_readable(tmp_path):
    env = dict(os.environ, CAREPATH_HANDLERS="tests.tour_handlers", CAREPATH_FORMS="tests/diagrams/forms")
    db = f"sqlite:///{tmp_path / 'j.db'}"
    run = lambda *a: subprocess.run([sys.executable, "-m", "engine.cli", *a, "--db", db, "--json"],  # noqa: E731
                                    cwd=ROOT, env=env, capture_output=True, text=True)
    assert run("init", "--simulated", "2027-01-04T09:00:00Z").returncode == 0
    assert run("deploy", "tests/diagrams").returncode == 0
    started = json.loads(run("start", "three_tasks").stdout)
    assert started["ready_tasks"][0]["name"] == "Record contact"
    bad = run("complete", "not-a-task")
    assert bad.returncode == 1 and json.loads(bad.stderr)["error"] == "not_found"
    bad_json = subprocess.run([sys.executable, "-m", "engine.cli", "start", "three_tasks", "--data", "{oops",
                               "--db", db], cwd=ROOT, env=env, capture_output=True, text=True)
    assert bad_json.returncode == 1 and "--data is not valid JSON" in bad_json.stderr
