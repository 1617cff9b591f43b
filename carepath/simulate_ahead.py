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
* **How**: one run at a time, in a process of its own (carepath/forked.py; with its second part: both cores), at
  the lowest priority (`nice` 19), so that it takes only what the pages, the timers and a process owner's own
  simulation leave. Made and kept exactly as a comparison would make and keep it, so that what a comparison takes
  is the run it would have made.
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

* **The drafts' runs too**: after the live version's run of a period and seed, the same run of each open draft
  (at most `MAX_DRAFTS`: the ones waiting for review first, then the ones saved most recently), so that a process
  owner who saved a draft finds its runs made, or being made, when they ask for a comparison. A draft saved again,
  decided or withdrawn stops its run; a draft that does not deploy, or that the scenario does not fit, is skipped.
* **Waited for**: a process owner's simulation that needs the very run being made marks it awaited (`Awaiting`) and
  waits for it to be kept instead of making it again; an awaited run is not paused. docs/simulation.md "The drafts'
  runs made ahead".

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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from engine.errors import CarepathError
from engine.schema import process_versions, simulation_ahead, simulation_runs

from . import forked

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
PARTS = 2  # a run made ahead shares its cases between two processes, one on each core (both at the lowest priority)
MAX_DRAFTS = 5  # the open drafts whose runs are made ahead at most (the ones waiting for review first)
PAUSE_AFTER_S = 2 * USER_CHECK_S  # a simulation seen running this long, not waiting for the run, pauses it
AWAIT_STALE = timedelta(seconds=3 * BEAT_S)  # a run made ahead whose lease is older is not waited for any more
AWAIT_PAUSED_S = 5 * USER_CHECK_S  # a run awaited but still paused this long after is not waited for any more
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


@dataclass
class _Job:
    """A run to make ahead: the live version's or an open draft's (`draft`: its id and revision)."""
    side: str  # "live" | "draft"
    label: str  # what the lease says is being made: "days:seed", a draft's "days:seed:draft id"
    days: int
    seed: int
    key: str
    rows: Any  # the deployed rows the run copies (engine/trial.py DeployedRows)
    draft: tuple[int, int] | None


@dataclass
class _Draft:
    """An open draft's rows and keys (None: it does not deploy), worked out for `mark` (deployment, scenario)."""
    id: int
    revision: int
    mark: Any
    rows: Any
    keys: dict[tuple[int, int], str] | None


def _orphaned(parent: int, server: int | None) -> bool:
    """Whether the run made ahead has lost the server that started it: its parent (the server's forkserver, which ends
    with the server; or the server itself) is no longer `parent`, the one it started under, or the server (`server`,
    its process id) is gone — the second check for a server that died between the fork and the child's first look
    at its parent, when the parent it started under is already the one it was handed to."""
    if os.getppid() != parent:
        return True
    if server is None:
        return False
    try:
        os.kill(server, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # there, under another user: not ours, but not gone
        pass
    return False


def _child(conn: Any, scenario: Any, rows: Any, days: int, seed: int, parts: int = PARTS,
           server: int | None = None) -> None:
    """The run, in a process of its own (its own process group, so that its second part goes with it), at the lowest
    priority; it ends itself when the server that started it (`server`, its process id) is gone (`_orphaned`)."""
    os.setpgid(0, 0)
    os.nice(NICE)
    parent = os.getppid()

    def orphaned() -> None:
        while True:
            time.sleep(1.0)
            if _orphaned(parent, server):
                os.killpg(0, signal.SIGKILL)

    threading.Thread(target=orphaned, daemon=True, name="carepath-ahead-parent").start()
    from .simulate_compare import _one_run

    try:
        # the days simulated, at each simulated week's end: said on the page of a simulation waiting for this run
        kind, payload = _one_run(scenario, rows, days, seed, parts=parts, on_day=lambda day: conn.send(("day", day)))
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
                 user_stale: timedelta = USER_STALE, clock: Callable[[], datetime] = _now,
                 drafts: bool = True) -> None:
        self.engine = engine
        self.scenario_path = str(scenario_path)
        self.plan = plan
        self.drafts = drafts  # the open drafts' runs too, after the live version's of the same period and seed
        self.poll_s = POLL_S if poll_s is None else poll_s
        self.beat_s, self.stale, self.user_stale, self.clock = beat_s, stale, user_stale, clock
        self.user_check_s = USER_CHECK_S
        self.pause_after_s = PAUSE_AFTER_S
        self.paused = False  # the run being made is paused while a process owner's simulation runs
        self.awaited = False  # a process owner's simulation waits for the run being made
        self.day: int | None = None  # the whole days the run being made has simulated, as it last said
        self.parts = PARTS  # the processes a run is made in (the same output with one: the tests' short runs use one)
        self.holder = secrets.token_hex(16)
        self.made: list[dict[str, Any]] = []  # the runs this process made: days, seed, seconds, nice
        self._stop = threading.Event()
        self._wake = threading.Event()  # a draft changed in this process: look again now, not at the next poll
        from engine.drafts import on_change

        on_change(engine, self.wake)
        self._thread: threading.Thread | None = None
        self._child: Any = None
        self._cached: tuple[Any, Any] | None = None  # (what was deployed and the scenario's text, `_live()`'s answer)
        self._draft_cache: dict[tuple[int, int], _Draft] = {}  # (draft id, revision): its rows and keys
        self._refused: set[str] = set()  # keys of drafts' runs the scenario does not fit: not tried again

    # ------------------------------------------------------------------ the thread
    def start(self) -> threading.Thread:
        self._thread = threading.Thread(target=self._loop, name="carepath-simulation-ahead", daemon=True)
        self._thread.start()
        return self._thread

    def wake(self) -> None:
        """A draft was created, saved or decided here: the pass looks again at once (a run of a revision no longer
        open stops at once, the new revision's begins) instead of at the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """End the thread and kill the run being made (its whole process group)."""
        self._stop.set()
        self._wake.set()
        self._kill()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        delay = min(2.0, self.poll_s)  # a server that starts looks at once (the demo, a restart after a deploy)
        while not self._stop.is_set():
            self._wake.wait(delay)
            self._wake.clear()
            if self._stop.is_set():
                break
            delay = self.poll_s
            try:
                self.pass_once()
            except Exception as exc:  # noqa: BLE001 - a background thread: log the type, look again later
                log.error("the live runs made ahead: %s", type(exc).__name__)

    # ------------------------------------------------------------------ one pass
    def pass_once(self) -> int:
        """Make the plan's runs missing for the versions deployed now and for the open drafts, one after the other;
        the number made. Makes none while a process owner's simulation runs or another server process holds the
        lease, and stops when the deployment changes, the lease is lost or `stop()` is called."""
        from .simulate_reuse import KeptRuns, enabled

        if not enabled() or self._stop.is_set() or self._user_simulation():
            return 0
        live = self._live()
        if live is None:
            return 0
        kept = KeptRuns(self.engine)
        made = 0
        try:
            while True:  # the jobs looked at again after each run: a draft saved meanwhile comes in at its place
                scenario, newest = live[0], live[2]
                job = next((j for j in self._jobs(live) if j.key not in self._refused and not kept.has(j.key)), None)
                if (job is None or self._stop.is_set() or self._user_simulation()
                        or not self._take(job.label, job.key)):
                    break
                began, self.awaited = time.monotonic(), False
                got = self._make(scenario, job, newest, lambda key=job.key: kept.has(key))
                if got is None:
                    break
                kind, payload, nice = got
                if kind != "ok":  # the scenario does not fit the diagrams, or the run failed: nothing kept
                    log.warning("a %s run made ahead (%s days, seed %s) did not finish: %s", job.side, job.days,
                                job.seed, kind if kind == "refused" else payload)
                    if job.draft is None:
                        break
                    self._refused.add(job.key)  # a draft the scenario does not fit: not tried again, the others go on
                    continue
                seconds = round(time.monotonic() - began, 1)
                kept.put(job.key, payload, seconds=seconds)
                self.made.append({"days": job.days, "seed": job.seed, "seconds": seconds, "nice": nice,
                                  "draft": job.draft[0] if job.draft else None, "awaited": self.awaited})
                log.info("a %s run of %s days, seed %s, made ahead in %.1f s%s", job.side, job.days, job.seed, seconds,
                         " (a simulation waited for it)" if self.awaited else "")
                made += 1
                live = self._live()
                if live is None:
                    break
        finally:
            self._release()
        return made

    def _jobs(self, live: tuple[Any, Any, int, dict[tuple[int, int], str]]) -> list[_Job]:
        """The runs to make, in order: for each run of the plan (first seeds first), the live version's, then each
        open draft's (the drafts waiting for review first, then the ones saved most recently)."""
        scenario, rows, newest, keys = live
        open_drafts = self._drafts(scenario, newest) if self.drafts else []
        jobs: list[_Job] = []
        for (days, seed), key in keys.items():
            jobs.append(_Job("live", f"{days}:{seed}", days, seed, key, rows, None))
            for d in open_drafts:
                if d.keys is not None:
                    jobs.append(_Job("draft", f"{days}:{seed}:{d.id}", days, seed, d.keys[(days, seed)], d.rows,
                                     (d.id, d.revision)))
        return jobs

    def _drafts(self, scenario: Any, newest: int) -> list[_Draft]:
        """The open drafts whose runs are made ahead (at most `MAX_DRAFTS`: the ones waiting for review first, then
        the ones saved most recently), each with its deployed rows and its runs' keys; a draft that does not deploy
        has no keys. Worked out once per draft revision, deployment and scenario."""
        from engine.drafts import OPEN, get_draft
        from engine.schema import process_drafts as D
        from engine.trial import deployed_rows

        from .simulate_compare import draft_source
        from .simulate_reuse import run_key

        with self.engine.db.engine.connect() as conn:
            found = conn.execute(select(D.c.id, D.c.revision).where(D.c.status.in_(OPEN))
                                 .order_by((D.c.status == "submitted").desc(), D.c.updated_at.desc(), D.c.id.desc())
                                 .limit(MAX_DRAFTS)).all()
        mark = self._cached[0] if self._cached else newest  # the deployment and the scenario's text
        out: list[_Draft] = []
        cache: dict[tuple[int, int], _Draft] = {}
        for draft_id, revision in found:
            got = self._draft_cache.get((draft_id, revision))
            if got is None or got.mark != mark:
                got = _Draft(draft_id, revision, mark, None, None)
                try:
                    source = draft_source(self.engine, get_draft(self.engine, draft_id))
                    try:
                        got.rows = deployed_rows(source)
                    finally:
                        source.db.dispose()
                    got.keys = {(days, seed): run_key(got.rows, scenario, days, seed)
                                for days, seed in wanted(self.plan, first_seed(scenario))}
                except CarepathError as exc:  # it does not deploy: no runs for it (its review page says why)
                    log.info("a draft's runs are not made ahead: %s", type(exc).__name__)
                except Exception as exc:  # noqa: BLE001 - one draft must not stop the live runs and the others'
                    log.error("a draft's runs could not be made ahead: %s", type(exc).__name__)
            cache[(draft_id, revision)] = got
            out.append(got)
        self._draft_cache = cache
        return out

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

    def status(self, draft_id: int | None = None) -> dict[str, Any] | None:
        """What a draft's review page says of the runs made ahead: for each period of the plan, the seeds whose live
        runs are ready (`periods`), the same for draft `draft_id` when its runs are made ahead (`draft`, else None),
        and what is being made (`making`: "days:seed" or a draft's "days:seed:draft id"). None when no run is kept."""
        from .simulate_reuse import KeptRuns, enabled

        if not enabled():
            return None
        live = self._live()
        if live is None:
            return None
        scenario, keys, kept = live[0], live[3], KeptRuns(self.engine)
        first = first_seed(scenario)

        def periods(keys: dict[tuple[int, int], str]) -> list[dict[str, Any]]:
            return [{"days": days, "seeds": list(range(first, first + seeds)),
                     "ready": [s for s in range(first, first + seeds) if kept.has(keys[(days, s)])]}
                    for days, seeds in self.plan]

        draft = None
        if draft_id is not None and self.drafts:
            mine = [d for d in self._drafts(scenario, live[2]) if d.id == draft_id and d.keys is not None]
            if mine and not any(mine[0].keys[run] in self._refused for run in mine[0].keys):
                draft = periods(mine[0].keys)
        with self.engine.db.engine.connect() as conn:
            making = conn.execute(select(simulation_ahead.c.making).where(
                simulation_ahead.c.name == LEASE, simulation_ahead.c.heartbeat_at >= self.clock() - STALE)).scalar()
        return {"periods": periods(keys), "draft": draft, "making": making}

    def _make(self, scenario: Any, job: _Job, newest: int,
              kept_meanwhile: Callable[[], bool]) -> tuple[str, Any, int] | None:
        """The run in its own process at the lowest priority: ("ok", output, nice) or ("refused" | "failed", why,
        nice); None when it was stopped (stop(), the lease lost, a deployment, its draft saved again or decided, the
        same run kept meanwhile by a process owner's simulation). While a process owner's simulation runs, the run is
        paused (SIGSTOP of its process group: it holds its memory, takes no processor time and no cache), and goes on
        when it ends — unless that simulation waits for this very run (`Awaiting`): then it goes on. It is paused only
        once the simulation has been seen running for `pause_after_s` seconds without saying it waits for this run,
        so that a simulation that needs it has the time to say so before it is paused."""
        ours, theirs = multiprocessing.Pipe(duplex=False)
        proc = forked.process(_child, theirs, scenario, job.rows, job.days, job.seed, self.parts, os.getpid(),
                              name="carepath-simulate-ahead")  # from the warm forkserver (carepath/forked.py)
        self._child = proc
        proc.start()
        theirs.close()
        try:
            beat = time.monotonic() + self.beat_s
            look = time.monotonic() + self.user_check_s
            seen: float | None = None  # when a process owner's simulation was first seen running
            self.day = written_day = None  # the days the run has simulated, as it said and as the lease holds
            while not self._stop.is_set():
                if ours.poll(0.25):
                    try:
                        said = ours.recv()
                    except (EOFError, OSError):
                        return "failed", "its process ended without a word", 0
                    if said[0] != "day":
                        return said
                    self.day = said[1]  # how far it has come: written with the next look (below)
                    continue
                if not proc.is_alive() and not ours.poll(0):
                    return "failed", f"its process ended ({proc.exitcode})", 0
                if time.monotonic() >= look:
                    look = time.monotonic() + self.user_check_s
                    if self.day != written_day:
                        written_day = self.day if self._write_day(self.day) else written_day
                    busy = self._user_simulation()
                    if busy and self._awaited(job.key):  # that simulation waits for this run: it goes on
                        busy, self.awaited = False, True
                    seen = (seen or time.monotonic()) if busy else None
                    if busy and not self.paused and time.monotonic() - seen < self.pause_after_s:
                        busy = False  # time for a simulation that needs this run to say it waits for it
                    if busy != self.paused:
                        if not busy and kept_meanwhile():  # the process owner's simulation made it
                            return None
                        self._signal(proc, signal.SIGSTOP if busy else signal.SIGCONT)
                        self.paused = busy
                        self._mark_paused(busy)
                if time.monotonic() >= beat or self._wake.is_set():  # a heartbeat, or a draft changed here
                    self._wake.clear()
                    beat = time.monotonic() + self.beat_s
                    if not self._renew(job.label):
                        return None
                    if self._newest() != newest or (job.draft is not None and not self._draft_current(*job.draft)):
                        self._wake.set()  # the pass looks again at once: the new versions' or revision's runs
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

    def _awaited(self, key: str) -> bool:
        """Whether a process owner's simulation waits for the run with `key` this process is making."""
        try:
            with self.engine.db.engine.connect() as conn:
                return conn.execute(select(simulation_ahead.c.awaited).where(
                    simulation_ahead.c.name == LEASE, simulation_ahead.c.holder == self.holder)).scalar() == key
        except SQLAlchemyError as exc:
            log.error("the runs made ahead could not read their lease: %s", type(exc).__name__)
            return False

    def _mark_paused(self, paused: bool) -> None:
        """Say on the lease since when the run is paused (None: it runs): a simulation waiting for it can see it."""
        try:
            with self.engine.db.transaction() as conn:
                conn.execute(update(simulation_ahead).where(simulation_ahead.c.name == LEASE,
                                                            simulation_ahead.c.holder == self.holder)
                             .values(paused_at=self.clock() if paused else None))
        except SQLAlchemyError as exc:
            log.error("the runs made ahead could not write their lease: %s", type(exc).__name__)

    def _draft_current(self, draft_id: int, revision: int) -> bool:
        """Whether the draft is still open at that revision (not saved again, decided or withdrawn)."""
        from engine.drafts import OPEN
        from engine.schema import process_drafts as D

        with self.engine.db.engine.connect() as conn:
            row = conn.execute(select(D.c.revision, D.c.status).where(D.c.id == draft_id)).first()
        return row is not None and row.revision == revision and row.status in OPEN

    def _newest(self) -> int | None:
        with self.engine.db.engine.connect() as conn:
            return conn.execute(select(func.max(process_versions.c.id))).scalar()

    def _take(self, making: str, key: str | None = None) -> bool:
        """The lease, if nobody else holds it (or theirs is stale)."""
        T = simulation_ahead.c
        now = self.clock()
        try:
            with self.engine.db.transaction() as conn:
                got = conn.execute(update(simulation_ahead).where(
                    T.name == LEASE, or_(T.holder == self.holder, T.heartbeat_at < now - self.stale))
                    .values(holder=self.holder, making=making, run_key=key, awaited=None, paused_at=None, day=None,
                            heartbeat_at=now)).rowcount
                if got:
                    return True
                if conn.execute(select(T.name).where(T.name == LEASE)).first() is not None:
                    return False
                conn.execute(insert(simulation_ahead).values(name=LEASE, holder=self.holder, making=making,
                                                             run_key=key, heartbeat_at=now))
            return True
        except IntegrityError:  # another process took it at the same moment
            return False
        except SQLAlchemyError as exc:
            log.error("the live runs made ahead could not take their lease: %s", type(exc).__name__)
            return False

    def _write_day(self, day: int | None) -> bool:
        """How far the run being made has come, on the lease (read by a simulation that waits for it)."""
        T = simulation_ahead.c
        try:
            with self.engine.db.transaction() as conn:
                conn.execute(update(simulation_ahead).where(T.name == LEASE, T.holder == self.holder).values(day=day))
            return True
        except SQLAlchemyError as exc:  # kept going: only the page's figure is late
            log.error("the run made ahead could not say how far it has come: %s", type(exc).__name__)
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



class Awaiting:
    """A process owner's simulation that needs the very run being made ahead waits for it instead of making it again:
    that run has a head start (made since the deployment or the draft's save) and, awaited, it is not paused for the
    simulation (`Ahead._make`). Used by carepath/simulate_compare.py `compare` and the pages' single run."""

    def __init__(self, engine: Any, kept: Any, *, poll_s: float = 0.5, stale: timedelta = AWAIT_STALE,
                 paused_s: float = AWAIT_PAUSED_S, clock: Callable[[], datetime] = _now,
                 on_wait: Callable[[Any, int | None], None] | None = None) -> None:
        """`on_wait(run, day)` is told the run ({run: key}'s run) it waits for when it begins to wait and each time
        that run says it has simulated more days (`day`: the whole days so far, or None before its first week), and
        (None, None) when it stops waiting (the run kept or given up): the pages say so on the simulation's waiting
        page."""
        self.engine, self.kept, self.poll_s, self.stale, self.clock = engine, kept, poll_s, stale, clock
        self.paused_s = paused_s
        self.on_wait = on_wait

    def _lease(self) -> Any:
        """The lease's run key and since when it is paused, when its heartbeat is recent; else None."""
        T = simulation_ahead.c
        try:
            with self.engine.db.engine.connect() as conn:
                return conn.execute(select(T.run_key, T.paused_at, T.day).where(
                    T.name == LEASE, T.heartbeat_at >= self.clock() - self.stale)).first()
        except SQLAlchemyError as exc:
            log.error("the runs made ahead could not be read: %s", type(exc).__name__)
            return None

    def being_made(self) -> str | None:
        """The key of the run being made ahead now (its lease's heartbeat recent), or None."""
        row = self._lease()
        return row.run_key if row is not None else None

    def wait_for(self, keys: Mapping[Any, str | None]) -> tuple[Any, dict[str, Any]] | None:
        """When the run being made ahead is one of `keys` ({run: key}), mark it awaited and wait until it is kept:
        (run, its output). None when none of them is being made, or when the run made ahead stops without keeping it
        (a deployment, its server stopped...) or stays paused `paused_s` seconds after it was marked awaited (a server
        that does not see the mark): the caller then makes it itself."""
        runs = {key: run for run, key in keys.items() if key}
        key = self.being_made()
        if key not in runs:
            return None
        T = simulation_ahead.c
        try:
            with self.engine.db.transaction() as conn:
                marked = conn.execute(update(simulation_ahead).where(T.name == LEASE, T.run_key == key)
                                      .values(awaited=key)).rowcount
        except SQLAlchemyError as exc:
            log.error("the run made ahead could not be awaited: %s", type(exc).__name__)
            marked = 0
        marked_at = time.monotonic()
        told = bool(marked) and self.on_wait is not None
        day: int | None = None  # what on_wait was last told of how far the run has come
        if told:
            self.on_wait(runs[key], None)  # type: ignore[misc]
        try:
            while marked:
                if self.kept.has(key):
                    break
                row = self._lease()
                if row is None or row.run_key != key or (
                        row.paused_at is not None and time.monotonic() - marked_at > self.paused_s):
                    break
                if told and row.day != day:
                    day = row.day
                    self.on_wait(runs[key], day)  # type: ignore[misc]
                time.sleep(self.poll_s)
        finally:
            if told:
                self.on_wait(None, None)  # type: ignore[misc]
        out = self.kept.get(key)
        return (runs[key], out) if out is not None else None
