"""Shared fixtures: a fresh database per test on SQLite and (when available) PostgreSQL.

PostgreSQL tests need CAREPATH_TEST_POSTGRES_URL (`.ci/run` sets it); each test gets its own
schema, dropped afterwards. Without the variable they skip with that reason; with
CAREPATH_REQUIRE_POSTGRES=1 (CI) an unreachable server fails them instead.
"""

from __future__ import annotations

import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine

DIAGRAMS = Path(__file__).parent / "diagrams"
START = datetime(2031, 3, 3, 9, 0, tzinfo=timezone.utc)  # far from today: proves the wall clock is not read
PG_URL = os.environ.get("CAREPATH_TEST_POSTGRES_URL")
REQUIRE_PG = os.environ.get("CAREPATH_REQUIRE_POSTGRES") == "1"


def _pg_reachable() -> str | None:
    if not PG_URL:
        return "PostgreSQL tests skipped: set CAREPATH_TEST_POSTGRES_URL (e.g. postgresql://postgres@127.0.0.1/test)"
    try:
        import psycopg

        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except Exception as exc:  # report why, once
        return f"PostgreSQL at {PG_URL} is not reachable: {exc}"


_PG_PROBLEM = _pg_reachable()


class _SchemaDropper:
    """Drops the tests' finished PostgreSQL schemas on a background thread, in the order they finished.

    `DROP SCHEMA ... CASCADE` of a used schema takes 0.03-0.27 s of the server's time (its tables, indexes,
    functions and triggers, then a durable commit); the next test need not wait for it, as no test reads another
    test's schema. `pytest_sessionfinish` waits for the last drops."""

    _queue = None
    _thread = None

    @classmethod
    def drop(cls, schema: str) -> None:
        import queue
        import threading

        if cls._thread is None or not cls._thread.is_alive():
            cls._queue = queue.Queue()
            cls._thread = threading.Thread(target=cls._run, args=(cls._queue,), name="drop-test-schemas",
                                           daemon=True)
            cls._thread.start()
        cls._queue.put(schema)

    @staticmethod
    def _run(todo) -> None:
        import psycopg

        conn = None
        while (schema := todo.get()) is not None:
            try:
                if conn is None or conn.closed:
                    conn = psycopg.connect(PG_URL, autocommit=True)
                if not _SchemaPool.recycle(conn, schema):
                    conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            except Exception as exc:  # noqa: BLE001 - a schema left behind must not fail another test
                print(f"could not drop the test schema {schema}: {exc}")
                conn = None
            finally:
                todo.task_done()
        if conn is not None:
            _SchemaPool.drop_all(conn)
            conn.close()

    @classmethod
    def finish(cls, timeout: float = 120) -> None:
        """Wait for every queued drop (at most `timeout` seconds) and stop the thread."""
        if cls._thread is None:
            return
        cls._queue.put(None)
        cls._thread.join(timeout)
        cls._thread = None


class _SchemaPool:
    """Finished test schemas emptied and kept for the next test, instead of dropped and made again.

    Making a schema from the template's dump (37 tables, their indexes, functions and triggers) and dropping it
    afterwards took 0.3-0.5 s of the server's time for every PostgreSQL test. A finished schema whose structure
    is still exactly the template's (`FINGERPRINT`: every column with its type and default, constraint, index,
    trigger and function body) is emptied instead — every row deleted with the triggers off
    (`session_replication_role = replica`: the append-only triggers would refuse), the template's rows and
    sequence positions put back — and renamed into the pool, in one transaction on the background thread. A test
    still gets an empty schema of its own; `upgrade(db, "head")` on it (the `_schema_from_template` fixture)
    drops it and renames a pooled one to its name. A schema a test changed (a table added, a trigger disabled, a
    migration half run) does not match and is dropped as before."""

    FINGERPRINT = """
    SELECT md5(string_agg(x, '|' ORDER BY x)) FROM (
      SELECT 'col:' || c.relname || '.' || a.attname || ':' || format_type(a.atttypid, a.atttypmod) || ':'
             || a.attnotnull || ':' || coalesce(replace(pg_get_expr(d.adbin, d.adrelid), %(s)s || '.', ''), '') AS x
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
       WHERE n.nspname = %(s)s AND a.attnum > 0 AND NOT a.attisdropped
      UNION ALL SELECT 'rel:' || c.relname || ':' || c.relkind::text
        FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %(s)s
      UNION ALL SELECT 'con:' || c.conname || ':' || replace(pg_get_constraintdef(c.oid), %(s)s || '.', '')
        FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace WHERE n.nspname = %(s)s
      UNION ALL SELECT 'idx:' || replace(indexdef, %(s)s || '.', '') FROM pg_indexes WHERE schemaname = %(s)s
      UNION ALL SELECT 'trg:' || c.relname || '.' || t.tgname || ':' || t.tgenabled::text || ':' || t.tgtype::text
        FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
       WHERE n.nspname = %(s)s AND NOT t.tgisinternal
      UNION ALL SELECT 'fn:' || p.proname || ':' || md5(p.prosrc)
        FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = %(s)s
    ) q"""

    ready = None  # queue.Queue of pooled schema names
    template: tuple[str, list[str], list[str]] | None = None  # (fingerprint, tables, seed statements)
    recycled = 0

    @classmethod
    def learn(cls, conn, schema: str, name: str, dump: str) -> None:
        """Take the template's fingerprint from `schema`, just made from the dump of schema `name`."""
        import queue
        import re

        if cls.template is not None:
            return
        tables = re.findall(rf"^CREATE TABLE {re.escape(name)}\.(\w+) \(", dump, re.M)
        seeds = [line for line in dump.splitlines() if line.startswith(("INSERT INTO ", "SELECT pg_catalog.setval("))]
        cls.template = (cls.fingerprint(conn, schema), tables, [line.replace(f"{name}.", "{schema}.")
                                                                 for line in seeds])
        cls.ready = queue.Queue()

    @classmethod
    def fingerprint(cls, conn, schema: str) -> str:
        cur = conn.cursor() if hasattr(conn, "cursor") else conn
        return cur.execute(cls.FINGERPRINT, {"s": schema}).fetchone()[0]

    @classmethod
    def recycle(cls, conn, schema: str) -> bool:
        """Empty a finished schema into the pool (True), or leave it to be dropped (False)."""
        if cls.template is None or cls.ready is None:
            return False
        fingerprint, tables, seeds = cls.template
        if cls.fingerprint(conn, schema) != fingerprint:
            return False
        pooled = f"t_pool_{uuid.uuid4().hex[:12]}"
        quoted = f'"{schema}"'
        script = "\n".join(["SET lock_timeout = '5s';", "BEGIN;", "SET LOCAL session_replication_role = replica;",
                             *(f'DELETE FROM {quoted}."{t}";' for t in tables),
                             *(line.replace("{schema}", quoted) for line in seeds),
                             f'ALTER SCHEMA {quoted} RENAME TO "{pooled}";', "COMMIT;"])
        try:
            conn.execute(script)
        except Exception:  # noqa: BLE001 - a lock held by a test's lingering connection: drop it as before
            conn.execute("ROLLBACK")
            return False
        cls.ready.put(pooled)
        cls.recycled += 1
        return True

    @classmethod
    def take(cls) -> str | None:
        import queue

        if cls.ready is None:
            return None
        try:
            return cls.ready.get_nowait()
        except queue.Empty:
            return None

    @classmethod
    def drop_all(cls, conn) -> None:
        while (pooled := cls.take()) is not None:
            conn.execute(f'DROP SCHEMA IF EXISTS "{pooled}" CASCADE')


#: the tests' PostgreSQL sessions do not wait for each commit's WAL flush (fsync): a test asserts what was
#: committed, never that it survives a power cut, and the flush was a third of the PostgreSQL tests' time. The
#: product never sets this (docs/operations.md; bench/ measures PostgreSQL as shipped).
TEST_SESSION_SETTINGS = "-csynchronous_commit=off"


def _fresh_schema():
    """A PostgreSQL URL whose search_path is a fresh schema, dropped when the generator is closed."""
    if _PG_PROBLEM:
        if REQUIRE_PG:
            pytest.fail(_PG_PROBLEM)
        pytest.skip(_PG_PROBLEM)
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    base = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    yield f"{base}{sep}options={quote(f'-csearch_path={schema} {TEST_SESSION_SETTINGS}')}"
    _SchemaDropper.drop(schema)


@pytest.fixture
def pg_url():
    """A PostgreSQL URL whose search_path is a fresh schema for this test."""
    yield from _fresh_schema()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'carepath.db'}"
    return request.getfixturevalue("pg_url")


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def module_db_url(request, tmp_path_factory):
    """`db_url` shared by a module's tests: one database on SQLite, then one on PostgreSQL (pytest orders the
    module's tests by it, so each is built once a process). For a module whose tests read a world they
    build once and leave as they found it (e.g. tests/test_headers_and_refusals.py)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('module-db') / 'carepath.db'}"
    else:
        yield from _fresh_schema()


class Calls:
    """Handlers for the test diagrams, with a switch to make one fail."""

    def __init__(self) -> None:
        self.log: list[tuple[str, dict]] = []
        self.fail_budget = False

    def registry(self) -> HandlerRegistry:
        reg = HandlerRegistry()

        @reg.register("notify")
        def notify(ctx, message):
            self.log.append(("notify", {"message": message, "at": ctx.now}))
            return {"sent_at": ctx.now.isoformat(), "message": message}

        @reg.register("calculate_budget")
        def calculate_budget(ctx, points):
            self.log.append(("calculate_budget", {"points": points}))
            if self.fail_budget:
                raise RuntimeError("rates table unavailable")
            return {"amount": points * 400, "points": points}

        return reg


@pytest.fixture
def calls() -> Calls:
    return Calls()


@pytest.fixture
def made(monkeypatch):
    """The simulation runs a comparison makes itself (not taken as kept), as (days, seed), in order."""
    from carepath import simulate_compare

    runs: list[tuple[int, int]] = []
    real = simulate_compare._one_run

    def counted(scenario, rows, days, seed, start=False, inspect=None, parts=1, **more):
        runs.append((days, seed))
        return real(scenario, rows, days, seed, start, inspect, parts, **more)

    monkeypatch.setattr(simulate_compare, "_one_run", counted)
    return runs


@pytest.fixture
def make_engine(db_url, calls):
    """Build an initialised engine on a simulated clock with the test diagrams deployed."""
    made: list[Engine] = []

    def make(*diagrams: str, simulated: bool = True, forms: FormLibrary | None = None,
             url: str | None = None) -> Engine:
        eng = Engine(url or db_url, registry=calls.registry(), forms=forms or FormLibrary())
        eng.init(simulated_start=START if simulated else None)
        if diagrams:
            eng.deploy([DIAGRAMS / d for d in diagrams])
        made.append(eng)
        return eng

    yield make
    for eng in made:
        eng.db.dispose()


class _Templates:
    """What this test process copies a new database's schema from: a SQLite file migrated to the head
    revision, and the SQL text of a PostgreSQL schema migrated to the head revision (pg_dump)."""

    sqlite: Path | None = None
    postgres: tuple[str, str] | None = None  # (the template schema's name, its dump), "" if pg_dump failed


def _postgres_dump(migrations) -> tuple[str, str]:
    """Migrate a fresh PostgreSQL schema with Alembic and dump it (tables, sequences, functions, triggers,
    indexes, rows) as SQL; ("", "") when pg_dump is missing or fails (the migrations run instead)."""
    import shutil
    import subprocess

    import psycopg

    from engine.db import Database

    pg_dump = shutil.which("pg_dump")
    if not pg_dump:
        return "", ""
    schema = f"t_tpl_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_URL, autocommit=True) as c:
        c.execute(f'CREATE SCHEMA "{schema}"')
    try:
        base = PG_URL.replace("postgresql://", "postgresql+psycopg://", 1)
        sep = "&" if "?" in base else "?"
        template = Database(f"{base}{sep}options={quote(f'-csearch_path={schema}')}")
        migrations(template)
        template.engine.dispose()
        done = subprocess.run([pg_dump, f"--dbname={PG_URL}", f"--schema={schema}", "--no-owner",
                               "--no-privileges", "--no-comments", "--inserts"],
                              capture_output=True, text=True, timeout=60)
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as c:
            c.execute(f'DROP SCHEMA "{schema}" CASCADE')
    if done.returncode != 0:
        return "", ""
    # the statements only: no psql meta-commands, comments, session settings (search_path!) or CREATE SCHEMA
    kept = [line for line in done.stdout.splitlines()
            if not line.startswith(("\\", "--", "SET ", "SELECT pg_catalog.set_config(", "CREATE SCHEMA "))]
    return schema, "\n".join(kept)


@pytest.fixture(autouse=True, scope="session")
def _schema_from_template(tmp_path_factory):
    """Engine.init() on an empty database copies a schema this process migrated once.

    The Alembic migrations take 0.1-0.25 s of CPU on every new database, and on PostgreSQL 1.1-1.3 s
    of wall time (one round trip a statement), and every test makes at least one database. A copy is
    what those same migrations made: on SQLite page for page (SQLite's backup API); on PostgreSQL
    pg_dump's SQL of a migrated schema, run in the test's schema in one round trip (its pg_dump is
    the template's: tests/test_schema_templates.py).
    Only an upgrade to "head" of a database with no tables is copied: an upgrade to a named revision, a
    database with tables and engine/trial.py's own call run the migrations (tests/test_safety.py and
    tests/test_people_search*.py migrate step by step)."""
    import sqlite3

    from sqlalchemy import inspect, text

    import engine.migrate as migrate
    import engine.runtime as runtime
    from engine.db import Database

    migrations = runtime.upgrade

    def upgrade(db, revision: str = "head") -> None:
        if revision != "head" or db.dialect not in ("sqlite", "postgresql") or inspect(db.engine).get_table_names():
            return migrations(db, revision)
        if db.dialect == "postgresql":
            if _Templates.postgres is None:
                _Templates.postgres = _postgres_dump(migrations)
            name, dump = _Templates.postgres
            if not dump:
                return migrations(db, revision)
            with db.engine.begin() as conn:
                schema = conn.execute(text("SELECT current_schema()")).scalar_one()
                driver = conn.connection.driver_connection
                pooled = _SchemaPool.take()
                if pooled is not None:  # a finished test's schema, emptied (_SchemaPool): renamed to this one
                    driver.execute(f'DROP SCHEMA "{schema}"; ALTER SCHEMA "{pooled}" RENAME TO "{schema}"')
                    return None
                driver.execute(dump.replace(f"{name}.", f'"{schema}".'))
                _SchemaPool.learn(driver, schema, name, dump)
            return None
        if _Templates.sqlite is None:
            path = tmp_path_factory.mktemp("schema") / "migrated.db"
            template = Database(f"sqlite:///{path}")
            migrations(template)
            template.engine.dispose()
            _Templates.sqlite = path
        source = sqlite3.connect(_Templates.sqlite)
        try:
            with db.engine.connect() as conn:
                source.backup(conn.connection.driver_connection)
        finally:
            source.close()
        return None

    assert runtime.upgrade is migrate.upgrade
    runtime.upgrade = upgrade
    yield
    runtime.upgrade = migrations


@pytest.fixture(autouse=True, scope="session")
def _quick_password_hashing():
    """argon2id with the smallest cost in tests: the same algorithm and checks, a fraction of the time.

    The production parameters (argon2-cffi's defaults) are exercised by
    tests/test_api_auth.py::test_the_production_hasher_uses_argon2_defaults."""
    from argon2 import PasswordHasher

    import api.auth as auth

    production = auth._hasher
    auth._hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    yield
    auth._hasher = production


def pytest_sessionfinish(session, exitstatus):
    """Close the Chromium the browser tests shared in this process (tests/browser.py launch()), and wait for
    the last PostgreSQL schemas to be dropped."""
    from tests import browser

    browser.shutdown()
    _SchemaDropper.finish()


# ---------------------------------------------------------------- browser tests: one database each
#
# A test that drives pages in Chromium (it calls tests/browser.py's `launch()` or `live_server()`, or carries
# @pytest.mark.browser) and takes `db_url` / `module_db_url` runs on ONE of the two databases, not both: what
# it checks is the page (what a person sees, axe, the keyboard), and the database under each route is already
# exercised on both by the TestClient tests (the role x route matrix, the API and page tests). The database is
# picked from the test's name (CRC-32, even: SQLite, odd: PostgreSQL), so about half the journeys run on each and
# a test always runs on the same one; without a PostgreSQL configured (and not required) all run on SQLite.
# This halves the browser tests' share of the suite (docs/performance.md "The test suite's time").

_DB_PARAMS = ("db_url", "module_db_url")


def browser_database(name: str, with_postgres: bool | None = None) -> str:
    """The database a browser test named `name` runs on (`with_postgres`: whether one is configured or
    required; by default this process's settings)."""
    import zlib

    if not (with_postgres if with_postgres is not None else PG_URL is not None or REQUIRE_PG):
        return "sqlite"
    return "postgres" if zlib.crc32(name.encode()) % 2 else "sqlite"


_SOURCE_DRIVES_A_BROWSER: dict[Any, bool] = {}  # per test function: its parametrized items share the answer


def _drives_a_browser(item: pytest.Item) -> bool:
    import inspect

    if item.get_closest_marker("browser") is not None:
        return True
    function = getattr(item, "function", None)
    if function not in _SOURCE_DRIVES_A_BROWSER:
        try:
            source = inspect.getsource(function)  # type: ignore[arg-type]
        except (OSError, TypeError):
            source = ""
        _SOURCE_DRIVES_A_BROWSER[function] = "launch()" in source or "live_server(" in source
    return _SOURCE_DRIVES_A_BROWSER[function]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        db = next((params[p] for p in _DB_PARAMS if p in params), None)
        if db in ("sqlite", "postgres") and _drives_a_browser(item):
            name = getattr(item, "originalname", item.name)
            (kept if db == browser_database(name) else dropped).append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept
