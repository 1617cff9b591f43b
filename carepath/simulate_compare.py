"""Comparing a draft with the live version on the same synthetic caseload (issue 16 part 3).

`compare(scenario, live, draft, seeds=[1, 2, 3], days=28)` runs `carepath.simulate.simulate` twice for each
seed: once on the versions deployed on `live` (read only), once on the same versions with the draft's files
deployed over them. The same seed gives both runs the same arrivals (they are drawn before the run starts) and
the same first draws; where the draft makes the work differ, the later draws differ too, which is why several
seeds are run and the difference is judged against what chance alone gives (its margin).

For each figure (deadline breaches per timer; each team's wait p50/p95, queue at the end and tasks done;
personal budgets' total and mean; each published measure) the result holds the per-seed values of both
versions, their means, the mean of the paired per-seed differences (draft minus live), the run-to-run spread
(**two sample standard deviations of those paired differences**, n - 1 in the denominator) and the **margin**:
how far the mean of n paired differences strays from zero by chance alone 19 times in 20, t(0.975, n - 1) x SD
/ sqrt(n) (a paired t-test at 5%). A difference is marked "bigger than chance" when |mean difference| > margin,
so a figure the draft does not change is marked about 1 time in 20 whatever the number of seeds (the earlier
rule, |mean| > 2 SD, marked one such figure in 5 with 2 seeds and one in 13 with 3), and more seeds find smaller
changes. With fewer than two seeds where both runs have the figure there is no margin and nothing is marked. A
version compared with itself gives the same runs, so every difference, spread and margin is 0 and nothing is
marked. docs/simulation.md says the same.

simulate() is used as it is: the draft's diagrams reach it as the `source` it copies deployed versions from —
a throwaway in-memory database holding the live versions (engine/trial.py `_copy_deployed`) with the draft
deployed over them (`draft_source`). Nothing is written to the live database.

`from_live=True`: every run starts from today's open cases — one anonymised copy read once from the live database
(carepath/simulate_today.py) and given to every run; in the draft's runs the copied instances of the draft's
process stay on the live version they run (docs/simulation.md, "From today").
"""

from __future__ import annotations

import math
import os
import statistics
import time
from collections.abc import Callable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from engine.errors import NotFoundError

from . import forked
from .simulate import ROOT, Scenario, ScenarioError, simulate

if TYPE_CHECKING:
    from engine.trial import DeployedRows

GROUPS = ("Deadlines missed", "Teams", "Personal budgets", "Measures")
RULE = ("A difference is marked when the mean of the paired per-seed differences (draft minus live) is larger, "
        "either way, than its margin: t(0.975, seeds - 1) standard deviations of those differences over the square "
        "root of the number of seeds (a paired t-test at 5%), so a figure the draft does not change is marked about "
        "1 time in 20.")
MAX_SEEDS = 20


# ---------------------------------------------------------------------- the draft's diagrams as a source
def draft_source(live: Any, draft: Mapping[str, Any]) -> Any:
    """A throwaway in-memory engine holding the live database's deployed versions (read only) with the draft's
    files deployed over them: what simulate() copies its processes from. Raises DefinitionError when the
    draft does not deploy. The caller disposes of it (`.db.dispose()`)."""
    from sqlalchemy import select

    from engine.runtime import Engine
    from engine.schema import process_versions
    from engine.trial import _copy_deployed, _scratch_database

    files = {name: text.encode("utf-8") if isinstance(text, str) else bytes(text)
             for name, text in draft["files"].items()}
    process_id = draft["process_id"]
    eng = Engine(_scratch_database(), registry=live.registry, forms=live.forms)
    try:
        eng.init(simulated_start=datetime(2026, 1, 1, tzinfo=timezone.utc))  # only the deployments' stamps
        _copy_deployed(live, eng, replaced=process_id, draft_names=list(files))
        with eng.db.engine.connect() as conn:
            copied = conn.execute(select(process_versions.c.id).limit(1)).first() is not None
        if not copied:  # nothing deployed live: simulate() runs processes/ for the live side, so the draft's too
            eng.deploy([ROOT / "processes"], note="simulation")
        refs = eng.deploy(files=files, actor="simulation", source="draft under simulation")
        if not any(r.kind == "process" and r.process_id == process_id for r in refs):
            raise NotFoundError(f"the draft's files do not define the process '{process_id}'", process=process_id)
    except Exception:
        eng.db.dispose()
        raise
    return eng


# ---------------------------------------------------------------------- the figures of one run
def figures(out: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """key -> {group, label, unit, value} for every figure compared, in the order the report shows them."""
    found: dict[str, dict[str, Any]] = {}

    def add(key: str, group: str, label: str, unit: str, value: Any, count: bool = False) -> None:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        found[key] = {"group": group, "label": label, "unit": unit, "value": float(value) if ok else None,
                      "count": count}

    for key, b in out.get("deadline_breaches", {}).items():
        add(f"breaches/{key}", "Deadlines missed", f"{b['deadline']} ({key})", "times", b["times"], True)
    for name, t in out.get("teams", {}).items():
        add(f"teams/{name}/wait_hours_p50", "Teams", f"{name}: wait, median", "hours", t.get("wait_hours_p50"))
        add(f"teams/{name}/wait_hours_p95", "Teams", f"{name}: wait, 95th percentile", "hours",
            t.get("wait_hours_p95"))
        add(f"teams/{name}/waiting_at_end", "Teams", f"{name}: tasks waiting at the end", "tasks",
            t.get("waiting_at_end"), True)
        add(f"teams/{name}/done", "Teams", f"{name}: tasks done", "tasks", t.get("done"), True)
    pb = out.get("personal_budgets") or {}
    add("budgets/count", "Personal budgets", "Personal budgets decided", "budgets", pb.get("count"))
    add("budgets/total", "Personal budgets", "Personal budgets: total a year", "£", pb.get("total"))
    add("budgets/mean", "Personal budgets", "Personal budgets: mean a year", "£", pb.get("mean"))
    for m in out.get("measures") or [] if isinstance(out.get("measures"), list) else []:
        add(f"measures/{m['key']}", "Measures", m["title"], m.get("unit") or "", m.get("figure"))
    return found


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 4) if values else None


#: Student's t distribution's two-sided 95% point, t(0.975, df), for df = seeds - 1 (MAX_SEEDS - 1 at most);
#: tests/test_simulate_compare.py checks each against the distribution's integral
T_975 = (12.7062, 4.3027, 3.1824, 2.7764, 2.5706, 2.4469, 2.3646, 2.3060, 2.2622, 2.2281,
         2.2010, 2.1788, 2.1604, 2.1448, 2.1314, 2.1199, 2.1098, 2.1009, 2.0930)


def judge(live: list[float | None], draft: list[float | None]) -> dict[str, Any]:
    """Means, the paired differences, their spread (2 sample SDs), their margin (the half-width of the mean
    difference's 95% interval) and whether the difference is marked (bigger than its margin)."""
    pairs = [(a, b) for a, b in zip(live, draft, strict=True) if a is not None and b is not None]
    diffs = [b - a for a, b in pairs]
    n = len(diffs)
    sd = statistics.stdev(diffs) if n >= 2 else None
    spread = round(2 * sd, 4) if sd is not None else None
    margin = round(T_975[min(n - 1, len(T_975)) - 1] * sd / math.sqrt(n), 4) if sd is not None else None
    diff = _mean(diffs)
    marked = margin is not None and diff is not None and abs(diff) > margin and not math.isclose(abs(diff), margin)
    return {"live_mean": _mean([v for v in live if v is not None]),
            "draft_mean": _mean([v for v in draft if v is not None]),
            "differences": [round(d, 4) for d in diffs], "difference": diff, "spread": spread, "margin": margin,
            "marked": marked}


def _weeks(runs: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    """team -> week -> the mean over the runs of the tasks waiting as the week ended."""
    sums: dict[str, dict[int, list[float]]] = {}
    for out in runs:
        for name, t in out.get("teams", {}).items():
            for w in t.get("weeks", []):
                sums.setdefault(name, {}).setdefault(w["week"], []).append(float(w["waiting_at_end"]))
    return {name: {wk: round(sum(v) / len(runs), 2) for wk, v in sorted(by.items())} for name, by in sums.items()}


def _problems(runs: list[dict[str, Any]]) -> dict[str, int]:
    """Incidents and tasks whose answers did not fit, summed over the runs (the same keys as a run's)."""
    out: dict[str, int] = {}
    for r in runs:
        for k, v in r.get("incidents", {}).items():
            out[f"incident: {k}"] = out.get(f"incident: {k}", 0) + v
        for k, v in r.get("tasks_not_completed", {}).items():
            out[f"not completed: {k}"] = out.get(f"not completed: {k}", 0) + v["times"]
    return dict(sorted(out.items()))


# ---------------------------------------------------------------------- the comparison
WORKERS_ENV = "CAREPATH_SIMULATION_WORKERS"  # how many processes a comparison's runs share (default: the cores)


def workers_default() -> int:
    """CAREPATH_SIMULATION_WORKERS, else the cores this process may use."""
    text = os.environ.get(WORKERS_ENV, "").strip()
    if text:
        if not text.isdigit() or not 1 <= int(text) <= 64:
            raise ScenarioError(f"{WORKERS_ENV} must be a whole number from 1 to 64, not {text[:20]!r}")
        return int(text)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_SLOTS: Any = None  # in a comparison's worker process: the days each run has reached, one slot a run (shared)


def _worker_slots(slots: Any) -> None:
    """A comparison's worker process starts: the comparison's shared array of days reached."""
    global _SLOTS
    _SLOTS = slots


def _one_run(scenario: Scenario, rows: DeployedRows, days: int | None, seed: int, start: Any = False,
             inspect: Callable[[Any], None] | None = None, parts: int = 1,
             on_day: Callable[[int], None] | None = None, slot: int | None = None) -> tuple[str, Any]:
    """One run (in a worker process or here; `parts=2`: its cases shared with a second process): ("ok", output) or
    ("refused", message) for a scenario that does not fit (the product's errors are not all picklable, so the message
    crosses instead). The days it reaches go to `on_day` (here) or, in a worker, to its `slot` of the shared array."""
    if on_day is None and slot is not None and _SLOTS is not None:
        def on_day(day: int, slots: Any = _SLOTS) -> None:
            slots[slot] = day
    try:
        return "ok", simulate(scenario, source=rows, days=days, seed=seed, from_live=start, inspect=inspect,
                              parts=parts, on_day=on_day)
    except ScenarioError as exc:
        return "refused", str(exc)


def compare(scenario: Scenario, live: Any, draft: Mapping[str, Any], *, seeds: list[int], days: int | None = None,
            progress: Callable[[int, int], None] | None = None, from_live: Any = False,
            inspect: Callable[[str, int, Any], None] | None = None, workers: int | None = None,
            kept: Any = None, first: Callable[[dict[str, Any]], None] | None = None,
            awaiting: Any = None, on_days: Callable[[dict[tuple[str, int], int]], None] | None = None
            ) -> dict[str, Any]:
    """Run the live versions and the draft on the same scenario for each seed and compare every figure.

    `live`: the live engine (only read). `draft`: {"id"?, "process_id", "files": {name: text}}. `progress(done,
    total)` is called after each run. `from_live`: every run starts from today's open cases — the live database is
    read once (carepath/simulate_today.py `read_live`: one anonymised copy) and that copy starts both versions'
    runs of every seed; in the draft's runs the copied instances of the draft's process stay on the live version
    they run, and only instances started in the run take the draft (docs/simulation.md). `from_live` may also be
    a copy already read (a `simulate_today.LiveStart`: the pages read it first, to say so when the live database
    cannot be read). `inspect(side, seed, engine)`: called with each run's scratch engine after the run ("live" or
    "draft"; the runs are then made here).

    The runs are independent, so up to `workers` of them (default `workers_default()`: the cores) run at once, each
    in its own process; with one worker they run here, one after the other; with two or more, an odd run out is made
    last, here, its cases shared between two processes (`parts=2`). Either way each run's output is the
    same (a run depends only on its deployed versions, scenario, period, seed and starting copy). Raises
    ScenarioError (the scenario does not fit either version's diagrams), DefinitionError (the draft does not
    deploy). A refused or failed run raises at once: the runs not yet started never start, and the error does not
    wait for the runs still going in other workers.

    `kept` (carepath/simulate_reuse.py `KeptRuns`): runs from an empty caseload already made with the same deployed
    versions, scenario, period, seed and code are taken from it instead of being made again, and the runs made are
    kept in it; the result's `reused` names the seeds of each version taken so (not with `from_live` or `inspect`).

    `first(result)`: the first results, for a process owner to read while the rest run. Each time more seeds have
    both their runs made, and not yet all, it is called with the comparison of those seeds alone (the result of
    `compare_runs`, with `first_results`: {"seeds_done": [...], "seeds": every seed asked}). With two or more
    workers, when the first seed's live run was kept and its draft run is one of several left, that run is made
    first, on both cores (`parts=2`), so the first results come in about half the time of the two runs side by side
    (measured: the whole comparison no later; docs/simulation.md "First results").

    `awaiting` (carepath/simulate_ahead.py `Awaiting`, with `kept`): when the run a server is making ahead of being
    asked is one of this comparison's runs not kept, that run is waited for first, and taken as kept (it is listed in
    `reused`); if it stops without being kept, it is made here like the others.

    `on_days({run: days})`: how far the runs being made have come — ("live" | "draft", seed) to the whole days
    simulated, told at each simulated week's end (from the worker processes, within a second) and when a run ends
    (it is then left out)."""
    if not seeds or len(seeds) > MAX_SEEDS:
        raise ScenarioError(f"give from 1 to {MAX_SEEDS} seeds, not {len(seeds)}")
    from engine.trial import deployed_rows

    workers = workers_default() if workers is None else workers
    source = draft_source(live, draft)
    try:
        sides = {"live": deployed_rows(live), "draft": deployed_rows(source)}
    finally:
        source.db.dispose()
    start: Any = False
    if from_live:
        from .simulate_today import LiveStart, read_live

        # one reading of the live database for every run
        start = from_live if isinstance(from_live, LiveStart) else read_live(live)
    runs = [(side, seed) for seed in seeds for side in ("live", "draft")]
    results: dict[tuple[str, int], tuple[str, Any]] = {}
    keys: dict[tuple[str, int], str | None] = {}
    reused: dict[str, list[int]] = {"live": [], "draft": []}
    if kept is not None and not start and inspect is None:
        from .simulate_reuse import run_key

        keys = {run: run_key(sides[run[0]], scenario, days, run[1]) for run in runs}
    began: dict[tuple[str, int], float] = {}
    announced: list[int] = []  # the seeds of the first results given so far
    reached: dict[tuple[str, int], int] = {}  # the runs being made: the days simulated so far

    def reach(run: tuple[str, int], day: int) -> None:
        if on_days is not None and run not in results and reached.get(run) != day:
            reached[run] = day
            on_days(dict(reached))

    def reacher(run: tuple[str, int]) -> Callable[[int], None] | None:
        return (lambda day: reach(run, day)) if on_days is not None else None

    def outcome(done: list[int]) -> dict[str, Any]:
        """The comparison of the seeds `done` (each with both runs made): every seed's at the end, the first ones'
        for the first results."""
        live_runs = [results[("live", s)][1] for s in done]
        draft_runs = [results[("draft", s)][1] for s in done]
        out = compare_runs(live_runs, draft_runs, draft=draft, seeds=done)
        if kept is not None:
            out["reused"] = {side: [s for s in got if s in done] for side, got in reused.items()}
        if start:
            out["carried_over"] = carried_over(start, live_runs, draft_runs, draft["process_id"])
            if out["carried_over"]["on_live_version"]:
                n = out["carried_over"]["on_live_version"]
                out["notes"].append(
                    f"{n:,} instance{'' if n == 1 else 's'} of '{draft['process_id']}' already running "
                    "live were carried over: in the draft's runs they stay on the live version they run, as they would "
                    "once the draft is deployed; only instances started in the run take the draft.")
        return out

    def record(key: tuple[str, int], result: tuple[str, Any]) -> None:
        if result[0] == "refused":
            raise ScenarioError(f"with the draft's diagrams: {result[1]}" if key[0] == "draft" else result[1])
        results[key] = result
        if reached.pop(key, None) is not None and on_days is not None:
            on_days(dict(reached))
        if keys.get(key) and key in began:
            kept.put(keys[key], result[1], seconds=round(time.monotonic() - began[key], 1))
        if progress:
            progress(len(results), len(runs))
        if first is not None:
            done = [s for s in seeds if ("live", s) in results and ("draft", s) in results]
            if len(announced) < len(done) < len(seeds):
                announced[:] = done
                first({**outcome(done), "first_results": {"seeds_done": list(done), "seeds": list(seeds)}})

    for run in runs:  # the runs already made: taken as they were kept
        found = kept.get(keys[run]) if keys.get(run) else None
        if found is not None:
            reused[run[0]].append(run[1])
            record(run, ("ok", found))
    runs_left = [run for run in runs if run not in results]
    if awaiting is not None and keys and runs_left:  # the run being made ahead, if this comparison needs it
        got = awaiting.wait_for({run: keys[run] for run in runs_left})
        if got is not None:
            reused[got[0][0]] = sorted([*reused[got[0][0]], got[0][1]])
            record(got[0], ("ok", got[1]))
            runs_left.remove(got[0])

    # The first seed's live run kept and its draft run one of several left: the draft run goes first, alone on both
    # cores, so that its seed's first results come as soon as they can.
    lead = None
    if (first is not None and workers >= 2 and inspect is None and len(runs_left) >= 2
            and runs_left[0][1] == seeds[0] and runs_left[1][1] != seeds[0]):
        lead = runs_left.pop(0)
        began[lead] = time.monotonic()
        record(lead, _one_run(scenario, sides[lead[0]], days, lead[1], start, parts=2, on_day=reacher(lead)))

    # An odd run out (one run left when the others were kept, or the last of three) would have a core to itself
    # while the other idles: it is made last, here, its cases shared between two processes (one on each core).
    alone = runs_left.pop() if workers >= 2 and inspect is None and len(runs_left) % 2 == 1 else None
    if workers <= 1 or inspect is not None or len(runs_left) <= 1:
        for side, seed in runs_left:
            look = (lambda eng, side=side, seed=seed: inspect(side, seed, eng)) if inspect is not None else None
            began[(side, seed)] = time.monotonic()
            record((side, seed), _one_run(scenario, sides[side], days, seed, start, look,
                                          on_day=reacher((side, seed))))
    else:
        # from the warm forkserver (carepath/forked.py), not forked from here: the server that starts a comparison
        # has threads (and open connections) a fork would copy
        ctx = forked.context()
        slots = ctx.RawArray("i", len(runs_left))  # the days each run has reached, written by the workers
        slot_of = {run: i for i, run in enumerate(runs_left)}
        pool = ProcessPoolExecutor(max_workers=min(workers, len(runs_left)), mp_context=ctx,
                                   initializer=forked.call, initargs=(forked.settings(), _worker_slots, slots))
        # One run a worker at a time, the next handed out when one ends: a refused or failed run ends the comparison
        # at once. The runs not handed out never start, and the error is raised now, not after the runs still going
        # (they end in their processes; nothing reads their output).
        waiting = iter(runs_left)
        going: dict[Future[tuple[str, Any]], tuple[str, int]] = {}

        def hand_out() -> None:
            run = next(waiting, None)
            if run is not None:
                began[run] = time.monotonic()
                going[pool.submit(_one_run, scenario, sides[run[0]], days, run[1], start,
                                  slot=slot_of[run])] = run

        ended = False
        try:
            for _ in range(min(workers, len(runs_left))):
                hand_out()
            while going:
                # looked at every second: how far the runs going have come (their workers write it)
                for fut in wait(going, timeout=1.0 if on_days is not None else None,
                                return_when=FIRST_COMPLETED).done:
                    record(going.pop(fut), fut.result())
                    hand_out()
                for run in going.values():
                    if slots[slot_of[run]]:
                        reach(run, slots[slot_of[run]])
            ended = True
        finally:
            pool.shutdown(wait=ended, cancel_futures=not ended)
    if alone is not None:
        began[alone] = time.monotonic()
        record(alone, _one_run(scenario, sides[alone[0]], days, alone[1], start, parts=2, on_day=reacher(alone)))
    return outcome(seeds)


# what a run's `carried_over` says of the run itself, rather than of the copy every run starts from
_RUN_KEYS = ("tasks_completed", "timers_fired")


def carried_over(start: Any, live_runs: list[dict[str, Any]], draft_runs: list[dict[str, Any]],
                 process_id: str) -> dict[str, Any]:
    """What the comparison's runs started from (one copy of today's open cases, the same for every run), and
    per seed what each version did with it."""
    first = dict(live_runs[0]["carried_over"]) if live_runs else {}

    def per_run(runs: list[dict[str, Any]]) -> dict[str, list[int]]:
        c = [r["carried_over"] for r in runs]
        return {**{k: [x[k] for x in c] for k in _RUN_KEYS},
                "messages_delivered": [x["messages"]["delivered"] for x in c]}

    for k in _RUN_KEYS:
        first.pop(k, None)
    return {**first, "on_live_version": sum(1 for i in start.instances if i["process_id"] == process_id),
            "live": per_run(live_runs), "draft": per_run(draft_runs)}


def compare_runs(live_runs: list[dict[str, Any]], draft_runs: list[dict[str, Any]], *, draft: Mapping[str, Any],
                 seeds: list[int]) -> dict[str, Any]:
    """The comparison of runs already made (live_runs[i] and draft_runs[i] with seeds[i])."""
    lf = [figures(r) for r in live_runs]
    df = [figures(r) for r in draft_runs]
    keys = list(dict.fromkeys([k for f in lf for k in f] + [k for f in df for k in f]))
    rows = []
    for key in keys:
        meta = next(f[key] for f in lf + df if key in f)
        missing = 0.0 if meta["count"] else None  # a team with no task in a run did none and has none waiting
        lv = [f[key]["value"] if key in f else missing for f in lf]
        dv = [f[key]["value"] if key in f else missing for f in df]
        rows.append({"key": key, "group": meta["group"], "label": meta["label"], "unit": meta["unit"],
                     "live": lv, "draft": dv, **judge(lv, dv)})
    rows.sort(key=lambda r: GROUPS.index(r["group"]))
    first = live_runs[0] if live_runs else {}
    pid = draft["process_id"]
    notes = []
    if not any(pid in r.get("processes", {}) for r in draft_runs):
        days = first.get("days")
        notes.append(f"No simulated case reached the draft's process ({pid}) in the {days} day"
                     f"{'' if days == 1 else 's'} simulated, so the two versions ran the same work: a longer period "
                     "may reach it, or the scenario's routes may never lead to it.")
    return {"draft": {"id": draft.get("id"), "process_id": pid, "revision": draft.get("revision")},
            "scenario": first.get("scenario"), "start": first.get("start"), "days": first.get("days"),
            "seeds": list(seeds), "rule": RULE,
            "contacts": {"live": [r["contacts"] for r in live_runs], "draft": [r["contacts"] for r in draft_runs]},
            "figures": rows, "marked": sum(1 for r in rows if r["marked"]),
            # each team's staff in the scenario (both versions the same): what the queues are read against
            "staff": {team: t["staff"] for team, t in sorted(first.get("teams", {}).items()) if "staff" in t},
            "weeks": {"live": _weeks(live_runs), "draft": _weeks(draft_runs)},
            "problems": {"live": _problems(live_runs), "draft": _problems(draft_runs)}, "notes": notes}


# ---------------------------------------------------------------------- as text
def _n(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:,.2f}"


def _signed(v: float | None) -> str:
    return "-" if v is None else ("+" if v > 0 else "") + _n(v)


def compare_text(out: Mapping[str, Any]) -> str:
    """The readable comparison `carepath simulate --compare-draft` prints without --json."""
    d = out["draft"]
    lines = [f"Draft {d['id']} of {d['process_id']} against the live version: {out['days']} days from {out['start']} "
             f"(scenario {out['scenario']}), seeds {', '.join(str(s) for s in out['seeds'])}",
             f"Contacts per seed: {', '.join(str(c) for c in out['contacts']['live'])}", out["rule"], ""]
    c = out.get("carried_over")
    if c:
        from .simulate_today import counted

        lines += [f"Both versions start from the same anonymised copy of the live database's open work at {c['from']}: "
                  f"{counted(c['cases'], 'case')}, {counted(c['instances'], 'process instance')} "
                  f"({c['suspended']['instances']} suspended, {c['in_error']['instances']} in error, held as they "
                  f"are), {counted(c['tasks'], 'open task')}, {counted(c['timers'], 'timer')}, "
                  f"{counted(c['messages']['waiting'], 'message')} waiting for a receiver",
                  "Carried-over tasks completed per seed: live "
                  + ", ".join(str(n) for n in c["live"]["tasks_completed"])
                  + "; draft " + ", ".join(str(n) for n in c["draft"]["tasks_completed"]), ""]
    lines += out["notes"] + ([""] if out["notes"] else [])
    width = max([len(r["label"]) for r in out["figures"]] + [10])
    width = min(width, 70)
    group = None
    for r in out["figures"]:
        if r["live_mean"] is None and r["draft_mean"] is None:
            continue  # no figure in either version (a measure with nothing to count in the period)
        if r["group"] != group:
            group = r["group"]
            lines += ["", group, f"  {'':<{width}} {'live':>10} {'draft':>10} {'difference':>11} {'margin':>9} "
                                 f"{'spread':>9}"]
        mark = "  bigger than chance" if r["marked"] else ""
        lines.append(f"  {r['label'][:width]:<{width}} {_n(r['live_mean']):>10} {_n(r['draft_mean']):>10} "
                     f"{_signed(r['difference']):>11} {_n(r.get('margin')):>9} {_n(r['spread']):>9}{mark}")
    lines += ["", f"{out['marked']} difference(s) bigger than chance."]
    for side in ("live", "draft"):
        if out["problems"][side]:
            lines += ["", f"Problems in the {side} runs (all seeds):"]
            lines += [f"  {k}: {v}" for k, v in out["problems"][side].items()]
    return "\n".join(lines)
