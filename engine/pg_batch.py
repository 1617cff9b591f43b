"""PostgreSQL: a step's writes and its COMMIT in one round trip (psycopg 3 pipeline mode).

On SQLite every statement is a function call; on PostgreSQL each is a network round trip, and a step
ran about ten (the pool's ping, BEGIN, the read, the instance's save, the task rows, the history head
read under a lock, the events, the head's move, COMMIT). Here:

- `first`: the step's first read (the task, its instance, its case and the case's history head) goes
  out with the transaction's BEGIN in one pipeline: one round trip instead of two. The connection is
  put in psycopg's autocommit mode for the transaction so that psycopg does not send a BEGIN of its
  own; the explicit BEGIN keeps it one transaction (`reset` puts the mode back).
- `queue_writes` (called by `_Writes.flush`): the step's writes are not sent but queued, written as
  plain SQL with psycopg's own parameters (stable text, so psycopg prepares them after
  `prepare_threshold` uses on a connection). `commit` (called by `Database.transaction` when its block
  ends without error) sends them and COMMIT in one pipeline: one round trip and one durable commit.
  Any other statement run after a flush first sends the queue (`send_before`, a SQLAlchemy
  `before_cursor_execute` listener), so order is kept whatever runs after a flush.
- Since nothing can be checked between the writes and COMMIT, every check is made by the server
  before COMMIT runs: the instance's save sets `version` to NULL (NOT NULL: the statement fails) unless
  it is still the version the step read; the history head moves only from the value read with the
  instance (`seq` set to NULL otherwise); and events are unique on (chain, seq). A failed statement
  aborts the pipeline, COMMIT is never executed, the transaction is rolled back, and the step raises
  `ConflictError` with nothing saved (so does a deadlock's loser). A step's single chain uses the head
  read with the instance (no lock is taken before the write); a batch over several cases (the timer
  job) reads its heads under row locks first, as before, so one case moved by someone else does not
  fail the whole batch. The head's row is moved before its chain's events are inserted, as the locked
  read came first before, so two writers of one case never hold each other's row and index entry.

Statements per step and round trips: docs/performance.md, "One round trip per step on PostgreSQL".
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from psycopg import errors as pg_errors
from psycopg import pq
from psycopg.rows import namedtuple_row
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

from . import history
from .driver_sql import prepared
from .errors import ConflictError

if TYPE_CHECKING:
    from datetime import datetime

    from .step import _Writes

#: conn.info keys: the statements queued in this transaction; True once `first` opened it with its own BEGIN
_QUEUE = "carepath_pg_queue"
_OWN_BEGIN = "carepath_pg_begin"

_CONFLICT = ("this case changed while your change was being made (another request got there first); "
             "nothing was saved — reload and try again")

_SAVE_INSTANCE = ('UPDATE instances SET version = CASE WHEN version = %(expected)s THEN version + 1 END, '
                  'status = %(st)s, updated_at = %(now)s, state = %(state)s, state_format = %(fmt)s '
                  'WHERE id = %(iid)s')
_FINISH_INSTANCE = ('UPDATE instances SET version = CASE WHEN version = %(expected)s THEN version + 1 END, '
                    'status = %(st)s, updated_at = %(now)s, completed_at = %(now)s, state = NULL, data = %(data)s '
                    'WHERE id = %(iid)s')
_DROP_TASKS = "DELETE FROM tasks WHERE id = ANY(%(ids)s)"
_MOVE_TASK_DUE = "UPDATE tasks SET due_at = %(due)s WHERE id = %(tid)s"
_CLEAR_TIMERS = "DELETE FROM timers WHERE instance_id = ANY(%(ids)s)"
# by the instance's index, then the task (timers has no index on task_id: engine/step.py _DROP_TIMERS)
_DROP_TIMERS = "DELETE FROM timers WHERE instance_id = ANY(%(iids)s) AND task_id = ANY(%(ids)s)"
NAME_CASE = "UPDATE cases SET reference = %(ref)s WHERE id = %(cid)s"
_MOVE_HEAD = ('UPDATE chains SET seq = CASE WHEN seq = %(old)s THEN %(s)s END, hash = %(h)s '
              'WHERE chain = %(c)s')

#: a step's (or a batch's) events in one statement whatever their number: one array per column, stable text.
#: The arrays go in binary (`%b`): psycopg's text form escapes every element with a regular expression, 36 µs for
#: three events' JSON against 1 µs (docs/performance.md, "PostgreSQL: events in binary, and the ping kept")
_EVENT_COLUMNS = (("chain", "varchar"), ("seq", "bigint"), ("step", "bigint"), ("case_id", "bigint"),
                  ("instance_id", "bigint"), ("type", "varchar"), ("at", "varchar"), ("actor", "varchar"),
                  ("data", "text"), ("prev_hash", "varchar"), ("hash", "varchar"))
_INSERT_EVENTS = (f'INSERT INTO events ({", ".join(f"{chr(34)}{c}{chr(34)}" for c, _ in _EVENT_COLUMNS)}) '
                  f'SELECT * FROM unnest({", ".join(f"%({c})b::{t}[]" for c, t in _EVENT_COLUMNS)})')

def _driver(conn: Connection) -> Any:
    return conn.connection.driver_connection


def _sql(conn: Connection, stmt: Any, keys: Sequence[str]) -> tuple[str, dict[str, Any]]:
    """A SQLAlchemy statement as psycopg SQL text and the values bound in it, compiled once (engine/driver_sql.py
    `prepared`: the same cache as the statements run through the driver on SQLite)."""
    c = prepared(stmt, keys).compiled(conn.dialect)
    return c.sql, c.defaults


def first(conn: Connection, stmt: Any, params: dict[str, Any]) -> Any:
    """A statement whose answer the step needs now (its first read, an insert's new id), in one round
    trip with BEGIN when it opens the transaction and with whatever is queued before it.
    Returns its first row (attribute access, like SQLAlchemy's) or None."""
    drv = _driver(conn)
    sql, fixed = _sql(conn, stmt, list(params) if _is_insert(stmt) else [])
    cur = drv.cursor(row_factory=namedtuple_row)
    queued = conn.info.pop(_QUEUE, None) or []
    try:
        begin = drv.pgconn.transaction_status == pq.TransactionStatus.IDLE and not drv.autocommit
        if begin or queued:
            if begin:
                drv.autocommit = True  # psycopg sends no BEGIN of its own: ours goes with the statement
                conn.info[_OWN_BEGIN] = True
            with drv.pipeline():
                if begin:
                    drv.cursor().execute("BEGIN")
                _execute(drv.cursor(), queued)
                cur.execute(sql, {**fixed, **params})
        else:
            cur.execute(sql, {**fixed, **params})
        return cur.fetchone()
    except pg_errors.Error as exc:
        raise DBAPIError.instance(sql, params, exc, pg_errors.Error) from exc
    finally:
        cur.close()


def _is_insert(stmt: Any) -> bool:
    return bool(getattr(stmt, "is_insert", False))


def queue(conn: Connection, sql: str, params: Any, *, many: bool = False) -> None:
    conn.info.setdefault(_QUEUE, []).append((sql, params, many))


def queue_statement(conn: Connection, stmt: Any, params: dict[str, Any]) -> None:
    """A write whose answer nobody waits for (a SQLAlchemy statement, e.g. an INSERT of one row given as
    `params`), queued: it goes with the transaction's next statement or its COMMIT, not in a round trip of its
    own (the API's case access log, api/access.py `write_access`)."""
    sql, fixed = _sql(conn, stmt, list(params) if _is_insert(stmt) else [])
    queue(conn, sql, {**fixed, **params})


def queue_writes(conn: Connection, w: _Writes, now: datetime, *, lock: bool) -> None:
    """Queue one flush of a step's (or a timer batch's) writes; `commit` sends them with COMMIT."""
    from .state import STATE_FORMAT

    for row in w.save:
        queue(conn, _SAVE_INSTANCE, dict(row, fmt=STATE_FORMAT))
    for row in w.finish:
        queue(conn, _FINISH_INSTANCE, row)
    if w.drop_tasks:
        queue(conn, _DROP_TASKS, {"ids": list(w.drop_tasks)})
    if w.add_tasks:
        queue(conn, _insert("tasks", w.add_tasks[0]), w.add_tasks, many=True)
    if w.task_due:
        queue(conn, _MOVE_TASK_DUE, w.task_due, many=True)
    if w.clear_timers:
        queue(conn, _CLEAR_TIMERS, {"ids": list(w.clear_timers)})
    if w.drop_timers:
        queue(conn, _DROP_TIMERS, w.dropped_timers())
    if w.add_timers:
        queue(conn, _insert("timers", w.add_timers[0]), w.add_timers, many=True)
    if w.documents:
        queue(conn, _insert("documents", w.documents[0]), w.documents, many=True)
    groups = [g for g in w.events if g[2]]
    names = {g[0] for g in groups}
    # one case's step: the head read with its instance, moved only from that value; a batch: heads locked
    known = len(names) == 1 and next(iter(names)) in w.heads
    plan = history.plan_many(conn, now, groups, lock=lock and not known, known=w.heads if known else None)
    if plan is None:
        return
    rows, new_chains, moves = plan
    # the heads first: a step takes its case's head row before it writes any event of that chain, as the
    # locked read did before, so two writers of one case never hold each other's row and index entry
    if new_chains:
        queue(conn, _insert("chains", new_chains[0]), new_chains, many=True)
    if moves:
        queue(conn, _MOVE_HEAD, moves, many=True)
    queue(conn, _INSERT_EVENTS, {c: [r[c] for r in rows] for c, _ in _EVENT_COLUMNS})  # all rows, one statement


def _insert(table: str, row: dict[str, Any]) -> str:
    cols = list(row)
    return (f'INSERT INTO {table} ({", ".join(f"{chr(34)}{c}{chr(34)}" for c in cols)}) '
            f'VALUES ({", ".join(f"%({c})s" for c in cols)})')


def _execute(cur: Any, items: list[tuple[str, Any, bool]]) -> None:
    for sql, params, many in items:
        if many:  # one wait for all the rows, still inside the caller's pipeline (no Sync of its own)
            cur.executemany(sql, params)
        else:
            cur.execute(sql, params)


def _send(conn: Connection, *, commit: bool) -> None:
    items = conn.info.pop(_QUEUE, None) or []
    if not items and not commit:
        return
    drv = _driver(conn)
    cur = drv.cursor()
    sql: str | None = None
    try:
        with drv.pipeline():
            _execute(cur, items)
            if commit:
                sql = "COMMIT"
                cur.execute("COMMIT")
    except (pg_errors.NotNullViolation, pg_errors.UniqueViolation, pg_errors.DeadlockDetected) as exc:
        diag = exc.diag
        if isinstance(exc, pg_errors.DeadlockDetected) or (diag.table_name, diag.column_name) in (
                ("instances", "version"), ("chains", "seq")) or (
                diag.table_name in ("events", "chains") and isinstance(exc, pg_errors.UniqueViolation)):
            raise ConflictError(_CONFLICT) from exc  # lost a race with another writer: nothing was saved
        raise DBAPIError.instance(sql or "", None, exc, pg_errors.Error) from exc
    except pg_errors.Error as exc:
        raise DBAPIError.instance(sql or "", None, exc, pg_errors.Error) from exc
    finally:
        cur.close()


def commit(conn: Connection) -> None:
    """At the end of a write transaction: what is queued, and COMMIT, in one round trip (PostgreSQL).
    Nothing queued and no BEGIN of ours: SQLAlchemy commits as usual."""
    if conn.info.get(_QUEUE) or conn.info.get(_OWN_BEGIN):
        _send(conn, commit=True)


def send_before(conn: Connection, *_args: Any) -> None:
    """`before_cursor_execute`: a statement run after a flush in the same transaction goes after its writes."""
    if conn.info.get(_QUEUE):
        _send(conn, commit=False)


def reset(conn: Connection) -> None:
    """After the transaction (committed or rolled back): nothing left queued, psycopg's mode as it was."""
    conn.info.pop(_QUEUE, None)
    if conn.info.pop(_OWN_BEGIN, None) and not conn.invalidated:
        drv = _driver(conn)
        if not drv.closed:
            if drv.pgconn.transaction_status != pq.TransactionStatus.IDLE:
                drv.rollback()
            drv.autocommit = False


def before_commit(conn: Connection) -> None:
    """SQLAlchemy's `commit` event: writes still queued (a transaction not from `Database.transaction`)
    are sent before the commit, never dropped."""
    if conn.info.get(_QUEUE):
        _send(conn, commit=False)


def on_checkin(dbapi_conn: Any, record: Any) -> None:
    """The pool's `checkin`: a connection goes back with nothing queued and psycopg's mode as it was."""
    record.info.pop(_QUEUE, None)
    if record.info.pop(_OWN_BEGIN, None) and dbapi_conn is not None and not dbapi_conn.closed:
        if dbapi_conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            dbapi_conn.rollback()
        dbapi_conn.autocommit = False
