"""`carepath backup` and `carepath restore` (issue 15, item 3): a whole database in one file, and back.

A backup file is an uncompressed tar of two members, in this order:

- `carepath-backup.json`, the manifest: format version, database kind (sqlite or postgresql), the carepath
  version and commit that made it, the migration head of the database, when it was taken, the number of
  history events, each hash chain's head, and the payload's size and SHA-256;
- the payload: for SQLite a copy made with SQLite's online backup API (`database.sqlite`, one read
  transaction, so a consistent picture while the server keeps writing; WAL or not, the copy is a single
  file), for PostgreSQL `pg_dump --format=custom` of the engine's schema (`database.pgdump`), taken in a
  snapshot exported from the transaction the manifest's figures are read in, so they describe the dump.

`restore` checks the file before touching anything (a missing, truncated, foreign or altered file, a newer
schema than this carepath knows, a backup of the other kind of database: a one-line error, exit 2), refuses
a target that holds anything unless `--force`, writes it (SQLite: the backup API again, page for page;
PostgreSQL: `pg_restore`'s script, renamed to the target's schema, run by `psql` in one transaction, so a
failure leaves the target as it was), then verifies what it wrote: every hash chain (engine/history.py's
`verify`, as `carepath audit verify`), the event count and every chain head against the manifest, and a
replay of a sample of cases (engine/replay.py, as `carepath replay`).

The wall clock is read by the caller (the command line) and given as `now`; nothing here reads it.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

from engine.db import resolve_url
from engine.schema import cases, chains, events

FORMAT = 1
MANIFEST = "carepath-backup.json"
PAYLOAD = {"sqlite": "database.sqlite", "postgresql": "database.pgdump"}
_CHUNK = 1 << 20


class BackupFileError(Exception):
    """The file cannot be used: missing, truncated, not a carepath backup, altered, or from a newer carepath."""


class RestoreRefused(Exception):
    """The restore would destroy something (a target that is not empty) and was not told to."""


class BackupFailed(Exception):
    """A database tool (pg_dump, pg_restore, psql) or the database itself failed."""


# ---------------------------------------------------------------------------- what the database holds
def _facts(conn: Any) -> dict[str, Any]:
    """The manifest's figures, read in the caller's transaction: migration head, counts, chain heads."""
    from sqlalchemy.exc import DBAPIError

    try:
        head = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        conn.execute(select(events.c.id).limit(1)).all()
    except DBAPIError:
        raise BackupFailed("the database holds no carepath tables (no migration version or history events): "
                           "is --db right? a new database is made with `carepath init`") from None
    return {"migration_head": head[0] if len(head) == 1 else None,
            "events": conn.execute(select(func.count()).select_from(events)).scalar_one(),
            "cases": conn.execute(select(func.count()).select_from(cases)).scalar_one(),
            "chains": {r.chain: {"seq": r.seq, "hash": r.hash}
                       for r in conn.execute(select(chains).order_by(chains.c.chain))}}


def carepath_version() -> dict[str, Any]:
    """The installed version and, when run from a git checkout, its commit."""
    from importlib import metadata

    try:
        version = metadata.version("carepath")
    except metadata.PackageNotFoundError:
        version = None
    commit = None
    try:
        done = subprocess.run(["git", "-C", str(Path(__file__).resolve().parent), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=10)
        if done.returncode == 0:
            commit = done.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        pass
    return {"version": version, "commit": commit}


def known_revisions() -> tuple[set[str], str]:
    """Every migration revision this carepath knows, and its head."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from engine.migrate import _HERE

    cfg = Config()
    cfg.set_main_option("script_location", str(_HERE))
    script = ScriptDirectory.from_config(cfg)
    return {r.revision for r in script.walk_revisions()}, script.get_current_head() or ""


# ---------------------------------------------------------------------------- PostgreSQL tools
def pg_tool(name: str, server_version_num: int) -> str:
    """The PostgreSQL client program `name` of the server's major version (CAREPATH_PG_BIN: a folder that
    holds it), else the one on PATH."""
    folders = [os.environ.get("CAREPATH_PG_BIN"), f"/usr/lib/postgresql/{server_version_num // 10000}/bin"]
    for folder in folders:
        if folder and (Path(folder) / name).is_file():
            return str(Path(folder) / name)
    found = shutil.which(name)
    if not found:
        raise BackupFailed(f"{name} is not installed: install the PostgreSQL {server_version_num // 10000} client "
                           "programs, or name their folder with CAREPATH_PG_BIN")
    return found


def pg_env(url: str) -> dict[str, str]:
    """The connection as libpq environment variables: nothing (the password above all) on a command line."""
    u = make_url(url)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    for var, value in (("PGHOST", u.host), ("PGPORT", u.port), ("PGUSER", u.username), ("PGPASSWORD", u.password),
                       ("PGDATABASE", u.database), ("PGSSLMODE", u.query.get("sslmode"))):
        if value not in (None, ""):
            env[var] = str(value)
    return env


def _pg_schema(conn: Any) -> str:
    """The schema the engine's tables are in: the first of the search path (it may not exist yet)."""
    current = conn.execute(text("SELECT current_schema()")).scalar()
    if current:
        return str(current)
    first = conn.execute(text("SHOW search_path")).scalar().split(",")[0].strip().strip('"')
    if first == "$user":
        first = conn.execute(text("SELECT current_user")).scalar()
    return str(first)


def _quote(ident: str) -> str:
    return '"' + ident.replace('"', '""') + '"'


# ---------------------------------------------------------------------------- backup
def backup(db_url: str | None, out: str | Path, *, now: datetime) -> dict[str, Any]:
    """Write a backup of the database at `db_url` to the new file `out`; returns its manifest."""
    url = resolve_url(db_url)
    kind = make_url(url).get_backend_name()
    if kind not in PAYLOAD:
        raise BackupFailed(f"cannot back up a {kind} database: carepath backs up SQLite and PostgreSQL")
    out = Path(out)
    if out.exists():
        raise BackupFileError(f"{out} already exists: give a new file name (a backup never overwrites a file)")
    if not out.parent.is_dir():
        raise BackupFileError(f"cannot write {out}: there is no folder {out.parent}")
    work = Path(tempfile.mkdtemp(prefix="carepath-backup-", dir=out.parent))
    try:
        payload = work / PAYLOAD[kind]
        facts = _backup_sqlite(url, payload) if kind == "sqlite" else _backup_postgres(url, payload)
        manifest = {"format": FORMAT, "kind": kind, "carepath": carepath_version(),
                    "created_at": now.isoformat(), **facts,
                    "payload": {"name": payload.name, "bytes": payload.stat().st_size, "sha256": _sha256(payload)}}
        partial = work / "backup.partial"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)  # personal data: the owner only
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            body = json.dumps(manifest, indent=2, sort_keys=True).encode()
            info = tarfile.TarInfo(MANIFEST)
            info.size, info.mode, info.mtime = len(body), 0o600, int(now.timestamp())
            tar.addfile(info, io.BytesIO(body))
            info = tarfile.TarInfo(payload.name)
            info.size, info.mode, info.mtime = payload.stat().st_size, 0o600, int(now.timestamp())
            with payload.open("rb") as f:
                tar.addfile(info, f)
            raw.flush()
            os.fsync(raw.fileno())
        os.link(partial, out)  # never replaces a file that appeared meanwhile
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _sqlite_path(url: str) -> Path:
    database = make_url(url).database
    if not database or database == ":memory:":
        raise BackupFailed("an in-memory SQLite database cannot be backed up or restored: name a file")
    return Path(database)


def _backup_sqlite(url: str, payload: Path) -> dict[str, Any]:
    path = _sqlite_path(url)
    if not path.is_file():
        raise BackupFailed(f"there is no database at {path}")
    src = sqlite3.connect(path, timeout=30)  # only read (ro mode cannot open a WAL database without its -shm)
    dst = sqlite3.connect(payload)
    try:
        # pages=-1: the whole database in one step, inside one read transaction. Under WAL the server's
        # writers carry on and the copy is the database as of the step's start, committed transactions only.
        src.backup(dst, pages=-1)
        dst.execute("PRAGMA journal_mode=DELETE")  # the copy is one self-contained file
    finally:
        src.close()
        dst.close()
    eng = create_engine(f"sqlite:///{payload}")
    try:
        with eng.connect() as conn:
            return {"schema": None, **_facts(conn)}
    finally:
        eng.dispose()


def _backup_postgres(url: str, payload: Path) -> dict[str, Any]:
    eng = create_engine(url, isolation_level="REPEATABLE READ")
    try:
        with eng.connect() as conn:
            conn.execute(text("SET TRANSACTION READ ONLY"))
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            schema = _pg_schema(conn)
            facts = _facts(conn)  # in the snapshot pg_dump reads: the manifest describes the dump
            version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
            cmd = [pg_tool("pg_dump", version), "--format=custom", f"--snapshot={snapshot}", f"--schema={schema}",
                   "--no-owner", "--no-privileges", f"--file={payload}"]
            done = subprocess.run(cmd, env=pg_env(url), capture_output=True, text=True)
            if done.returncode != 0:
                raise BackupFailed(f"pg_dump failed: {_first_error(done.stderr)}")
            conn.rollback()
    finally:
        eng.dispose()
    return {"schema": schema, "server_version_num": version, **facts}


def _first_error(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    return next((ln for ln in lines if "ERROR" in ln or "error" in ln), lines[0] if lines else "no message")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


# ---------------------------------------------------------------------------- reading a backup file
def read_backup(path: str | Path, staging: Path) -> tuple[dict[str, Any], Path]:
    """The manifest, and the payload extracted into `staging` and checked against it. Raises BackupFileError
    for any file that is not a whole, unaltered carepath backup this carepath can restore."""
    path = Path(path)
    if not path.is_file():
        raise BackupFileError(f"there is no backup file {path}")
    try:
        tar = tarfile.open(path, mode="r:")
    except (tarfile.TarError, OSError):
        raise BackupFileError(f"{path} is not a carepath backup (not a backup archive)") from None
    with tar:
        try:
            first = tar.next()
            if first is None or first.name != MANIFEST or not first.isfile() or first.size > 64 << 20:
                raise BackupFileError(f"{path} is not a carepath backup (no {MANIFEST} at its start)")
            raw = tar.extractfile(first)
            manifest = json.loads(raw.read()) if raw else None
        except (tarfile.TarError, OSError, ValueError):
            raise BackupFileError(f"{path} is not a carepath backup, or is truncated (its manifest cannot be "
                                  "read)") from None
        if not isinstance(manifest, dict) or "format" not in manifest or "kind" not in manifest:
            raise BackupFileError(f"{path} is not a carepath backup (its manifest has no format or kind)")
        if manifest["format"] != FORMAT:
            raise BackupFileError(f"{path} is a carepath backup of format {manifest['format']!r}; this carepath "
                                  f"reads format {FORMAT}: restore it with the carepath that made it")
        kind = manifest["kind"]
        if kind not in PAYLOAD or not isinstance(manifest.get("payload"), dict):
            raise BackupFileError(f"{path}: the manifest names an unknown database kind {kind!r}")
        check_schema(manifest, path)
        want = manifest["payload"]
        target = staging / PAYLOAD[kind]
        try:
            member = tar.next()
            if member is None or member.name != PAYLOAD[kind] or not member.isfile():
                raise BackupFileError(f"{path} is truncated: the database ({PAYLOAD[kind]}) is missing")
            src = tar.extractfile(member)
            h, size = hashlib.sha256(), 0
            with target.open("wb") as dst:
                while src is not None and (chunk := src.read(_CHUNK)):
                    h.update(chunk)
                    size += len(chunk)
                    dst.write(chunk)
        except (tarfile.TarError, OSError, EOFError):
            raise BackupFileError(f"{path} is truncated: the database in it ends early") from None
        if size != want.get("bytes"):
            raise BackupFileError(f"{path} is truncated: its database has {size} of {want.get('bytes')} bytes")
        if h.hexdigest() != want.get("sha256"):
            raise BackupFileError(f"{path} was altered or damaged: its database does not match the SHA-256 in "
                                  "its manifest")
    return manifest, target


def check_schema(manifest: dict[str, Any], path: Path | str) -> None:
    """Refuse a backup whose schema revision this carepath does not know (made by a newer carepath)."""
    revisions, head = known_revisions()
    rev = manifest.get("migration_head")
    if rev not in revisions:
        made = manifest.get("carepath") or {}
        by = " ".join(str(v) for v in (made.get("version"), (made.get("commit") or "")[:12]) if v)
        raise BackupFileError(f"{path} holds a database at schema revision {rev!r}, which this carepath (schema "
                              f"{head}) does not know: it was made by a newer carepath{f' ({by})' if by else ''}; "
                              "restore it with that version or later")


# ---------------------------------------------------------------------------- restore
@dataclass
class RestoreReport:
    manifest: dict[str, Any]
    target: str
    events_checked: int = 0
    findings: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    replays: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.findings and not self.mismatches and all(r["ok"] for r in self.replays)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "target": self.target, "backup_created_at": self.manifest.get("created_at"),
                "events_checked": self.events_checked, "chains": len(self.manifest.get("chains") or {}),
                "findings": self.findings, "mismatches": self.mismatches, "replays": self.replays,
                "notes": self.notes}

    def __str__(self) -> str:
        m = self.manifest
        chains_n = len(m.get("chains") or {})
        replayed_ok = sum(r["ok"] for r in self.replays)
        lines = [f"restored {self.target} from the backup taken {m.get('created_at')} "
                 f"({m.get('events')} events, {m.get('cases')} cases, {chains_n} chains)"]
        lines.append(f"  chains: {'intact' if not self.findings else 'ALTERED'}: {self.events_checked} events "
                     f"checked" + (f", {len(self.findings)} problem(s)" if self.findings else ""))
        lines += [f"    {f}" for f in self.findings[:20]]
        lines.append("  manifest: " + ("event count and every chain head match" if not self.mismatches
                                       else f"{len(self.mismatches)} MISMATCH(ES)"))
        lines += [f"    {x}" for x in self.mismatches[:20]]
        lines.append(f"  replay: {replayed_ok} of {len(self.replays)} sampled case(s) match")
        lines += [f"    case {r['case_id']}: {r['summary']}" for r in self.replays if not r["ok"]]
        lines += [f"  note: {n}" for n in self.notes]
        lines.append("PASS: the restored database verifies" if self.ok
                     else "FAIL: the restored database does NOT verify; do not put it into service")
        return "\n".join(lines)


def restore(path: str | Path, db_url: str | None, *, force: bool = False, sample: int = 20) -> RestoreReport:
    """Restore the backup file at `path` into the database at `db_url`, then verify it."""
    url = resolve_url(db_url)
    kind = make_url(url).get_backend_name()
    staging_parent = _sqlite_path(url).parent if kind == "sqlite" else None
    if staging_parent is not None and not staging_parent.is_dir():
        staging_parent = None  # made only once the file is known to be good
    staging = Path(tempfile.mkdtemp(prefix="carepath-restore-", dir=staging_parent))
    try:
        manifest, payload = read_backup(path, staging)
        if manifest["kind"] != kind:
            raise BackupFileError(f"{path} is a backup of a {manifest['kind']} database; --db names a {kind} "
                                  f"database: restore it into a {manifest['kind']} database")
        if kind == "sqlite":
            _restore_sqlite(payload, url, force)
        else:
            _restore_postgres(payload, manifest, url, force)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return verify_restored(url, manifest, sample=sample)


def _not_empty(where: str, tables: int, events_n: int | None) -> RestoreRefused:
    held = f"{events_n} history events" if events_n is not None else "no carepath history"
    return RestoreRefused(f"the target database {where} is not empty ({tables} tables, {held}): restoring would "
                          "replace it; give --force to overwrite it")


def _restore_sqlite(payload: Path, url: str, force: bool) -> None:
    path = _sqlite_path(url)
    path.parent.mkdir(parents=True, exist_ok=True)
    target = sqlite3.connect(path, timeout=30)
    try:
        tables = target.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
        if tables and not force:
            has_events = target.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'events'")
            n = target.execute("SELECT count(*) FROM events").fetchone()[0] if has_events.fetchone() else None
            raise _not_empty(str(path), tables, n)
        source = sqlite3.connect(payload)
        try:
            source.backup(target, pages=-1)  # page for page, under the target's write lock
        finally:
            source.close()
    finally:
        target.close()


_SCHEMA_LINE = re.compile(rb"^(CREATE SCHEMA |ALTER SCHEMA |COMMENT ON SCHEMA )")


def _restore_postgres(payload: Path, manifest: dict[str, Any], url: str, force: bool) -> None:
    eng = create_engine(url)
    try:
        with eng.connect() as conn:
            schema = _pg_schema(conn)
            version = int(conn.execute(text("SHOW server_version_num")).scalar_one())
            exists = conn.execute(text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
            tables = conn.execute(text("SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                                       "WHERE n.nspname = :s AND c.relkind IN ('r', 'p')"), {"s": schema}).scalar()
            n = None
            if tables and conn.execute(text("SELECT to_regclass(:t)"), {"t": f"{_quote(schema)}.events"}).scalar():
                n = conn.execute(text(f"SELECT count(*) FROM {_quote(schema)}.events")).scalar()
    finally:
        eng.dispose()
    if tables and not force:
        raise _not_empty(f"{make_url(url).render_as_string(hide_password=True)} (schema {schema})", tables, n)
    env = pg_env(url)
    source = manifest.get("schema") or "public"
    # Everything in one transaction: the old schema goes only if the whole backup goes in.
    prologue = (f"DROP SCHEMA IF EXISTS {_quote(schema)} CASCADE;\n" if exists else "") + \
        f"CREATE SCHEMA {_quote(schema)};\n"
    rename = re.compile(rb"(?<![\w\"$.])(" + re.escape(source.encode()) + rb"|" +
                        re.escape(_quote(source).encode()) + rb")\.")
    to = _quote(schema).encode() + b"."
    script = subprocess.Popen([pg_tool("pg_restore", version), "--no-owner", "--no-privileges", "--file=-",
                               str(payload)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    psql = subprocess.Popen([pg_tool("psql", version), "-X", "-q", "--single-transaction", "-v", "ON_ERROR_STOP=1",
                             "--file=-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, env=env)
    assert script.stdout is not None and psql.stdin is not None
    try:
        psql.stdin.write(prologue.encode())
        in_copy = False
        for line in script.stdout:
            if in_copy:  # table data: as it is
                if line == b"\\.\n":
                    in_copy = False
                psql.stdin.write(line)
                continue
            if _SCHEMA_LINE.match(line):
                continue  # the target's schema is made above, under its own name
            line = rename.sub(to, line)
            if line.startswith(b"COPY "):
                in_copy = True
            psql.stdin.write(line)
        psql.stdin.close()
    except BrokenPipeError:
        pass  # psql stopped at an error: reported below
    script_err = script.stderr.read().decode(errors="replace") if script.stderr else ""
    script.wait()
    psql_err = psql.stderr.read().decode(errors="replace") if psql.stderr else ""
    psql.wait()
    if script.returncode != 0:
        raise BackupFailed(f"pg_restore failed, nothing was changed: {_first_error(script_err)}")
    if psql.returncode != 0:
        raise BackupFailed(f"psql failed, nothing was changed: {_first_error(psql_err)}")
    # pg_restore leaves the planner without statistics: without them each chain's read in the verification
    # below may scan the events (1,267 s instead of about 100 s for a county year, docs/performance.md)
    eng = create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with eng.connect() as conn:
            for table in conn.execute(text("SELECT tablename FROM pg_tables WHERE schemaname = :s"),
                                      {"s": schema}).scalars().all():
                conn.execute(text(f"ANALYZE {_quote(schema)}.{_quote(table)}"))
    finally:
        eng.dispose()


# ---------------------------------------------------------------------------- verification
def sample_cases(case_ids: list[int], n: int) -> list[int]:
    """`n` cases spread evenly over the ids (the first and the last among them), the same every time."""
    ids = sorted(case_ids)
    if n <= 0 or not ids:
        return []
    if n >= len(ids):
        return ids
    if n == 1:
        return [ids[-1]]
    return sorted({ids[round(i * (len(ids) - 1) / (n - 1))] for i in range(n)})


def verify_restored(url: str, manifest: dict[str, Any], *, sample: int = 20) -> RestoreReport:
    """Every chain verified, the counts and heads compared with the manifest, a sample of cases replayed."""
    from engine import history
    from engine.replay import replay_case
    from engine.runtime import Engine

    eng = Engine(url)
    shown = eng.db.safe_url
    report = RestoreReport(manifest, shown)
    try:
        with eng.db.engine.connect() as conn:
            report.events_checked, findings = history.verify(conn)
            report.findings = [str(f) for f in findings]
            facts = _facts(conn)
            case_ids = list(conn.execute(select(cases.c.id)).scalars())
        for key in ("events", "cases", "migration_head"):
            if facts[key] != manifest.get(key):
                report.mismatches.append(f"{key}: {facts[key]} restored, {manifest.get(key)} in the manifest")
        want, got = manifest.get("chains") or {}, facts["chains"]
        for name in sorted(set(want) | set(got)):
            if want.get(name) != got.get(name):
                report.mismatches.append(f"chain {name}: head {got.get(name)} restored, {want.get(name)} in the "
                                         "manifest")
        _, head = known_revisions()
        if facts["migration_head"] != head:
            report.notes.append(f"the database is at schema revision {facts['migration_head']}, older than this "
                                f"carepath's {head}: run `carepath init` to upgrade it")
        for cid in sample_cases(case_ids, sample):
            try:
                r = replay_case(eng, cid)
                report.replays.append({"case_id": cid, "ok": r.ok, "summary": str(r).splitlines()[0]})
            except Exception as exc:  # noqa: BLE001 - a case that cannot be replayed is a failed check, reported
                report.replays.append({"case_id": cid, "ok": False, "summary": f"replay could not run: {exc}"})
    finally:
        eng.db.dispose()
    return report
