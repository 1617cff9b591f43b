"""Database connection: SQLite (embedded default) or PostgreSQL (production, several processes).

Every change to a case runs in one transaction from `Database.transaction()`. On SQLite the
transaction starts with BEGIN IMMEDIATE so two writers never both read and then fight over
the upgrade to a write lock; on PostgreSQL row locks and optimistic versions keep several
server and worker processes correct.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any
from urllib.request import pathname2url

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, inspect, select
from sqlalchemy.engine import make_url

from . import pg_batch
from .errors import StateError
from .schema import settings

_SETTING = select(settings.c.value).where(settings.c.key == bindparam("key"))
log = logging.getLogger(__name__)
DEFAULT_URL = "sqlite:///carepath.db"
ENV_VAR = "CAREPATH_DATABASE_URL"


def resolve_url(url: str | None) -> str:
    """The database URL from an explicit value, CAREPATH_DATABASE_URL, or the default SQLite file."""
    url = url or os.environ.get(ENV_VAR) or DEFAULT_URL
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        # psycopg 3 is the driver carepath installs
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


def _sqlite_setup(db: Database, engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL survives a killed process (not a power cut mid-checkpoint): documented trade-off
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if db.checkpointer is not None:  # a file: its WAL is copied back by a thread of its own, off the steps' path
            cur.execute(f"PRAGMA wal_autocheckpoint={WalCheckpointer.BACKSTOP_PAGES}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn):  # type: ignore[no-untyped-def]
        # Writers take the write lock up front; readers use a plain BEGIN, so under WAL they never
        # wait for a writer (nor make one wait). Straight to the driver: this runs in every step.
        if db.steps_batched is not None:  # simulation mode: a savepoint in a longer transaction (engine/simulation.py)
            db.steps_batched.begin(conn.connection.driver_connection)
            return
        sql = "BEGIN IMMEDIATE" if conn.info.get("carepath_write") else "BEGIN"
        conn.connection.driver_connection.execute(sql)


class WalCheckpointer:
    """Copies a SQLite file's write-ahead log back into the database in a thread of its own.

    SQLite's own automatic checkpoint runs inside the COMMIT of whichever write crosses 1,000 pages of log: that
    step then copies the log into the file and waits for the disk (an fsync) — a fifth of a step's time on
    average (docs/performance.md, "The checkpoint off the step's path"). Here every `EVERY` write transactions
    start one PASSIVE checkpoint on a short-lived thread with its own connection: it never blocks a writer or a
    reader, and the writes go on meanwhile. The automatic checkpoint stays as a backstop at `BACKSTOP_PAGES`
    (about 40 MB of log): passive checkpoints rarely copy the whole log while writes go on, so the log restarts
    from its beginning when the backstop's checkpoint, in a commit, finishes it. Durability is unchanged: with WAL and
    `synchronous=NORMAL` a commit is in the log before it returns, and a checkpoint (whoever runs it) copies
    committed pages only. Counting commits, not time: nothing here reads a clock.
    """

    EVERY = 128
    BACKSTOP_PAGES = 10_000

    def __init__(self, path: str) -> None:
        self.path = os.path.abspath(path)  # as the first connection found it, whatever the directory later
        self._lock = threading.Lock()
        self._commits = 0
        self._thread: threading.Thread | None = None
        self.runs = 0  # checkpoints started (tests and benchmarks read it)

    def committed(self) -> None:
        with self._lock:
            self._commits += 1
            if self._commits < self.EVERY or (self._thread is not None and self._thread.is_alive()):
                return
            self._commits = 0
            self.runs += 1
            self._thread = threading.Thread(target=self._checkpoint, name="carepath-wal-checkpoint", daemon=True)
            self._thread.start()

    def _checkpoint(self) -> None:
        try:
            # mode=rw: a file removed meanwhile is an error here, never a new empty database
            conn = sqlite3.connect(f"file:{pathname2url(self.path)}?mode=rw", uri=True, timeout=0,
                                   isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            finally:
                conn.close()
        except sqlite3.Error as exc:  # busy or gone: the next one (or the backstop) copies what this did not
            log.debug("WAL checkpoint not run: %s", type(exc).__name__)

    def join(self) -> None:
        thread = self._thread
        if thread is not None:
            thread.join()


class Database:
    """One database: its engine, its dialect and its transactions."""

    def __init__(self, url: str | None = None, *, echo: bool = False) -> None:
        self.url = resolve_url(url)
        parsed = make_url(self.url)
        self.dialect = parsed.get_backend_name()
        # hide_parameters: a database error's text (logged, shown in a traceback) never carries the statement's
        # values, which are a person's notes, names and answers (docs/security.md, "Logs")
        kwargs: dict = {"echo": echo, "future": True, "hide_parameters": True}
        if self.dialect == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = create_engine(self.url, **kwargs)
        self._initialised = False
        #: engine/simulation.py's SimulationMode when an Engine runs this (in-memory) database in simulation mode
        self.simulation: object | None = None
        #: simulation mode's StepBatch (engine/simulation.py): each transaction a savepoint, committed in batches
        self.steps_batched: Any = None
        #: simulation mode: (thread id, connection) kept open for that thread's transactions (`hold_connection`)
        self.held: tuple[int, Connection] | None = None
        #: a SQLite file's checkpoints, run beside the steps (an in-memory database has no log to copy)
        self.checkpointer: WalCheckpointer | None = None
        if self.dialect == "sqlite" and parsed.database and parsed.database != ":memory:" \
                and not parsed.database.startswith("file:"):
            self.checkpointer = WalCheckpointer(parsed.database)
        if self.dialect == "sqlite":
            _sqlite_setup(self, self.engine)
        else:  # a step's writes are queued and sent with its COMMIT (engine/pg_batch.py)
            event.listen(self.engine, "before_cursor_execute", pg_batch.send_before)
            event.listen(self.engine, "commit", pg_batch.before_commit)
            event.listen(self.engine, "checkin", pg_batch.on_checkin)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    def hold_connection(self) -> None:
        """Keep one connection open for this thread's transactions from now on, instead of one taken from the pool
        and given back for each (simulation mode's in-memory database, one thread stepping: engine/simulation.py
        `batch_steps`); `dispose` closes it."""
        self.held = (threading.get_ident(), self.engine.connect())

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed at the end of the block, rolled back on any error."""
        held = self.held
        if held is not None and held[0] == threading.get_ident():
            if held[1].in_transaction():  # as with a connection from the pool (engine/simulation.py StepBatch)
                raise StateError("simulation: a transaction was begun inside another on the database's one connection")
            use: Any = nullcontext(held[1])
        else:
            use = self.engine.connect()
        with use as conn:
            conn.info["carepath_write"] = True
            if self.simulation is not None:  # engine/history.py writes its events unchained
                conn.info["carepath_simulation"] = self.simulation
            try:
                with conn.begin():
                    yield conn
                    if self.is_postgres:
                        pg_batch.commit(conn)  # the queued writes and COMMIT in one round trip
                if self.checkpointer is not None:  # a file (simulation's batches are in memory: none)
                    self.checkpointer.committed()
            finally:
                conn.info.pop("carepath_write", None)
                conn.info.pop("carepath_appended", None)  # engine/history.py: chains appended to in it
                conn.info.pop("carepath_simulation", None)
                if self.is_postgres:
                    pg_batch.reset(conn)

    def for_update(self, stmt, *, skip_locked: bool = False):  # type: ignore[no-untyped-def]
        """Row locks where the database has them; SQLite's BEGIN IMMEDIATE already serializes writers."""
        if self.is_postgres:
            return stmt.with_for_update(skip_locked=skip_locked)
        return stmt

    def get_setting(self, conn: Connection, key: str) -> str | None:
        return conn.execute(_SETTING, {"key": key}).scalar_one_or_none()

    def require_initialised(self, conn: Connection) -> None:
        if self._initialised:
            return
        if not inspect(conn).has_table("settings") or self.get_setting(conn, "schema") is None:
            raise StateError(f"the database {self.safe_url} is not initialised: run `carepath init` first")
        self._initialised = True

    @property
    def safe_url(self) -> str:
        return make_url(self.url).render_as_string(hide_password=True)

    def truncate_log(self) -> None:
        """SQLite: copy the whole write-ahead log into the file and empty it (after the checkpointer's run, if one
        is going, which would otherwise make this one busy). A reader still in the log can keep parts of it."""
        if self.is_postgres:
            return
        if self.checkpointer is not None:
            self.checkpointer.join()
        with self.engine.connect() as conn:
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")

    def dispose(self) -> None:
        held, self.held = self.held, None
        if held is not None:
            held[1].close()
        if self.checkpointer is not None:
            self.checkpointer.join()
        self.engine.dispose()
