"""The timer job: APScheduler runs `Engine.fire_due_timers` when the next timer falls due.

Run it inside `carepath serve` or as one or more `carepath worker` processes. With several
processes on one PostgreSQL each due timer still fires once: each batch takes the instances whose
timers are longest overdue with `FOR UPDATE OF instances SKIP LOCKED`, so two workers take disjoint
batches without waiting on each other, and every step checks the instance's version. At start-up the
job runs at once, so timers that fell due while everything was down fire straight away.

The job is one loop for the scheduler's lifetime (`TimerPace`): after each run it waits until the
earliest due time the database holds, and at most `interval` seconds, when it looks again. A step in
the same process that stores a timer due sooner wakes it at once (`Engine.on_timer_stored`); on
PostgreSQL a step anywhere that stores a timer due within a minute announces it (NOTIFY
carepath_timers) and every timer job listens (`listen_for_timers`). So a timer fires within a
step's time of falling due, not a polling interval.

The registry's background jobs (`HandlerRegistry.every`, e.g. sending filed letters) run on the same
scheduler, each at its own pace, one run at a time; a failing run is logged and the next one tries again.

With CAREPATH_HEADS_KEY and CAREPATH_HEADS_DIR set, the same scheduler also writes a signed heads
file (engine/anchoring.py) every CAREPATH_HEADS_INTERVAL seconds (default an hour), when the heads moved.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Mapping
from datetime import datetime, timedelta
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


JOB_ID = "carepath-timers"


class TimerPace:
    """The timer job's loop, one APScheduler job that runs as long as the scheduler: fire what is due, then
    wait until the earliest due time the database holds, at most `interval` seconds (when it looks again),
    or until woken by a timer stored that falls due sooner (`stored`).

    Times are the engine's (`Engine.now`), and the wait goes through the engine's clock object
    (`Clock.wait`): nothing here reads the wall clock."""

    def __init__(self, engine: Any, interval: float) -> None:
        self.engine, self.interval = engine, interval
        self.clock = getattr(engine, "_wall_clock", None) or _system_clock()
        self.wake = threading.Event()
        self.stopped = False
        self.planned: datetime | None = None  # the engine time of the next run while waiting for it
        self.listener: threading.Thread | None = None
        self.listening = threading.Event()  # set once the listener's LISTEN is in place (PostgreSQL)
        self.retry = self.FIRST_RETRY  # the wait after a run that left due timers unfired; doubles each time

    def run(self) -> None:
        """The job: fire, wait, fire... until `stop`."""
        if self.listener is None and getattr(getattr(self.engine, "db", None), "is_postgres", False):
            self.listener = listen_for_timers(self.engine, self)
        while not self.stopped:
            self.wake.clear()  # a timer stored from here on wakes the wait below
            try:
                moved = fire_once(self.engine)
            except Exception as exc:  # noqa: BLE001 - e.g. the database away for a moment: the loop goes on
                log.error("firing due timers failed: %s", type(exc).__name__)
                moved = 0
            now, delay = self.next_delay(moved)
            self.planned = now + timedelta(seconds=delay) if now is not None else None
            if delay > 0 and not self.stopped:
                self.clock.wait(self.wake, delay)
            self.planned = None

    #: the first wait after a run that left due timers unfired (seconds); it doubles up to `interval`
    FIRST_RETRY = 0.5

    def next_delay(self, moved: int) -> tuple[datetime | None, float]:
        """(now, seconds until the next run) from the earliest due timer in the database.

        Due timers that a run did not fire (an instance another process holds, a step that failed, the
        database away for a moment) are tried again after FIRST_RETRY seconds, then twice as long each time
        up to `interval`: a passing fault costs a moment, not a whole interval, and a lasting one does not
        make the job spin."""
        try:
            nxt, now = self.engine.next_due(), self.engine.now()
        except Exception as exc:  # noqa: BLE001 - the database may be away for a moment: look again soon
            log.warning("reading the next due timer failed: %s", type(exc).__name__)
            return None, self._backoff()
        if nxt is None:
            self.retry = self.FIRST_RETRY
            return now, self.interval
        wait = (nxt - now).total_seconds()
        if wait <= 0 and not moved:  # due rows that fired nothing
            return now, self._backoff()
        self.retry = self.FIRST_RETRY
        return now, min(self.interval, max(wait, 0.0))

    def _backoff(self) -> float:
        delay, self.retry = min(self.interval, self.retry), min(self.interval, self.retry * 2)
        return delay

    def stored(self, due: datetime | None) -> None:
        """A timer due at `due` (None: at an unknown time) was stored: run sooner if it falls due before the
        planned run (while a run is under way, `planned` is None and the next wait ends at once)."""
        planned = self.planned
        if planned is None or due is None or due < planned:
            self.wake.set()

    def stop(self) -> None:
        self.stopped = True
        self.wake.set()


def _system_clock() -> Any:
    from .clock import SystemClock

    return SystemClock()


class _Paced:
    """A scheduler whose shutdown also ends the timer loop (it would otherwise wait out its interval)."""

    paces: list[TimerPace]

    def shutdown(self, wait: bool = True) -> None:
        for pace in getattr(self, "paces", ()):
            pace.stop()
        super().shutdown(wait)  # type: ignore[misc]


class PacedBackgroundScheduler(_Paced, BackgroundScheduler):
    pass


class PacedBlockingScheduler(_Paced, BlockingScheduler):
    pass


def listen_for_timers(engine: Any, pace: TimerPace) -> threading.Thread:
    """PostgreSQL: a thread that LISTENs for timers announced by steps in any process (engine/timer_ops.py)
    and wakes `pace`; it reconnects after an error and ends when the scheduler stops."""
    import psycopg

    from .clock import parse_instant
    from .timer_ops import TIMER_CHANNEL

    url = engine.db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)

    def listen() -> None:
        pause = threading.Event()
        while not pace.stopped:
            try:
                with psycopg.connect(url, autocommit=True) as conn:
                    conn.execute(f"LISTEN {TIMER_CHANNEL}")
                    pace.listening.set()
                    while not pace.stopped:
                        for note in conn.notifies(timeout=5.0):  # then it checks whether to stop
                            try:
                                due: datetime | None = parse_instant(note.payload)
                            except ValueError:
                                due = None
                            pace.stored(due)
            except Exception as exc:  # noqa: BLE001 - the timer job still looks every `interval` seconds
                log.warning("listening for timers failed (%s); trying again", type(exc).__name__)
                pace.clock.wait(pause, pace.interval)

    thread = threading.Thread(target=listen, name="carepath-timer-listener", daemon=True)
    thread.start()
    return thread


def schedule(scheduler: Any, engine: Any, interval: float) -> TimerPace:
    """Add the timer job to `scheduler`: it starts at once (timers that fell due while nothing ran fire
    straight away) and then paces itself (`TimerPace`)."""
    from .clock import SystemClock

    pace = TimerPace(engine, interval)
    if hasattr(engine, "on_timer_stored"):
        engine.on_timer_stored(pace.stored)
    if isinstance(scheduler, _Paced):
        scheduler.paces = [*getattr(scheduler, "paces", []), pace]
    # APScheduler needs wall time to start the job; from then on the job keeps its own pace. No misfire grace:
    # a scheduler started long after this (a slow start-up) must still start the loop, not skip it
    scheduler.add_job(pace.run, "date", run_date=SystemClock().now(), id=JOB_ID, max_instances=1,
                      misfire_grace_time=None)
    return pace


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
    """One run of the signing job. Its outcome is kept on the engine as `heads_signing` ({status: 'signed',
    'unchanged', 'refused' or 'failed', at (wall time), file, message}) for GET /api/health; a refusal —
    the history does not verify or no longer extends the previous signed file (engine/anchoring.py) — is
    logged as an ALERT naming the chains and event numbers only (never an event's content)."""
    from .anchoring import SigningRefused, sign_heads_to_dir
    from .clock import SystemClock

    at = SystemClock().now().isoformat(timespec="seconds")
    try:
        path = sign_heads_to_dir(engine, key, folder)
    except SigningRefused as exc:
        where = ", ".join(f"{f.chain} #{f.seq}" if f.seq is not None else f.chain for f in exc.findings[:10])
        log.error("ALERT signing the heads file refused: %s chain finding(s) against %s: %s; %s",
                  len(exc.findings), exc.previous or "a full verification", where,
                  "nothing was signed until this is investigated (docs/auditing.md)")
        engine.heads_signing = {"status": "refused", "at": at, "file": exc.previous,
                                "message": f"{len(exc.findings)} finding(s): {where}"}
        return None
    except Exception as exc:  # noqa: BLE001 - logged (its type only, as run_job); the next run tries again
        log.error("signing the heads file failed: %s", type(exc).__name__)
        engine.heads_signing = {"status": "failed", "at": at, "file": None, "message": type(exc).__name__}
        return None
    if path:
        log.info("signed heads written to %s", path)
    previous = getattr(engine, "heads_signing", None) or {}
    engine.heads_signing = {"status": "signed" if path else "unchanged", "at": at,
                            "file": path.name if path else previous.get("file"), "message": None}
    return path


def schedule_heads(scheduler: Any, engine: Any, settings: tuple[str, str, float]) -> None:
    from .clock import SystemClock

    key, folder, every = settings
    # APScheduler paces itself by wall time; the file's own time is the engine's clock
    scheduler.add_job(sign_heads_once, "interval", args=[engine, key, folder], seconds=every, id="carepath-heads",
                      max_instances=1, coalesce=True, next_run_time=SystemClock().now())


def background_scheduler(engine: Any, interval: float = 2.0, *,
                         env: Mapping[str, str] | None = None) -> BackgroundScheduler:
    sched = PacedBackgroundScheduler(timezone="UTC")
    schedule(sched, engine, interval)
    schedule_jobs(sched, engine)
    heads = heads_settings(env)
    if heads:
        schedule_heads(sched, engine, heads)
    return sched


def run_worker(db_url: str | None, *, interval: float = 1.0, once: bool = False) -> None:
    from .runtime import Engine

    # carepath's own loggers at INFO, as `carepath serve` has them (api/request_log.py); the rest, SpiffWorkflow's
    # among them, at WARNING: its `spiff.task` INFO lines ("State changed to READY", five for every timer fired)
    # flooded a council's logs and, built for every task, slowed the timer job by about a third
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    logging.getLogger("carepath").setLevel(logging.INFO)
    engine = Engine(db_url)
    if once:
        print(f"fired timers for {engine.fire_due_timers()} instance step(s)")
        for name, job, _seconds in getattr(engine.registry, "background_jobs", ()):
            run_job(engine, name, job)
        return
    sched = PacedBlockingScheduler(timezone="UTC")
    schedule(sched, engine, interval)
    schedule_jobs(sched, engine)
    heads = heads_settings()
    if heads:
        schedule_heads(sched, engine, heads)
        log.info("signing heads files into %s every %.0fs", heads[1], heads[2])
    log.info("timer worker on %s, looking at least every %.1fs", engine.db.safe_url, interval)
    try:
        sched.start()
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        if sched.running:
            sched.shutdown(wait=False)
