"""Backup and restore of a county-year database (issue 15, item 3): `carepath backup` and `carepath restore`'s
phases, timed.

    .venv/bin/python -m bench.backup_bench --sqlite /tmp/measures-first-county.db
    .venv/bin/python -m bench.backup_bench --pg postgresql://postgres@127.0.0.1:5432/test \\
        --pg-schema measures_first_county

The source is only read: a SQLite file is first copied (not measured) and the copy backed up; a PostgreSQL
schema is dumped (pg_dump in a read-only snapshot) and restored into a new schema of this run's, dropped at
the end. A county year is what bench/county_db.py builds (about 1,000,000 events in some 45,000 cases).

Phases: backup (the whole of carepath/backup.py's `backup`: the copy or pg_dump, the manifest's figures,
the SHA-256, the tar); restore's read (the payload extracted and checked against the manifest); restore's
write (SQLite's backup API into a new file; pg_restore | psql in one transaction); verify (every chain,
the count and heads against the manifest); replay of --replay cases spread over the case numbers. Each
phase's wall time, this process's CPU time and the CPU time of the PostgreSQL client programs it ran
(pg_dump, pg_restore, psql; the server's own work is in wall time only), with the load average at its start.
Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bench.run import machine
from carepath import backup

ROOT = Path(__file__).resolve().parent.parent


class Phases:
    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []

    def run(self, name: str, fn: Any) -> Any:
        load = os.getloadavg()[0]
        me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        t = time.perf_counter()
        value = fn()
        wall = time.perf_counter() - t
        me2, kids2 = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        row = {"phase": name, "wall_s": round(wall, 2),
               "cpu_s": round(me2.ru_utime + me2.ru_stime - me.ru_utime - me.ru_stime, 2),
               "tools_cpu_s": round(kids2.ru_utime + kids2.ru_stime - kids.ru_utime - kids.ru_stime, 2),
               "load_1min": round(load, 2)}
        self.rows.append(row)
        print(f"  {name:<28} wall {row['wall_s']:>8.2f} s  cpu {row['cpu_s']:>8.2f} s  tools cpu "
              f"{row['tools_cpu_s']:>7.2f} s  (load {row['load_1min']})", flush=True)
        return value


def _restore_phases(phases: Phases, file: Path, url: str, sample: int, staging: Path) -> dict[str, Any]:
    from engine.replay import replay_case
    from engine.runtime import Engine

    manifest, payload = phases.run("restore: read and check", lambda: backup.read_backup(file, staging))
    if manifest["kind"] == "sqlite":
        phases.run("restore: write", lambda: backup._restore_sqlite(payload, url, False))
    else:
        phases.run("restore: write", lambda: backup._restore_postgres(payload, manifest, url, False))
    payload.unlink()
    report = phases.run("restore: verify chains+heads", lambda: backup.verify_restored(url, manifest, sample=0))
    eng = Engine(url)
    try:
        with eng.db.engine.connect() as conn:
            from sqlalchemy import select

            from engine.schema import instances

            # bench/county_db.py's copies are history rows only (no instance rows to compare a replay with):
            # the sample is drawn from the cases the engine ran, as in a real database every case
            ran = list(conn.execute(select(instances.c.case_id).distinct()).scalars())
            ids = backup.sample_cases(ran, sample)
        reports = phases.run(f"restore: replay {len(ids)} cases", lambda: [replay_case(eng, c) for c in ids])
    finally:
        eng.db.dispose()
    return {"events_checked": report.events_checked, "findings": len(report.findings),
            "mismatches": report.mismatches, "chains": len(manifest["chains"]), "events": manifest["events"],
            "cases": manifest["cases"], "cases_with_instances": len(ran),
            "replayed": len(reports), "replays_ok": sum(r.ok for r in reports),
            "replay_failures": [str(r).splitlines()[0] for r in reports if not r.ok][:5]}


def bench_sqlite(source: Path, sample: int, work: Path) -> dict[str, Any]:
    copy = work / "county.db"
    print(f"SQLite: copying {source} ({source.stat().st_size / 1e9:.2f} GB) to {copy} (not measured)", flush=True)
    shutil.copyfile(source, copy)
    phases = Phases()
    file = work / "county-backup.tar"
    phases.run("backup", lambda: backup.backup(f"sqlite:///{copy}", file, now=datetime.now(timezone.utc)))
    size = file.stat().st_size
    copy.unlink()
    target = work / "restored" / "carepath.db"
    staging = Path(tempfile.mkdtemp(dir=work))
    result = _restore_phases(phases, file, f"sqlite:///{target}", sample, staging)
    return {"database": "sqlite", "source_bytes": source.stat().st_size, "backup_bytes": size,
            "phases": phases.rows, **result}


def bench_postgres(url: str, schema: str, sample: int, work: Path) -> dict[str, Any]:
    import psycopg

    base = url.replace("postgresql://", "postgresql+psycopg://", 1)
    sep = "&" if "?" in base else "?"
    source = f"{base}{sep}options={quote(f'-csearch_path={schema}')}"
    mine = f"sec_backup_bench_{uuid.uuid4().hex[:8]}"
    target = f"{base}{sep}options={quote(f'-csearch_path={mine}')}"
    phases = Phases()
    file = work / "county-backup.tar"
    try:
        print(f"PostgreSQL: dumping schema {schema} (read only), restoring into {mine}", flush=True)
        phases.run("backup", lambda: backup.backup(source, file, now=datetime.now(timezone.utc)))
        size = file.stat().st_size
        staging = Path(tempfile.mkdtemp(dir=work))
        result = _restore_phases(phases, file, target, sample, staging)
    finally:
        with psycopg.connect(url, autocommit=True) as c:
            c.execute(f'DROP SCHEMA IF EXISTS "{mine}" CASCADE')
    return {"database": "postgresql", "schema": schema, "backup_bytes": size, "phases": phases.rows, **result}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sqlite", type=Path, help="a county SQLite file to copy and back up (read only)")
    ap.add_argument("--pg", help="a PostgreSQL URL (its database holds --pg-schema)")
    ap.add_argument("--pg-schema", default="measures_first_county", help="the schema to dump (read only)")
    ap.add_argument("--replay", type=int, default=20, help="cases replayed after the restore (default: 20)")
    ap.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()),
                    help="where the copies and backup files go (default: the temp folder)")
    args = ap.parse_args()
    results = []
    for run, wanted in ((lambda w: bench_sqlite(args.sqlite, args.replay, w), args.sqlite),
                        (lambda w: bench_postgres(args.pg, args.pg_schema, args.replay, w), args.pg)):
        if not wanted:
            continue
        work = Path(tempfile.mkdtemp(prefix="sec-backup-bench-", dir=args.work))
        try:
            results.append(run(work))
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(json.dumps({k: v for k, v in results[-1].items() if k != "phases"}, indent=2), flush=True)
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S")
    out = ROOT / "bench" / "results" / f"backup-{stamp}.json"
    out.write_text(json.dumps({"machine": machine(), "results": results}, indent=2) + "\n", encoding="utf-8")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
