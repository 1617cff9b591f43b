"""Timers: firing what is due (the timer job) and moving a simulated clock.

`TimerOps` is mixed into `Engine` (engine/runtime.py). `fire_due_timers` takes instances with a timer
due in batches (`claim_due`: locked, skipping those another worker holds), one transaction per batch,
each instance one step (engine/step.py). `advance_clock` moves a simulated clock from due instant to
due instant, firing on the way.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, bindparam, or_, select, text

from . import history, messages
from .clock import as_utc
from .driver_sql import Prepared
from .errors import ClockError, ConflictError
from .history import Event
from .schema import cases, chains, instances, timers
from .step import _CASE_CHAIN, _CASE_COLUMNS, StepCore, _Writes
from .workflow_state import _due_timers

_LOAD_MANY = (select(instances, *_CASE_COLUMNS).join(cases, cases.c.id == instances.c.case_id)
              .outerjoin(chains, _CASE_CHAIN)
              .where(instances.c.id.in_(bindparam("ids", expanding=True))))


#: `advance_clock` gives up when the next due instant stays the same this many rounds (a timer re-armed at
#: its own instant, or rows that disagree with their workflows): a clear error instead of a hang
# the timer job's claim (TimerOps.claim_due), built once: `now` and `batch` are bound at each run
_CLAIM_DUE = (select(instances.c.id).join(timers, timers.c.instance_id == instances.c.id)
              .where(timers.c.due_at <= bindparam("now", type_=timers.c.due_at.type),
                     instances.c.status.in_(("running", "waiting")))
              .order_by(timers.c.due_at).limit(bindparam("batch")))  # due_at alone: read from its index
_CLAIM_DUE_LOCKED = _CLAIM_DUE.with_for_update(of=instances, skip_locked=True)
# the same claim for one instance: firing a failed batch's instances one transaction each
_CLAIM_ONE = _CLAIM_DUE.where(instances.c.id == bindparam("iid"))
_CLAIM_ONE_LOCKED = _CLAIM_DUE_LOCKED.where(instances.c.id == bindparam("iid"))
# the next instant a timer falls due: ORDER BY … LIMIT 1 rather than min(), read from the due_at index, not every
# timer row (the timer job asks after each run; a simulation at each move of its clock); built and compiled once
_NEXT_DUE = Prepared(select(timers.c.due_at.label("due_at")).join(instances, instances.c.id == timers.c.instance_id)
                     .where(or_(instances.c.status == "running", instances.c.status == "waiting"))  # no IN (…):
                     .order_by(timers.c.due_at).limit(1))  # an expanding list is new SQL at each run, not prepared


def _claim_statement(postgres: bool) -> Any:
    return _CLAIM_DUE_LOCKED if postgres else _CLAIM_DUE  # SQLite: BEGIN IMMEDIATE makes the batch the only writer


_MAX_SAME_INSTANT = 100

#: the channel on which (PostgreSQL) a step announces a timer due soon to the other processes' timer jobs
TIMER_CHANNEL = "carepath_timers"
_NOTIFY = text(f"SELECT pg_notify('{TIMER_CHANNEL}', :due)")
log = logging.getLogger("carepath.timers")


class _BatchFailed(Exception):
    """A timer batch was undone because one of its steps failed (the cause): `ids` are the instances taken."""

    def __init__(self, ids: list[int]) -> None:
        super().__init__(f"a timer batch of {len(ids)} instance(s) failed")
        self.ids = ids


class TimerOps(StepCore):
    """The timer operations of `Engine`."""

    #: a step that stores a timer due within this long of now announces it to other processes (PostgreSQL
    #: NOTIFY): their timer jobs look at the database at least every few seconds, so later ones they find
    #: themselves; announcing only these keeps NOTIFY (whose commit takes a database-wide lock) rare
    ANNOUNCE_WITHIN = timedelta(seconds=60)

    # ------------------------------------------------------------------ timers
    def on_timer_stored(self, listener: Callable[[datetime], None]) -> None:
        """Call `listener(due)` after a step in this process commits workflows holding timers, with the
        earliest due instant among them (the timer job uses it to wake up early: engine/worker.py)."""
        self.__dict__.setdefault("_timer_listeners", []).append(listener)

    @contextmanager
    def _tx(self) -> Iterator[Connection]:
        with super()._tx() as conn:
            saved = conn.info.get("carepath_saved")
            yield conn
        if saved:  # committed: tell this process's timer job, and the others if it falls due soon
            self._timers_stored(saved)

    def _timers_stored(self, saved: list[tuple[int, int, Any, dict[str, Any]]]) -> None:
        dues = [t["due_at"] for _iid, _v, _wf, after in saved for t in (after or {}).get("timer_rows", ())]
        if not dues:
            return
        first = as_utc(min(dues))
        for listener in self.__dict__.get("_timer_listeners", ()):
            listener(first)
        # a simulated clock moves only when advanced, and advancing fires what falls due itself
        if self.db.is_postgres and self.clock_mode() == "real" and first - self.now() < self.ANNOUNCE_WITHIN:
            try:
                with self.db.engine.connect() as conn:
                    conn.execute(_NOTIFY, {"due": first.isoformat()})
                    conn.commit()
            except Exception as exc:  # noqa: BLE001 - the others' timer jobs still find it when they next look
                log.warning("announcing a timer failed: %s", type(exc).__name__)

    def fire_due_timers(self, *, batch: int = 50, limit: int | None = None) -> int:
        """Fire every timer due by now, each exactly once; returns how many instances moved.

        A batch is one transaction, so one instance whose step fails (an error that is not an incident: a
        thrown message refused, a case check refusing the step, a conflict) would undo the whole batch, and,
        being the longest overdue, head every later claim: no other case's timer would fire again. So a
        failed batch is fired again one instance per transaction; an instance that fails alone is left as
        it was (its timers are tried again at the next run), logged by its id and the error's type, and left
        out of the rest of the run. Once every other due timer has fired, the first such error is raised."""
        moved, taken = 0, set()
        failed: dict[int, Exception] = {}
        while limit is None or moved < limit:
            try:
                ids, n = self._fire_batch(batch, skip=failed) if failed else self._fire_batch(batch)
            except _BatchFailed as bad:
                if self.simulation is not None:  # its workflows live in memory, already moved: no second try
                    raise bad.__cause__ from None  # type: ignore[misc]
                ids, n = bad.ids, self._fire_alone(bad.ids, failed, bad.__cause__)  # type: ignore[arg-type]
            moved += n
            if not ids or taken.intersection(ids):
                # An instance taken twice still had due rows after its step: they disagree with its workflow.
                # Going on would take the same rows again: stop (the next run tries again), never spin. A batch
                # that moved nothing (another worker fired those instances between our claim's snapshot and
                # our row locks) does not stop the run: the rows it healed are not taken again.
                break
            taken.update(ids)
        if failed:
            raise next(iter(failed.values()))
        return moved

    def _fire_alone(self, ids: list[int], failed: dict[int, Exception], error: Exception) -> int:
        """Fire a failed batch's instances one transaction each; those that fail again go into `failed`."""
        if len(ids) == 1:
            self._timer_step_failed(ids[0], error, failed)
            return 0
        moved = 0
        for iid in ids:
            try:
                with self._tx() as conn:
                    now = self.now(conn)
                    claim = _CLAIM_ONE_LOCKED if self.db.is_postgres else _CLAIM_ONE
                    # still due and not held by another worker (which may have fired it meanwhile)
                    if conn.execute(claim, {"now": now, "batch": 1, "iid": iid}).first() is not None:
                        moved += self._fire_instance(conn, now, iid)
            except Exception as exc:  # noqa: BLE001 - this instance's alone; raised once the others have fired
                self._timer_step_failed(iid, exc, failed)
        return moved

    @staticmethod
    def _timer_step_failed(iid: int, exc: Exception, failed: dict[int, Exception]) -> None:
        failed.setdefault(iid, exc)
        # the instance's number and the error's type only: an error's text may quote a case's data; a conflict (a
        # person completed a task of the case meanwhile) is routine, the next run reads the case as it now is
        log.log(logging.WARNING if isinstance(exc, ConflictError) else logging.ERROR,
                "the timer step of process instance %d failed (%s): nothing of it was saved, it is tried again at "
                "the next run; the other due timers fire", iid, type(exc).__name__)

    def claim_due(self, now: datetime, batch: int) -> Any:
        """The timer job's claim: up to `batch` running or waiting instances with a timer due by `now`, the
        longest overdue first, locked and skipping those another worker holds (`FOR UPDATE OF instances
        SKIP LOCKED` on PostgreSQL): two workers take disjoint batches and never wait on each other's rows.
        An instance with several due timers comes once per timer (the caller keeps the first)."""
        return _claim_statement(self.db.is_postgres).params(now=now, batch=batch)

    def _fire_batch(self, batch: int, skip: Collection[int] = ()) -> tuple[list[int], int]:
        """One transaction over up to `batch` instances with due timers, leaving out those in `skip` (their steps
        failed earlier in the run): (instances taken, instances moved). A step that fails undoes the batch and
        raises `_BatchFailed` naming the instances taken (the error itself is its cause)."""
        ids: list[int] = []
        try:
            with self._tx() as conn:
                now = self.now(conn)
                claim = _claim_statement(self.db.is_postgres)
                taken = conn.execute(claim, {"now": now, "batch": batch + len(skip)}).scalars()
                ids = [iid for iid in dict.fromkeys(taken) if iid not in skip][:batch]
                # The rows are locked (PostgreSQL) or the database is ours alone (SQLite's BEGIN IMMEDIATE),
                # so no other step can change these instances before the batch commits.
                w = _Writes(getattr(self.registry, "document_listeners", ()))
                rows = {r.id: r for r in conn.execute(_LOAD_MANY, {"ids": ids})} if ids else {}
                moved = sum(self._fire_instance(conn, now, iid, w, rows.get(iid)) for iid in ids)
                w.flush(conn, now, lock=self.db.is_postgres)
                messages.deliver_thrown(self, conn, now)  # what the batch's steps threw, now they are written
                return ids, moved
        except Exception as exc:
            if not ids:  # nothing was claimed (the database itself failed): nothing to try one by one
                raise
            raise _BatchFailed(ids) from exc

    def _fire_instance(self, conn: Connection, now: datetime, instance_id: int, w: _Writes | None = None,
                       row: Any = None) -> bool:
        """Fire what is due in one instance; False when nothing was (its rows were already out of date)."""
        row, wf = self._load(conn, instance_id, row)
        p = self._pending(now, row, wf)
        if not _due_timers(p.before, now):
            # Another worker fired it between our query's snapshot and our row lock (PostgreSQL's
            # READ COMMITTED): write nothing, only bring the timer rows back in line with the workflow.
            heal = w if w is not None else _Writes(getattr(self.registry, "document_listeners", ()))
            self._project_timers(p, p.before["timer_rows"], full=True, w=heal)
            if w is None:
                heal.flush(conn, now, lock=self.db.is_postgres)
            self._live[instance_id] = (row.version, wf)
            return False
        children = self._advance(conn, now, p, "system")
        self._finish(conn, now, [p] + children, "system", writes=w)
        return True

    def next_due(self) -> datetime | None:
        with self.db.engine.connect() as conn:
            row = _NEXT_DUE.first(conn, {})
        return as_utc(row.due_at) if row is not None else None

    def advance_clock(self, by: timedelta | None = None, *, to: datetime | None = None,
                      actor: str = "system") -> int:
        """Move a simulated clock forward, firing everything that falls due on the way, in order.

        In simulation mode (engine/simulation.py) the clock is held in memory, the database is asked for the
        next due timer only when one stored since the last look may fall due by `target`, and no
        `clock.advanced` event is written."""
        sim = self.simulation
        if sim is not None and self._sim_now is not None:
            start = self._sim_now
        else:
            with self.db.transaction() as conn:
                if self.clock_mode(conn) != "simulated":
                    raise ClockError("this database runs on the real clock; only a database created with a "
                                     "simulated clock (carepath init --simulated) can be advanced")
                start = self.now(conn)
        target = as_utc(to) if to is not None else start + (by or timedelta(0))
        if target < start:
            raise ClockError(f"the clock cannot go back (it is {start.isoformat()}, asked for {target.isoformat()})")
        moved, last, repeats = 0, None, 0
        while True:
            if sim is not None and sim.floor_known and (sim.due_floor is None or sim.due_floor > target):
                break  # no timer stored since the last look falls due by the target: nothing to ask
            nxt = self.next_due()
            if sim is not None:
                sim.due_floor, sim.floor_known = nxt, True
            if nxt is None or nxt > target:
                break
            repeats = repeats + 1 if nxt == last else 0
            if repeats >= _MAX_SAME_INSTANT:
                raise ClockError(f"advancing the clock stopped: timers kept falling due at {nxt.isoformat()} "
                                 f"{_MAX_SAME_INSTANT} times over without the clock moving on (the clock is "
                                 f"left at {nxt.isoformat()})")
            last = nxt
            with self.db.transaction() as conn:
                self._set_clock(conn, max(nxt, self.now(conn)))
            n = self.fire_due_timers()
            moved += n
            if n == 0:  # due rows that cannot fire (e.g. an instance in error) must not spin forever
                break
        if sim is not None:
            self._sim_now = target
            return moved
        with self.db.transaction() as conn:
            self._set_clock(conn, target)
            history.append(conn, history.SYSTEM_CHAIN, None, target, [Event("clock.advanced", {
                "from": history.iso(start), "to": history.iso(target), "instances_moved": moved}, actor=actor)],
                lock=self.db.is_postgres)
        return moved
