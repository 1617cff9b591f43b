"""WAL frames a durable step writes on SQLite, and what each index costs of them (issue 14 item 2).

A frame is one 4 KB page appended to the write-ahead log at a commit; its writes (two `pwrite` calls a frame) are
most of (c)'s system time. The yardstick's (c) instance (start and three completions, four transactions) is run
after 300 of warm-up, with the automatic checkpoint off, and the WAL's growth over 100 instances divided by the
frame size. `--drop NAME` drops an index first (a measurement only: the product keeps every index).

    .venv/bin/python -m bench.wal_frames
    .venv/bin/python -m bench.wal_frames --drop ix_events_type_case_id
"""

from __future__ import annotations

import argparse
import os

from sqlalchemy import event

from bench.yardstick import CarepathVariant

FRAME = 4096 + 24  # a page and its frame header


def frames_per_instance(drop: list[str], warmup: int = 300, n: int = 100) -> float:
    v = CarepathVariant("c", None)
    engine = v.eng.db.engine

    @event.listens_for(engine, "connect")
    def _no_checkpoint(dbapi_conn, _record):  # type: ignore[no-untyped-def]
        dbapi_conn.execute("PRAGMA wal_autocheckpoint=0")

    engine.dispose()
    with engine.begin() as conn:
        for name in drop:
            conn.exec_driver_sql(f'DROP INDEX "{name}"')
    for i in range(warmup):
        v.instance(i)
    wal = engine.url.database + "-wal"
    before = os.path.getsize(wal)
    for i in range(n):
        v.instance(warmup + i)
    grown = os.path.getsize(wal) - before
    v.close()
    return grown / FRAME / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--drop", action="append", default=[], metavar="INDEX", help="drop this index first")
    args = p.parse_args()
    print(f"dropped {args.drop or 'nothing'}: {frames_per_instance(args.drop):.1f} WAL frames an instance")


if __name__ == "__main__":
    main()
