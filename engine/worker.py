"""The timer job: APScheduler calls `Engine.fire_due_timers` every few seconds.

Run it inside `carepath serve` or as one or more `carepath worker` processes. With several
processes on one PostgreSQL each due timer still fires once: the instances are taken with
`FOR UPDATE SKIP LOCKED` and every step checks the instance's version. At start-up the job
runs at once, so timers that fell due while everything was down fire straight away.
"""

from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.blocking import BlockingScheduler

from .errors import ConflictError

log = logging.getLogger("carepath.timers")


def fire_once(engine: Any) -> int:
    try:
        moved = engine.fire_due_timers()
    except ConflictError:  # another process moved the same case first; the next scan catches up
        return 0
    if moved:
        log.info("timers moved %d instance(s)", moved)
    return moved


def schedule(scheduler: Any, engine: Any, interval: float) -> None:
    from .clock import SystemClock

    # APScheduler needs wall time to pace itself; the engine's own clock decides what is due
    scheduler.add_job(fire_once, "interval", args=[engine], seconds=interval, id="carepath-timers",
                      max_instances=1, coalesce=True, next_run_time=SystemClock().now())


def background_scheduler(engine: Any, interval: float = 2.0) -> BackgroundScheduler:
    sched = BackgroundScheduler(timezone="UTC")
    schedule(sched, engine, interval)
    return sched


def run_worker(db_url: str | None, *, interval: float = 1.0, once: bool = False) -> None:
    from .runtime import Engine

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = Engine(db_url)
    if once:
        print(f"fired timers for {engine.fire_due_timers()} instance step(s)")
        return
    sched = BlockingScheduler(timezone="UTC")
    schedule(sched, engine, interval)
    log.info("timer worker on %s, scanning every %.1fs", engine.db.safe_url, interval)
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
