"""Simulating a draft against the live version from the review page (issue 16 parts 2 and 3).

* `POST /processes/drafts/{draft_id}/simulations` (the review page's "Simulate this change" form: days and
  seeds) starts `carepath.simulate_compare.compare` in a background thread of this server process and sends
  the user to the simulation's page (which any server process on the database serves).
* `GET /processes/drafts/{draft_id}/simulations/{simulation_id}`: "The simulation is running" (with how many
  runs are done; a link to check again, followed by /static/simulation.js every few seconds when scripts run),
  "The simulation could not be run" (and why), or the report: the figures of both versions side by side with
  the differences bigger than chance tagged, and for each section a chart with a table of the
  same numbers.
* `GET .../status`: {"status": "running" | "ready" | "failed", "done": N, "total": N}, for the script.

One simulation of the live processes alone (issue 16 item 2) shares the jobs, the background run, the waiting page
and the charts: `POST /processes/simulations` (the processes page's "Simulate the live processes" form: days and a
seed) runs `carepath.simulate.simulate` on the deployed versions; `GET /processes/simulations/{simulation_id}` is
its waiting page or report (`simulation_single.html`), `.../status` the same JSON.

Both forms ask where the simulation starts (`start`): an empty caseload (EMPTY, the default) or today's open cases
(TODAY: the background run reads the anonymised copy once, carepath/simulate_today.py `read_live`, and passes it to
simulate()/compare() as `from_live`); kept in `starts_from`, part of the key (with the live clock's day), said on the
waiting page and the report, whose "Carried over from today" section is `carried()` (docs/simulation.md).

Only process owners (those who review drafts) start and see simulations; every other role is refused (403).
The simulations are kept **in the database** (`simulation_runs`, migration 0023), so that a restart keeps them and
every server process on the database sees them: what was asked, its status and progress, and the result (JSON) or
why it could not be run. That row is all a simulation writes to the live database: it reads the deployed versions
and the draft, and its runs are on throwaway in-memory databases (docs/simulation.md). The background thread writes
its progress, and a heartbeat every HEARTBEAT_S seconds; a row still "running" whose heartbeat is older than STALE
(5 minutes: its server stopped) is shown as failed ("the server stopped while it ran; start it again") and blocks
nothing. One simulation runs at a time across every server process on the database: the row is claimed in one
transaction, and a partial unique index allows one running row. Asking for the same draft, revision, days and seeds
again (a single run: the same days, seed and deployed versions) opens the one already running or kept. The newest
KEEP finished simulations of each draft (and KEEP single runs) are kept; older ones are deleted.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from carepath import simulate, simulate_ahead, simulate_compare, simulate_reuse, simulate_today
from engine import definitions, drafts
from engine.errors import CarepathError, ConflictError, DefinitionError, NotFoundError
from engine.schema import simulation_runs
from engine.trial import deployed_rows

from . import page_kit as kit
from .auth import User
from .case_record import team_name
from .inputs import Id
from .processes import OWNER, _processes_page, _review_page, when
from .request_log import describe

router = APIRouter()
log = logging.getLogger("carepath.simulation")

SCENARIO_ENV = "CAREPATH_SIMULATION_SCENARIO"  # the scenario the pages run (default processes/config/...)
DAYS = (1, 365)
SEEDS = (2, 10)
DEFAULT_DAYS, DEFAULT_SEEDS = 14, 3
KEEP = 10
CHECK_EVERY_S = 2  # the waiting page's script asks for the status this often: first results shown within 2 s
REFUSAL = "Only process owners simulate drafts and see the results."
# how long the default scenario took here (docs/simulation.md "How long it takes"), for the form's hint
MEASURED = ("about 30 seconds for 14 days with 3 seeds on a quiet 2-core server (31.9 s, the runs sharing both "
            "cores), several minutes on a busy one; a whole year with 2 seeds about 7 minutes when every run is made, "
            "and about 4 minutes once the live version's runs of that period and seeds are ready (made by an earlier "
            "simulation, or by the server after each deployment; they are kept and reused), with first results to "
            "read after about 2 minutes")

RUNNING, READY, FAILED = "running", "ready", "failed"
HEARTBEAT_S = 30  # how often the server running a simulation writes that it is still alive
STALE = timedelta(minutes=5)  # a running simulation whose heartbeat is older: its server stopped (10 beats missed)
STOPPED = "the server stopped while it ran; start it again"
ID_RANGE = (100_000_000, 999_999_999)  # a simulation's id: a random 9-digit number (its page's address)
# where a simulation's runs start (the forms' "Where should the simulation start?"; `simulation_runs.starts_from`)
EMPTY, TODAY = "empty", "today"
STARTS = {EMPTY: "From an empty caseload",
          TODAY: "From today's open cases (copied and anonymised; the live cases are only read)"}
START_ERROR = "Select where the simulation starts: from an empty caseload or from today's open cases"
UNREADABLE = ("today's open cases could not be read from the live database, so the simulation did not start (the "
              "error was logged): try again later, or start it from an empty caseload")
LEFT_OUT = {"closed_cases": ("closed or erased case", "closed or erased cases"),
            "messages_expired": ("message that had expired", "messages that had expired"),
            "messages_for_cases_not_copied": ("message for a case not copied", "messages for cases not copied")}


@dataclass
class Job:
    """A simulation as the database holds it (`simulation_runs`)."""

    id: int
    draft_id: int | None  # None: one run of the deployed versions alone (the processes page's simulation)
    revision: int | None
    process_id: str
    days: int
    seeds: list[int]
    scenario: str
    started_by: str
    started_at: datetime
    status: str = RUNNING
    done: int = 0
    total: int = 0
    seconds: float | None = None
    result: dict[str, Any] | None = None
    error: str | None = None
    live: tuple[tuple[str, int], ...] = ()  # the deployed versions a single run read (asked again after a deploy: run)
    heartbeat_at: datetime | None = None
    starts_from: str = EMPTY  # EMPTY: an empty caseload; TODAY: an anonymised copy of today's open cases
    live_day: str | None = None  # TODAY: the live clock's day when asked (only in the key: asked the next day, run)
    has_result: bool = False  # a result is written (while running: a comparison's first results)
    waiting: dict[str, Any] | None = None  # the run made ahead it waits for: {"side", "seed", "since", "day"} (0029)
    progress: dict[str, int] | None = None  # the runs being made: {"live:1": days simulated, ...} (0029)
    #: a digest of the scenario file's content when asked (only in the key: the same path edited is another question)
    scenario_digest: str = ""

    @property
    def key(self) -> str:
        """What was asked, as the same text for the same question: asked again, the kept or running one opens. From
        today's open cases, the live clock's day is part of it: the same question the next day is run again."""
        asked: list[Any] = [self.draft_id, self.revision, self.days, list(self.seeds), self.scenario,
                            [list(v) for v in self.live]]
        if self.starts_from != EMPTY:  # an empty start keeps the key it had before there was a choice
            asked += [self.starts_from, self.live_day]
        if self.scenario_digest:
            asked.append(self.scenario_digest)
        asked.append(["results", simulate.RESULTS_REVISION])  # kept by older code: run again
        return hashlib.sha256(json.dumps(asked, separators=(",", ":")).encode()).hexdigest()

    @property
    def from_today(self) -> bool:
        return self.starts_from == TODAY

    @property
    def first_results(self) -> bool:
        """Still running, with the comparison of the seeds finished so far written (`compare(..., first=)`)."""
        return self.status == RUNNING and self.has_result


def _now() -> datetime:
    """The wall clock: a heartbeat says a server process is alive in real time (a simulated engine clock stands
    still), so the simulation's times are the server's, not the engine's."""
    return datetime.now(timezone.utc)


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value


_T = simulation_runs.c
# a list or a status does not read the figures, only whether there are any
_LISTED = [c for c in simulation_runs.c if c.name != "result"] + [_T.result.isnot(None).label("has_result")]


def _job(row: Any, now: datetime) -> Job:
    """The row as a Job; one still `running` whose heartbeat is older than STALE is failed: its server stopped."""
    job = Job(id=row.id, draft_id=row.draft_id, revision=row.revision, process_id=row.process_id, days=row.days,
              seeds=json.loads(row.seeds), scenario=row.scenario, started_by=row.started_by,
              started_at=_utc(row.started_at), status=row.status, done=row.done, total=row.total,
              seconds=row.seconds, error=row.error, live=tuple((p, v) for p, v in json.loads(row.live)),
              heartbeat_at=_utc(row.heartbeat_at), starts_from=row.starts_from)
    result = getattr(row, "result", None)
    if result is not None:
        job.result = json.loads(result)
    if job.status == RUNNING and getattr(row, "waiting_for", None):
        job.waiting = json.loads(row.waiting_for)
    if job.status == RUNNING and getattr(row, "progress", None):
        job.progress = json.loads(row.progress)
    job.has_result = result is not None or bool(getattr(row, "has_result", False))
    if job.status == RUNNING and now - job.heartbeat_at > STALE:
        job.status, job.error = FAILED, STOPPED
    return job


def _of(draft_id: int | None) -> Any:
    return _T.draft_id.is_(None) if draft_id is None else _T.draft_id == draft_id


def scenario_path() -> str:
    return os.environ.get(SCENARIO_ENV) or str(simulate.DEFAULT_SCENARIO)


def for_draft(engine: Any, draft_id: int | None) -> list[Job]:
    """The simulations of a draft kept in the database (draft None: the single runs of the live processes), newest
    first, without their figures."""
    with engine.db.engine.connect() as conn:
        rows = conn.execute(select(*_LISTED).where(_of(draft_id)).order_by(_T.started_at.desc(), _T.id)).all()
    now = _now()
    return [_job(r, now) for r in rows]


def find(engine: Any, draft_id: int | None, simulation_id: int, *, figures: bool = True) -> Job:
    """The simulation `simulation_id` of the draft (None: a run of the live processes), with its figures unless
    `figures` is False; NotFoundError when there is none (never started, or no longer kept)."""
    with engine.db.engine.connect() as conn:
        row = conn.execute(select(*(simulation_runs.c if figures else _LISTED))
                           .where(_T.id == simulation_id, _of(draft_id))).first()
    if row is None:
        raise NotFoundError(f"no simulation {simulation_id}" + (f" of draft {draft_id}" if draft_id else ""))
    return _job(row, _now())


def _prune(conn: Any, draft_id: int | None) -> None:
    """Delete the draft's finished simulations but the newest KEEP (the single runs: the same among themselves)."""
    old = conn.execute(select(_T.id).where(_of(draft_id), _T.status != RUNNING)
                       .order_by(_T.started_at.desc(), _T.id).offset(KEEP)).scalars().all()
    if old:
        conn.execute(delete(simulation_runs).where(_T.id.in_(old), _T.status != RUNNING))


def _busy(row: Any) -> ConflictError:
    what = f"draft {row.draft_id}" if row.draft_id is not None else "the live processes"
    exc = ConflictError(f"another simulation is running ({what}, started by {row.started_by} "
                        f"{when(_utc(row.started_at))}): open it to follow it, or start this one when it has finished")
    # the running one's page, for the error summary's link (a process owner may open any simulation)
    exc.link = (f"/processes/drafts/{row.draft_id}/simulations/{row.id}" if row.draft_id is not None
                else f"/processes/simulations/{row.id}")  # type: ignore[attr-defined]
    return exc


def _claim(engine: Any, job: Job) -> Job | None:
    """In one transaction: the simulation kept or running with `job`'s key (returned), else `job` written as the one
    running (None) — ConflictError when another simulation is running in any server process on the database. A
    running one whose heartbeat is stale is marked failed first, so a stopped server blocks nobody. Two processes
    at the same moment: the partial unique index on the running row refuses the second insert (IntegrityError,
    for the caller to look again)."""
    now = _now()
    with engine.db.transaction() as conn:
        conn.execute(update(simulation_runs).where(_T.status == RUNNING, _T.heartbeat_at < now - STALE)
                     .values(status=FAILED, error=STOPPED))
        same = conn.execute(select(*_LISTED).where(_T.run_key == job.key, _T.status.in_((RUNNING, READY)))
                            .order_by(_T.started_at.desc()).limit(1)).first()
        if same is not None:
            return _job(same, now)
        busy = conn.execute(select(*_LISTED).where(_T.status == RUNNING)).first()
        if busy is not None:
            raise _busy(busy)
        job.id = secrets.randbelow(ID_RANGE[1] - ID_RANGE[0] + 1) + ID_RANGE[0]
        job.started_at = job.heartbeat_at = now
        conn.execute(insert(simulation_runs).values(
            id=job.id, run_key=job.key, draft_id=job.draft_id, revision=job.revision, process_id=job.process_id,
            days=job.days, seeds=json.dumps(job.seeds), scenario=job.scenario,
            live=json.dumps([list(v) for v in job.live]), starts_from=job.starts_from, started_by=job.started_by,
            started_at=now, status=RUNNING,
            done=0, total=job.total, heartbeat_at=now))
        _prune(conn, job.draft_id)
    return None


def _launch(engine: Any, job: Job, draft: dict[str, Any] | None, scenario: simulate.Scenario) -> Job:
    """The job kept or running with the same key, else `job` written to the database and started in a background
    thread of this process; ConflictError when another simulation (of a draft or of the live processes) is running
    in any server process on the database."""
    for _attempt in range(5):
        try:
            kept = _claim(engine, job)
        except IntegrityError:  # another process started one at the same moment, or the random id was taken
            continue
        if kept is not None:
            return kept
        threading.Thread(target=_run, args=(engine, job, draft, scenario), name="carepath-simulation",
                         daemon=True).start()
        return job
    raise ConflictError("another simulation was being started at the same moment: try again")


def _write(engine: Any, job_id: int, **values: Any) -> None:
    """Progress or a heartbeat of a running simulation (a row no longer running is left as it is). Best effort: a
    failed write is logged by its type and the run goes on (a missed heartbeat is only late)."""
    try:
        with engine.db.transaction() as conn:
            conn.execute(update(simulation_runs).where(_T.id == job_id, _T.status == RUNNING).values(**values))
    except Exception as exc:  # noqa: BLE001 - a background thread: the run goes on
        log.error("a simulation's progress could not be written: %s", type(exc).__name__)


def _heartbeat(engine: Any, job_id: int, finished: threading.Event) -> None:
    while not finished.wait(HEARTBEAT_S):
        _write(engine, job_id, heartbeat_at=_now())


def _run(engine: Any, job: Job, draft: dict[str, Any] | None, scenario: simulate.Scenario) -> None:
    """Run the simulation claimed by `_claim` (in a background thread), with a heartbeat beside it, and write its
    result or why it failed. The scratch runs are on throwaway in-memory databases; this row is all it writes."""
    began = time.monotonic()
    finished = threading.Event()
    threading.Thread(target=_heartbeat, args=(engine, job.id, finished), name="carepath-simulation-heartbeat",
                     daemon=True).start()

    def progress(done: int, total: int) -> None:
        _write(engine, job.id, done=done, total=total, heartbeat_at=_now())

    def first(out: dict[str, Any]) -> None:  # the comparison of the seeds finished so far, to read while the rest run
        _write(engine, job.id, result=json.dumps(out, default=str, separators=(",", ":")), heartbeat_at=_now())

    since: list[str] = []  # when it began to wait for the run made ahead

    def waiting(run: Any, day: int | None) -> None:  # the run made ahead it waits for (("draft", 1), or "live")
        note = None
        if run is None:  # no longer waiting
            since.clear()
        else:
            side, seed = run if isinstance(run, tuple) else ("live", job.seeds[0])
            since[:] = since or [_now().isoformat()]
            note = json.dumps({"side": side, "seed": seed, "since": since[0], "day": day})
        _write(engine, job.id, waiting_for=note, heartbeat_at=_now())

    def days(reached: dict[tuple[str, int], int]) -> None:  # how far the runs being made have come
        ordered = sorted(reached.items(), key=lambda r: (r[0][1], r[0][0] != "live"))  # by seed, the live one first
        made = {f"{side}:{seed}": day for (side, seed), day in ordered}
        _write(engine, job.id, progress=json.dumps(made) if made else None, heartbeat_at=_now())

    values: dict[str, Any]
    try:
        today = _read_today(engine) if job.from_today else False
        # runs from an empty caseload already made (same versions, scenario, period, seed, code) are taken as kept
        kept = simulate_reuse.KeptRuns(engine) if simulate_reuse.enabled() and not today else None
        # the run a server is making ahead, when this simulation needs it: waited for, not made again
        awaiting = simulate_ahead.Awaiting(engine, kept, on_wait=waiting) if kept is not None else None
        if draft is None:
            result = _single(engine, job, scenario, today, kept, awaiting, on_days=days)
            values = {"done": 1}
        else:
            result = simulate_compare.compare(scenario, engine, draft, seeds=job.seeds, days=job.days,
                                              progress=progress, from_live=today, kept=kept, first=first,
                                              awaiting=awaiting, on_days=days)
            values = {}
        values.update(status=READY, result=json.dumps(result, default=str, separators=(",", ":")))
    except DefinitionError as exc:
        values = {"status": FAILED, "error": "the draft's diagrams do not deploy: "
                  + "; ".join(str(p) for p in exc.problems)[:2000]}
    except CarepathError as exc:
        values = {"status": FAILED, "error": str(exc)[:2000]}
    except Exception as exc:  # noqa: BLE001 - a background thread: say it failed; log what and where, not its words
        log.error("a simulation failed: %s", describe(exc))
        values = {"status": FAILED, "error": "something went wrong while the simulation ran; the error was logged"}
    finally:
        finished.set()
    try:  # the result is written even if the row was taken as stopped meanwhile: the figures are better than that
        with engine.db.transaction() as conn:
            conn.execute(update(simulation_runs).where(_T.id == job.id).values(
                seconds=round(time.monotonic() - began, 1), heartbeat_at=_now(), waiting_for=None, progress=None,
                **values))
            _prune(conn, job.draft_id)
    except Exception as exc:  # noqa: BLE001 - the row stays running, its heartbeat goes stale: shown as stopped
        log.error("a simulation's result could not be written: %s", type(exc).__name__)


def _single(engine: Any, job: Job, scenario: simulate.Scenario, today: Any, kept: Any,
            awaiting: Any = None, on_days: Any = None) -> dict[str, Any]:
    """One run of the live processes: its cases shared between this process and a second on the other core, as a
    comparison's runs are (CAREPATH_SIMULATION_WORKERS=1: all here); from an empty caseload, the run kept with the
    same key if there is one (`reused` true), or the same run being made ahead (waited for), else the run made and
    kept."""
    parts = min(2, simulate_compare.workers_default())
    seed = job.seeds[0]
    on_day = (lambda day: on_days({("live", seed): day})) if on_days is not None else None
    if kept is None:
        return simulate.simulate(scenario, source=engine, days=job.days, seed=seed, from_live=today,
                                 parts=parts, on_day=on_day)
    rows = deployed_rows(engine)  # read once: the key and the run are of the same versions
    key = simulate_reuse.run_key(rows, scenario, job.days, job.seeds[0])
    found = kept.get(key) if key else None
    if found is None and key and awaiting is not None:
        got = awaiting.wait_for({"live": key})
        found = got[1] if got is not None else None
    if found is not None:
        return {**found, "reused": True}
    began = time.monotonic()
    result = simulate.simulate(scenario, source=rows, days=job.days, seed=seed, parts=parts, on_day=on_day)
    if key:
        kept.put(key, result, seconds=round(time.monotonic() - began, 1))
    return result


def _read_today(engine: Any) -> simulate_today.LiveStart:
    """The anonymised copy of today's open cases (carepath/simulate_today.py `read_live`, one read-only transaction),
    read once for every run of the simulation. A live database that cannot be read is said in words (the error's
    type is logged); a CarepathError (e.g. a database not initialised) says its own."""
    try:
        return simulate_today.read_live(engine)
    except CarepathError:
        raise
    except Exception as exc:  # noqa: BLE001 - the database's own error may quote what it read: its type only
        log.error("today's open cases could not be read for a simulation: %s", type(exc).__name__)
        raise CarepathError(UNREADABLE) from None


def _live_day(engine: Any, starts_from: str) -> str | None:
    """The live clock's day (UK) when a simulation from today's open cases is asked for: part of its key."""
    return engine.now().astimezone(simulate.UK).date().isoformat() if starts_from == TODAY else None


def live_versions(engine: Any) -> tuple[tuple[str, int], ...]:
    """Each deployed process with its live (newest) version, by process id: part of what a simulation asked, so the
    same question asked after a deployment is run again, and what a comparison's report says it compared with."""
    with engine.db.engine.connect() as conn:
        return tuple(definitions.newest_versions(conn).items())


def scenario_digest(scenario: simulate.Scenario) -> str:
    """The scenario as read (its values, not its file's path or time): part of a simulation's key."""
    text = json.dumps(scenario.data, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def start(engine: Any, user: User, draft: dict[str, Any], days: int, seeds: int, starts_from: str = EMPTY) -> Job:
    """The simulation of this draft, revision, period and seeds from `starts_from` (EMPTY or TODAY): the one kept
    or running, else a new one started in a background thread. Raises ScenarioError (the scenario file cannot be
    read) and ConflictError (another simulation is running on the database)."""
    path = scenario_path()
    scenario = simulate.load_scenario(path)
    first = simulate_ahead.first_seed(scenario)
    job = Job(id=0, draft_id=draft["id"], revision=draft["revision"], process_id=draft["process_id"], days=days,
              seeds=list(range(first, first + seeds)), scenario=path, started_by=user.username,
              started_at=_now(), total=2 * seeds, starts_from=starts_from, live_day=_live_day(engine, starts_from),
              live=live_versions(engine), scenario_digest=scenario_digest(scenario))
    return _launch(engine, job, draft, scenario)


def start_single(engine: Any, user: User, days: int, seed: int, starts_from: str = EMPTY) -> Job:
    """One run of the deployed versions (carepath.simulate.simulate) over `days` with `seed` from `starts_from`:
    the one kept or running for the same versions, period, seed and start, else a new one in the background.
    Raises as start()."""
    path = scenario_path()
    scenario = simulate.load_scenario(path)
    job = Job(id=0, draft_id=None, revision=None, process_id="", days=days, seeds=[seed], scenario=path,
              started_by=user.username, started_at=_now(), total=1, live=live_versions(engine),
              starts_from=starts_from, live_day=_live_day(engine, starts_from),
              scenario_digest=scenario_digest(scenario))
    return _launch(engine, job, None, scenario)


# ---------------------------------------------------------------------- the form
def _integer(text: str) -> int | None:
    """`text` as an integer when it is one written in ASCII digits (a sign allowed, so -3 is "between 1 and …", not
    "not a whole number"), else None. `str.isdigit` is also true of "²" and "①", which `int` refuses, and `int`
    takes other scripts' digits, which nobody types here by choice."""
    if not _INTEGER.fullmatch(text):
        return None
    return int(text) if len(text) <= 19 else (-1 if text.startswith("-") else 10**19)


_INTEGER = re.compile(r"[+-]?[0-9]+")


def _whole(text: str, what: str, low: int, high: int, example: int) -> tuple[int | None, str | None]:
    text = text.strip()
    if not text:
        return None, f"Enter the number of {what}"
    n = _integer(text)
    if n is None:
        return None, f"The number of {what} must be a whole number, like {example}"
    if not low <= n <= high:
        return None, f"The number of {what} must be between {low} and {high}"
    return n, None


def _starts_from(form: dict[str, list[str]]) -> tuple[str, str | None]:
    """The "Where should the simulation start?" answer: EMPTY when the form sent none (the default, as before the
    question was asked), the value when it is one of STARTS, else an error."""
    if "start" not in form:
        return EMPTY, None
    value = kit.one(form, "start")
    return (value, None) if value in STARTS else (EMPTY, START_ERROR)


def form_defaults() -> dict[str, Any]:
    """What the review page's form shows: the defaults, the limits and how long the defaults took."""
    return {"days": DEFAULT_DAYS, "seeds": DEFAULT_SEEDS, "days_range": DAYS, "seeds_range": SEEDS,
            "measured": MEASURED, "link": link, "starts": STARTS, "start": EMPTY}


def link(job: Job) -> str:
    return f"/processes/drafts/{job.draft_id}/simulations/{job.id}"


def ahead_text(ahead: Any, draft_id: int | None = None) -> str | None:
    """What a draft's review page says of the runs made ahead (carepath/simulate_ahead.py) when this server makes
    them: for each period of the plan, which seeds' live runs are ready and which one is being made, and the same of
    draft `draft_id`'s runs when they are made ahead. None when they are not made (the setting off, reuse off, a
    scenario with a policy, nothing deployed) or cannot be read."""
    if ahead is None:
        return None
    try:
        st = ahead.status(draft_id)
    except Exception as exc:  # noqa: BLE001 - a hint only: the page is shown without it
        log.error("the runs made ahead could not be read: %s", type(exc).__name__)
        return None
    if st is None:
        return None

    def said(periods: list[dict[str, Any]], suffix: str) -> str:
        out = []
        for p in periods:
            seeds, ready = p["seeds"], p["ready"]
            being = [s for s in seeds if st["making"] == f"{p['days']}:{s}{suffix}"]
            if len(ready) == len(seeds):
                state = "all ready"
            elif not ready:
                state = "none ready yet"
            else:
                state = f"seed{'s' if len(ready) > 1 else ''} {_listed(ready)} ready"
            if being:
                state += f", seed {being[0]} being made"
            out.append(f"{_days(p['days'])} with seed{'s' if len(seeds) > 1 else ''} {_listed(seeds)} ({state})")
        return "; ".join(out)

    if st.get("draft") is None:
        return ("The live version's runs are made in the background after each deployment, so that a simulation of "
                "these periods and seeds only makes this draft's runs and its first results come in about half the "
                "time: " + said(st["periods"], "") + ".")
    return ("The live version's runs are made in the background after each deployment, and this draft's after each "
            "save, so that a simulation of these periods and seeds finds them made, or waits for the one being made "
            f"instead of starting again. The live version's: {said(st['periods'], '')}. This draft's: "
            f"{said(st['draft'], f':{draft_id}')}.")


async def _posted_by_owner(page: kit.Page, refusal: str) -> tuple[User, dict[str, list[str]]]:
    """A simulation form POSTed: the form read (413 when too large), the signed-in user a process owner (403 with
    `refusal` otherwise) and the form's CSRF token the session's (403, nothing started). `page.user` is set as soon
    as it is known, so that `page.guard`'s error page shows them signed in."""
    page.form = await kit.posted_form(page.request)
    page.user = kit.page_user(page.request, OWNER, refusal=refusal)
    kit.check_csrf(page.user, page.form)
    return page.user, page.form


@router.post("/processes/drafts/{draft_id}/simulations", response_class=HTMLResponse, include_in_schema=False)
async def start_page(request: Request, draft_id: Id) -> Response:
    page = kit.Page(request)
    try:
        user, form = await _posted_by_owner(page, REFUSAL)
        engine = page.engine
        draft = await run_in_threadpool(drafts.get_draft, engine, draft_id)
        if draft["status"] not in drafts.OPEN:  # withdrawn, deployed (approved) or superseded: nothing to decide
            items = [{"text": f"This draft is {draft['status']}: it can no longer be simulated", "href": None}]
            return await run_in_threadpool(lambda: _review_page(request, user, draft_id, errors=items, status=409,
                                                                values={"field": "simulate"}))
        days_text, seeds_text = kit.one(form, "days"), kit.one(form, "seeds")
        starts_from, start_error = _starts_from(form)
        days, days_error = _whole(days_text, "days", *DAYS, DEFAULT_DAYS)
        seeds, seeds_error = _whole(seeds_text, "seeds", *SEEDS, DEFAULT_SEEDS)
        values = {"field": "simulate", "days": days_text, "seeds": seeds_text, "days_error": days_error or "",
                  "seeds_error": seeds_error or "", "start": "" if start_error else starts_from,
                  "start_error": start_error or ""}
        errors = [{"text": e, "href": h} for e, h in ((start_error, "#sim-start"), (days_error, "#sim-days"),
                                                      (seeds_error, "#sim-seeds")) if e]
        if errors:
            return await run_in_threadpool(lambda: _review_page(request, user, draft_id, errors=errors, status=400,
                                                                values=values))
        try:
            job = await run_in_threadpool(start, engine, user, draft, days, seeds, starts_from)
        except (ConflictError, simulate.ScenarioError) as exc:
            code = 409 if isinstance(exc, ConflictError) else 422
            text = str(exc)
            items = [{"text": text[:1].upper() + text[1:], "href": getattr(exc, "link", None)}]
            return await run_in_threadpool(lambda: _review_page(request, user, draft_id, errors=items, status=code,
                                                                values=values))
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page.guard(exc, not_found=f"There is no draft {draft_id}.")
    return kit.redirect(link(job))


# ---------------------------------------------------------------------- the report
def _num(v: float | None, unit: str = "") -> str:
    if v is None:
        return "No figure"
    text = f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}".rstrip("0").rstrip(".")
    if unit == "£":
        return f"£{v:,.2f}" if not float(v).is_integer() else f"£{v:,.0f}"
    return f"{text}%" if unit == "%" else text


def _signed(v: float | None, unit: str = "") -> str:
    if v is None:
        return "No figure"
    if v == 0:
        return _num(0.0, unit)
    return ("+" if v > 0 else "−") + _num(abs(v), unit)


BAR_W, LABEL_W, BAR_H, BAR_STEP = 340, 300, 16, 18
LABEL_CHARS = 38  # what fits in LABEL_W at 13px Arial; the table gives the whole name
LIVE_DRAFT = (("Live", "#505a5f"), ("Draft", "#1d70b8"))
COLOURS = ("#505a5f", "#1d70b8", "#00703c")


def _clipped(label: str) -> str:
    return label if len(label) <= LABEL_CHARS else label[:LABEL_CHARS - 1].rstrip() + "…"


def _chart_labels(labels: list[str]) -> dict[str, str]:
    """Each label as a chart shows it, at most LABEL_CHARS long: cut at the end, or, where that would make two labels
    the same ("ASCOF 3D(1a): self-directed support, …" for both the 18 to 64 and the 65 and over rows), cut in the
    middle to keep the words where they differ ("ASCOF 3D(1a): self-directed… 18 to 64")."""
    shown = {label: _clipped(label) for label in labels}
    groups: dict[str, list[str]] = defaultdict(list)
    for label in dict.fromkeys(labels):
        groups[shown[label]].append(label)
    for same in groups.values():
        if len(same) < 2:
            continue
        p = len(os.path.commonprefix(same))
        while p > 0 and same[0][p - 1] not in " /(_-:,":  # from the start of the word where they differ
            p -= 1
        for label in same:
            tail = label[p:]
            if len(tail) > LABEL_CHARS - 8:
                tail = tail[:LABEL_CHARS - 9].rstrip() + "…"
            shown[label] = label[:max(LABEL_CHARS - 2 - len(tail), 4)].rstrip() + "… " + tail
    return shown


def bars(rows: list[tuple[str, list[float | None]]], series: tuple[tuple[str, str], ...], aria: str,
         unit: str = "") -> dict[str, Any] | None:
    """Horizontal bars, one a series in each row, each labelled with its series' name and figure (colour is never
    the only key), as geometry for the template's inline SVG; None when there is nothing above zero to draw (the
    table says the same)."""
    top = max((v for _label, vs in rows for v in vs if v is not None), default=0)
    if top <= 0:
        return None
    row_h = 8 + BAR_STEP * len(series)
    drawn = []
    shown = _chart_labels([label for label, _values in rows])
    for i, (label, values) in enumerate(rows):
        y = 8 + i * row_h
        drawn.append({"label": shown[label],
                      "label_y": y + 9 * len(series) + 4,
                      "bars": [{"y": y + BAR_STEP * k, "w": round(BAR_W * (v or 0) / top, 1), "fill": colour,
                                "text": f"{name} {_num(v, unit)}"}
                               for k, ((name, colour), v) in enumerate(zip(series, values, strict=True))]})
    return {"rows": drawn, "height": 8 + len(rows) * row_h, "width": LABEL_W + BAR_W + 160, "label_w": LABEL_W,
            "bar_h": BAR_H, "aria": aria}


def chart(title: str, rows: list[tuple[str, float | None, float | None]], unit: str = "") -> dict[str, Any] | None:
    """Paired bars, live and draft."""
    return bars([(label, [a, b]) for label, a, b in rows], LIVE_DRAFT,
                f"Bar chart: {title}, live version and draft side by side. The table below gives the same numbers.",
                unit)


def _by_week(weeks: dict[Any, float]) -> dict[int, float]:
    """A team's weeks by number: JSON (the result as the database keeps it) made the week numbers text."""
    return {int(w): v for w, v in weeks.items()}


def week_label(week: int, days: int | None) -> str:
    """"Week 3", or for a last week the period ends before its seventh day "Week 3 (to day 18)": its figures are as
    the period ended, not as a week ended."""
    if isinstance(days, int) and week * 7 > days:
        return f"Week {week} (to day {days})"
    return f"Week {week}"


def report(job: Job) -> dict[str, Any]:
    """The report page's sections from a comparison: rows for the tables, geometry for the charts."""
    out = job.result or {}
    rows = []
    for r in out.get("figures", []):
        if r["live_mean"] is None and r["draft_mean"] is None:
            continue  # no figure in either version (a measure with nothing to count in the period)
        u = r["unit"]
        rows.append({**r, "live_text": _num(r["live_mean"], u), "draft_text": _num(r["draft_mean"], u),
                     "diff_text": _signed(r["difference"], u),
                     "spread_text": "Not known" if r["spread"] is None else "±" + _num(r["spread"], u),
                     "margin_text": "Not known" if r.get("margin") is None else "±" + _num(r["margin"], u),
                     "per_seed": ", ".join(_signed(d, u) for d in r["differences"])})
    for r in rows:  # a team's figures under the team's name, as the inbox names it ("Social Work", not social_work)
        if r["group"] == "Teams" and r["key"].count("/") == 2:
            team = r["key"].split("/")[1]
            if r["label"].startswith(f"{team}:"):
                r["label"] = team_name(team) + r["label"][len(team):]
    groups = {g: [r for r in rows if r["group"] == g] for g in simulate_compare.GROUPS}
    breaches = groups["Deadlines missed"]
    teams = groups["Teams"]
    weeks_live, weeks_draft = out.get("weeks", {}).get("live", {}), out.get("weeks", {}).get("draft", {})
    queues = []
    for team in sorted(set(weeks_live) | set(weeks_draft)):
        lw, dw = _by_week(weeks_live.get(team, {})), _by_week(weeks_draft.get(team, {}))
        weeks = sorted(set(lw) | set(dw))
        days = out.get("days")
        table = [{"week": w, "label": week_label(w, days), "live": _num(lw.get(w, 0.0)),
                  "draft": _num(dw.get(w, 0.0))} for w in weeks]
        staff = out.get("staff", {}).get(team)  # a result kept before 8 December 2026 has none
        queues.append({"team": team_name(team), "slug": "".join(c if c.isalnum() else "-" for c in team),
                       "staff": None if staff is None else _count(staff, "member of staff", "members of staff"),
                       "weeks": table, "chart": chart(f"tasks waiting for {team_name(team)} as each week ended",
                                      [(week_label(w, days), lw.get(w, 0.0), dw.get(w, 0.0)) for w in weeks])})
    budgets = groups["Personal budgets"]
    total = next((r for r in budgets if r["key"] == "budgets/total"), None)
    measures = groups["Measures"]
    percents = [m for m in measures if m["unit"] == "%"]
    return {
        "rows": rows, "marked": [r for r in rows if r["marked"]], "groups": groups, "queues": queues,
        "breach_chart": chart("deadlines missed", [(r["label"], r["live_mean"], r["draft_mean"]) for r in breaches]),
        "team_chart": chart("tasks waiting at the end of the period, by team", [
            (r["label"].split(":")[0], r["live_mean"], r["draft_mean"]) for r in teams
            if r["key"].endswith("/waiting_at_end")]),
        "budget_chart": chart("personal budgets, total a year", [("Total a year", total["live_mean"],
                                                                  total["draft_mean"])], "£") if total else None,
        "measure_chart": chart("measures given as a percentage", [(m["label"], m["live_mean"], m["draft_mean"])
                                                                   for m in percents], "%"),
    }


def _count(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def _by_team(teams: dict[str, int]) -> str:
    return ", ".join(f"{team_name(team)}: {n:,}" for team, n in teams.items())


def carried(c: dict[str, Any] | None, process_id: str | None = None) -> dict[str, Any] | None:
    """The report's "Carried over from today" section from a result's `carried_over` (None: the simulation started
    from an empty caseload): when the copy was taken, and each figure as a row of plain words. `process_id`: a
    comparison's draft process (how many carried-over instances stay on the live version); per-run figures are
    in `runs` (a comparison: one row a seed)."""
    if not c:
        return None
    s, e, m = c["suspended"], c["in_error"], c["messages"]
    rows = [
        ("cases", "Open cases", _count(c["cases"], "case")),
        ("instances", "Process instances", _count(c["instances"], "instance") + (
            f", of which {s['instances']:,} suspended and {e['instances']:,} in error" if s["instances"]
            or e["instances"] else "")),
        ("tasks", "Open tasks put in the teams' queues", _count(c["tasks"], "task") + (
            f" ({_by_team(c['tasks_by_team'])})" if c["tasks_by_team"] else "")),
        ("timers", "Timers still to fire", _count(c["timers"], "timer")),
        ("suspended", "Suspended", "None" if not s["instances"] else (
            f"{_count(s['instances'], 'instance')} kept paused (the simulation resumes nothing): their "
            f"{_count(s['tasks'], 'task')} and {_count(s['timers'], 'timer')} held")),
        ("in_error", "In error", "None" if not e["instances"] else (
            f"{_count(e['instances'], 'instance')} kept in error (the simulation retries nothing): their "
            f"{_count(e['tasks'], 'task')} held" + (
                "; stopped at " + _by_team(e["incidents"]) if e.get("incidents") else ""))),
        ("messages", "Messages waiting for a receiver", _count(m["waiting"], "message")),
    ]
    if process_id is not None:
        rows.append(("on_live_version", f"Instances of {process_id} that stay on the live version",
                     _count(c.get("on_live_version", 0), "instance") + " (in the draft's runs too: only instances "
                     "started in the simulation take the draft)"))
    else:
        rows += [("tasks_completed", "Carried-over tasks done in the run", _count(c["tasks_completed"], "task")),
                 ("timers_fired", "Carried-over timers that fired in the run", _count(c["timers_fired"], "timer")),
                 ("messages_delivered", "Waiting messages delivered in the run", _count(m["delivered"], "message"))]
    left = ", ".join(_count(n, *LEFT_OUT.get(k, (k.replace("_", " "),) * 2)) for k, n in c["left_out"].items())
    rows.append(("left_out", "Not carried over", left or "Nothing"))
    runs = []
    if process_id is not None and "live" in c:
        for i, seed in enumerate(c.get("seeds", [])):
            runs.append({"seed": seed, **{f"{side}_{k}": c[side][k][i] for side in ("live", "draft")
                                         for k in ("tasks_completed", "timers_fired", "messages_delivered")}})
    try:
        at = when(datetime.fromisoformat(c["from"].replace("Z", "+00:00")))
    except (TypeError, ValueError):
        at = str(c["from"])
    return {"at": at, "empty": c["cases"] == 0, "rows": [{"key": k, "label": label, "value": v}
                                                         for k, label, v in rows], "runs": runs}


def _listed(items: list[Any]) -> str:
    """Items in words: "1", "1 and 2", "1, 2 and 3"."""
    words = [str(i) for i in items]
    return ", ".join(words[:-1]) + " and " + words[-1] if len(words) > 1 else "".join(words)


_SIDES = {"live": "the live version's", "draft": "the draft's"}  # a comparison's two versions, as its pages name them


def reused_text(out: dict[str, Any]) -> str | None:
    """Which runs of a comparison were taken as kept from an earlier simulation, in words (None: none)."""
    reused = out.get("reused") or {}
    parts = []
    for side, name in _SIDES.items():
        seeds = reused.get(side) or []
        if seeds:
            many = len(seeds) > 1
            parts.append(f"{name} run{'s' if many else ''} with seed{'s' if many else ''} {_listed(seeds)}")
    if not parts:
        return None
    text = " and ".join(parts)
    return (f"{text[0].upper()}{text[1:]}: made by an earlier simulation of the same diagrams, scenario, period and "
            "seed, or in the background ahead of being asked, and taken as they were (a run gives the same figures "
            "each time it is made).")


def start_text(job: Job) -> str:
    """Where the simulation starts, in words, for its waiting page (and why it could not be run)."""
    if job.from_today:
        return ("Where it starts: today's open cases, an anonymised copy of the cases open in the live service when "
                "it starts (the live cases are only read).")
    return "Where it starts: an empty caseload."


def compared_with(engine: Any, job: Job, process_id: str) -> dict[str, Any] | None:
    """The live version of `process_id` a comparison ran against ({"version", "now"}: `now` is the live version
    today when a newer one has been deployed since, else None), or None for a simulation asked before the live
    versions were part of what was asked."""
    then = dict(job.live).get(process_id)
    if then is None:
        return None
    now = dict(live_versions(engine)).get(process_id)
    return {"version": then, "now": now if now != then else None}


def _page(request: Request, user: User, draft: dict[str, Any], job: Job) -> Response:
    ctx = {"user": user, "draft": draft, "job": job, "when": when, "check_every_s": CHECK_EVERY_S,
           "link": link(job), "minutes": _minutes(job), "start_text": start_text(job), "waiting": waiting_text(job),
           "progress": progress_text(job)}
    if job.status == READY or job.first_results:
        ctx["compared"] = compared_with(request.app.state.engine, job, draft["process_id"])
        out = job.result or {}
        c = out.get("carried_over")
        ctx.update(out=job.result, page=report(job), reused=reused_text(out), carried=carried(
            {**c, "seeds": out.get("seeds", [])} if c else None, draft["process_id"]),
            first=first_text(job) if job.first_results else None)
        return kit.render(request, "simulation_report.html", ctx)
    review = f"/processes/drafts/{draft['id']}/review"
    ctx.update(caption=f"Draft {draft['id']} of {draft['process_id']}", back_href=review,
               back_text="Back to the review", again_href=review + "#simulate",
               again_text="Go back to the review to fix the draft or start the simulation again",
               running_text=(f"The live version and the draft are each run over {_days(job.days)} of synthetic "
                             f"contacts, once for each of {len(job.seeds)} seeds: {job.total} runs."))
    return kit.render(request, "simulation_running.html", ctx)


def first_text(job: Job) -> dict[str, str]:
    """The first results' banner: which seeds they are of, and what is still to come."""
    done = (job.result or {}).get("first_results", {}).get("seeds_done", [])
    left = [s for s in job.seeds if s not in done]
    seeds = f"seed{'s' if len(done) != 1 else ''} {_listed(done)}"
    spread = ("No difference is marked yet: telling a difference from chance needs at least two seeds." if len(done) < 2
              else f"Differences are marked against the margin of {len(done)} seeds; the rest may change that.")
    return {"heading": f"First results: the runs of {seeds} have finished",
            "body": (f"The runs of seed{'s' if len(left) != 1 else ''} {_listed(left)} are still going. {spread} "
                     "The figures below are of the finished seeds only. Once every run has finished, this page's "
                     "address shows the full report: the line below will say so.")}


def _days(n: int) -> str:
    return f"{n} day{'s' if n != 1 else ''}"


def waiting_text(job: Job) -> str | None:
    """While a simulation waits for a run a server was already making in the background (instead of making it again),
    which run and since when: its waiting page would otherwise show no run finished for minutes, as if stuck."""
    w = job.waiting
    if job.status != RUNNING or not w:
        return None
    try:
        since = when(datetime.fromisoformat(w["since"]))
    except (KeyError, TypeError, ValueError):
        return None
    if job.draft_id is None:
        run = "This run"
    else:
        name = _SIDES.get(w.get("side"), _SIDES["live"])
        run = f"{name[0].upper()}{name[1:]} run with seed {w.get('seed')}"
    day = w.get("day")
    far = f"; it has simulated {_num_days(day, job.days)}" if isinstance(day, int) else ""
    return (f"{run} was already being made in the background when it was needed, so the simulation waits for it "
            f"instead of starting it again (waiting since {since}{far}).")


def progress_text(job: Job) -> str | None:
    """While a simulation runs, how far each run being made has come (whole days simulated, told at each simulated
    week's end): a year's runs take minutes each, and the count of runs finished would otherwise stand still."""
    made = job.progress if job.status == RUNNING else None
    if not made:
        return None
    parts = []
    for name, day in made.items():
        side, _, seed = str(name).partition(":")
        if not isinstance(day, int):
            continue
        if job.draft_id is None:
            return f"The run has simulated {_num_days(day, job.days)}."
        name = _SIDES.get(side, _SIDES["live"])
        parts.append(f"{name} run with seed {seed} has simulated {_num_days(day, job.days)}")
    if not parts:
        return None
    return "Of the runs being made, " + _listed(parts) + "."


def _num_days(day: int, of: int) -> str:
    return f"{min(day, of)} of {_days(of)}"


def _minutes(job: Job) -> str:
    s = job.seconds if job.seconds is not None else max(0.0, (_now() - job.started_at).total_seconds())
    return f"{s:.0f} seconds" if s < 90 else f"{s / 60:.0f} minutes"


@router.get("/processes/drafts/{draft_id}/simulations/{simulation_id}", response_class=HTMLResponse,
            include_in_schema=False)
def simulation_page(request: Request, draft_id: Id, simulation_id: Id) -> Response:
    user = None
    try:
        user = kit.page_user(request, OWNER, refusal=REFUSAL)
        draft = drafts.get_draft(request.app.state.engine, draft_id)
        job = find(request.app.state.engine, draft_id, simulation_id)
        return _page(request, user, draft, job)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc, not_found=(
            f"There is no simulation {simulation_id} of draft {draft_id}. The newest {KEEP} simulations of a draft "
            "are kept: start it again from the draft's review page."))


@router.get("/processes/drafts/{draft_id}/simulations/{simulation_id}/status", include_in_schema=False)
def simulation_status(request: Request, draft_id: Id, simulation_id: Id) -> Response:
    """Whether the simulation is done, for the running page's script; nothing about its results."""
    return _status(request, draft_id, simulation_id, REFUSAL)


def _status(request: Request, draft_id: int | None, simulation_id: int, refusal: str) -> Response:
    """A run's status as JSON (a comparison of draft `draft_id`, or with None one run of the live processes)."""
    user = None
    try:
        user = kit.page_user(request, OWNER, refusal=refusal)
        try:
            job = find(request.app.state.engine, draft_id, simulation_id, figures=False)
        except NotFoundError:
            return kit.with_headers(JSONResponse({"status": "unknown"}, status_code=404))
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc)
    state: dict[str, Any] = {"status": job.status, "done": job.done, "total": job.total}
    waiting = waiting_text(job)
    if waiting:  # a run made ahead, waited for: said beside the count, which stays still meanwhile
        state["waiting"] = waiting
    progress = progress_text(job)
    if progress:  # how far the runs being made have come
        state["progress"] = progress
    if draft_id is not None:  # a comparison: whether its first results can be read yet
        state["first_results"] = job.first_results
    return kit.with_headers(JSONResponse(state))


# ---------------------------------------------------------------------- one run of the live processes
SEED_RANGE = (1, 999_999)
DEFAULT_SEED = 1
SINGLE_REFUSAL = "Only process owners simulate the live processes and see the results."
SINGLE_SERIES = (("Arrived", COLOURS[0]), ("Done", COLOURS[1]), ("Waiting at the end", COLOURS[2]))


def single_link(job: Job) -> str:
    return f"/processes/simulations/{job.id}"


def single_defaults() -> dict[str, Any]:
    """What the processes page's form shows (and the single runs this process keeps are listed with)."""
    return {"days": DEFAULT_DAYS, "seed": DEFAULT_SEED, "days_range": DAYS, "seed_range": SEED_RANGE,
            "link": single_link, "starts": STARTS, "start": EMPTY}


def _seed(text: str) -> tuple[int | None, str | None]:
    text = text.strip()
    if not text:
        return None, "Enter the seed"
    n = _integer(text)
    if n is None:
        return None, f"The seed must be a whole number, like {DEFAULT_SEED}"
    if not SEED_RANGE[0] <= n <= SEED_RANGE[1]:
        return None, f"The seed must be between {SEED_RANGE[0]} and {SEED_RANGE[1]:,}"
    return n, None


def single_report(out: dict[str, Any]) -> dict[str, Any]:
    """The report page's sections from one run's `simulate()` result: rows for the tables, geometry for the
    charts (each chart's numbers are in the table after it)."""
    teams = []
    for name, t in out.get("teams", {}).items():
        weeks = [{**w, "label": week_label(w["week"], out.get("days")), "p50": _num(w["wait_hours_p50"]),
                  "p95": _num(w["wait_hours_p95"])} for w in t["weeks"]]
        teams.append({"name": team_name(name), "slug": "".join(c if c.isalnum() else "-" for c in name), "weeks": weeks,
                      "p50": _num(t["wait_hours_p50"]), "p95": _num(t["wait_hours_p95"]), **{
                          k: t[k] for k in ("staff", "arrived", "done", "waiting_at_end")},
                      "chart": bars([(w["label"], [w["arrived"], w["done"], w["waiting_at_end"]])
                                     for w in weeks], SINGLE_SERIES,
                                    f"Bar chart: {team_name(name)}'s tasks each week: arrived, done and waiting as "
                                    "the week ended. The table below gives the same numbers.")})
    breaches = [{"key": k, "deadline": v["deadline"], "times": v["times"]}
                for k, v in out.get("deadline_breaches", {}).items()]
    measures = out.get("measures")
    measure_rows = []
    for m in measures if isinstance(measures, list) else []:
        unit = "%" if m["unit"] == "%" else ""
        measure_rows.append({**m, "figure_text": "No figure" if m["figure"] is None else _num(m["figure"], unit),
                             "of": ("" if m["numerator"] is None or m["denominator"] is None
                                    else f"{_num(m['numerator'])} of {_num(m['denominator'])}")})
    pb = out.get("personal_budgets") or {}
    return {
        "teams": teams, "breaches": breaches, "measures": measure_rows,
        "measures_error": measures.get("error") if isinstance(measures, dict) else None,
        "budgets": {"count": _num(pb.get("count")), "total": _num(pb.get("total"), "£"),
                    "mean": _num(pb.get("mean"), "£")},
        "routes_chart": bars([(k, [v]) for k, v in out.get("routes", {}).items()], (("Contacts", COLOURS[1]),),
                             "Bar chart: contacts by route. The table below gives the same numbers."),
        "team_chart": bars([(t["name"], [t["arrived"], t["done"], t["waiting_at_end"]]) for t in teams],
                           SINGLE_SERIES, "Bar chart: each team's tasks over the period: arrived, done and waiting "
                                          "at the end. The table below gives the same numbers."),
        # the deadline's words with its timer, as the comparison's chart has them: the words alone may be the same
        # for several timers (a scenario without `deadlines:` calls three of urgent_response's "Overdue")
        "breach_chart": bars([(f"{b['deadline']} ({b['key']})", [b["times"]]) for b in breaches],
                             (("Missed", COLOURS[1]),),
                             "Bar chart: deadlines missed, by timer. The table below gives the same numbers."),
        "measure_chart": bars([(m["title"], [m["figure"]]) for m in measure_rows
                               if m["unit"] == "%" and m["figure"] is not None],
                              (("Figure", COLOURS[1]),), "Bar chart: measures given as a percentage. The table "
                              "below gives the same numbers.", "%"),
    }


def _single_page(request: Request, user: User, job: Job) -> Response:
    ctx = {"user": user, "job": job, "when": when, "check_every_s": CHECK_EVERY_S, "link": single_link(job),
           "minutes": _minutes(job), "start_text": start_text(job), "waiting": waiting_text(job),
           "progress": progress_text(job)}
    if job.status == READY:
        ctx.update(out=job.result, page=single_report(job.result or {}),
                   carried=carried((job.result or {}).get("carried_over")))
        return kit.render(request, "simulation_single.html", ctx)
    ctx.update(caption="The live processes", back_href="/processes", back_text="Back to the processes",
               again_href="/processes#simulate", again_text="Go back to the processes to start the simulation again",
               running_text=(f"The deployed versions are run over {_days(job.days)} of synthetic contacts with "
                             f"seed {job.seeds[0]}."))
    return kit.render(request, "simulation_running.html", ctx)


@router.post("/processes/simulations", response_class=HTMLResponse, include_in_schema=False)
async def start_single_page(request: Request) -> Response:
    page = kit.Page(request)
    try:
        user, form = await _posted_by_owner(page, SINGLE_REFUSAL)
        engine = page.engine
        days_text, seed_text = kit.one(form, "days"), kit.one(form, "seed")
        starts_from, start_error = _starts_from(form)
        days, days_error = _whole(days_text, "days", *DAYS, DEFAULT_DAYS)
        seed, seed_error = _seed(seed_text)
        values = {"field": "simulate", "days": days_text, "seed": seed_text, "days_error": days_error or "",
                  "seed_error": seed_error or "", "start": "" if start_error else starts_from,
                  "start_error": start_error or ""}
        errors = [{"text": e, "href": h} for e, h in ((start_error, "#sim-start"), (days_error, "#sim-days"),
                                                      (seed_error, "#sim-seed")) if e]
        if not errors:
            try:
                job = await run_in_threadpool(start_single, engine, user, days, seed, starts_from)
            except (ConflictError, simulate.ScenarioError) as exc:
                text, code = str(exc), 409 if isinstance(exc, ConflictError) else 422
                items = [{"text": text[:1].upper() + text[1:], "href": getattr(exc, "link", None)}]
                return await run_in_threadpool(lambda: _processes_page(
                    request, user, errors=items, status=code, values=values))
            return kit.redirect(single_link(job))
        return await run_in_threadpool(lambda: _processes_page(request, user, errors=errors, status=400,
                                                               values=values))
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page.guard(exc)


@router.get("/processes/drafts/{draft_id}/simulations", include_in_schema=False)
def simulations_form_again(draft_id: Id) -> Response:
    """The address a refused simulation form's page was shown at, reloaded or opened again: the form (a GET here
    was "This page cannot be used that way")."""
    return kit.redirect(f"/processes/drafts/{draft_id}/review#simulate")


@router.get("/processes/simulations/{simulation_id}", response_class=HTMLResponse, include_in_schema=False)
def single_simulation_page(request: Request, simulation_id: Id) -> Response:
    user = None
    try:
        user = kit.page_user(request, OWNER, refusal=SINGLE_REFUSAL)
        return _single_page(request, user, find(request.app.state.engine, None, simulation_id))
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc, not_found=(
            f"There is no simulation {simulation_id} of the live processes. The newest {KEEP} are kept: start it "
            "again from the processes page."))


@router.get("/processes/simulations/{simulation_id}/status", include_in_schema=False)
def single_simulation_status(request: Request, simulation_id: Id) -> Response:
    """Whether the run is done, for the waiting page's script; nothing about its results."""
    return _status(request, None, simulation_id, SINGLE_REFUSAL)
