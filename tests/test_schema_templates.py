"""The suite's schema templates (tests/conftest.py _schema_from_template) give a new database exactly
what the Alembic migrations give it: the same tables, columns, indexes, triggers, functions, sequences
and rows, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import text

import engine.runtime as runtime
from engine.db import Database
from engine.migrate import upgrade as migrations


def _sqlite_schema(db: Database) -> tuple[list, dict]:
    with db.engine.connect() as conn:
        objects = sorted(tuple(r) for r in conn.execute(text(
            "SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name")))
        rows = {name: sorted(tuple(map(repr, r)) for r in conn.execute(text(f'SELECT * FROM "{name}"')))
                for kind, name, _t, _s in objects if kind == "table"}
    return objects, rows


def _postgres_schema(db: Database) -> str:
    """pg_dump of the database's schema, its name replaced by SCHEMA and the comments left out."""
    import shutil
    import subprocess

    from tests.conftest import PG_URL

    pg_dump = shutil.which("pg_dump")
    if not pg_dump:
        pytest.fail("pg_dump is missing (postgresql-client): the PostgreSQL template cannot be compared")
    with db.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    out = subprocess.run([pg_dump, f"--dbname={PG_URL}", f"--schema={schema}", "--no-owner", "--no-privileges",
                          "--no-comments", "--inserts"], capture_output=True, text=True, check=True).stdout
    return "\n".join(line.replace(schema, "SCHEMA") for line in out.splitlines()
                     if not line.startswith(("\\", "--")))


def test_a_new_database_from_the_template_is_the_migrated_one(db_url, tmp_path, request):
    assert runtime.upgrade is not migrations, "Engine.init() does not use the template (tests/conftest.py)"
    copied = Database(db_url)
    runtime.upgrade(copied)  # what Engine.init() runs on an empty database
    if copied.dialect == "sqlite":
        migrated = Database(f"sqlite:///{tmp_path / 'migrated.db'}")
    else:
        migrated = Database(request.getfixturevalue("pg_url"))  # a second fresh schema
    migrations(migrated)
    try:
        describe = _sqlite_schema if copied.dialect == "sqlite" else _postgres_schema
        want, got = describe(migrated), describe(copied)
        assert got == want
        assert "alembic_version" in str(want) and "TRIGGER" in str(want).upper()  # the comparison saw the schema
    finally:
        copied.engine.dispose()
        migrated.engine.dispose()


def test_a_database_with_tables_or_a_named_revision_is_migrated(tmp_path):
    """The template is only for an empty database upgraded to the head revision."""
    db = Database(f"sqlite:///{tmp_path / 'steps.db'}")
    try:
        runtime.upgrade(db, "0006")
        with db.engine.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0006"
        runtime.upgrade(db)
        with db.engine.connect() as conn:
            head = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
        assert head != "0006" and head.startswith("00")
    finally:
        db.engine.dispose()


@pytest.mark.postgres
def test_a_used_schema_emptied_into_the_pool_is_the_migrated_one_and_a_changed_one_is_not_pooled(pg_url, request):
    """tests/conftest.py _SchemaPool: a finished test's schema, with cases, events and moved sequences in it, is
    emptied into the pool and comes back exactly as the migrations make a new one (pg_dump: tables, triggers,
    rows, sequence positions); a schema whose structure a test changed is left to be dropped."""
    import psycopg

    from engine.forms import FormLibrary
    from engine.registry import HandlerRegistry
    from engine.runtime import Engine
    from tests.conftest import PG_URL, START, _SchemaPool

    eng = Engine(pg_url, registry=HandlerRegistry(), forms=FormLibrary())
    eng.init(simulated_start=START)  # learns the template's fingerprint if this process had not yet
    eng.create_case("Ada Example", {"person": {"name": "Ada Example"}})
    with eng.db.engine.connect() as conn:
        schema = conn.execute(text("SELECT current_schema()")).scalar_one()
    eng.db.dispose()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        assert _SchemaPool.recycle(conn, schema)
        pooled = _SchemaPool.take()
        assert pooled is not None and pooled.startswith("t_pool_")
        conn.execute(f'ALTER SCHEMA "{pooled}" RENAME TO "{schema}"')  # back under the fixture's name (dropped)
    reused, migrated = Database(pg_url), Database(request.getfixturevalue("pg_url"))
    migrations(migrated)
    try:
        assert _postgres_schema(reused) == _postgres_schema(migrated)
        with reused.engine.begin() as conn:
            conn.execute(text("CREATE TABLE extra (x int)"))  # a test that changes the structure
    finally:
        reused.engine.dispose()
        migrated.engine.dispose()
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        assert not _SchemaPool.recycle(conn, schema)


def test_upgrades_in_two_threads_at_once_take_turns():
    """Alembic's context is one per process: a simulation's scratch engine and a draft's trial run upgrading at the
    same moment in two threads must not find each other's (engine/migrate.py `_UPGRADING`)."""
    import threading

    from sqlalchemy import inspect

    errors: list[str] = []
    dbs: list[Database] = []

    def upgrade_some() -> None:
        for _ in range(6):
            db = Database("sqlite://")
            dbs.append(db)
            try:
                migrations(db)
                if "simulation_ahead" not in inspect(db.engine).get_table_names():  # (this thread's connection)
                    errors.append("a database left without its tables")
            except Exception as exc:  # noqa: BLE001 - what the other thread's upgrade did to this one
                errors.append(f"{type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=upgrade_some) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    try:
        assert errors == [] and len(dbs) == 12
    finally:
        for db in dbs:
            db.dispose()
