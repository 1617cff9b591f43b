"""How long a simulation's process takes to start (carepath/forked.py): the forkserver's first start (its warm-up),
later processes started and ended, a bare spawned process (importing nothing) and a spawned process that makes the
engine a simulation needs, as the processes were started before; and the warm forkserver's memory.

    .venv/bin/python bench/forked_bench.py
"""

from __future__ import annotations

import multiprocessing
import sys
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from carepath import forked  # noqa: E402


def _cold_engine() -> None:
    """What a spawned simulation process did before its first step."""
    from carepath import simulate

    simulate.scratch_engine(None, date(2026, 1, 5)).db.dispose()


def _timed(ctx, target, *args) -> float:
    t = time.perf_counter()
    proc = ctx.Process(target=forked.call, args=(forked.settings(), target, *args))
    proc.start()
    proc.join()
    assert proc.exitcode == 0, proc.exitcode
    return time.perf_counter() - t


def main() -> None:
    ctx = forked.context()
    first = _timed(ctx, time.sleep, 0)
    later = [_timed(ctx, time.sleep, 0) for _ in range(5)]
    warm_engine = min(_timed(ctx, _cold_engine) for _ in range(3))
    from multiprocessing import forkserver

    pid = forkserver._forkserver._forkserver_pid
    rss = next(int(line.split()[1]) for line in open(f"/proc/{pid}/status") if line.startswith("VmRSS"))
    spawn = multiprocessing.get_context("spawn")
    bare = min(_timed(spawn, time.sleep, 0) for _ in range(3))
    cold_engine = min(_timed(spawn, _cold_engine) for _ in range(3))
    print(f"forkserver: first start and end {first:.2f} s (its warm-up); later ones {min(later) * 1000:.0f}-"
          f"{max(later) * 1000:.0f} ms; one that makes a simulation's engine {warm_engine:.2f} s; "
          f"the warm forkserver {rss // 1024} MB")
    print(f"spawned: a bare process {bare * 1000:.0f} ms; one that makes a simulation's engine {cold_engine:.2f} s")
    forked.stop()


if __name__ == "__main__":
    main()
