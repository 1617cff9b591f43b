"""Database connection: SQLite (embedded default) or PostgreSQL (production, several processes).

Every change to a case runs in one transaction from `Database.transaction()`. On SQLite the
transaction starts with BEGIN IMMEDIATE so two writers never both read and then fight over
the upgrade to a write lock; on PostgreSQL row locks and optimistic versions keep several
server and worker processes correct.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, bindparam, create_engine, event, inspect, select
from sqlalchemy.engine import make_url

from . import pg_batch
from .errors import StateError
from .schema import settings

_SETTING = select(settings.c.value).where(settings.c.key == bindparam("key"))
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
        if self.dialect == "sqlite":
            _sqlite_setup(self, self.engine)
        else:  # a step's writes are queued and sent with its COMMIT (engine/pg_batch.py)
            event.listen(self.engine, "before_cursor_execute", pg_batch.send_before)
            event.listen(self.engine, "commit", pg_batch.before_commit)
            event.listen(self.engine, "checkin", pg_batch.on_checkin)

    @property
    def is_postgres(self) -> bool:
        return self.dialect == "postgresql"

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed at the end of the block, rolled back on any error."""
        with self.engine.connect() as conn:
            conn.info["carepath_write"] = True
            if self.simulation is not None:  # engine/history.py writes its events unchained
                conn.info["carepath_simulation"] = self.simulation
            try:
                with conn.begin():
                    yield conn
                    if self.is_postgres:
                        pg_batch.commit(conn)  # the queued writes and COMMIT in one round trip
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

    def dispose(self) -> None:
        self.engine.dispose()
