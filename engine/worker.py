"""The timer job: APScheduler calls `Engine.fire_due_timers` every few seconds.

Run it inside `carepath serve` or as one or more `carepath worker` processes. With several
processes on one PostgreSQL each due timer still fires once: the instances are taken with
`FOR UPDATE SKIP LOCKED` and every step checks the instance's version. At start-up the job
runs at once, so timers that fell due while everything was down fire straight away.

The registry's background jobs (`HandlerRegistry.every`, e.g. sending filed letters) run on the same
scheduler, each at its own pace, one run at a time; a failing run is logged and the next one tries again.

With CAREPATH_HEADS_KEY and CAREPATH_HEADS_DIR set, the same scheduler also writes a signed heads
file (engine/anchoring.py) every CAREPATH_HEADS_INTERVAL seconds (default an hour), when the heads moved.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from .errors import CarepathError, ConflictError

log = logging.getLogger("carepath.timers")


def fire_once(engine: Any) -> int:
    try:
        moved = engine.fire_due_timers()
    except ConflictError:  # another process moved the same case first; the next scan catches up
        return 0
    except Exception as exc:  # noqa: BLE001 - its type only (as run_job): APScheduler would log its message
        log.error("firing timers failed: %s", type(exc).__name__)
        return 0
    if moved:
        log.info("timers moved %d instance(s)", moved)
    return moved


def schedule(scheduler: Any, engine: Any, interval: float) -> None:
    from .clock import SystemClock

    # APScheduler needs wall time to pace itself; the engine's own clock decides what is due
    scheduler.add_job(fire_once, "interval", args=[engine], seconds=interval, id="carepath-timers",
                      max_instances=1, coalesce=True, next_run_time=SystemClock().now())


def run_job(engine: Any, name: str, job: Any) -> Any:
    """One run of a registered background job; an error is logged (its type only: messages may carry
    what the job was working on) and the next run tries again."""
    try:
        return job(engine)
    except Exception as exc:  # noqa: BLE001 - the scheduler must keep running
        log.error("background job %s failed: %s", name, type(exc).__name__)
        return None


def schedule_jobs(scheduler: Any, engine: Any) -> None:
    from .clock import SystemClock

    for name, job, seconds in getattr(engine.registry, "background_jobs", ()):
        scheduler.add_job(run_job, "interval", args=[engine, name, job], seconds=seconds, id=f"carepath-{name}",
                          max_instances=1, coalesce=True, next_run_time=SystemClock().now())


def heads_settings(env: Mapping[str, str] | None = None) -> tuple[str, str, float] | None:
    """Signing heads files on a schedule (engine/anchoring.py): CAREPATH_HEADS_KEY (the private key
    file), CAREPATH_HEADS_DIR (where the files go) and CAREPATH_HEADS_INTERVAL (seconds, default
    3600). None when neither is set; a clear error when only one is, or the key or folder is unusable."""
    from .anchoring import load_private_key

    env = os.environ if env is None else env
    key, folder = env.get("CAREPATH_HEADS_KEY", ""), env.get("CAREPATH_HEADS_DIR", "")
    if not key and not folder:
        return None
    if not (key and folder):
        raise CarepathError("to sign heads files on a schedule set both CAREPATH_HEADS_KEY and CAREPATH_HEADS_DIR")
    raw = env.get("CAREPATH_HEADS_INTERVAL", "") or "3600"
    try:
        every = float(raw)
    except ValueError:
        every = 0
    if not every > 0:
        raise CarepathError(f"CAREPATH_HEADS_INTERVAL must be a number of seconds above 0, not {raw!r}")
    load_private_key(key)
    if not Path(folder).is_dir():
        raise CarepathError(f"CAREPATH_HEADS_DIR {folder} is not a folder")
    return key, folder, every


def sign_heads_once(engine: Any, key: str, folder: str) -> Path | None:
    from .anchoring import sign_heads_to_dir

    try:
        path = sign_heads_to_dir(engine, key, folder)
    except Exception as exc:  # noqa: BLE001 - logged (its type only, as run_job); the next run tries again
        log.error("signing the heads file failed: %s", type(exc).__name__)
        return None
    if path:
        log.info("signed heads written to %s", path)
    return path


def schedule_heads(scheduler: Any, engine: Any, settings: tuple[str, str, float]) -> None:
    from .clock import SystemClock

    key, folder, every = settings
    # APScheduler paces itself by wall time; the file's own time is the engine's clock
    scheduler.add_job(sign_heads_once, "interval", args=[engine, key, folder], seconds=every, id="carepath-heads",
                      max_instances=1, coalesce=True, next_run_time=SystemClock().now())


def background_scheduler(engine: Any, interval: float = 2.0, *,
                         env: Mapping[str, str] | None = None) -> BackgroundScheduler:
    sched = BackgroundScheduler(timezone="UTC")
    schedule(sched, engine, interval)
    schedule_jobs(sched, engine)
    heads = heads_settings(env)
    if heads:
        schedule_heads(sched, engine, heads)
    return sched


def run_worker(db_url: str | None, *, interval: float = 1.0, once: bool = False) -> None:
    from .runtime import Engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = Engine(db_url)
    if once:
        print(f"fired timers for {engine.fire_due_timers()} instance step(s)")
        for name, job, _seconds in getattr(engine.registry, "background_jobs", ()):
            run_job(engine, name, job)
        return
    sched = BlockingScheduler(timezone="UTC")
    schedule(sched, engine, interval)
    schedule_jobs(sched, engine)
    heads = heads_settings()
    if heads:
        schedule_heads(sched, engine, heads)
        log.info("signing heads files into %s every %.0fs", heads[1], heads[2])
    log.info("timer worker on %s, scanning every %.1fs", engine.db.safe_url, interval)
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
