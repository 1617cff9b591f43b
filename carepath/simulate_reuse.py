"""Runs of a simulation kept for reuse (issue 16): a run already made is not made again.

A run from an empty caseload depends only on what it is given — the deployed versions it copies (their rows),
the scenario, the period, the seed — and on the code that runs it (carepath's own files and the installed
libraries). Its output is the same whenever and wherever it is made: one process or two, a worker or the server
(tests/test_simulate_parts.py, tests/test_simulate_compare.py). So the pages keep each run's output under a
SHA-256 of all of those (`run_key`) and a comparison takes the runs it finds instead of making them again: a second
draft of the same process, or the same draft with more seeds, runs only the draft's new runs, and the live
version's runs of a year are made once for every draft compared against it (until a deployment changes them).

What is never kept: a run from today's open cases (today's cases change; the copy is read afresh each time), a
scenario with a Python policy (`forms.<form>.policy`: code outside what the key reads), and an output that does
not come back from JSON exactly as it went in (so a kept run gives the very figures a new one would).

The outputs live in the table `simulation_outputs` (migration 0026) of the database the pages run on: synthetic
figures, no case is read and no personal data is written. Derived, never authoritative: deleting rows only means
running again. docs/simulation.md, "Runs kept for reuse".
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from engine.schema import simulation_outputs

ROOT = Path(__file__).resolve().parent.parent
#: the folders whose files make a run's output: the engine, the handlers, the forms, the simulation itself and the
#: process folder (its configuration: the scenario's defaults, the council's rules and rates)
CODE_FOLDERS = ("engine", "handlers", "forms", "carepath", "processes")
#: outputs kept, the ones used longest ago deleted first (a county year's output is about 40 KB)
KEEP = 200
#: a key's version: changed whenever what a key covers changes
KEY_FORMAT = 1

log = logging.getLogger("carepath.simulation")


@functools.lru_cache(maxsize=4)
def code_fingerprint(root: Path = ROOT, folders: tuple[str, ...] = CODE_FOLDERS) -> str:
    """SHA-256 of every file under `folders` (path and content; compiled caches left out), the Python version and
    every installed distribution's name and version: a change to any of them is a different key."""
    h = hashlib.sha256()
    for folder in folders:
        base = root / folder
        for path in sorted(p for p in base.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if "__pycache__" in path.parts or path.suffix in (".pyc", ".pyo"):
                continue
            h.update(b"F\0" + rel.encode("utf-8") + b"\0")
            h.update(hashlib.sha256(path.read_bytes()).digest())
    h.update(b"P\0" + sys.version.encode("utf-8"))
    dists = sorted({(d.metadata["Name"] or "").lower() + "==" + (d.version or "") for d in metadata.distributions()})
    h.update(b"D\0" + "\n".join(dists).encode("utf-8"))
    return h.hexdigest()


def _plain(value: Any) -> Any:
    """A value of the deployed rows or the scenario as JSON can hold it, bytes as their SHA-256."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"sha256": hashlib.sha256(bytes(value)).hexdigest()}
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def uses_policy(scenario: Any) -> bool:
    """Whether any form of the scenario names a Python policy (code the key does not read)."""
    forms = scenario.data.get("forms") if isinstance(scenario.data, dict) else None
    return isinstance(forms, dict) and any(isinstance(rules, dict) and "policy" in rules for rules in forms.values())


def run_key(rows: Any, scenario: Any, days: int | None, seed: int | None) -> str | None:
    """The key of a run from an empty caseload on the deployed `rows` (engine/trial.py `DeployedRows`) with
    `scenario`, `days` and `seed` (None: the scenario's own), or None when such a run is not kept (a policy)."""
    if uses_policy(scenario):
        return None
    what = {
        "format": KEY_FORMAT,
        "code": code_fingerprint(),
        "rows": {"files": rows.files, "deployments": rows.deployments, "versions": rows.versions},
        "scenario": {"source": scenario.source, "data": scenario.data,
                     "lines": sorted([list(map(str, k)), v] for k, v in scenario.lines.items())},
        "days": days, "seed": seed,
    }
    text = json.dumps(what, sort_keys=True, default=_plain, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class KeptRuns:
    """The outputs kept in a database (`engine` is carepath's Engine on it)."""

    def __init__(self, engine: Any, keep: int = KEEP) -> None:
        self.engine = engine
        self.keep = keep

    def get(self, key: str) -> dict[str, Any] | None:
        """The output kept under `key` (its use noted), or None. A row that does not read as an output is deleted
        and the run made again; a database that cannot be read or written is logged (by the error's type) and the
        run made: reuse only saves time, it never stops a simulation."""
        try:
            return self._get(key)
        except SQLAlchemyError as exc:
            log.error("a kept simulation run could not be read: %s", type(exc).__name__)
            return None

    def has(self, key: str) -> bool:
        """Whether a run is kept under `key` (its use not noted: a look, not a reuse); False when the database
        cannot be read (logged by the error's type)."""
        try:
            with self.engine.db.engine.connect() as conn:
                return conn.execute(select(simulation_outputs.c.key)
                                    .where(simulation_outputs.c.key == key)).first() is not None
        except SQLAlchemyError as exc:
            log.error("a kept simulation run could not be looked for: %s", type(exc).__name__)
            return False

    def _get(self, key: str) -> dict[str, Any] | None:
        with self.engine.db.transaction() as conn:
            text = conn.execute(select(simulation_outputs.c.output).where(simulation_outputs.c.key == key)).scalar()
            if text is None:
                return None
            try:
                out = json.loads(text)
            except ValueError:
                out = None
            if not isinstance(out, dict):
                log.warning("a kept simulation run did not read as an output: deleted")
                conn.execute(delete(simulation_outputs).where(simulation_outputs.c.key == key))
                return None
            conn.execute(update(simulation_outputs).where(simulation_outputs.c.key == key)
                         .values(used_at=_now(), uses=simulation_outputs.c.uses + 1))
        return out

    def put(self, key: str, output: dict[str, Any], seconds: float | None = None) -> bool:
        """Keep `output` under `key` (True), unless it would not come back from JSON as it is, or another process
        kept it first; the ones used longest ago beyond `keep` are deleted."""
        try:
            text = json.dumps(output, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            return False
        if json.loads(text) != output:  # tuples, keys that are not text...: a kept run would not read the same
            return False
        now = _now()
        try:
            with self.engine.db.transaction() as conn:
                conn.execute(insert(simulation_outputs).values(key=key, output=text, made_at=now, used_at=now,
                                                               uses=0, seconds=seconds, bytes=len(text)))
                old = conn.execute(select(simulation_outputs.c.key)
                                   .order_by(simulation_outputs.c.used_at.desc(), simulation_outputs.c.key)
                                   .offset(self.keep)).scalars().all()
                if old:
                    conn.execute(delete(simulation_outputs).where(simulation_outputs.c.key.in_(old)))
        except IntegrityError:  # the same run kept by another process meanwhile: the same output
            return False
        except SQLAlchemyError as exc:  # not kept: the simulation goes on with the run it made
            log.error("a simulation run could not be kept: %s", type(exc).__name__)
            return False
        return True


def _now() -> datetime:
    # the server's wall clock: when a row was kept or used orders what is deleted first, nothing else
    return datetime.now(timezone.utc)


def enabled() -> bool:
    """CAREPATH_SIMULATION_REUSE=0 turns reuse off (every run made afresh); on by default."""
    return os.environ.get("CAREPATH_SIMULATION_REUSE", "1").strip() not in ("0", "no", "false", "off")
