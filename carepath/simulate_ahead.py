"""The live version's runs made ahead of being asked (issue 16): a comparison then makes only the draft's.

A comparison of a draft with the live version makes two runs a seed, and the live version's depend only on what is
deployed (carepath/simulate_reuse.py: they are kept under a key and taken by every later comparison). Deployments
are rare — a few a month — and between two of them every draft of every process is compared against the same live
runs. So a server process makes them **ahead**, when it starts and after every deployment, before anyone asks: a
process owner's first comparison of a year then waits for the draft's runs only, and reads its first results in the
time of one run (docs/simulation.md, "The live runs made ahead").

* **What**: for the pages' scenario, the periods and seeds of `CAREPATH_SIMULATION_AHEAD` (default `365x3`: a
  year, with the scenario's first three seeds, as the review page asks them), first seeds first: `365x3,14x3`
  makes the year's seed 1, then 14 days' seed 1, then the year's seed 2, ... `off` (or `0`) makes none.
* **How**: one run at a time, in a process of its own (spawned, with its second part: both cores), at the lowest
  priority (`nice` 19), so that it takes only what the pages, the timers and a process owner's own simulation
  leave. Made and kept exactly as a comparison would make and keep it, so that what a comparison takes is the run it
  would have made.
* **When**: every `POLL_S` seconds a server process looks whether a run of the plan is missing for the versions
  deployed now; not while a process owner's simulation runs (it has the cores), and never one at a time more.
  A deployment while a run is being made stops that run (its versions are no longer live).
* **Who**: one server process of several on one database: the one holding the lease (`simulation_ahead`, migration
  0027), renewed by a heartbeat every `BEAT_S` seconds and taken over when older than `STALE`.
* **Giving way**: while a process owner's simulation runs, the run being made is paused (SIGSTOP of its process
  group: no processor time, no cache, its memory held) and goes on when it ends — unless that simulation made and
  kept the same run meanwhile, when it is dropped.
* **Stopping**: the server's shutdown kills the run's processes (their own process group); a run whose server was
  killed ends itself within a second (it watches its parent; a paused one is ended by the kernel, which hangs up a
  stopped process group left without its parent).

No personal data: the runs are synthetic (no case is read), the lease names a random token.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from engine.errors import CarepathError
from engine.schema import process_versions, simulation_ahead, simulation_runs

AHEAD_ENV = "CAREPATH_SIMULATION_AHEAD"
DEFAULT_PLAN = "365x3"
LEASE = "ahead"
POLL_S = 30.0  # how often a server process looks for a run to make
BEAT_S = 10.0  # how often the lease is renewed while a run is made
USER_CHECK_S = 2.0  # how often a run being made looks whether a process owner's simulation runs (it then pauses)
STALE = timedelta(minutes=2)  # a lease older than this is taken over (its server stopped)
USER_STALE = timedelta(minutes=5)  # a process owner's running simulation with an older heartbeat has stopped
NICE = 19  # the lowest priority
DAYS = (1, 365)
SEEDS = (1, 10)
OFF = ("0", "off", "no", "false")

log = logging.getLogger("carepath.simulation")


def plan_from_env(env: Mapping[str, str] | None = None) -> list[tuple[int, int]] | None:
    """The plan of CAREPATH_SIMULATION_AHEAD: [(days, seeds), ...], or None when it is off. A value that cannot be
    read stops the app, naming the setting."""
    raw = (os.environ if env is None else env).get(AHEAD_ENV, "").strip() or DEFAULT_PLAN
    if raw.lower() in OFF:
        return None
    plan: list[tuple[int, int]] = []
    for part in raw.lower().split(","):
        days, _, seeds = part.strip().partition("x")
        if not (days.isdigit() and seeds.isdigit() and len(days) <= 4 and len(seeds) <= 3
                and DAYS[0] <= int(days) <= DAYS[1] and SEEDS[0] <= int(seeds) <= SEEDS[1]):
            raise CarepathError(f"{AHEAD_ENV} must list periods and seeds like 365x3 or 365x3,14x3 (days {DAYS[0]} "
                                f"to {DAYS[1]}, seeds {SEEDS[0]} to {SEEDS[1]}), or be off; not {raw[:40]!r}")
        if (int(days), int(seeds)) not in plan:
            plan.append((int(days), int(seeds)))
    return plan


def wanted(plan: list[tuple[int, int]], first: int) -> list[tuple[int, int]]:
    """The runs of `plan` as (days, seed), first seeds first: what a comparison's first results need comes first."""
    out: list[tuple[int, int]] = []
    for i in range(max(seeds for _, seeds in plan)):
        out += [(days, first + i) for days, seeds in plan if i < seeds and (days, first + i) not in out]
    return out


def first_seed(scenario: Any) -> int:
    """The scenario's seed: a comparison from the pages asks for it and the ones after (api/simulation_pages.py)."""
    seed = scenario.data.get("seed", 1) if isinstance(scenario.data, dict) else 1
    return seed if isinstance(seed, int) and not isinstance(seed, bool) else 1


def _now() -> datetime:
    # the server's wall clock: leases and heartbeats are about real time, not the engine's clock
    return datetime.now(timezone.utc)


def _child(conn: Any, scenario: Any, rows: Any, days: int, seed: int, parent: int) -> None:
    """The run, in a process of its own (its own process group, so that its second part goes with it), at the lowest
    priority; it ends itself when the server that started it is gone."""
    os.setpgid(0, 0)
    os.nice(NICE)

    def orphaned() -> None:
        while True:
            time.sleep(1.0)
            if os.getppid() != parent:
                os.killpg(0, signal.SIGKILL)

    threading.Thread(target=orphaned, daemon=True, name="carepath-ahead-parent").start()
    from .simulate_compare import _one_run

    try:
        kind, payload = _one_run(scenario, rows, days, seed, parts=2)
    except Exception as exc:  # noqa: BLE001 - the message crosses to the server, which logs its type
        kind, payload = "failed", type(exc).__name__
    conn.send((kind, payload, os.nice(0)))
    conn.close()


class Ahead:
    """Makes the plan's runs of the deployed versions ahead of a comparison, in the background of a server process.
    `start()` starts its thread, `stop()` ends it and the run being made. `pass_once()` makes what is missing now
    (the thread calls it every `poll_s` seconds; the tests call it themselves)."""

    def __init__(self, engine: Any, scenario_path: str | Path, plan: list[tuple[int, int]], *,
                 poll_s: float | None = None, beat_s: float = BEAT_S, stale: timedelta = STALE,
                 user_stale: timedelta = USER_STALE, clock: Callable[[], datetime] = _now) -> None:
        self.engine = engine
        self.scenario_path = str(scenario_path)
        self.plan = plan
        self.poll_s = POLL_S if poll_s is None else poll_s
        self.beat_s, self.stale, self.user_stale, self.clock = beat_s, stale, user_stale, clock
        self.user_check_s = USER_CHECK_S
        self.paused = False  # the run being made is paused while a process owner's simulation runs
        self.holder = secrets.token_hex(16)
        self.made: list[dict[str, Any]] = []  # the runs this process made: days, seed, seconds, nice
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._child: Any = None
        self._cached: tuple[Any, Any] | None = None  # (what was deployed and the scenario's text, `_live()`'s answer)

    # ------------------------------------------------------------------ the thread
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._loop, name="carepath-simulation-ahead", daemon=True)
        self._thread.start()
        return self._thread

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread and kill the run being made (its whole process group)."""
        self._stop.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        delay = min(2.0, self.poll_s)  # a server that starts looks at once (the demo, a restart after a deploy)
        while not self._stop.wait(delay):
            delay = self.poll_s
            try:
                self.pass_once()
            except Exception as exc:  # noqa: BLE001 - a background thread: log the type, look again later
                log.error("the live runs made ahead: %s", type(exc).__name__)

    # ------------------------------------------------------------------ one pass
    def pass_once(self) -> int:
        """Make the plan's runs missing for the versions deployed now, one after the other; the number made. Makes
        none while a process owner's simulation runs or another server process holds the lease, and stops when the
        deployment changes, the lease is lost or `stop()` is called."""
        from .simulate_reuse import KeptRuns, enabled

        if not enabled() or self._stop.is_set() or self._user_simulation():
            return 0
        live = self._live()
        if live is None:
            return 0
        scenario, rows, newest, keys = live
        kept = KeptRuns(self.engine)
        made = 0
        try:
            for (days, seed), key in keys.items():
                if kept.has(key):
                    continue
                if self._stop.is_set() or self._user_simulation() or not self._take(f"{days}:{seed}"):
                    break
                began = time.monotonic()
                got = self._make(scenario, rows, days, seed, newest, lambda key=key: kept.has(key))
                if got is None:
                    break
                kind, payload, nice = got
                if kind != "ok":  # the scenario does not fit the live diagrams, or the run failed: nothing kept
                    log.warning("a live run made ahead (%s days, seed %s) did not finish: %s", days, seed,
                                kind if kind == "refused" else payload)
                    break
                seconds = round(time.monotonic() - began, 1)
                kept.put(key, payload, seconds=seconds)
                self.made.append({"days": days, "seed": seed, "seconds": seconds, "nice": nice})
                log.info("a live run of %s days, seed %s, made ahead in %.1f s", days, seed, seconds)
                made += 1
        finally:
            self._release()
        return made

    def _live(self) -> tuple[Any, Any, int, dict[tuple[int, int], str]] | None:
        """The scenario, the deployed rows, the newest version's id and each planned run's key (in `wanted`'s order),
        read again only when a version has been deployed or the scenario file changed since the last look (every
        pass and every review page asks); None when no run would be kept (a policy, nothing deployed)."""
        from engine.trial import deployed_rows

        from .simulate import load_scenario
        from .simulate_reuse import run_key, uses_policy

        try:
            text: bytes | None = Path(self.scenario_path).read_bytes()
        except OSError:
            text = None  # load_scenario says why
        mark = (self._newest(), text)
        cached = self._cached
        if cached is not None and cached[0] == mark:
            return cached[1]
        scenario = load_scenario(self.scenario_path)
        rows = deployed_rows(self.engine)
        live = None
        if not uses_policy(scenario) and rows.versions:  # a policy's runs are not kept (code outside the key)
            keys = {(days, seed): run_key(rows, scenario, days, seed)
                    for days, seed in wanted(self.plan, first_seed(scenario))}
            live = (scenario, rows, max(v["id"] for v in rows.versions), keys)
        self._cached = (mark, live)
        return live

    def status(self) -> dict[str, Any] | None:
        """What the review page says of the live runs made ahead: for each period of the plan, the seeds ready and
        the seeds not yet made, and the run being made (None when its runs are not kept)."""
        from .simulate_reuse import KeptRuns, enabled

        if not enabled():
            return None
        live = self._live()
        if live is None:
            return None
        scenario, keys, kept = live[0], live[3], KeptRuns(self.engine)
        first = first_seed(scenario)
        periods = [{"days": days, "seeds": list(range(first, first + seeds)),
                    "ready": [s for s in range(first, first + seeds) if kept.has(keys[(days, s)])]}
                   for days, seeds in self.plan]
        with self.engine.db.engine.connect() as conn:
            making = conn.execute(select(simulation_ahead.c.making).where(
                simulation_ahead.c.name == LEASE, simulation_ahead.c.heartbeat_at >= self.clock() - STALE)).scalar()
        return {"periods": periods, "making": making}

    def _make(self, scenario: Any, rows: Any, days: int, seed: int, newest: int,
              kept_meanwhile: Callable[[], bool]) -> tuple[str, Any, int] | None:
        """The run in its own process at the lowest priority: ("ok", output, nice) or ("refused" | "failed", why,
        nice); None when it was stopped (stop(), the lease lost, a deployment, the same run kept meanwhile by a
        process owner's simulation). While a process owner's simulation runs, the run is paused (SIGSTOP of its
        process group: it holds its memory, takes no processor time and no cache), and goes on when it ends."""
        ctx = multiprocessing.get_context("spawn")
        ours, theirs = ctx.Pipe(duplex=False)
        proc = ctx.Process(target=_child, args=(theirs, scenario, rows, days, seed, os.getpid()),
                           name="carepath-simulate-ahead")
        self._child = proc
        proc.start()
        theirs.close()
        try:
            beat = time.monotonic() + self.beat_s
            look = time.monotonic() + self.user_check_s
            while not self._stop.is_set():
                if ours.poll(0.25):
                    try:
                        return ours.recv()
                    except (EOFError, OSError):
                        return "failed", "its process ended without a word", 0
                if not proc.is_alive() and not ours.poll(0):
                    return "failed", f"its process ended ({proc.exitcode})", 0
                if time.monotonic() >= look:
                    look = time.monotonic() + self.user_check_s
                    busy = self._user_simulation()
                    if busy != self.paused:
                        if not busy and kept_meanwhile():  # the process owner's simulation made it
                            return None
                        self._signal(proc, signal.SIGSTOP if busy else signal.SIGCONT)
                        self.paused = busy
                if time.monotonic() >= beat:
                    beat = time.monotonic() + self.beat_s
                    if not self._renew(f"{days}:{seed}") or self._newest() != newest:
                        return None
            return None
        finally:
            self._kill()
            ours.close()

    @staticmethod
    def _signal(proc: Any, sig: int) -> None:
        try:
            os.killpg(proc.pid, sig)  # the run and its second part
        except (ProcessLookupError, PermissionError):
            pass

    def _kill(self) -> None:
        self.paused = False
        proc, self._child = self._child, None
        if proc is None:
            return
        if proc.is_alive() and proc.pid:
            try:
                os.killpg(proc.pid, signal.SIGKILL)  # the run and its second part
            except (ProcessLookupError, PermissionError):
                proc.kill()
        proc.join(5)

    # ------------------------------------------------------------------ the database
    def _user_simulation(self) -> bool:
        """Whether a process owner's simulation is running (its heartbeat recent) on the database."""
        try:
            with self.engine.db.engine.connect() as conn:
                return conn.execute(select(simulation_runs.c.id).where(
                    simulation_runs.c.status == "running",
                    simulation_runs.c.heartbeat_at >= self.clock() - self.user_stale).limit(1)).first() is not None
        except SQLAlchemyError as exc:
            log.error("the live runs made ahead could not see the running simulations: %s", type(exc).__name__)
            return True

    def _newest(self) -> int | None:
        with self.engine.db.engine.connect() as conn:
            return conn.execute(select(func.max(process_versions.c.id))).scalar()

    def _take(self, making: str) -> bool:
        """The lease, if nobody else holds it (or theirs is stale)."""
        T = simulation_ahead.c
        now = self.clock()
        try:
            with self.engine.db.transaction() as conn:
                got = conn.execute(update(simulation_ahead).where(
                    T.name == LEASE, or_(T.holder == self.holder, T.heartbeat_at < now - self.stale))
                    .values(holder=self.holder, making=making, heartbeat_at=now)).rowcount
                if got:
                    return True
                if conn.execute(select(T.name).where(T.name == LEASE)).first() is not None:
                    return False
                conn.execute(insert(simulation_ahead).values(name=LEASE, holder=self.holder, making=making,
                                                             heartbeat_at=now))
            return True
        except IntegrityError:  # another process took it at the same moment
            return False
        except SQLAlchemyError as exc:
            log.error("the live runs made ahead could not take their lease: %s", type(exc).__name__)
            return False

    def _renew(self, making: str) -> bool:
        T = simulation_ahead.c
        try:
            with self.engine.db.transaction() as conn:
                return bool(conn.execute(update(simulation_ahead).where(T.name == LEASE, T.holder == self.holder)
                                         .values(making=making, heartbeat_at=self.clock())).rowcount)
        except SQLAlchemyError as exc:  # kept going: a missed heartbeat is only late
            log.error("the live runs made ahead could not renew their lease: %s", type(exc).__name__)
            return True

    def _release(self) -> None:
        try:
            with self.engine.db.transaction() as conn:
                conn.execute(delete(simulation_ahead).where(simulation_ahead.c.name == LEASE,
                                                            simulation_ahead.c.holder == self.holder))
        except SQLAlchemyError as exc:
            log.error("the live runs made ahead could not give up their lease: %s", type(exc).__name__)

