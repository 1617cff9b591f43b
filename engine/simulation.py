"""Simulation mode: the engine on a throwaway in-memory database, without the durable audit trail.

`carepath simulate` (carepath/simulate.py, docs/simulation.md) runs a year of synthetic cases through the real
engine. It needs the engine's steps — the diagrams, handlers, forms, timers and the rows they write — but not
a record that could stand in court, so `Engine(..., simulation=SimulationMode(...))` (opt-in; the default is
the live, durable engine, unchanged) does these things differently:

* **History without the hash chain.** Events are written as plain rows: no hash, no previous hash (both
  empty), no chain heads; only the event types in `keep_events` are written (None: every type), numbered in
  order per chain (`seq`) so readers that order by it still can. A reader that needs the chain (`verify`)
  finds it empty: there is no chain to verify.
* **The clock held in memory.** `Engine.now` reads the simulated instant from memory instead of the
  settings row; `advance_clock` moves it without a `clock.advanced` event, and only asks the database for
  the next due timer when a timer stored since may fall due before the new instant (`due_floor`).
* **Workflows kept in memory.** A waiting instance's workflow is not serialised with every step: the row's
  `state` is left empty while the workflow is in the engine's cache, and written when it leaves it.
* **A finished instance's data not written.** Its row's `data` is left empty (NULL): the case record and
  replay read it, and a simulation has neither; what its measures read is in the kept events.
* **Transactions committed in batches** (`StepBatch`, switched on by `SimulationMode.batch_steps`): each
  transaction is a savepoint inside a longer one, which is committed every `every` transactions. An in-memory
  SQLite database holds all its pages in its page cache, and ending a write transaction costs time in
  proportion to them: a step's commit took 25 µs at the start of a simulated year and 500 µs by its
  36th week (docs/performance.md, "Why a step costs more as the year goes on"); releasing a savepoint costs
  about 2 µs at any size. A step still has its own all-or-nothing transaction (a failed one is rolled back to
  its savepoint) and what it wrote is seen by every later one (one connection); only durability is given up,
  and an in-memory database has none.
* **Task arrivals and withdrawals told.** After each step commits, the listeners given to
  `Engine.on_tasks_changed` get the task rows it added and the ids it removed (the simulator's queues).

It is refused on anything but an in-memory SQLite database with a simulated clock: it can never run on a
live database. Nothing here knows about social care or reads the wall clock.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, insert, select
from sqlalchemy.engine import make_url

from .driver_sql import insert_rows
from .errors import StateError
from .schema import events

_INSERT_EVENTS = insert(events)
#: a waiting instance's `state` while its workflow is held in memory (written when it leaves: engine/step.py `_tx`)
UNSAVED_STATE = ""


class SimulationMode:
    """The switch (see the module's text); one per database, holding its event numbering."""

    def __init__(self, keep_events: Iterable[str] | None = None,
                 trim: Callable[[str, dict[str, Any]], dict[str, Any]] | None = None) -> None:
        self.keep_events = frozenset(keep_events) if keep_events is not None else None
        #: `trim(type, data)`: what of a kept event's data is written (the caller knows what its readers read)
        self.trim = trim
        self._seq: dict[str, int] | None = None  # chain -> last seq written (read once from the database)
        #: no timer row written since the database was last asked falls due before this (None: no timer at all);
        #: lowered by every timer row written (engine/step.py `_Writes.flush`), only a guess until `floor_known`
        self.due_floor: datetime | None = None
        self.floor_known = False
        self.written = 0  # events written
        self.dropped = 0  # events not kept

    @staticmethod
    def check_database(db: Any) -> None:
        """Refuse anything but an in-memory SQLite database (the live one is never run without its audit trail)."""
        url = make_url(db.url)
        if db.dialect != "sqlite" or (url.database or ":memory:") != ":memory:":
            raise StateError(f"simulation mode runs only on an in-memory SQLite database, not {db.safe_url}: "
                             "a live database always keeps its full, hash-chained history")

    def append(self, conn: Connection, at: datetime, groups: list[tuple[str, int | None, list[Any]]]
               ) -> list[dict[str, Any]]:
        """Write the kept events of each group (chain, case id, events) as plain rows, numbered per chain."""
        from .history import canonical_json, iso

        if self._seq is None:
            self._seq = {c: s for c, s in conn.execute(select(events.c.chain, func.max(events.c.seq))
                                                       .group_by(events.c.chain))}
        keep, trim = self.keep_events, self.trim
        at_s = iso(at)
        rows = []
        for chain, case_id, items in groups:
            seq = self._seq.get(chain, 0)
            step = seq + 1
            for ev in items:
                if keep is not None and ev.type not in keep:
                    self.dropped += 1
                    continue
                seq += 1
                rows.append(dict(chain=chain, seq=seq, step=step, case_id=case_id, instance_id=ev.instance_id,
                                 type=ev.type, at=at_s, actor=ev.actor,
                                 data=canonical_json(ev.data if trim is None else trim(ev.type, ev.data)),
                                 prev_hash="", hash=""))
            self._seq[chain] = seq
        if rows:
            insert_rows(conn, _INSERT_EVENTS, rows)
            self.written += len(rows)
        return rows

    def batch_steps(self, db: Any, every: int = 100) -> None:
        """Commit `db`'s transactions in batches from now on (`StepBatch`); call it between transactions."""
        self.check_database(db)
        batch = StepBatch(every)
        dialect = db.engine.dialect  # this database's own dialect object: its commit and rollback, on every path
        dialect.do_commit = lambda conn: batch.commit(_driver(conn))  # (SQLAlchemy's and its pool's reset)
        dialect.do_rollback = lambda conn: batch.rollback(_driver(conn))
        db.steps_batched = batch
        db.hold_connection()  # one connection for every step, not one from the pool and back for each

    #: the indexes only the pages read (the inbox's queues, the auditors' searches, follow-ups): a simulation's
    #: steps never look anything up through them, so its in-memory database does without them
    PAGES_ONLY_INDEXES = ("ix_events_actor_case_id", "ix_events_type_case_id", "ix_events_at",
                          "ix_tasks_follow_up_at", "ix_tasks_candidate_users", "ix_tasks_assignee_due",
                          "ix_tasks_due_at", "ix_tasks_team_due")

    def lean_indexes(self, db: Any) -> None:
        """Drop `PAGES_ONLY_INDEXES` from `db` (in-memory only): every step then writes fewer b-trees."""
        self.check_database(db)
        with db.engine.begin() as conn:
            for name in self.PAGES_ONLY_INDEXES:
                conn.exec_driver_sql(f"DROP INDEX IF EXISTS {name}")

    def written_outside(self) -> None:
        """Rows were written by something other than the engine's steps (a copy of live cases, say): the event
        numbering and the next due timer are read from the database again."""
        self._seq = None
        self.due_floor, self.floor_known = None, False

    def timers_written(self, rows: list[dict[str, Any]]) -> None:
        """Lower `due_floor` to the earliest of the timer rows a step wrote."""
        from .clock import as_utc

        first = as_utc(min(r["due_at"] for r in rows))
        if self.floor_known and (self.due_floor is None or first < self.due_floor):
            self.due_floor = first


class StepBatch:
    """Each transaction on the database a savepoint in a longer transaction, committed every `every` of them.

    engine/db.py's BEGIN hook calls `begin`; the SQLAlchemy dialect's commit and rollback of this database call
    `commit` and `rollback` (set by `SimulationMode.batch_steps`). Only for simulation mode's in-memory database
    (see the module's text): nothing here is durable, and one connection sees every savepoint released."""

    SAVEPOINT = "carepath_step"

    def __init__(self, every: int = 100) -> None:
        if every < 1:
            raise ValueError("a batch holds at least one transaction")
        self.every = every
        self.depth = 0  # a step's savepoint open (0 or 1)
        self.released = 0  # transactions ended well
        self.commits = 0  # real COMMITs

    def begin(self, drv: Any) -> None:
        if self.depth:  # as without batches (SQLite: "cannot start a transaction within a transaction")
            raise StateError("simulation: a transaction was begun inside another on the database's one connection")
        if not drv.in_transaction:
            drv.execute("BEGIN IMMEDIATE")
        drv.execute(f"SAVEPOINT {self.SAVEPOINT}")
        self.depth += 1

    def commit(self, drv: Any) -> None:
        if self.depth == 0:  # nothing of a batch open: an ordinary commit
            drv.commit()
            return
        drv.execute(f"RELEASE {self.SAVEPOINT}")
        self.depth -= 1
        self.released += 1
        if self.depth == 0 and self.released % self.every == 0:
            drv.commit()
            self.commits += 1

    def rollback(self, drv: Any) -> None:
        """Undo the innermost open transaction only (never what earlier transactions of the batch released)."""
        if self.depth == 0:
            return
        drv.execute(f"ROLLBACK TO {self.SAVEPOINT}")
        drv.execute(f"RELEASE {self.SAVEPOINT}")
        self.depth -= 1


def _driver(conn: Any) -> Any:
    """The sqlite3 connection behind SQLAlchemy's pooled one."""
    return getattr(conn, "driver_connection", None) or conn
