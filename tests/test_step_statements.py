"""A durable step costs a fixed, small number of SQL statements (issue 14, item 2).

The count is pinned, not a time: a change that adds a statement to every step (a re-read of what the
step already holds, an insert no longer batched, a lookup no longer cached) fails here and says which
statements a step now runs. See docs/performance.md, "A cheaper step".
"""

from __future__ import annotations

import re
import tempfile

import pytest
from sqlalchemy import event, func, select

from engine.forms import FormLibrary
from engine.history import case_chain
from engine.runtime import Engine
from engine.schema import cases, instances
from tests.conftest import DIAGRAMS, START

#: statements per step of one `three_tasks` instance (start + three completions), BEGIN/COMMIT aside.
#: The step reads the case's history head with its instance (SQLite: BEGIN IMMEDIATE serializes writers;
#: PostgreSQL: the head is moved only from the value read, checked by the server before COMMIT).
#: SQLite: a new case is named in its insert and a completed task's row becomes the next task's (one UPDATE for
#: a DELETE and an INSERT); every statement goes through the driver (engine/driver_sql.py), still seen by the
#: listener below. PostgreSQL's are counted on the wire (engine/pg_batch.py sends the writes past SQLAlchemy;
#: a step's events are one statement, one array per column).
EXPECTED = {
    "sqlite": {"start": 6, "complete 1": 5, "complete 2": 5, "complete 3": 5},
    "postgresql": {"start": 7, "complete 1": 6, "complete 2": 6, "complete 3": 5},
}
#: PostgreSQL: network round trips per step: the pool's ping, BEGIN + the first read (a start: + the new case),
#: (a start: the instance, which needs its id, with the naming of the case), the writes + COMMIT
ROUND_TRIPS = {"start": 4, "complete 1": 3, "complete 2": 3, "complete 3": 3}


class StatementLog:
    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        self.statements: list[tuple[str, bool]] = []
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
        self.statements.append((" ".join(statement.split())[:90], executemany))

    def take(self) -> list[tuple[str, bool]]:
        taken, self.statements = self.statements, []
        return taken


class WireLog:
    """What PostgreSQL's connections send, from libpq's own protocol trace of every connection of an engine.

    A round trip is a run of messages sent before the next reply is read: libpq sends a pipeline's
    statements as they are queued, and the server answers them only at its Sync, so a pipeline of any
    length is one run. Statements are the Bind/Execute pairs and simple queries, named by their SQL."""

    _PARSE = re.compile(r'^ "([^"]*)" "(.*)" \d+')

    def __init__(self, engine) -> None:  # type: ignore[no-untyped-def]
        from psycopg import pq

        self._pq = pq
        self.file = tempfile.TemporaryFile()
        self.named: dict[str, str] = {}
        self.unnamed = ""
        event.listen(engine, "connect", self._traced)
        engine.dispose()  # every connection from now on is traced from its start

    def _traced(self, dbapi_conn, _record) -> None:  # type: ignore[no-untyped-def]
        dbapi_conn.pgconn.trace(self.file.fileno())
        dbapi_conn.pgconn.set_trace_flags(self._pq.Trace.SUPPRESS_TIMESTAMPS | self._pq.Trace.REGRESS_MODE)

    def take(self) -> tuple[int, list[str]]:
        """(round trips, statements other than BEGIN, COMMIT and the pool's ping) since the last take."""
        self.file.flush()
        self.file.seek(0)
        lines: list[str] = []
        for line in self.file.read().decode(errors="replace").splitlines():
            if line[:2] in ("F\t", "B\t") or not lines:
                lines.append(line)
            else:  # a message whose text spans lines (SQL with newlines)
                lines[-1] += " " + line
        self.file.seek(0)
        self.file.truncate()
        trips, statements, last = 0, [], "B"
        for line in lines:
            direction, _length, kind, rest = (line.split("\t", 3) + ["", "", ""])[:4]
            if direction == "F" and last == "B":
                trips += 1
            last = direction if direction in ("F", "B") else last
            if direction != "F":
                continue
            if kind == "Parse" and (m := self._PARSE.match(rest)):
                if m.group(1):
                    self.named[m.group(1)] = m.group(2)
                else:
                    self.unnamed = m.group(2)
            elif kind == "Bind":
                name = rest.split('"')[3]
                statements.append(self.named.get(name, "?") if name else self.unnamed)
            elif kind == "Query":
                statements.append(rest.strip().strip('"'))
        shown = [" ".join(s.split())[:90] for s in statements if s.strip().upper() not in ("BEGIN", "COMMIT", ";", "")]
        return trips, shown


def _instance(eng, n: int):  # type: ignore[no-untyped-def]
    res = eng.start("three_tasks", data={"n": n})
    steps = [("start", res)]
    for i in range(3):
        res = eng.complete_task(res.ready_tasks[0]["id"], {"reason": f"step {i}"}, actor="worker")
        steps.append((f"complete {i + 1}", res))
    assert res.status == "completed"
    return steps


def test_each_step_of_a_three_task_process_runs_a_pinned_number_of_statements(make_engine):
    eng = make_engine("three_tasks.bpmn", simulated=False)  # the real clock, as in production
    if eng.db.is_postgres:
        _postgres_steps(eng)
        return
    _instance(eng, 0)  # the first instance builds the cached spec and reads the clock mode once
    log = StatementLog(eng.db.engine)
    counts, seen = {}, {}
    res = eng.start("three_tasks", data={"n": 1})
    counts["start"], seen["start"] = len(st := log.take()), st
    for i in range(3):
        res = eng.complete_task(res.ready_tasks[0]["id"], {"reason": f"step {i}"}, actor="worker")
        counts[f"complete {i + 1}"], seen[f"complete {i + 1}"] = len(st := log.take()), st
    assert res.status == "completed"
    detail = "\n".join(f"{k}:\n  " + "\n  ".join(f"{s}{' (executemany)' if m else ''}" for s, m in v)
                       for k, v in seen.items())
    assert counts == EXPECTED[eng.db.engine.dialect.name], detail
    # the history events of a step go in one batched statement
    for name, statements in seen.items():
        inserts = [m for s, m in statements if s.startswith("INSERT INTO events")]
        assert inserts == [True], f"{name}: {inserts}"
    # and what the fewer statements wrote is the whole, intact history
    history = eng.history(res.case_id)
    assert [e["type"] for e in history][:3] == ["case.created", "instance.started", "task.ready"]
    assert history[-1]["type"] == "instance.completed"
    assert eng.verify(res.case_id) == (len(history), [])


def _postgres_steps(eng) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL: statements and network round trips per step, counted on the wire."""
    wire = WireLog(eng.db.engine)
    for n in range(7):  # and psycopg has prepared every statement (after 5 uses on a connection)
        _instance(eng, n)
    wire.take()
    counts, trips, seen = {}, {}, {}
    res = eng.start("three_tasks", data={"n": 1})
    trips["start"], seen["start"] = wire.take()
    for i in range(3):
        res = eng.complete_task(res.ready_tasks[0]["id"], {"reason": f"step {i}"}, actor="worker")
        trips[f"complete {i + 1}"], seen[f"complete {i + 1}"] = wire.take()
    assert res.status == "completed"
    counts = {k: len(v) for k, v in seen.items()}
    detail = "\n".join(f"{k} ({trips[k]} round trips):\n  " + "\n  ".join(v) for k, v in seen.items())
    assert (counts, trips) == (EXPECTED["postgresql"], ROUND_TRIPS), detail
    for name, statements in seen.items():  # the events of a step go in one statement, after the head's row
        assert "chains" in statements[-2] and statements[-1].startswith("INSERT INTO events"), f"{name}: {detail}"
        assert [s for s in statements if s.startswith("INSERT INTO events")] == [
            next(s for s in statements if s.startswith("INSERT INTO events"))], f"{name}: {detail}"
    history = eng.history(res.case_id)
    assert history[-1]["type"] == "instance.completed"
    assert eng.verify(res.case_id) == (len(history), [])


def test_a_step_that_guessed_a_stale_history_head_fails_without_forking_the_chain(tmp_path, calls, monkeypatch):
    """The head a step read with its instance is moved only from that value: if anything moved it in
    between (here: a test that writes the chain head behind the engine's back), nothing is saved.
    SQLite only: PostgreSQL reads the head under a row lock at the end of the step, so no head is carried."""
    from sqlalchemy import update

    from engine.schema import chains
    from tests.conftest import START

    eng = Engine(f"sqlite:///{tmp_path / 'stale_head.db'}", registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
    res = eng.start("three_tasks")
    task_id = res.ready_tasks[0]["id"]
    before = eng.history(res.case_id)
    real_finish = type(eng)._finish

    def meddle(self, conn, *a, **kw):  # type: ignore[no-untyped-def]
        conn.execute(update(chains).where(chains.c.chain == case_chain(res.case_id))
                     .values(seq=chains.c.seq + 1))
        return real_finish(self, conn, *a, **kw)

    monkeypatch.setattr(type(eng), "_finish", meddle)
    with pytest.raises(RuntimeError, match="history chain head moved"):
        eng.complete_task(task_id, {"reason": "x"})
    monkeypatch.undo()
    assert eng.history(res.case_id) == before
    assert eng.verify(res.case_id)[1] == []
    eng.complete_task(task_id, {"reason": "x"})  # and the case carries on
    assert eng.verify(res.case_id)[1] == []
    eng.db.dispose()


def test_a_start_uses_a_version_deployed_by_another_process_after_it_cached_the_latest(make_engine, db_url, calls):
    """A start does not look the latest version up when it has it cached, yet never starts an old one."""
    eng = make_engine("three_tasks.bpmn")
    first = eng.start("three_tasks")  # reads and caches version 1
    assert eng.history(first.case_id)[1]["data"]["version"] == 1
    other = Engine(db_url, registry=calls.registry(), forms=FormLibrary())  # another server process
    try:
        text = (DIAGRAMS / "three_tasks.bpmn").read_bytes().replace(b'name="Record contact"',
                                                                     b'name="Record the contact"')
        assert [r.version for r in other.deploy(files={"three_tasks.bpmn": text})] == [2]
    finally:
        other.db.dispose()
    again = eng.start("three_tasks")
    started = eng.history(again.case_id)
    assert started[1]["type"] == "instance.started" and started[1]["data"]["version"] == 2
    assert again.ready_tasks[0]["name"] == "Record the contact"
    with eng.db.engine.connect() as conn:  # the start made again left nothing behind from its first try
        assert sorted(conn.execute(select(cases.c.id)).scalars()) == [first.case_id, again.case_id]
        assert conn.execute(select(func.count()).select_from(instances)).scalar() == 2
    assert eng.verify()[1] == []


def test_what_a_caller_does_with_the_ready_tasks_it_is_given_does_not_reach_the_next_step(make_engine):
    """The next step reuses the workflow (and its snapshot of ready tasks) this process saved; the ready
    tasks a step returns are copies, so a caller changing them changes nothing stored."""
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks")
    given = res.ready_tasks[0]
    given["id"], given["candidate_groups"][:] = "not-a-task", ["someone_else"]
    screen = eng.complete_task(eng.list_tasks(case_id=res.case_id)[0]["id"], {"reason": "x"})
    rows = eng.list_tasks(case_id=res.case_id)
    assert [(t["element_id"], t["candidate_groups"]) for t in rows] == [("screen", ["front_door"])]
    assert [t["id"] for t in screen.ready_tasks] == [rows[0]["id"]]
    left = [e["data"]["element_id"] for e in eng.history(res.case_id) if e["type"] == "task.left"]
    assert left == ["record_contact"]


def test_the_row_of_the_next_task_starts_empty_after_the_last_was_claimed_drafted_and_completed(make_engine):
    """On SQLite the row of a task that leaves is rewritten as the row of the task that arrives: nothing of the
    old one (who held it, its owner, a draft, its revision) may carry over."""
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks")
    first = res.ready_tasks[0]["id"]
    eng.claim(first, "alice")
    eng.delegate(first, "bob", actor="alice")
    eng.save_draft(first, {"reason": "half"}, actor="bob")
    eng.return_task(first, actor="bob")
    held = eng.get_task(first)
    assert (held["assignee"], held["owner"], held["draft"], held["revision"]) == ("alice", "alice",
                                                                                  {"reason": "half"}, 4)
    nxt = eng.complete_task(first, {"reason": "x"}, actor="alice").ready_tasks[0]["id"]
    rows = eng.list_tasks(case_id=res.case_id)
    assert [r["id"] for r in rows] == [nxt]
    row = rows[0]
    assert (row["element_id"], row["assignee"], row["owner"], row["draft"], row["revision"]) == (
        "screen", None, None, None, 0)
    assert row["candidate_groups"] == ["front_door"] and row["instance_id"] == res.instance_id
    assert row["created_at"] is not None and row["due_at"] is None
    assert eng.claim(nxt, "carol")["assignee"] == "carol"  # and it is a task like any other
    with pytest.raises(Exception, match="already completed"):
        eng.get_task(first)


def test_a_task_row_to_rewrite_that_is_not_there_is_inserted_instead(tmp_path, calls):
    """SQLite only (the rewrite is SQLite's): a leaving task whose row is already gone does not lose the row of
    the task that arrives."""
    from sqlalchemy import delete

    from engine.schema import tasks
    from engine.step import _reuse_task_rows
    from tests.conftest import START

    eng = Engine(f"sqlite:///{tmp_path / 'reuse.db'}", registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
    a, b = (eng.start("three_tasks").ready_tasks[0]["id"] for _ in range(2))
    with eng.db.engine.connect() as conn:
        rows = {r.id: dict(r._mapping) for r in conn.execute(select(tasks))}
    arriving = [dict(rows[a], id="00000000-0000-0000-0000-00000000000a"),
                dict(rows[b], id="00000000-0000-0000-0000-00000000000b")]
    for r in arriving:
        del r["owner"], r["draft"]
    with eng.db.transaction() as conn:
        conn.execute(delete(tasks).where(tasks.c.id == b))  # gone behind the step's back
        left, rest = _reuse_task_rows(conn, [a, b], arriving)
        assert left == [] and [r["id"] for r in rest] == [arriving[1]["id"]]
    with eng.db.engine.connect() as conn:
        assert sorted(conn.execute(select(tasks.c.id)).scalars()) == [arriving[0]["id"]]
    eng.db.dispose()


def test_a_statement_run_through_the_driver_is_inside_the_transaction_and_raises_as_core_does(tmp_path):
    """engine/driver_sql.py on SQLite: a statement on a connection with no transaction begins one, as Core
    would (so it is rolled back with it), and a driver error is SQLAlchemy's wrapped exception."""
    from sqlalchemy import create_engine, exc, insert

    from engine.driver_sql import Prepared
    from engine.schema import settings

    engine = create_engine(f"sqlite:///{tmp_path / 'driver.db'}")
    settings.create(engine)
    add = Prepared(insert(settings))
    with engine.connect() as conn:
        add.run(conn, {"key": "a", "value": "1"})
        assert conn.in_transaction()
        conn.rollback()
        assert conn.execute(select(func.count()).select_from(settings)).scalar() == 0
        add.run(conn, {"key": "a", "value": "1"})
        with pytest.raises(exc.IntegrityError):
            add.run(conn, {"key": "a", "value": "2"})
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.parametrize("meddle", ["head", "version"])
def test_on_postgresql_a_step_whose_head_or_version_moved_fails_before_its_commit(pg_url, calls, monkeypatch,
                                                                                 meddle):
    """PostgreSQL sends a step's writes and its COMMIT in one round trip (engine/pg_batch.py), so the
    checks are the server's: another writer moving the case's history head, or saving the instance,
    between the step's read and its commit makes a statement of the pipeline fail, COMMIT never runs, and
    nothing of the step is saved (no forked chain, no lost update)."""
    from sqlalchemy import update

    from engine.errors import ConflictError
    from engine.schema import chains
    from tests.conftest import START

    eng = Engine(pg_url, registry=calls.registry(), forms=FormLibrary())
    other = Engine(pg_url, registry=calls.registry(), forms=FormLibrary())  # another server process
    try:
        eng.init(simulated_start=START)
        eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
        res = eng.start("three_tasks")
        task_id = res.ready_tasks[0]["id"]
        before = eng.history(res.case_id)
        real_finish = type(eng)._finish
        step = (update(chains).where(chains.c.chain == case_chain(res.case_id)) if meddle == "head"
                else update(instances).where(instances.c.id == res.instance_id))
        column = chains.c.seq if meddle == "head" else instances.c.version

        def meddling(self, conn, *a, **kw):  # type: ignore[no-untyped-def]
            with other.db.engine.begin() as c2:  # committed while the step is between its read and its commit
                c2.execute(step.values({column: column + 1}))
            return real_finish(self, conn, *a, **kw)

        monkeypatch.setattr(type(eng), "_finish", meddling)
        with pytest.raises(ConflictError, match="nothing was saved"):
            eng.complete_task(task_id, {"reason": "x"})
        monkeypatch.undo()
        with other.db.engine.begin() as c2:  # put back what the other writer did
            c2.execute(step.values({column: column - 1}))
        assert eng.history(res.case_id) == before
        assert [t["id"] for t in eng.list_tasks(case_id=res.case_id)] == [task_id]
        assert eng.verify(res.case_id)[1] == []
        eng.complete_task(task_id, {"reason": "x"})  # and the case carries on
        assert eng.verify(res.case_id)[1] == []
    finally:
        eng.db.dispose()
        other.db.dispose()


@pytest.mark.postgres
def test_on_postgresql_steps_go_on_when_the_server_ended_the_pooled_connections(pg_url, calls):
    """A restart of PostgreSQL ends every connection in the pool: the next steps succeed on new ones (the pool's
    pre-ping finds each ended connection before the step uses it). A check of the socket alone, without the ping's
    round trip, was tried and let a step through on a connection the server was still ending (docs/performance.md,
    "PostgreSQL: events in binary, and the ping kept")."""
    import uuid

    from tests.test_session_check import _cut

    name = f"carepath-steps-{uuid.uuid4().hex[:8]}"
    eng = Engine(f"{pg_url}&application_name={name}", registry=calls.registry(), forms=FormLibrary())
    try:
        eng.init(simulated_start=START)
        eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
        held = [eng.db.engine.connect() for _ in range(3)]  # three connections wait in the pool from now on
        for conn in held:
            conn.exec_driver_sql("SELECT 1")
        for conn in held:
            conn.close()
        res = eng.start("three_tasks", data={"n": 1})
        for i in range(3):
            assert _cut(eng, name) >= 1  # as a restart, at once before each step: every connection ends
            res = eng.complete_task(res.ready_tasks[0]["id"], {"reason": f"step {i}"}, actor="worker")
        assert res.status == "completed"
        history = eng.history(res.case_id)
        assert history[-1]["type"] == "instance.completed" and eng.verify(res.case_id) == (len(history), [])
    finally:
        eng.db.dispose()


def test_the_timers_a_step_leaves_behind_are_deleted_through_the_instances_index_not_by_reading_every_timer(
        make_engine, db_url, monkeypatch):
    """Completing a task with boundary timers drops its timer rows. `timers` has no index on task_id: a delete by
    task id alone read the whole table at every such step (a county year's simulation, or a live database with
    every case's review timer). The rows go by the instance's index, and only the finished case's go."""
    from engine import pg_batch
    from engine.schema import timers

    eng = make_engine("deadline.bpmn")
    started = [eng.start("deadline") for _ in range(5)]  # two timers each: the reminder and the six weeks
    sent: list[tuple[str, dict]] = []
    if eng.db.is_postgres:  # the step's writes are queued past SQLAlchemy (engine/pg_batch.py)
        real_queue = pg_batch.queue

        def spy(conn, sql, params, *, many=False):  # type: ignore[no-untyped-def]
            if sql.startswith("DELETE FROM timers"):
                sent.append((sql, params))
            real_queue(conn, sql, params, many=many)

        monkeypatch.setattr(pg_batch, "queue", spy)
    else:
        def seen(conn, cursor, statement, parameters, context, executemany):  # type: ignore[no-untyped-def]
            if statement.startswith("DELETE FROM timers"):
                sent.append((statement, parameters[0] if executemany else parameters))

        event.listen(eng.db.engine, "before_cursor_execute", seen)
    done = started[2]
    eng.complete_task(done.ready_tasks[0]["id"], {"outcome": "independent"})
    monkeypatch.undo()
    with eng.db.engine.connect() as conn:
        left = conn.execute(select(timers.c.instance_id, func.count()).group_by(timers.c.instance_id)).all()
    assert dict(left) == {s.instance_id: 2 for s in started if s is not done}
    assert sent, "the step deleted no timer row"
    with eng.db.engine.connect() as conn:
        raw = conn.connection.driver_connection
        for sql, params in sent:
            if eng.db.is_postgres:
                cur = raw.cursor()
                cur.execute("SET enable_seqscan = off")  # a table this small would be scanned anyway: ask for
                cur.execute("EXPLAIN " + sql, params)  # the index, which a delete by task id alone cannot use
                plan = " ".join(r[0] for r in cur.fetchall())
                cur.execute("RESET enable_seqscan")
                assert "Seq Scan" not in plan and "ix_timers_instance_id" in plan, (sql, plan)
            else:
                plan = " ".join(r[3] for r in raw.execute("EXPLAIN QUERY PLAN " + sql, params).fetchall())
                assert "SCAN timers" not in plan and "ix_timers_instance_id" in plan, (sql, plan)
