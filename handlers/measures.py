"""The measures a council publishes, computed from case histories (docs/measures.md).

Every figure is derived, never stored: from the hash-chained history of each case (the events the
engine wrote) and the Client Level Data rows `handlers.cld.derive_cld_events` derives from it. Each
measure is a small function of (the population of cases and their history events, period start,
period end, optional team) that returns the figure, its numerator and denominator and the list of
the cases behind it (``compute``). Its definition and its source are written beside it (the
``Measure`` entries of ``MEASURES``, and docs/measures.md, which says the same at more length).

This is a reporting module, not a service-task handler: diagrams do not call it, ``handlers.register``
does not register it, and it reads no clock (the period is given).

How the work is shared out (a county year is ~1 M history events):

* ``load_population`` reads, per case, the facts kept in ``measure_facts`` (each measure's items for that
  case, worked out once from its history and its CLD rows: ``case_facts``); a case with an event later than
  its kept facts, or kept on another basis, is read from its history and worked out again, and its facts
  written back for every process (docs/measures.md, "Speed"); in one process, later calls read again only
  what changed, and replace only those cases' entries in what the last population worked out (``_updated``);
* each measure's ``extract`` walks a case once and keeps, per instance it concerns, one small *item*
  (the day that puts it in a period, which part of the figure it counts in, the teams that worked it),
  kept with the case; ``compute`` for any period is then a slice of those items in day order, so a
  chart of twelve months costs twelve slices, not twelve passes over the histories.

Teams. A measure item belongs to the teams whose user tasks became ready in the process instance it
counts (from the deployed diagrams' candidate groups); the team manager's escalations and approvals
do not make an item the managers' own. Filtering by a team keeps the items of that team.
"""

from __future__ import annotations

import bisect
import functools
import hashlib
import json
import logging
import re
import statistics
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from sqlalchemy.exc import DBAPIError

from engine.collector import fewer_collections
from handlers import working_days

log = logging.getLogger("carepath.measures")

OVERSIGHT_TEAM = "team_manager"  # escalations and approvals: not the team that owns the work


def _team_choices() -> tuple[str, ...]:
    from handlers.teams import TEAMS

    return tuple(t for t in TEAMS if t != OVERSIGHT_TEAM)


TEAM_CHOICES = _team_choices()  # the teams a measure can be filtered by


class MeasureError(ValueError):
    """Bad input to a measure (a period that ends before it starts, an unknown measure or part)."""


# ---------------------------------------------------------------- small helpers


def uk_day(at: str | None) -> str | None:
    """The UK calendar day (YYYY-MM-DD) of a history instant (as the CLD return dates events)."""
    return working_days.as_local_date(at).isoformat() if at else None


@functools.lru_cache(maxsize=4096)
def _norm(text: Any) -> str:
    """A code-list value compared without regard to case or to an en dash written as a hyphen."""
    return " ".join(str(text or "").replace("\u2013", "-").replace("- ", "-").replace(" -", "-").split()).casefold()


def _days(a: str, b: str) -> int:
    return (date.fromisoformat(b) - date.fromisoformat(a)).days


def _iso(value: Any) -> str | None:
    """A form's YYYY-MM-DD answer, or None when it is not one."""
    if not isinstance(value, str) or len(value) < 10:
        return None
    try:
        return date.fromisoformat(value[:10]).isoformat()
    except ValueError:
        return None


def _pct(num: int, den: int) -> float | None:
    return round(100 * num / den, 1) if den else None


# ---------------------------------------------------------------- the population


@dataclass
class Instance:
    id: int
    case_id: int
    process_id: str
    parent: int | None
    start_data: dict
    started_at: str
    completed_at: str | None = None
    cancelled_at: str | None = None  # closed with the case (or otherwise cancelled)
    events: list[dict] = field(default_factory=list)
    teams: frozenset[str] = frozenset()

    def first(self, kind: str, element_id: str | None = None) -> dict | None:
        for e in self.events:
            if e["type"] == kind and (element_id is None or e["data"].get("element_id") == element_id):
                return e
        return None

    def all(self, kind: str, element_id: str | None = None) -> list[dict]:
        return [e for e in self.events
                if e["type"] == kind and (element_id is None or e["data"].get("element_id") == element_id)]

    def settings(self) -> dict:
        """The local timescales the instance read when it started (what of them is kept: ``_event_data``)."""
        for e in self.events:
            if e["type"] == "handler.called" and e["data"].get("handler") == "local_settings":
                return e["data"].get("output") or {}
        return {}

    def answer(self, element_id: str) -> dict | None:
        """The form data of the last completion of a user task (None when it was never completed)."""
        done = self.all("task.completed", element_id)
        return (done[-1]["data"].get("data") or {}) if done else None


@dataclass
class Population:
    """Cases, their instances and CLD rows, as the measures read them."""

    cases: dict[int, dict]  # case id -> {"id", "reference", "data"}
    instances: dict[int, Instance]
    cld_rows: dict[int, list[dict]]  # case id -> CLD rows (handlers.cld.derive_cld_events), in order of start
    cld_errors: dict[int, str]  # case id -> why its CLD rows could not be derived
    last_day: str | None  # the UK day of the latest event: what "now" is for the data
    cache: dict[str, Any] = field(default_factory=dict)
    views: dict[int, CaseView] = field(default_factory=dict)  # per case, with each measure's items kept
    last_at: str | None = None  # the latest event's instant (last_day is its UK day)

    def reference(self, case_id: int) -> str:
        return (self.cases.get(case_id) or {}).get("reference") or f"case {case_id}"


@dataclass
class CaseView:
    """What the measures read from one case's history (kept per case so that new events re-read only their
    cases: ``load_population``)."""

    case: dict
    instances: dict[int, Instance]
    rows: list[dict] | None  # None: made from the facts kept in measure_facts (``view_from_facts``), no history
    error: str | None
    last_at: str | None
    items: dict[str, Any] = field(default_factory=dict)  # measure extraction -> this case's items
    event_id: int = 0  # the id of the case's latest event read (facts kept in measure_facts are good up to it)

    def instance_ids(self) -> list[int]:
        """The ids of the case's process instances (from the kept facts when the history was not read)."""
        if self.rows is None:
            kept = self.items["instances"]
            return [int(i.split(":", 1)[0]) for i in kept.split(";")] if kept else []
        return list(self.instances)

    def instance(self, iid: int) -> Instance:
        """One of the case's process instances; from kept facts, without its events (made once, then the same)."""
        got = self.instances.get(iid)
        if got is None and self.rows is None:
            for kept in filter(None, self.items["instances"].split(";")):
                i, process_id, parent, teams = kept.split(":")
                if int(i) == iid:  # kept facts hold no events, start data or times: only what identifies it
                    got = self.instances[iid] = Instance(iid, self.case["id"], process_id,
                                                         int(parent) if parent else None, {}, "",
                                                         teams=_frozen(teams))
        if got is None:
            raise KeyError(iid)
        return got

    def alone(self) -> Population:
        """A population of this case only (its measures' items are extracted from it), made once."""
        made = self.items.get("_alone")
        if made is None:
            made = self.items["_alone"] = population_of({self.case["id"]: self}, keep_views=False)
        return made  # type: ignore[return-value]


def case_view(case: dict, events: list[dict], task_teams: dict[tuple[str, str], frozenset[str]]) -> CaseView:
    """One case's instances (with their events and teams) and CLD rows, from its history."""
    from handlers import cld

    case_id = case["id"]
    instances: dict[int, Instance] = {}
    teams: dict[int, set[str]] = {}
    last = None
    for e in events:
        last = e["at"] if last is None or e["at"] > last else last
        iid = e.get("instance_id")
        if iid is None:
            continue
        inst = instances.get(iid)
        if e["type"] == "instance.started":
            inst = instances[iid] = Instance(iid, case_id, e["data"].get("process_id") or "",
                                             e["data"].get("parent_instance_id"), e["data"].get("data") or {},
                                             e["at"])
        if inst is None:
            continue
        inst.events.append(e)
        if e["type"] == "instance.completed":
            inst.completed_at = e["at"]
        elif e["type"] == "instance.cancelled":
            inst.cancelled_at = e["at"]
        elif e["type"] == "task.ready":
            found = task_teams.get((inst.process_id, e["data"].get("element_id")))
            if found:
                teams.setdefault(iid, set()).update(found - {OVERSIGHT_TEAM})
    for iid, names in teams.items():
        instances[iid].teams = frozenset(names)
    try:
        rows, error = cld.derive_cld_events(case, events), None
    except cld.CldDataError as exc:
        rows, error = [], str(exc)
    if rows:  # the person's fields (birth month and year, date of death) with each row, as the return has them
        try:
            person = cld.person_fields(case, events)
        except cld.CldDataError:
            person = {}  # a person field the return cannot code: the measures read no age or death for the case
        rows = [{**person, **row} for row in rows]
    return CaseView(case, instances, rows, error, last)


class _Instances(Mapping):
    """Every case's process instances by id, made from a case's kept facts only when asked for."""

    def __init__(self, views: dict[int, CaseView]) -> None:
        self._views = views
        self._where: dict[int, CaseView] | None = None

    def _index(self) -> dict[int, CaseView]:
        if self._where is None:
            self._where = {iid: v for v in self._views.values() for iid in v.instance_ids()}
        return self._where

    def __getitem__(self, iid: int) -> Instance:
        view = self._index().get(iid)
        if view is None:
            raise KeyError(iid)
        return view.instance(iid)

    def __iter__(self) -> Iterator[int]:
        return iter(self._index())

    def __len__(self) -> int:
        return len(self._index())


def population_of(views: dict[int, CaseView], *, keep_views: bool = True, gather: bool = True) -> Population:
    instances: Mapping[int, Instance]
    if any(v.rows is None for v in views.values()):
        instances = _Instances(views)
    else:
        instances = {}
        for v in views.values():
            instances.update(v.instances)  # type: ignore[attr-defined]
    last = max((v.last_at for v in views.values() if v.last_at), default=None)
    population = Population({cid: v.case for cid, v in views.items()}, instances,  # type: ignore[arg-type]
                            {cid: v.rows or [] for cid, v in views.items()},
                            {cid: v.error for cid, v in views.items() if v.error}, uk_day(last),
                            views=views if keep_views else {}, last_at=last)
    if gather and keep_views and views and all(v.rows is None for v in views.values()):
        # every case from kept facts: each extraction's items gathered in one pass (what _per_case would do)
        gathered: dict[str, list] = {name: [] for name in PER_CASE}
        for v in views.values():
            for name, found in v.items.items():
                if name in gathered:
                    gathered[name] += found
        population.cache.update(gathered)
    return population


def build_population(cases: Iterable[dict], histories: dict[int, list[dict]],
                     task_teams: dict[tuple[str, str], frozenset[str]] | None = None) -> Population:
    """The population from case records and their histories (each as `Engine.history` returns it).

    `task_teams` maps (process id, user task id) to the teams the task goes to (``task_teams_of``)."""
    by_id = {c["id"]: c for c in cases}
    views = {cid: case_view(by_id.get(cid) or {"id": cid, "reference": None, "data": {}}, events, task_teams or {})
             for cid, events in histories.items()}
    return population_of(views)


def task_teams_of(conn: Any) -> dict[tuple[str, str], frozenset[str]]:
    """(process id, user task id) -> its candidate groups, from every deployed version."""
    from sqlalchemy import select

    from engine.schema import process_versions

    out: dict[tuple[str, str], set[str]] = {}
    for pid, info in conn.execute(select(process_versions.c.process_id, process_versions.c.info)):
        for element, task in (json.loads(info).get("user_tasks") or {}).items():
            out.setdefault((pid, element), set()).update(task.get("candidate_groups") or [])
    return {k: frozenset(v) for k, v in out.items()}


_HANDLER = re.compile(r'"handler":"([^"]*)"')
#: the local timescales a measure reads (``InstanceView.settings``): the follow-up interval for ASCOF 2D and where the
#: assessment target counts from
SETTINGS_READ = ("hospital_follow_up_after_discharge", "assessment_target_from")
_KEPT_SETTINGS = re.compile(r'"(' + "|".join(SETTINGS_READ) + r')":"([^"]*)"')
_ELEMENT = re.compile(r'"element_id":"([^"]*)"')


def _event_data(kind: str, raw: str) -> dict:
    """An event's data, parsed; but the two kinds of service-task call that make up half a history's bytes
    and that neither a measure nor a CLD row reads keep only their handler and element: the local timescales
    every instance reads when it starts (with the two the measures read: the follow-up interval for ASCOF 2D
    and where the assessment target counts from) and the letters written (``*_letter``). The stored JSON is
    canonical (sorted keys, no spaces, string values without quotes inside): the search is exact."""
    if kind == "handler.called":
        handler = _HANDLER.search(raw)
        name = handler.group(1) if handler else ""
        if name == "local_settings" or name.endswith("_letter"):
            element = _ELEMENT.search(raw)
            kept = dict(_KEPT_SETTINGS.findall(raw)) if name == "local_settings" else {}
            return {"handler": name, "element_id": element.group(1) if element else None, "output": kept}
    return json.loads(raw)


@dataclass
class _Loaded:
    mark: tuple  # (latest event id, events in the look-back before it, number of cases, latest process version id)
    basis: str
    views: dict[int, CaseView]
    population: Population
    teams: dict[tuple[str, str], frozenset[str]] = field(default_factory=dict)
    gaps: tuple[tuple[int, int], ...] = ()  # PostgreSQL: ids at or below the look-back no event held (``_gaps``)


_LOADED: weakref.WeakKeyDictionary[Any, _Loaded] = weakref.WeakKeyDictionary()

FACTS_VERSION = "4"  # change it when what case_facts keeps changes: every kept row is worked out again
FACTS_CHUNK = 500  # cases read and worked out together (bounds the memory of a first build)


@functools.lru_cache(maxsize=1)
def _code_hash() -> str:
    """The code that derives the facts (this module, handlers/cld.py and its code lists): a release that changes
    how a CLD row or a measure's item is worked out makes every kept row stale, with no version to remember."""
    from pathlib import Path

    here = Path(__file__).resolve().parent
    files = [here / "measures.py", here / "cld.py", *sorted((here / "cld_spec").glob("*"))]
    digest = hashlib.sha256()
    for f in files:
        if f.is_file():
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
    return digest.hexdigest()


def facts_basis(teams: dict[tuple[str, str], frozenset[str]]) -> str:
    """What a case's kept facts were worked out on: the facts' version, the code that derives them
    (``_code_hash``) and the teams of the deployed tasks (a deployment that changes them makes every row stale;
    one that does not changes nothing)."""
    text = json.dumps([FACTS_VERSION, _code_hash(), sorted([p, e, sorted(t)] for (p, e), t in teams.items())])
    return hashlib.sha256(text.encode()).hexdigest()


def case_facts(view: CaseView) -> dict[str, Any]:
    """Everything the measures read from one case (each per-case extraction), as kept in `measure_facts`:
    its instances (id, process, parent, teams: no events) and each extraction's items; empty ones are left out."""
    pop = view.alone()
    for name, fn in PER_CASE.items():
        _per_case_view(view, name, fn, pop)
    instances = ";".join(f"{i.id}:{i.process_id}:{'' if i.parent is None else i.parent}:{','.join(sorted(i.teams))}"
                         for i in view.instances.values())  # one string, read only when an instance is asked for
    items = {name: view.items[name] for name in PER_CASE if view.items[name]}
    return {"last_at": view.last_at, "error": view.error, "items": {"instances": instances, **items}}


_SHORT = {"instance_id": "i", "day": "d", "parts": "p", "teams": "t", "detail": "x"}


def _compact(value: Any) -> Any:
    """An item as kept: short keys, its case id left out (the row's), its sets as sorted lists."""
    if isinstance(value, dict):
        if "parts" in value:  # parts and teams as one comma-separated string each (fewer values to read back)
            return {_SHORT.get(k, k): (",".join(sorted(v)) if isinstance(v, frozenset) else v)
                    for k, v in value.items() if k != "case_id"}
        return {k: _compact(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_compact(v) for v in value]
    return value


def facts_text(facts: dict[str, Any]) -> str:
    return json.dumps(_compact(facts), separators=(",", ":"))


_FROZEN: dict[Any, frozenset] = {}


def _frozen(values: list | str) -> frozenset:
    """The same frozenset for the same values (a list, or a comma-separated string as kept)."""
    key = values if isinstance(values, str) else tuple(values)
    got = _FROZEN.get(key)
    if got is None:
        got = _FROZEN[key] = frozenset((values.split(",") if values else ()) if isinstance(values, str) else values)
    return got


def view_from_facts(case: dict, text: str, event_id: int) -> CaseView:
    """A case as the measures read it, from its kept facts (no history: every measure's items are there)."""
    case_id = case["id"]

    def item(d: dict) -> dict:
        if "p" not in d:
            return d
        out = {"case_id": case_id, "instance_id": d.pop("i"), "day": d.pop("d"), "parts": _frozen(d.pop("p")),
               "teams": _frozen(d.pop("t")), "detail": d.pop("x")}
        if d:
            out.update(d)
        return out

    facts = json.loads(text, object_hook=item)
    return CaseView(case, {}, None, facts["error"], facts["last_at"], facts["items"], event_id)


def _read_cases(conn: Any, case_ids: list[int] | None) -> tuple[list[dict], dict[int, list[dict]]]:
    """Case records and their histories: all of them (None), or those of `case_ids`; one pass each."""
    from sqlalchemy import select

    from engine.schema import cases, events

    def where(q: Any, column: Any, chunk: list[int] | None) -> Any:
        return q if chunk is None else q.where(column.in_(chunk))

    chunks: list[list[int] | None] = [None] if case_ids is None else \
        [case_ids[i:i + FACTS_CHUNK] for i in range(0, len(case_ids), FACTS_CHUNK)]
    case_list: list[dict] = []
    histories: dict[int, list[dict]] = {}
    for chunk in chunks:
        rows = conn.execute(where(select(cases.c.id, cases.c.reference, cases.c.data), cases.c.id, chunk))
        found = [{"id": r.id, "reference": r.reference, "data": json.loads(r.data)} for r in rows]
        case_list += found
        histories.update({c["id"]: [] for c in found})
        result = conn.execution_options(stream_results=True, yield_per=20000).execute(where(
            select(events.c.id, events.c.seq, events.c.case_id, events.c.instance_id, events.c.type, events.c.at,
                   events.c.actor, events.c.data).where(events.c.case_id.is_not(None)), events.c.case_id, chunk)
            .order_by(events.c.case_id, events.c.seq))
        for r in result:
            histories.setdefault(r.case_id, []).append({
                "id": r.id, "seq": r.seq, "case_id": r.case_id, "instance_id": r.instance_id, "type": r.type,
                "at": r.at, "actor": r.actor, "data": _event_data(r.type, r.data)})
    return case_list, histories


def _write_facts(engine: Any, rows: list[dict]) -> None:
    """Keep cases' facts; a row is never replaced by one worked out from an earlier event on the same basis (two
    processes working out the same case at once leave the later one)."""
    from sqlalchemy import or_

    from engine.schema import measure_facts

    if engine.db.engine.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    stmt = insert(measure_facts)
    stmt = stmt.on_conflict_do_update(
        index_elements=[measure_facts.c.case_id],
        set_={"last_event_id": stmt.excluded.last_event_id, "basis": stmt.excluded.basis,
              "facts": stmt.excluded.facts},
        where=or_(measure_facts.c.basis != stmt.excluded.basis,
                  measure_facts.c.last_event_id <= stmt.excluded.last_event_id))
    with engine.db.transaction() as conn:
        conn.execute(stmt, rows)


def _work_out(engine: Any, case_ids: list[int], teams: dict, basis: str, refs: dict[int, str]) -> dict[int, CaseView]:
    """Read the histories of `case_ids` (a chunk at a time), work out and keep their facts; their views."""
    out: dict[int, CaseView] = {}
    for i in range(0, len(case_ids), FACTS_CHUNK):
        chunk = case_ids[i:i + FACTS_CHUNK]
        with engine.db.engine.connect() as conn:
            case_list, histories = _read_cases(conn, chunk)
        by_id = {c["id"]: c for c in case_list}
        rows = []
        for cid, history in histories.items():
            if cid not in by_id:
                continue
            event_id = max((e["id"] for e in history), default=0)
            text = facts_text(case_facts(case_view(by_id[cid], history, teams)))
            rows.append({"case_id": cid, "last_event_id": event_id, "basis": basis, "facts": text})
            out[cid] = view_from_facts({"id": cid, "reference": refs.get(cid, by_id[cid]["reference"])}, text,
                                       event_id)
        if rows:
            try:
                _write_facts(engine, rows)
            except DBAPIError as exc:  # busy or read-only: the figures are right anyway; a later page keeps them
                log.warning("measure facts of %d cases not kept: %s", len(rows), type(exc.orig).__name__)
    return out


# Events this far before the newest one a process has read are read again when something changed: an event whose
# transaction committed after a later-numbered one (PostgreSQL hands out ids before commit) is still found, and
# counted in the mark, so a late commit alone also counts as a change.
CHANGE_LOOKBACK = 10_000


def _mark(conn: Any) -> tuple:
    from sqlalchemy import func, select

    from engine.schema import cases, events, process_versions

    newest = conn.execute(select(func.max(events.c.id))).scalar() or 0
    recent = conn.execute(select(func.count()).select_from(events).where(
        events.c.id > newest - CHANGE_LOOKBACK)).scalar() or 0
    return (newest, recent, conn.execute(select(func.count()).select_from(cases)).scalar() or 0,
            conn.execute(select(func.max(process_versions.c.id))).scalar() or 0)


def _gaps(conn: Any, lo: int, hi: int) -> list[tuple[int, int]]:
    """The ranges of ids in (lo, hi] that no event holds, as (first, last). On PostgreSQL an id is handed out when
    the row is inserted and seen when its transaction commits, so an id below the newest one read may still come:
    a late commit fills one of these gaps (or the id was rolled back, and the gap stays). On SQLite one writer at a
    time takes the next id and commits before the next writer starts, so no id is ever committed below one already
    seen: nothing to keep there."""
    from sqlalchemy import func, select

    from engine.schema import events

    if hi <= lo or conn.dialect.name != "postgresql":
        return []
    held, first, last = conn.execute(select(func.count(), func.min(events.c.id), func.max(events.c.id)).where(
        events.c.id > lo, events.c.id <= hi)).one()
    if first is None:
        return [(lo + 1, hi)]
    if held == hi - lo:  # every id held (an index-only count: a third of the window function's time)
        return []
    ids = select(events.c.id, func.lead(events.c.id).over(order_by=events.c.id).label("nxt")).where(
        events.c.id > lo, events.c.id <= hi).subquery()
    out = [(a + 1, b - 1) for a, b in conn.execute(select(ids.c.id, ids.c.nxt).where(ids.c.nxt > ids.c.id + 1))]
    if first > lo + 1:
        out.insert(0, (lo + 1, first - 1))
    if last < hi:
        out.append((last + 1, hi))
    return out


def _filled(conn: Any, gaps: tuple[tuple[int, int], ...]) -> bool:
    """Whether an event now holds an id in one of `gaps` (a transaction that committed after the ids above it)."""
    from sqlalchemy import or_, select

    from engine.schema import events

    for i in range(0, len(gaps), 500):
        chunk = gaps[i:i + 500]
        if conn.execute(select(events.c.id).where(or_(*(events.c.id.between(a, b) for a, b in chunk))).limit(1)
                        ).first() is not None:
            return True
    return False


def late_gaps(conn: Any, loaded: _Loaded | None, mark: tuple, late: bool) -> tuple[tuple[int, int], ...]:
    """The gaps below the look-back of `mark` (``_gaps``): those of `loaded` (none of them filled since: not `late`)
    and the newly settled range's; at a start, or when a gap was filled, all of them. Read before the events and
    the kept facts are, so an event committed meanwhile leaves its gap kept: found again at the next page (its
    case read again), never missed."""
    boundary = mark[0] - CHANGE_LOOKBACK
    if loaded is None or late:
        return tuple(_gaps(conn, 0, boundary))
    return loaded.gaps + tuple(_gaps(conn, max(loaded.mark[0] - CHANGE_LOOKBACK, 0), boundary))


def _changed_since(conn: Any, loaded: _Loaded, mark: tuple) -> dict[int, int | None] | None:
    """The cases with an event this process has not read (their latest event id), and new cases (None when they
    have no event yet), from the events numbered after the last mark (less the look-back): a few index look-ups
    instead of listing every case. None when that cannot prove it (a case gone, or one numbered below the
    newest held): then every case is listed."""
    from sqlalchemy import func, select

    from engine.schema import cases, events

    held = loaded.views
    top = max(held, default=0)
    added = conn.execute(select(cases.c.id).where(cases.c.id > top)).scalars().all()
    if mark[2] != len(held) + len(added):
        return None
    out: dict[int, int | None] = {cid: None for cid in added}
    for cid, newest in conn.execute(select(events.c.case_id, func.max(events.c.id)).where(
            events.c.id > loaded.mark[0] - CHANGE_LOOKBACK, events.c.case_id.is_not(None))
            .group_by(events.c.case_id)):
        mine = held.get(cid)
        if mine is None:
            if cid in out:
                out[cid] = newest
            else:
                return None  # an event of a case this process does not hold and that is not new
        elif newest > mine.event_id:
            out[cid] = newest
    return out


@fewer_collections(keep=True)  # the population stays, held for the next pages
def load_population(engine: Any) -> Population:
    """Every case as the measures read it, from the facts kept per case in `measure_facts`: a case whose history
    has an event later than its kept facts (or whose facts were worked out on another basis) is read and worked
    out again, and its facts kept for every process. In one process the same population is returned while
    nothing was written; after new events only their cases are read again (``_changed_since``), and their
    entries replaced in what the last population worked out (``_updated``)."""
    from sqlalchemy import and_, select

    from engine.schema import cases, measure_facts

    with engine.db.engine.connect() as conn:
        mark = _mark(conn)
        loaded = _LOADED.get(engine)
        late = loaded is not None and bool(loaded.gaps) and _filled(conn, loaded.gaps)
        if loaded is not None and loaded.mark == mark and not late:
            return loaded.population
        gaps = late_gaps(conn, loaded, mark, late)
        changes = None
        if loaded is not None and loaded.mark[3] == mark[3]:  # no new deployment: the same teams and basis
            teams, basis = loaded.teams, loaded.basis
            if not late:  # a late commit below the look-back: every case is listed against what is held
                changes = _changed_since(conn, loaded, mark)
        else:
            teams = task_teams_of(conn)
            basis = facts_basis(teams)
        held = loaded.views if loaded is not None and loaded.basis == basis else {}
        views: dict[int, CaseView] = {}
        stale: list[int] = []
        refs: dict[int, str] = {}
        if changes is not None:  # only the changed cases: their kept rows (another process may have kept them)
            ids = sorted(changes)
            for i in range(0, len(ids), FACTS_CHUNK):
                for cid, ref, last, text in conn.execute(
                        select(cases.c.id, cases.c.reference, measure_facts.c.last_event_id, measure_facts.c.facts)
                        .select_from(cases.outerjoin(measure_facts, and_(
                            measure_facts.c.case_id == cases.c.id, measure_facts.c.basis == basis)))
                        .where(cases.c.id.in_(ids[i:i + FACTS_CHUNK]))):
                    refs[cid] = ref
                    if last is None or last < (changes[cid] or 0):
                        stale.append(cid)
                    else:
                        views[cid] = view_from_facts({"id": cid, "reference": ref}, text, last)
        else:
            listed = _listed(conn, basis, held, views, stale, refs)
            if listed is None:
                _LOADED.pop(engine, None)  # a case this process holds is gone: read everything as at a start
                return load_population(engine)
    views.update(_work_out(engine, sorted(stale), teams, basis, refs))
    population = None
    if held:  # only the changed cases' items replaced in what the last population kept
        population = _updated(loaded.population, views)  # type: ignore[union-attr]
        if population is None:  # too many changed: every other case as held, the lists made again
            views = {**held, **views}
    if population is None:
        population = population_of(dict(sorted(views.items())))
    _LOADED[engine] = _Loaded(mark, basis, population.views, population, teams, gaps)
    return population


def _listed(conn: Any, basis: str, held: dict[int, CaseView], views: dict[int, CaseView], stale: list[int],
            refs: dict[int, str]) -> bool | None:
    """Every case with its kept row's event id and its latest event's id (one query; with the kept facts when
    nothing is held): fills `views` with the cases read from kept facts, `stale` with those to work out again.
    None when a case `held` is gone."""
    from sqlalchemy import and_, func, select

    from engine.schema import cases, events, measure_facts

    latest = select(func.max(events.c.id)).where(events.c.case_id == cases.c.id).scalar_subquery()
    columns = [cases.c.id, cases.c.reference, measure_facts.c.last_event_id, latest.label("latest")]
    if not held:  # nothing held (a start): the kept facts come with the listing, in one query
        columns.append(measure_facts.c.facts)
    listing = conn.execute(
        select(*columns).select_from(cases.outerjoin(measure_facts, and_(
            measure_facts.c.case_id == cases.c.id, measure_facts.c.basis == basis)))).all()
    kept: list[int] = []
    if not held:
        for cid, ref, last, newest, text in listing:  # tuples: a row's attributes cost more on 44,801 rows
            refs[cid] = ref
            if last is None or last < (newest or 0):
                stale.append(cid)
            else:
                views[cid] = view_from_facts({"id": cid, "reference": ref}, text, last)
    else:  # the cases this process holds as kept are not touched: only the others are listed out
        get = held.get
        for cid, ref, last, newest in listing:
            if last is None or last < (newest or 0):
                stale.append(cid)
                refs[cid] = ref
            elif (mine := get(cid)) is None or mine.event_id != last:
                kept.append(cid)  # kept since by another process (or a case new to this one)
                refs[cid] = ref
    if held and len(listing) != len(held) + sum(1 for c in refs if c not in held):
        return None
    del listing
    for i in range(0, len(kept), FACTS_CHUNK):
        chunk = kept[i:i + FACTS_CHUNK]
        for cid, last, text in conn.execute(select(
                measure_facts.c.case_id, measure_facts.c.last_event_id, measure_facts.c.facts).where(
                measure_facts.c.case_id.in_(chunk), measure_facts.c.basis == basis)):
            views[cid] = view_from_facts({"id": cid, "reference": refs[cid]}, text, last)
    stale += [cid for cid in kept if cid not in views]  # worked out again on another basis meanwhile
    return True


# more changed cases than this share of them (beyond the first INCREMENTAL_FLOOR): a new population is built
INCREMENTAL_MAX = 0.05
INCREMENTAL_FLOOR = 64

_ENTRY_CASE: dict[str, Callable[[Any], int]] = {  # the case of one entry of a kept per-case list (PER_CASE)
    "3d_rows": lambda e: e[0], "annual_rows": lambda e: e[0],
    "review_waits": lambda e: e[-1]["case_id"], "carers_3d": lambda e: e[-1]["case_id"]}


def _case_of(name: str) -> Callable[[Any], int]:
    return _ENTRY_CASE.get(name) or (lambda e: e["case_id"])


def _splice(entries: list, case_id: int, new: list, case_of: Callable[[Any], int]) -> None:
    """Replace, in a list kept in order of case id, one case's entries by `new` (in place)."""
    lo = bisect.bisect_left(entries, case_id, key=case_of)
    hi = bisect.bisect_right(entries, case_id, lo=lo, key=case_of)
    entries[lo:hi] = new


def _day_case(item: dict) -> tuple[str, int]:
    return item["day"], item["case_id"]


def _resplice_dated(days: list[str], dated: list[dict], case_id: int, old: list[dict], new: list[dict]) -> None:
    """In a measure's items kept in day order (then case order, then the case's own order), replace one case's
    `old` items (as extracted) by its `new` ones (in place)."""
    for day in sorted({i["day"] for i in old if i["day"] is not None}):
        lo, hi = bisect.bisect_left(days, day), bisect.bisect_right(days, day)
        keep = [k for k in range(lo, hi) if dated[k]["case_id"] != case_id]
        if len(keep) != hi - lo:
            dated[lo:hi] = [dated[k] for k in keep]
            days[lo:hi] = [day] * len(keep)
    for item in new:
        if item["day"] is None:
            continue
        at = bisect.bisect_right(dated, (item["day"], case_id), key=_day_case)
        dated.insert(at, item)
        days.insert(at, item["day"])


def _ascending(keyed: dict) -> bool:
    keys = list(keyed)
    return keys == sorted(keys)


def _updated(old: Population, changes: dict[int, CaseView]) -> Population | None:
    """The population `old` with the cases of `changes` (read again after new events, or kept since by another
    process, or new) in place of what it held, reusing every other case's part of what `old` worked out (the
    per-case lists, each measure's items in day order, the snapshots of each day): equal to a population built
    from every view (the tests check it). None when too many cases changed for that to be worth it."""
    if not old.views or any(v.rows is not None for v in changes.values()) \
            or not all(v.rows is None for v in old.views.values()):
        return None
    changed = sorted(cid for cid, v in changes.items() if old.views.get(cid) is not v)
    if not changed:
        return old
    if len(changed) > INCREMENTAL_FLOOR + INCREMENTAL_MAX * len(old.views):
        return None
    views = {**old.views, **changes}
    cases, errors = dict(old.cases), dict(old.cld_errors)
    if any(cid not in old.views for cid in changed) and not _ascending(views):
        views = dict(sorted(views.items()))  # in order of case id, as a full build has them
        cases = {cid: v.case for cid, v in views.items()}
    rows = old.cld_rows if all(cid in old.cld_rows for cid in changed) else {**old.cld_rows}
    for cid in changed:
        v = views[cid]
        cases[cid] = v.case
        errors.pop(cid, None)
        if v.error:
            errors[cid] = v.error
        if cid not in rows:
            rows[cid] = []
    if errors.keys() != old.cld_errors.keys() or not _ascending(errors):
        errors = {cid: errors[cid] for cid in sorted(errors)}
    last_at = max((t for t in [old.last_at, *(views[c].last_at for c in changed)] if t), default=None)
    new = Population(cases, _Instances(views), rows, errors, uk_day(last_at), views=views, last_at=last_at)
    resolves: dict[str, Callable] = {}
    snapshots: dict[int, Callable] = {}
    for m in MEASURES.values():
        if m.extract is not None and m.resolve is not None:
            resolves[EXTRACTS[id(m.extract)]] = m.resolve
        if m.at_date is not None:
            snapshots[id(m.at_date)] = m.at_date
    alone = {cid: population_of({cid: views[cid]}) for cid in changed}
    dirty = _changed_inputs(old, views, changed)
    carers = "carers_3d" in dirty  # no changed case's carers' support changed: who counts in a period is the same
    moved = new.last_day != old.last_day
    kept_before = list(old.cache.items())  # a copy: a page reading `old` may be adding to it
    for key, value in kept_before:  # each page's figures: kept for the measures whose inputs did not change
        if key.startswith("page:"):
            new.cache[key] = {k: got for k, got in dict(value).items() if not _affected(MEASURES[k], dirty, moved)}
    in_carers = {id(fn) for fn in _CARERS_BY_BAND.values()}
    if carers:
        _carers_updated(old, new, views, changed)
    for key, value in kept_before:
        if not carers and (key.startswith(("carers_in:", "carers_per:", "carers_by_who"))
                           or (key.startswith("in:") and int(key.split(":")[1]) in in_carers)):
            new.cache[key] = value  # never changed in place: each use copies it
        elif key in PER_CASE:
            kept = list(value)
            case_of = _case_of(key)
            for cid in changed:
                _splice(kept, cid, views[cid].items.get(key) or [], case_of)
            new.cache[key] = kept
        elif key.startswith("dated:"):
            name = key[len("dated:"):]
            resolve = resolves.get(name)
            if resolve is not None and new.last_day != old.last_day:
                continue  # read against the latest day in the data, which moved: worked out again when asked
            days, dated = list(value[0]), list(value[1])
            for cid in changed:
                was = old.views[cid].items.get(name, []) if cid in old.views else []
                now = views[cid].items.get(name) or []
                _resplice_dated(days, dated, cid, was, resolve(new, now) if resolve is not None else now)
            new.cache[key] = (days, dated)
        elif key.startswith(("at:", "3d_on:")):
            kind, _, rest = key.partition(":")
            if kind == "at":
                fn_id, _, day = rest.partition(":")
                fn = snapshots.get(int(fn_id))
                if fn is None:
                    continue
            else:
                day, fn = rest, _3d_on
            kept = list(value)
            case_of = (lambda e: e[0]["case_id"]) if kind == "3d_on" else (lambda e: e["case_id"])
            for cid in changed:
                _splice(kept, cid, list(fn(alone[cid], day)), case_of)
            new.cache[key] = kept
        # anything else (who is a carer in a period, read across cases) is worked out again when asked
    return new


def warm_in_background(engine: Any) -> Any:
    """Read the measures' kept facts (working out any stale case) in a daemon thread, so that the first measures
    page after the server starts finds them in memory; the thread, so a caller can wait for it."""
    import threading

    def warm() -> None:
        try:
            load_population(engine)
        except Exception as exc:  # noqa: BLE001 - the page works them out itself; nothing personal is logged
            log.warning("measures not read at start: %s", type(exc).__name__)

    thread = threading.Thread(target=warm, name="carepath-measures-warm", daemon=True)
    thread.start()
    return thread


def _changed_inputs(old: Population, views: dict[int, CaseView], changed: list[int]) -> set[str]:
    """The per-case lists (``PER_CASE``) in which any of the `changed` cases' entries differ from what `old`
    held for them (a new case: those it has entries in)."""
    out: set[str] = set()
    for cid in changed:
        was = old.views[cid].items if cid in old.views else {}
        now = views[cid].items
        out.update(name for name in PER_CASE if name not in out and (was.get(name) or []) != (now.get(name) or []))
    return out


def _affected(measure: Measure, dirty: set[str], day_moved: bool) -> bool:
    """Whether a measure's figures may differ after new events that changed the per-case lists `dirty` (and
    moved the latest day in the data, when `day_moved`): each measure reads one such list, and the direct
    payment reviews also the latest day; a measure whose input is not known here is always worked out again."""
    if measure.not_recorded:
        return False
    if measure.resolve is not None and day_moved:
        return True
    reads = _READS.get(id(measure.extract or measure.at_date or measure.in_period))
    return reads is None or reads in dirty


@fewer_collections()
def page_figures(population: Population, start: date, end: date, team: str | None = None,
                 series: bool = True) -> list[tuple[Result, list[dict] | None]]:
    """Every measure's figures for the period (``compute``) and for each of its months or quarters
    (``over_time``), in the order of ``MEASURES``: what the measures page shows. Kept with the population per
    period and team, and carried over to the population after new events for every measure none of whose
    inputs changed (``_updated``), so a page after a new event works out again only the measures it touched.
    The results are shared between pages: read them, do not change them. With ``series=False`` (the JSON API
    and ``carepath measures``) a measure's months are not worked out (None) unless a page already kept them;
    a later page works them out then, keeping the figure."""
    check_period(start, end)
    key = f"page:{start.isoformat()}:{end.isoformat()}:{team or ''}"
    kept = population.cache.get(key)
    if kept is None:
        kept = population.cache[key] = {}
    out = []
    for name, measure in MEASURES.items():
        got = kept.get(name)
        if got is None:
            got = (compute(name, population, start, end, team), None)
        if series and got[1] is None:
            got = (got[0], [] if measure.not_recorded else over_time(population, name, start, end, team))
        kept[name] = got
        out.append(got)
    return out


def kept_results(population: Population, start: date, end: date, team: str | None = None) -> list[Result]:
    """Every measure's figure for the period, in the order of ``MEASURES``, from the same figures the measures
    page keeps (``page_figures``): what ``GET /api/measures`` and ``carepath measures`` give, so the page, the
    API and the CLI agree, and a second call for the same period and team (in one process) works out nothing
    again unless new events changed a measure's inputs."""
    return [r for r, _series in page_figures(population, start, end, team, series=False)]


# ---------------------------------------------------------------- results


@dataclass
class Part:
    key: str
    label: str
    count: int
    share: float | None  # of the measure's denominator (or of all its items), per cent
    case_ids: list[int]


@dataclass
class Result:
    key: str
    title: str
    unit: str  # "%", "count" or "days"
    figure: float | int | None  # None: nothing to count in the period, or not recorded
    numerator: int | None
    denominator: int | None
    case_ids: list[int]
    items: list[dict]
    parts: list[Part]
    message: str | None = None  # why there is no figure, or what is left out of it
    not_recorded: str | None = None  # what the processes do not record, so no figure is given
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"key": self.key, "title": self.title, "unit": self.unit, "figure": self.figure,
                "numerator": self.numerator, "denominator": self.denominator, "case_ids": self.case_ids,
                "message": self.message, "not_recorded": self.not_recorded, "extra": self.extra,
                "parts": [{"key": p.key, "label": p.label, "count": p.count, "share": p.share,
                           "case_ids": p.case_ids} for p in self.parts]}


def _item(inst: Instance | None, case_id: int, day: str | None, parts: Iterable[str], detail: str,
          **more: Any) -> dict:
    return {"case_id": case_id, "instance_id": inst.id if inst else None, "day": day, "parts": frozenset(parts),
            "teams": inst.teams if inst else frozenset(), "detail": detail, **more}


@dataclass
class Measure:
    key: str
    title: str
    unit: str
    definition: str
    source: str
    parts: list[tuple[str, str]]  # (key, label), in the order shown
    numerator: tuple[str, ...] = ()  # the parts counted in the numerator (a rate); () for a count
    denominator_excludes: tuple[str, ...] = ()  # parts shown but left out of the denominator
    extract: Callable[[Population], list[dict]] | None = None  # items dated by "day" (in the period)
    at_date: Callable[[Population, str], list[dict]] | None = None  # a snapshot on the period's last day
    in_period: Callable[[Population, str, str], list[dict]] | None = None  # people counted once in the period
    resolve: Callable[[Population, list[dict]], list[dict]] | None = None  # items read against the whole data
    summarise: Callable[[list[dict]], dict[str, Any]] | None = None  # extra figures (e.g. median days)
    figure_is: str | None = None  # "median_days" / "mean_days": the figure is from `summarise`
    per_case: bool = True  # each case's items depend on that case alone (kept per case between events)
    caveat: str | None = None  # something the source counts that the processes do not record (shown with it)
    not_recorded: str | None = None  # the processes do not record what the measure needs
    empty: str = "Nothing to count in this period."


def check_period(start: date, end: date) -> None:
    if end < start:
        raise MeasureError(f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()}): "
                           "--to must not be before --from")


def _period_items(measure: Measure, population: Population, first: str, last: str) -> list[dict]:
    """The measure's items in [first, last]: a snapshot on `last`, or a slice of the items extracted once
    (kept on the population in day order, so a period is two binary searches)."""
    cache = population.cache
    if measure.at_date is not None:
        key = f"at:{id(measure.at_date)}:{last}"
        if key not in cache:
            cache[key] = measure.at_date(population, last)
        return list(cache[key])
    if measure.in_period is not None:
        key = f"in:{id(measure.in_period)}:{first}:{last}"  # shared by 1b and 2b of the same ages
        if key not in cache:
            cache[key] = measure.in_period(population, first, last)
        return list(cache[key])
    name = EXTRACTS[id(measure.extract)]
    key = f"dated:{name}"
    if key not in cache:
        if measure.per_case:  # each case's items kept with it: a new event re-extracts that case's
            found = list(_per_case(population, name, measure.extract))  # type: ignore[arg-type]
        else:
            found = measure.extract(population)  # type: ignore[misc]
        if measure.resolve is not None:
            found = measure.resolve(population, found)
        dated = sorted((i for i in found if i["day"] is not None), key=lambda i: i["day"])
        cache[key] = ([i["day"] for i in dated], dated)
    days, dated = cache[key]
    return dated[bisect.bisect_left(days, first):bisect.bisect_right(days, last)]


def _figure(measure: Measure, items: list[dict]) -> tuple[list[dict], int | None, int | None, Any, dict]:
    """(the items counted, numerator, denominator, figure, extra figures) of a measure's items."""
    excluded = set(measure.denominator_excludes)
    counted = [i for i in items if not (i["parts"] & excluded)] if excluded else items
    extra = measure.summarise(counted) if measure.summarise and counted else {}
    numerator = denominator = None
    if measure.numerator:
        wanted = set(measure.numerator)
        denominator = len(counted)
        numerator = sum(1 for i in counted if i["parts"] & wanted)
        figure: Any = _pct(numerator, denominator)
    elif measure.figure_is:
        figure = extra.get(measure.figure_is)
    else:
        figure = len(counted)
    if not items:
        figure = 0 if not measure.numerator and not measure.figure_is else None
    return counted, numerator, denominator, figure, extra


def compute(key: str, population: Population, start: date, end: date, team: str | None = None) -> Result:
    """One measure for the period [start, end] (both days included), optionally for one team."""
    check_period(start, end)
    measure = MEASURES.get(key)
    if measure is None:
        raise MeasureError(f"there is no measure {key!r}: the measures are {', '.join(MEASURES)}")
    if measure.not_recorded:
        return Result(key, measure.title, measure.unit, None, None, None, [], [], [],
                      message="Not recorded", not_recorded=measure.not_recorded)
    items = _period_items(measure, population, start.isoformat(), end.isoformat())
    if team:
        items = [i for i in items if team in i["teams"]]
    items.sort(key=lambda i: (i["day"] or "", i["case_id"], i["instance_id"] or 0))
    counted, numerator, denominator, figure, extra = _figure(measure, items)
    parts = []
    for pkey, label in measure.parts:
        inside = [i for i in items if pkey in i["parts"]]
        base = len(counted) if pkey not in measure.denominator_excludes else len(items)
        parts.append(Part(pkey, label, len(inside), _pct(len(inside), base),
                          sorted({i["case_id"] for i in inside})))
    message = None
    if not items:
        message = measure.empty
    elif figure is None:
        message = "None of them can be counted yet: see the parts left out of the figure."
    left_out = [p for p in parts if p.key in measure.denominator_excludes and p.count]
    if left_out and items:
        extra["left_out"] = {p.key: p.count for p in left_out}
    return Result(key, measure.title, measure.unit, figure, numerator, denominator,
                  sorted({i["case_id"] for i in items}), items, parts, message, None, extra)


def compute_all(population: Population, start: date, end: date, team: str | None = None) -> list[Result]:
    check_period(start, end)
    return [compute(key, population, start, end, team) for key in MEASURES]


@fewer_collections()
def measure_cases(population: Population, key: str, start: date, end: date, team: str | None = None,
                  part: str | None = None) -> tuple[Result, list[dict]]:
    """The items (one per counted event, with its case) behind a measure's figure or one of its parts."""
    result = compute(key, population, start, end, team)
    if part:
        keys = [p.key for p in result.parts]
        if part not in keys:
            raise MeasureError(f"the measure {key!r} has no part {part!r}: its parts are {', '.join(keys) or 'none'}")
        return result, [i for i in result.items if part in i["parts"]]
    return result, list(result.items)


def periods_between(start: date, end: date) -> list[tuple[date, date]]:
    """The chart's buckets: calendar months for a period up to a year and a quarter, else quarters."""
    check_period(start, end)
    months = (end.year - start.year) * 12 + end.month - start.month + 1
    step = 1 if months <= 15 else 3
    out = []
    first = date(start.year, start.month, 1) if step == 1 else date(start.year, 3 * ((start.month - 1) // 3) + 1, 1)
    while first <= end:
        m = first.month - 1 + step
        nxt = date(first.year + m // 12, m % 12 + 1, 1)
        out.append((max(first, start), min(nxt - timedelta(days=1), end)))
        first = nxt
    return out


def over_time(population: Population, key: str, start: date, end: date, team: str | None = None) -> list[dict]:
    """The measure's figure in each month (or quarter) of the period: the chart and the table behind it."""
    check_period(start, end)
    measure = MEASURES.get(key)
    if measure is None:
        raise MeasureError(f"there is no measure {key!r}: the measures are {', '.join(MEASURES)}")
    out = []
    for a, b in periods_between(start, end):
        if measure.not_recorded:
            items: list[dict] = []
        else:
            items = _period_items(measure, population, a.isoformat(), b.isoformat())
            if team:
                items = [i for i in items if team in i["teams"]]
        _counted, numerator, denominator, figure, _extra = _figure(measure, items)
        out.append({"from": a.isoformat(), "to": b.isoformat(), "figure": None if measure.not_recorded else figure,
                    "numerator": numerator, "denominator": denominator, "count": len(items)})
    return out


# ---------------------------------------------------------------- CLD-based chronology


ST_MAX = "Short Term Support: ST-Max"
LTS_PREFIX = "long term support:"
_SEQUEL_RANK = ["Short Term Support: ST-Max", "Long Term Support: Nursing Care", "Long Term Support: Residential Care",
                "Long Term Support: Community", "Long Term Support: Prison", "Short Term Support: Ongoing Low Level",
                "Short Term Support: Other Short Term"]  # DHSC STS001 #REF_Service_Type hierarchy
_ENDED_BY_HEALTH_OR_DEATH = {_norm(o) for o in ("Admitted to hospital", "NFA - Deceased",
                                                 "Progress to End of Life Care", "NFA - 100% NHS funded care")}
_INFO_ADVICE = _norm("NFA - Information & Advice / Signposting only")


def _service_user_rows(pop: Population, case_id: int) -> list[dict]:
    return [r for r in pop.cld_rows.get(case_id, []) if r.get("client_type") in (None, "Service User")]


def _onward(rows: list[dict], after: dict) -> list[dict]:
    """The case's events after `after` in order of start, up to (not including) its next Request."""
    ordered = sorted(rows, key=lambda r: (r["event_start"] or "", r["instance_id"]))
    at = next(k for k, r in enumerate(ordered) if r is after)
    out = []
    for r in ordered[at + 1:]:
        if r["event_type"] == "Request":
            break
        out.append(r)
    return out


def _long_term_open_at(rows: list[dict], day: str) -> bool:
    return any(r["event_type"] == "Service" and _norm(r.get("service_type")).startswith(LTS_PREFIX)
               and r["event_start"] < day and (r["event_end"] is None or r["event_end"] >= day) for r in rows)


def _request_sequel(rows: list[dict], request: dict) -> tuple[str, str]:
    """(part, why) of a Request by DHSC's STS001 rule, simplified to one case's own chronology."""
    onward = _onward(rows, request)
    services = [r for r in onward if r["event_type"] == "Service" and r.get("service_type") in _SEQUEL_RANK]
    if services:
        best = min(services, key=lambda r: _SEQUEL_RANK.index(r["service_type"]))
        st = best["service_type"]
        if st == ST_MAX:
            return "short_term", f"{st} from {best['event_start']}"
        if _norm(st).startswith(LTS_PREFIX):
            return "long_term", f"{st} from {best['event_start']}"
        return "other_short_term", f"{st} from {best['event_start']}"
    if _norm(request.get("outcome")) == _INFO_ADVICE:
        return "information_advice", "information and advice / signposting"
    open_rows = [r for r in onward if r["event_end"] is None and r["event_type"] != "Service"]
    if open_rows or request.get("event_end") is None or not request.get("outcome"):
        return "in_progress", "no sequel yet: " + (open_rows[0]["event_type"].lower() + " still open"
                                                  if open_rows else "request still open")
    if _norm(request.get("outcome")) in _ENDED_BY_HEALTH_OR_DEATH:
        return "health_or_death", str(request.get("outcome"))
    last = onward[-1] if onward else request
    return "no_services", f"no service followed ({last.get('outcome') or 'no outcome'})"


def _extract_new_requests(pop: Population) -> list[dict]:
    items = []
    for case_id in pop.cld_rows:
        rows = _service_user_rows(pop, case_id)
        for r in rows:
            if r["event_type"] != "Request" or r["event_end"] is None:
                continue
            inst = pop.instances.get(r["instance_id"])
            if _long_term_open_at(rows, r["event_start"]):
                part, why = "existing_client", "long-term support already in place"
            else:
                part, why = _request_sequel(rows, r)
            items.append(_item(inst, case_id, r["event_end"], [part],
                               f"request {r['event_start']} to {r['event_end']}: {why}"))
    return items


def _st_max_sequel(rows: list[dict], service: dict) -> tuple[str, str]:
    outcome = _norm(service.get("outcome"))
    if outcome in _ENDED_BY_HEALTH_OR_DEATH:
        return "excluded", f"ended: {service.get('outcome')}"
    onward = [r for r in _onward(rows, service) if (r["event_start"] or "") >= service["event_end"]]
    lts = [r for r in onward if r["event_type"] == "Service" and _norm(r.get("service_type")).startswith(LTS_PREFIX)]
    if lts:
        return "long_term", f"{lts[0]['service_type']} from {lts[0]['event_start']}"
    still_open = [r for r in onward if r["event_end"] is None and r["event_type"] != "Service"]
    if still_open:
        return "unknown", f"{still_open[0]['event_type'].lower()} from {still_open[0]['event_start']} not finished"
    return "no_long_term", f"no long-term support followed ({service.get('outcome')})"


def _extract_2a(pop: Population) -> list[dict]:
    items = []
    for case_id in pop.cld_rows:
        rows = _service_user_rows(pop, case_id)
        for r in rows:
            if r["event_type"] != "Service" or r.get("service_type") != ST_MAX or r["event_end"] is None:
                continue
            if _long_term_open_at(rows, r["event_start"]):
                continue  # not a new client: long-term support already in place when reablement started
            part, why = _st_max_sequel(rows, r)
            items.append(_item(pop.instances.get(r["instance_id"]), case_id, r["event_end"], [part],
                               f"reablement {r['event_start']} to {r['event_end']}: {why}"))
    return items


def _per_case_view(view: CaseView, key: str, fn: Callable[[Population], list], alone: Population | None = None) -> list:
    got = view.items.get(key)
    if got is None:
        if view.rows is None:  # made from kept facts: what is not there is empty, and only PER_CASE is kept
            if key not in PER_CASE:
                raise LookupError(f"{key!r} is not kept in the measures' facts (PER_CASE)")
            return []
        got = view.items[key] = fn(alone if alone is not None else view.alone())
    return got


def _per_case(pop: Population, key: str, fn: Callable[[Population], list]) -> list:
    """`fn` over the population, worked out once per population — and, when it has per-case views, once per
    case (kept with the case until one of its events is written; the named ones, ``PER_CASE``, kept in the
    database too: ``case_facts``)."""
    if key not in pop.cache:
        if pop.views:
            out: list = []
            for view in pop.views.values():
                got = view.items.get(key)
                out += got if got is not None else _per_case_view(view, key, fn)
        else:
            out = fn(pop)
        pop.cache[key] = out
    return pop.cache[key]


def _long_term(pop: Population) -> list[tuple[int, list[dict], list[dict]]]:
    """(case id, its service users' long-term support rows, all its service-user rows) of every case that had
    long-term support: what the snapshot measures read."""
    def find(p: Population) -> list[tuple[int, list[dict], list[dict]]]:
        out = []
        for case_id in p.cld_rows:
            rows = _service_user_rows(p, case_id)
            lts = [r for r in rows
                   if r["event_type"] == "Service" and _norm(r.get("service_type")).startswith(LTS_PREFIX)]
            if lts:
                out.append((case_id, lts, rows))
        return out
    return _per_case(pop, "long_term_cases", find)


_MECHANISM_RANK = {"direct payment": (0, "direct_payment"), "cassr managed personal budget": (1, "managed_budget")}


def _birth(row: dict) -> list[int] | None:
    """[year, month] of birth from a CLD row (what DHSC's CLD holds), or None when either is not recorded."""
    try:
        year, month = int(row.get("birth_year")), int(row.get("birth_month"))  # type: ignore[arg-type]
        date(year, month, 1)
    except (TypeError, ValueError):
        return None
    return [year, month]


def dhsc_age(birth: list[int] | None, day: str) -> int | None:
    """Age on `day` as DHSC derives it from CLD's birth month and year (Create_personal_details_table.sql,
    Der_Age_End_Of_Period; Create_ASCOF_3D_2425_Onwards.sql, Der_Age_Reporting_End): whole days from the first of
    the birth month to the day, divided by 365.25, rounded down. On the 65th birthday this is usually still 64:
    DHSC's proxy, followed as it is."""
    if birth is None:
        return None
    return int((date.fromisoformat(day) - date(birth[0], birth[1], 1)).days // 365.25)


AGE_BANDS = {"18_64": "aged 18 to 64", "65_over": "aged 65 and over"}


def _in_band(age: int | None, band: str | None) -> bool:
    """DHSC's 3D groups (Create_ASCOF_3D_2425_Onwards.sql, Der_Age_Band_Reporting_End): under 18 counted
    nowhere; 18 to 64; 65 and above; an unknown age in the total (band None) only."""
    if age is not None and age < 18:
        return False
    if band is None:
        return True
    if age is None:
        return False
    return age <= 64 if band == "18_64" else age >= 65


def _3d_rows(pop: Population) -> list[tuple[int, list[tuple[str, str | None, int, bool, dict, list | None,
                                                              str | None]]]]:
    """Per case with long-term support: (start, end, DHSC's rank of its delivery mechanism, in the community,
    the item it would count as, birth [year, month], date of death) of each such row, worked out once (a
    snapshot picks among them by day)."""
    def find(p: Population) -> list:
        out = []
        for case_id, lts, _rows in _long_term(p):
            segments = []
            for r in lts:
                rank, part = _MECHANISM_RANK.get(_norm(r.get("delivery_mechanism")), (2, "commissioned"))
                community = _norm(r.get("service_type")) == "long term support: community"
                item = _item(p.instances.get(r["instance_id"]), case_id, r["event_start"], [part],
                             f"{r['service_type']} from {r['event_start']}: "
                             f"{r.get('delivery_mechanism') or 'no delivery mechanism'}")
                segments.append((r["event_start"], r["event_end"], rank, community, item, _birth(r),
                                 _iso(r.get("date_of_death"))))
            out.append((case_id, segments))
        return out
    return _per_case(pop, "3d_rows", find)


def _3d_on(pop: Population, day: str) -> list[tuple[dict, int | None]]:
    """(the item, age on the day) of each person in community long-term support on `day` (their highest-ranking
    support by DHSC's order), alive on the day: worked out once per day for every band."""
    key = f"3d_on:{day}"
    if key not in pop.cache:
        out = []
        on = date.fromisoformat(day).toordinal()
        for _case_id, segments in _3d_rows(pop):
            best = None
            for start, end, rank, community, item, birth, died in segments:
                if start <= day and (end is None or end >= day) and (died is None or died >= day) \
                        and (best is None or rank < best[0]):
                    best = (rank, community, item, birth)
            if best is not None and best[1]:
                birth = best[3]
                out.append((best[2], None if birth is None else  # dhsc_age, without parsing the day again
                            int((on - date(birth[0], birth[1], 1).toordinal()) // 365.25)))
        pop.cache[key] = out
    return pop.cache[key]


def _at_3d(pop: Population, day: str, band: str | None = None) -> list[dict]:
    """Each person once, by DHSC's order of delivery mechanisms, among their long-term support on `day`, alive on
    the day and not under 18 on it (age unknown: counted); in an age band, those whose age on the day
    (``dhsc_age``) is in it."""
    if band is None:
        return [item for item, age in _3d_on(pop, day) if _in_band(age, None)]
    return [{**item, "detail": f"{item['detail']}; aged {age} on {day}"}
            for item, age in _3d_on(pop, day) if _in_band(age, band)]


def _at_3d_band(band: str) -> Callable[[Population, str], list[dict]]:
    def at(pop: Population, day: str) -> list[dict]:
        return _at_3d(pop, day, band)
    return at


_AT_3D_BY_BAND = {band: _at_3d_band(band) for band in AGE_BANDS}

CARER_DIRECT = {_norm("Carer Support: Direct to Carer"), _norm("Unpaid carer support: Direct to unpaid carer")}
_CARER_RANK = {_norm("Direct Payment"): (1, "direct_payment"), _norm("CASSR Managed Personal Budget"):
               (2, "managed_budget"), _norm("CASSR Commissioned support"): (3, "commissioned")}
_CARER_UNKNOWN = (4, "unknown_mechanism")


def _carer_rows(pop: Population) -> list[tuple[str, str, str | None, int, str | None, list | None, dict]]:
    """Per case: its carers' support direct to the carer (CLD Service rows of client type Carer, service type
    'Carer Support: Direct to Carer'), each as (the carer, start, end, DHSC's rank of the support, date of death,
    birth [year, month], the item it would count as). DHSC's other carer categories (support involving the
    person cared for, information and advice, no direct support) rank below these and are in no part of 3D."""
    def find(p: Population) -> list:
        out = []
        for case_id, rows in p.cld_rows.items():
            for r in rows:
                if "carer" not in _norm(r.get("client_type")) or r["event_type"] != "Service" \
                        or _norm(r.get("service_type")) not in CARER_DIRECT or not r.get("event_start"):
                    continue
                if _norm(r.get("service_component")) == _norm("Direct Payment"):
                    rank, part = _CARER_RANK[_norm("Direct Payment")]
                else:
                    rank, part = _CARER_RANK.get(_norm(r.get("delivery_mechanism")), _CARER_UNKNOWN)
                who = str(r.get("nhs_number") or r.get("local_person_id") or f"case {case_id}")
                item = _item(p.instances.get(r["instance_id"]), case_id, r["event_start"], [part],
                             f"carer's support from {r['event_start']}"
                             + (f" to {r['event_end']}" if r.get("event_end") else "")
                             + f": {r.get('delivery_mechanism') or 'no delivery mechanism'}")
                out.append((who, r["event_start"], r.get("event_end"), rank, _iso(r.get("date_of_death")),
                            _birth(r), item))
        return out
    return _per_case(pop, "carers_3d", find)


def _carer_index(pop: Population) -> dict[str, list[tuple[tuple[int, int], tuple]]]:
    """Each carer's support rows (``_carer_rows``), each with its place among them (case id, its order in the
    case): made once per population, and after new events only the changed cases' carers' entries replaced
    (``_updated``)."""
    got = pop.cache.get("carers_by_who")
    if got is None:
        got, case, n = {}, None, 0
        for row in _carer_rows(pop):
            cid = row[-1]["case_id"]
            n = n + 1 if cid == case else 0
            case = cid
            got.setdefault(row[0], []).append(((cid, n), row))
        pop.cache["carers_by_who"] = got
    return got


def _carer_in(rows: list[tuple[tuple[int, int], tuple]], first: str, last: str,
              on: int) -> tuple[tuple[int, int], dict, int | None] | None:
    """One carer in [first, last]: (the place of their first support in the period, the item they count as,
    their age on `last`, whose ordinal is `on`), or None when they had no support in it (``_carers_in``)."""
    best = birth = place = None
    for at, (_who, start, end, rank, died, born, item) in rows:
        if start > last or (end is not None and (end < first or end < start)) or (died is not None and died < first):
            continue
        order = (rank, start, item["case_id"], item["instance_id"] or 0)
        if best is None or order < best[0]:
            best = (order, item)
        if place is None:
            place = at
        if born is not None and (birth is None or born < birth):
            birth = born
    if best is None:
        return None
    return place, best[1], None if birth is None else int((on - date(birth[0], birth[1], 1).toordinal()) // 365.25)


def _carers_in(pop: Population, first: str, last: str) -> list[tuple[dict, int | None]]:
    """(the item, age on `last`) of each carer with support direct to them in [first, last], alive on `first`,
    by their highest-ranking support (DHSC's order, then the earliest): worked out once per period for every
    band, and after new events again only for the carers of the changed cases (``_updated``). Age from the
    carer's earliest recorded birth (DHSC's person details choose the earliest valid one); dhsc_age, without
    parsing the day once per carer. In the order of each carer's first support in the period."""
    key = f"carers_in:{first}:{last}"
    if key not in pop.cache:
        on = date.fromisoformat(last).toordinal()
        per = {}
        for who, rows in _carer_index(pop).items():
            got = _carer_in(rows, first, last, on)
            if got is not None:
                per[who] = got
        pop.cache[f"carers_per:{first}:{last}"] = per
        pop.cache[key] = _carers_listed(per)
    return pop.cache[key]


def _carers_listed(per: dict[str, tuple]) -> list[tuple[dict, int | None]]:
    return [(item, age) for _place, item, age in sorted(per.values(), key=lambda g: g[0])]


def _carers_updated(old: Population, new: Population, views: dict[int, CaseView], changed: list[int]) -> None:
    """In `new`, the carers' index and each period's carers (kept by `old`) with the carers of the `changed`
    cases worked out again from every case's support rows; the other carers as they were."""
    index = old.cache.get("carers_by_who")
    if index is None:
        return
    moved = set(changed)
    whos: set[str] = set()
    added: dict[str, list] = {}
    for cid in changed:
        if cid in old.views:
            whos.update(row[0] for row in old.views[cid].items.get("carers_3d") or [])
        for n, row in enumerate(views[cid].items.get("carers_3d") or []):
            whos.add(row[0])
            added.setdefault(row[0], []).append(((cid, n), row))
    index = dict(index)
    for who in whos:
        rows = sorted([r for r in index.get(who, []) if r[0][0] not in moved] + added.get(who, []),
                      key=lambda r: r[0])
        if rows:
            index[who] = rows
        else:
            index.pop(who, None)
    new.cache["carers_by_who"] = index
    for key, per in list(old.cache.items()):
        if not key.startswith("carers_per:"):
            continue
        _, first, last = key.split(":")
        on = date.fromisoformat(last).toordinal()
        per = dict(per)
        for who in whos:
            got = _carer_in(index.get(who, []), first, last, on)
            if got is None:
                per.pop(who, None)
            else:
                per[who] = got
        new.cache[key] = per
        new.cache[f"carers_in:{first}:{last}"] = _carers_listed(per)


def _in_period_carers(pop: Population, first: str, last: str, band: str | None = None) -> list[dict]:
    """ASCOF 3D part b: carers with support direct to them at any time in the period (in year, not a
    snapshot), alive on its first day; each carer once, by DHSC's order (direct payment, managed personal
    budget, commissioned, delivery mechanism unknown); under 18 on the period's last day in no figure."""
    if band is None:
        return [item for item, age in _carers_in(pop, first, last) if _in_band(age, None)]
    return [{**item, "detail": f"{item['detail']}; aged {age} on {last}"}
            for item, age in _carers_in(pop, first, last) if _in_band(age, band)]


def _in_period_carers_band(band: str | None) -> Callable[[Population, str, str], list[dict]]:
    def in_period(pop: Population, first: str, last: str) -> list[dict]:
        return _in_period_carers(pop, first, last, band)
    return in_period


_CARERS_BY_BAND = {band: _in_period_carers_band(band) for band in (None, *AGE_BANDS)}


# ---------------------------------------------------------------- from the history log


#: a case closed for these reasons by the 91st day: the person was not at home on it (died, moved away)
_2D_GONE = {"died": "died", "moved_away": "moved to another council"}


def _gone_by(inst: Instance, day91: str) -> str | None:
    """Why the person was not at home on the 91st day, when the case was closed (died, moved away) by then
    and this instance went with it; else None."""
    cancelled = inst.first("instance.cancelled")
    reason = (cancelled["data"].get("reason") if cancelled else None)
    if reason in _2D_GONE and (uk_day(inst.cancelled_at) or "9999") <= day91:
        return f"{_2D_GONE[reason]} (case closed {uk_day(inst.cancelled_at)})"
    return None


def _extract_2d(pop: Population) -> list[dict]:
    items = []
    followed = {inst.parent for inst in pop.instances.values() if inst.process_id == "hospital_follow_up"}
    for inst in pop.instances.values():
        # 65+ discharged into reablement whose case closed (died, moved away) before reablement ended: no follow-up
        # was scheduled, but they are in the measure (not at home on the 91st day)
        if inst.process_id == "reablement" and inst.id not in followed and inst.start_data.get("from_hospital") \
                and isinstance(inst.start_data.get("age"), int) and inst.start_data["age"] >= 65:
            discharged = _iso(inst.start_data.get("discharge_date"))
            if discharged is None:
                continue
            day91 = (date.fromisoformat(discharged) + timedelta(days=91)).isoformat()
            gone = _gone_by(inst, day91)
            if gone is not None:
                items.append(_item(inst, inst.case_id, day91, ["not_at_home"],
                                   f"discharged {discharged}, 91st day {day91}: not at home ({gone} during "
                                   "reablement)"))
            continue
        if inst.process_id != "hospital_follow_up":
            continue
        discharged = _iso(inst.start_data.get("discharge_date"))
        if discharged is None:
            continue
        day91 = (date.fromisoformat(discharged) + timedelta(days=91)).isoformat()
        interval = inst.settings().get("hospital_follow_up_after_discharge")
        answer = inst.answer("check_still_at_home")
        closed = _closed_before_follow_up(inst, day91) if answer is None else None
        if interval not in (None, "P91D"):
            part, why = "not_at_91_days", f"the follow-up was set {interval} after discharge, not 91 days"
        elif closed is not None:
            part, why = closed
        elif answer is None:
            part, why = "not_yet_checked", "follow-up not yet recorded"
        elif answer.get("at_home") == "yes":
            part, why = "at_home", "still at home"
        else:
            part, why = "not_at_home", f"not at home ({answer.get('where_now') or 'where not recorded'})"
        items.append(_item(inst, inst.case_id, day91, [part],
                           f"discharged {discharged}, 91st day {day91}: {why}"))
    return items


def _closed_before_follow_up(inst: Instance, day91: str) -> tuple[str, str] | None:
    """A follow-up ended by the case's closure before it was recorded: someone who died, or moved to another
    council, by the 91st day is not at home then (the definition counts them in the denominator only); a closure
    for another reason, or after the 91st day, leaves where they were on that day unknown (left out, with why)."""
    cancelled = inst.first("instance.cancelled")
    if cancelled is None:
        return None
    reason = cancelled["data"].get("reason")
    details = cancelled["data"].get("details") or {}
    closed_on = uk_day(cancelled["at"])
    died = details.get("date_of_death") if isinstance(details.get("date_of_death"), str) else None
    if reason == "died" and (died or closed_on) <= day91:
        return "not_at_home", f"not at home (died on {died or closed_on}, before the 91st day)"
    if reason == "moved_away" and closed_on <= day91:
        return "not_at_home", f"not at home (moved to another council; case closed {closed_on})"
    return "not_yet_checked", (f"follow-up not recorded: the case was closed ({reason or 'no reason'}) on "
                               f"{closed_on} before it was")


def _extract_assessments(pop: Population) -> list[dict]:
    items = []
    for inst in pop.instances.values():
        if inst.process_id != "needs_assessment" or inst.completed_at is None:
            continue
        done = inst.first("task.completed", "assess_needs")
        if done is None:
            continue
        finished = uk_day(inst.completed_at)
        # as the diagram counts its target (needs_assessment.bpmn, "Work out assessment target date"): from the
        # day reablement referred on when the council counts from the request for assessment, else the contact
        after_reablement = "reablement_outcome" in inst.start_data
        counts_from = inst.settings().get("assessment_target_from", "request_for_assessment")
        if after_reablement and counts_from == "request_for_assessment":
            requested = uk_day(inst.started_at)
        else:
            requested = _iso(inst.start_data.get("contact_date")) or uk_day(inst.started_at)
        days = _days(requested, finished)
        part = "within_28" if days <= 28 else "over_28"
        items.append(_item(inst, inst.case_id, finished, [part],
                           f"requested {requested}, completed {finished}: {days} days", days=days))
    return items


def _signed_off(inst: Instance) -> str | None:
    for e in inst.all("task.completed", "sign_off_plan"):
        if (e["data"].get("data") or {}).get("signed_off") is True:
            return uk_day(e["at"])
    return None


def _extract_first_reviews(pop: Population) -> list[dict]:
    children: dict[int, list[Instance]] = {}
    for inst in pop.instances.values():
        if inst.parent is not None:
            children.setdefault(inst.parent, []).append(inst)
    items = []
    for plan in pop.instances.values():
        if plan.process_id != "support_plan":
            continue
        signed = _signed_off(plan)
        if signed is None:
            continue
        latest = (date.fromisoformat(signed) + timedelta(days=56)).isoformat()
        reviews = [c for c in children.get(plan.id, []) if c.process_id == "review"]
        done = [uk_day(e["at"]) for c in reviews for e in c.all("task.completed", "review_plan")]
        superseded = any(c.first("task.ready", "review_plan") is None and c.completed_at for c in reviews)
        ended = min((_ended_on(c) for c in [plan, *reviews] if c.cancelled_at), default=None)
        if done:
            day = min(done)
            part = "on_time" if day <= latest else "late"
            why = f"first review {day} ({_days(signed, day)} days after sign-off)"
        elif superseded:
            part, why = "superseded", "a newer plan replaced this one before its first review"
        elif ended is not None and ended[0] <= latest:
            part, why = "ended", f"the support ended ({ended[1]}) on {ended[0]}, before the first review was due"
        else:
            part, why = "not_done", "no first review recorded"
        items.append(_item(plan, plan.case_id, latest, [part],
                           f"plan signed off {signed}, 8 weeks on {latest}: {why}"))
    return items


def _ended_on(inst: Instance) -> tuple[str, str]:
    """(day, reason) an instance was ended by a closure: the closure's day, or the date of death given with it."""
    cancelled = inst.first("instance.cancelled") or {"at": inst.cancelled_at, "data": {}}
    day = uk_day(cancelled["at"])
    died = (cancelled["data"].get("details") or {}).get("date_of_death")
    return (min(day, died) if isinstance(died, str) and len(died) == 10 else day,
            cancelled["data"].get("reason") or "closed")


def _annual_rows(pop: Population) -> list[tuple[int, list[tuple[str, str | None, dict]], list[str]]]:
    """Per case with long-term support: (start, end, the item it would count as) of its long-term rows, and the
    days its reviews ended (in order), worked out once."""
    def find(p: Population) -> list:
        out = []
        for case_id, lts, rows in _long_term(p):
            segments = [(r["event_start"], r["event_end"], _item(p.instances.get(r["instance_id"]), case_id, None,
                                                                 [], "")) for r in lts]
            out.append((case_id, segments, sorted(r["event_end"] for r in rows if r["event_type"] == "Review"
                                                  and r["event_end"])))
        return out
    return _per_case(pop, "annual_rows", find)


def _year_before(day: str) -> str:
    """The same day 12 calendar months earlier (28 February for 29 February): the 12 months to `day` are the days
    after it. Not 365 days: a year holding 29 February has 366, and a review on its first day was left out."""
    d = date.fromisoformat(day)
    try:
        return d.replace(year=d.year - 1).isoformat()
    except ValueError:  # 29 February
        return d.replace(year=d.year - 1, day=28).isoformat()


def _at_annual_reviews(pop: Population, day: str) -> list[dict]:
    year_before = _year_before(day)
    items = []
    for _case_id, segments, reviews in _annual_rows(pop):
        lts = [s for s in segments if s[0] <= day and (s[1] is None or s[1] >= day)]
        if not lts:
            continue
        since = _continuous_since(segments, lts[0][0])
        if since > year_before:
            continue  # in long-term support for less than 12 months on the day
        last = reviews[bisect.bisect_right(reviews, day) - 1] if reviews and reviews[0] <= day else None
        reviewed = last is not None and last > year_before
        why = f"last review {last}" if reviewed else "no review in the 12 months"
        items.append({**lts[0][2], "day": since, "parts": frozenset(["reviewed" if reviewed else "not_reviewed"]),
                      "detail": f"long-term support since {since}: {why}"})
    return items


def _continuous_since(segments: list, start: str) -> str:
    """When the case's unbroken long-term support (one plan superseding the next) began: `segments` are its
    long-term rows' (start, end, ...)."""
    for s_start, s_end, *_rest in sorted(segments, key=lambda s: s[0], reverse=True):
        if s_start < start and s_end is not None and s_end >= start:
            start = s_start
    return start


def _review_waits(pop: Population) -> list[tuple[str, str | None, str, str | None, dict]]:
    """Every review that passed its escalation point: (day it fell due, day done or None, day its
    overdue timer fired, day the instance ended or None, the item it counts as), worked out once."""
    def find(p: Population) -> list[tuple[str, str | None, str, str | None, dict]]:
        out = []
        for inst in p.instances.values():
            if inst.process_id != "review":
                continue
            ended = inst.completed_at or inst.cancelled_at
            for ready in inst.all("task.ready", "review_plan"):
                fired = [e for e in inst.all("timer.fired", "review_overdue_timer") if e["seq"] > ready["seq"]]
                if not fired:
                    continue
                done = [e for e in inst.all("task.completed", "review_plan") if e["seq"] > ready["seq"]]
                due, overdue = uk_day(ready["at"]), uk_day(fired[0]["at"])
                out.append((due, uk_day(done[0]["at"]) if done else None, overdue,
                            uk_day(ended) if ended else None,
                            _item(inst, inst.case_id, overdue, ["overdue"],
                                  f"review due {due}, overdue since {overdue}, not done on the day")))
        return out
    return _per_case(pop, "review_waits", find)


def _at_overdue_reviews(pop: Population, day: str) -> list[dict]:
    items = []
    for due, done, fired, ended, item in _review_waits(pop):
        if due > day or fired > day or (done is not None and done <= day) or (ended is not None and ended <= day):
            continue  # not yet due or overdue on the day; done, or cancelled with the case, by then
        items.append(item)
    return items


def _extract_dp_reviews(pop: Population) -> list[dict]:
    items = []
    for inst in pop.instances.values():
        if inst.process_id != "direct_payment_review":
            continue
        limits = inst.all("timer.set", "dp_review_overdue_timer")
        if not limits:
            continue
        due = uk_day(limits[0]["data"].get("due_at"))
        done = inst.first("task.completed", "review_direct_payment")
        trigger = inst.start_data.get("dp_review_trigger") or "scheduled"
        if done is not None and uk_day(done["at"]) <= due:
            part, why = "on_time", f"reviewed {uk_day(done['at'])}"
        elif done is not None:
            part, why = "late", f"reviewed {uk_day(done['at'])}, after the limit"
        elif inst.cancelled_at is not None and (ended := _ended_on(inst))[0] <= due:
            part, why = "ended", f"the direct payment ended ({ended[1]}) on {ended[0]}, before the limit"
        else:  # late, or not yet due: read against the latest day in the whole data (_resolve_dp_reviews)
            items.append(_item(inst, inst.case_id, due, ["late"], f"{trigger} review, limit {due}: not reviewed by "
                               "the limit", open_limit=f"{trigger} review, limit {due}: the limit has not passed yet"))
            continue
        items.append(_item(inst, inst.case_id, due, [part], f"{trigger} review, limit {due}: {why}"))
    return items


def _resolve_dp_reviews(pop: Population, items: list[dict]) -> list[dict]:
    """A review not done whose limit is on or after the latest day in the data is not yet due, else late."""
    out = []
    for i in items:
        if "open_limit" in i:
            i = {k: v for k, v in i.items() if k != "open_limit"} | (
                {"parts": frozenset({"not_yet_due"}), "detail": i["open_limit"]}
                if pop.last_day is not None and i["day"] >= pop.last_day else {})
        out.append(i)
    return out


def _extract_reablement(pop: Population) -> list[dict]:
    items = []
    for inst in pop.instances.values():
        if inst.process_id != "reablement" or inst.completed_at is None:
            continue
        planned = inst.first("task.completed", "plan_reablement")
        start = uk_day(planned["at"] if planned else inst.started_at)
        end = uk_day(inst.completed_at)
        days = _days(start, end)
        parts = ["within_42" if days <= 42 else "over_42"]
        decisions = [(e["data"].get("data") or {}) for e in inst.all("task.completed", "decide_extend_or_end")]
        extensions = [d for d in decisions if d.get("decision") == "extend"]
        if extensions:
            parts.append("extended")
        items.append(_item(inst, inst.case_id, end, parts,
                           f"reablement {start} to {end}: {days} days"
                           + (f", extended {len(extensions)} time(s)" if extensions else ""), days=days))
    return items


def _day_stats(items: list[dict]) -> dict[str, Any]:
    days = [i["days"] for i in items if i.get("days") is not None]
    if not days:
        return {}
    return {"median_days": statistics.median(days), "mean_days": round(statistics.fmean(days), 1),
            "longest_days": max(days)}


def _pathway(inst: Instance) -> int | None:
    """The discharge pathway from the route the diagram took (docs/measures.md)."""
    if inst.answer("record_discharge") is None:
        return None
    if inst.first("timer.set", "recovery_window"):
        return 2
    started = {e["data"].get("element_id") for e in inst.all("instance.child_started")}
    if "start_reablement" in started:
        return 1
    if "start_needs_assessment" in started:
        return 3
    if inst.completed_at is not None:
        return 0
    return None


def _extract_discharges(pop: Population) -> list[dict]:
    items = []
    for inst in pop.instances.values():
        if inst.process_id != "hospital_discharge":
            continue
        answer = inst.answer("record_discharge")
        if answer is None:
            continue
        left = _iso(answer.get("discharge_date"))
        ready = _iso(answer.get("discharge_ready_date"))
        pathway = _pathway(inst)
        parts = [f"pathway_{pathway}" if pathway is not None else "pathway_unknown"]
        days = _days(ready, left) if ready and left else None
        if days is not None:
            parts.append("same_day" if days <= 0 else "delayed")
        reason = answer.get("delay_reason")
        items.append(_item(inst, inst.case_id, left, parts,
                           f"ready {ready}, discharged {left}: pathway {pathway if pathway is not None else '?'}"
                           + (f", {days} days waiting" + (f" ({reason})" if days and reason else "")
                              if days is not None else ""),
                           days=None if days is None else max(days, 0)))
    return items


def _extract_concerns(pop: Population) -> list[dict]:
    items = []
    for inst in pop.instances.values():
        if inst.process_id != "safeguarding":
            continue
        received = _iso(inst.start_data.get("concern_date")) or _iso(inst.start_data.get("contact_date")) \
            or uk_day(inst.started_at)
        decision = inst.answer("triage_decision")
        choice = (decision or {}).get("decision")
        part = {"s42_enquiry": "s42_enquiry", "other_enquiry": "other_enquiry",
                "no_further_action_with_advice": "no_further_action"}.get(choice, "no_decision_yet")
        items.append(_item(inst, inst.case_id, received, [part],
                           f"concern {received}: " + (choice.replace("_", " ") if choice else "no decision yet")))
    return items


def _on_time(inst: Instance, task: str, timer: str) -> tuple[str, str] | None:
    """('on_time'|'late', day) of a task's first completion against its escalation timer; None if not done."""
    done = inst.first("task.completed", task)
    if done is None:
        return None
    fired = [e for e in inst.all("timer.fired", timer) if e["seq"] < done["seq"]]
    return ("late" if fired else "on_time"), uk_day(done["at"])


def _extract_timeliness(task: str, timer: str, label: str) -> Callable[[Population], list[dict]]:
    def extract(pop: Population) -> list[dict]:
        items = []
        for inst in pop.instances.values():
            if inst.process_id != "safeguarding":
                continue
            found = _on_time(inst, task, timer)
            if found is None:
                continue
            part, day = found
            items.append(_item(inst, inst.case_id, day, [part],
                               f"{label} {day}: " + ("within its deadline" if part == "on_time" else
                                                     "after its deadline (escalated)")))
        return items
    return extract


def _extract_outcomes(pop: Population) -> list[dict]:
    items = []
    for inst in pop.instances.values():
        if inst.process_id != "safeguarding":
            continue
        done = inst.first("task.completed", "record_outcome")
        if done is None:
            continue
        a = done["data"].get("data") or {}
        parts = ["asked" if a.get("outcomes_asked") else "not_asked"]
        achieved = a.get("outcomes_achieved")
        if achieved in ("fully", "partially", "not_achieved", "not_expressed"):
            parts.append(achieved)
        risk = a.get("risk_outcome")
        if risk in ("removed", "reduced", "remains"):
            parts.append(f"risk_{risk}")
        items.append(_item(inst, inst.case_id, uk_day(done["at"]), parts,
                           f"enquiry concluded {uk_day(done['at'])}: outcomes "
                           f"{'asked' if a.get('outcomes_asked') else 'not asked'}, "
                           f"{(achieved or 'not recorded').replace('_', ' ')}; risk {risk or 'not recorded'}"))
    return items


# ---------------------------------------------------------------- the measures

SALT_REPO = ("NHS England, ASC-Client-Level-Data-SALT-ASCOF-transformations (github.com/NHSDigital/"
             "ASC-Client-Level-Data-SALT-ASCOF-transformations, commit d6ff762)")
DHSC_3D = ("DHSC, ASC-CLD-LA-Dashboard (github.com/DataS-DHSC/ASC-CLD-LA-Dashboard, commit 9bee728), "
           "'ASCOF_measures/Create_ASCOF_3D_2425_Onwards.sql' (ASCOF 3D, 2024-25 onwards)")
SAC = ("NHS England, Safeguarding Adults Collection (SAC) guidance: concerns, section 42 and other enquiries, "
       "Making Safeguarding Personal (desired outcomes asked, expressed, achieved) and risk outcomes of "
       "concluded enquiries")

MEASURES: dict[str, Measure] = {m.key: m for m in [
    Measure("new_requests", "New requests for support by what they led to (STS001 sequels)", "count",
            "Requests (CLD Request events of service users) that ended in the period, from people with no "
            "long-term support in place when the request started, by what followed in the person's own "
            "chronology up to their next request: the highest-ranking service (DHSC's order: ST-Max, then "
            "long-term support, then other short-term support); else information and advice when the "
            "request ended so; else no services. Still open chronologies are 'in progress'.",
            f"SALT STS001 as derived from CLD: {SALT_REPO}, 'SALT STS001/STS001 replication code.txt' "
            "(#REF_SERVICE_TYPE hierarchy, #REF_SEQUEL_MAPPING).",
            [("short_term", "Short-term support to maximise independence (reablement)"),
             ("long_term", "Long-term support"), ("other_short_term", "Other short-term support"),
             ("information_advice", "Information and advice, signposting"),
             ("no_services", "No services provided"), ("health_or_death", "Hospital, NHS care or death"),
             ("in_progress", "Still in progress (no sequel yet)"),
             ("existing_client", "Not new: long-term support already in place")],
            denominator_excludes=("existing_client",), extract=_extract_new_requests,
            empty="No request ended in this period."),
    Measure("ascof_2a", "ASCOF 2A: short-term support with no further request for long-term support", "%",
            "Reablement (ST-Max) episodes of new clients that ended in the period, whose sequel is known: "
            "the numerator those not followed by long-term support (before the person's next request). Left "
            "out: episodes ended by hospital admission, death, end-of-life or NHS care (as DHSC's denominator "
            "leaves them out) and those whose onward assessment is not finished yet.",
            f"ASCOF 2A (2023-24 framework, formerly 2D): {SALT_REPO}, 'ASCOF 2A/ASCOF 2A replication code.txt' "
            "(numerator and denominator by sequel to ST-Max).",
            [("no_long_term", "No long-term support followed"), ("long_term", "Long-term support followed"),
             ("unknown", "Left out: onward assessment not finished"),
             ("excluded", "Left out: hospital, death or NHS care")],
            numerator=("no_long_term",), denominator_excludes=("unknown", "excluded"), extract=_extract_2a,
            empty="No reablement episode of a new client ended in this period."),
    Measure("ascof_2d", "ASCOF 2D: people 65+ still at home 91 days after discharge into reablement", "%",
            "People aged 65 or over who left hospital into reablement, whose 91st day after the discharge "
            "date falls in the period; the numerator those the 91-day follow-up found still at home. Someone "
            "in hospital, a care home, who has died or moved away counts in the denominator only. Follow-ups "
            "not yet recorded, and any set by local timescales at another interval than 91 days, are left out "
            "and listed.",
            "ASCOF 2D (2023-24 framework, formerly 2B(1)), collected as SALT STS004: NHS Digital, 'SALT data "
            "return guidance STS004' (clients 65+ at discharge; at home 91 days after discharge).",
            [("at_home", "Still at home"), ("not_at_home", "Not at home"),
             ("not_yet_checked", "Left out: follow-up not yet recorded"),
             ("not_at_91_days", "Left out: follow-up not set at 91 days")],
            numerator=("at_home",), denominator_excludes=("not_yet_checked", "not_at_91_days"),
            extract=_extract_2d, empty="No 91-day follow-up fell in this period."),
    Measure("ascof_3d1", "ASCOF 3D(1a): people in community long-term support with self-directed support", "%",
            "Service users with long-term support in the community open on the period's last day (each person "
            "once, by DHSC's order: direct payment, then managed personal budget, then commissioned support), "
            "alive on that day and not under 18 on it (people whose age is not recorded are counted); the "
            "numerator those with a direct payment or a council-managed personal budget.",
            f"ASCOF 3D part 1a: {DHSC_3D} (snapshot on the period end, #REF_Service_Type_Delivery_Mech, "
            f"Der_Age_Band_Reporting_End); {SALT_REPO}, 'ASCOF 3D/ASCOF 3D replication code.txt'.",
            [("direct_payment", "Direct payment"), ("managed_budget", "Council-managed personal budget"),
             ("commissioned", "Council-commissioned support")],
            numerator=("direct_payment", "managed_budget"), at_date=_at_3d,
            caveat="People whose birth month and year are not recorded are counted here but in neither age band "
                   "(DHSC leaves them out of the bands too).",
            empty="Nobody had long-term support in the community on the period's last day."),
    Measure("ascof_3d2", "ASCOF 3D(2a): people in community long-term support with a direct payment", "%",
            "As 3D(1a); the numerator those with a direct payment.",
            f"ASCOF 3D part 2a: {DHSC_3D}; {SALT_REPO}, 'ASCOF 3D/ASCOF 3D replication code.txt'.",
            [("direct_payment", "Direct payment"), ("managed_budget", "Council-managed personal budget"),
             ("commissioned", "Council-commissioned support")],
            numerator=("direct_payment",), at_date=_at_3d,
            caveat="People whose birth month and year are not recorded are counted here but in neither age band "
                   "(DHSC leaves them out of the bands too).",
            empty="Nobody had long-term support in the community on the period's last day."),
    *[Measure(f"ascof_3d{part}_{band}", f"ASCOF 3D({part}a): {what}, {label}", "%",
              f"As 3D({part}a), for people {label} on the period's last day: age as DHSC derives it from the "
              "birth month and year (whole days from the first of the birth month to the day, divided by 365.25, "
              "rounded down; so usually still 64 on the 65th birthday). People whose birth month or year is not "
              "recorded are in no band.",
              f"ASCOF 3D part {part}a by age band: {DHSC_3D} (Der_Age_Band_Reporting_End: '18 to 64', '65 and "
              "above'); Create_personal_details_table.sql (Der_Age_End_Of_Period).",
              [("direct_payment", "Direct payment"), ("managed_budget", "Council-managed personal budget"),
               ("commissioned", "Council-commissioned support")],
              numerator=numerator, at_date=_AT_3D_BY_BAND[band],
              empty=f"Nobody {label} had long-term support in the community on the period's last day.")
      for part, what, numerator in (("1", "self-directed support", ("direct_payment", "managed_budget")),
                                    ("2", "direct payments", ("direct_payment",)))
      for band, label in AGE_BANDS.items()],
    *[Measure(f"ascof_3d{part}b" + (f"_{band}" if band else ""),
              f"ASCOF 3D({part}b): carers receiving {what}" + (f", {AGE_BANDS[band]}" if band else ""), "%",
              "Carers (CLD client type Carer) with support direct to the carer ('Carer Support: Direct to Carer') "
              "at any time in the period (in year, not a snapshot), alive on its first day, each carer once by "
              "DHSC's order (direct payment, then a council-managed personal budget, then council-commissioned "
              f"support); the numerator those with {numerator_words}. Support whose delivery mechanism is not "
              "recorded is left out of the denominator and listed. "
              + (f"Carers {AGE_BANDS[band]} on the period's last day (age as DHSC derives it from the birth month "
                 "and year)." if band else
                 "Carers under 18 on the period's last day are left out; those whose age is not recorded count."),
              f"ASCOF 3D part {part}b: {DHSC_3D} (carer based measures: #Ref_Carer_Support_Hierarchy, "
              "Support_Provided, denominator 'Direct Payment only', 'CASSR Managed Personal Budget', 'CASSR "
              "Commissioned Support only'" + ("; Der_Age_Band_Reporting_End)." if band else ")."),
              [("direct_payment", "Direct payment"), ("managed_budget", "Council-managed personal budget"),
               ("commissioned", "Council-commissioned support"),
               ("unknown_mechanism", "Left out: delivery mechanism not recorded")],
              numerator=numerator, denominator_excludes=("unknown_mechanism",), in_period=_CARERS_BY_BAND[band],
              empty="No carer" + (f" {AGE_BANDS[band]}" if band else "") + " had support direct to them in the "
                    "period.")
      for part, what, numerator, numerator_words in (
          ("1", "self-directed support", ("direct_payment", "managed_budget"),
           "a direct payment or a council-managed personal budget"),
          ("2", "direct payments", ("direct_payment",), "a direct payment"))
      for band in (None, *AGE_BANDS)],
    Measure("assessments_28_days", "Needs assessments completed within 28 days", "%",
            "Needs assessments completed in the period (the eligibility decided); within 28 days when the "
            "days from the request for assessment to completion are 28 or fewer, calendar days. The request "
            "is counted from where the diagram counts its own target: the day reablement referred on (when "
            "timescales.json assessment_target_from is request_for_assessment), else the contact date the "
            "assessment was started with (else its start).",
            "Local measure reported in Local Accounts ('assessed within four weeks'; operating model section "
            "4); the 28-day target is timescales.json assessment_target_days.",
            [("within_28", "Within 28 days"), ("over_28", "More than 28 days")],
            numerator=("within_28",), extract=_extract_assessments,
            summarise=_day_stats, empty="No needs assessment was completed in this period."),
    Measure("first_reviews", "First reviews within 6 to 8 weeks of a new plan", "%",
            "Support plans signed off whose 8-week point (56 days after sign-off) falls in the period; the "
            "numerator those whose first review was done by then. Plans replaced before their first review, and "
            "plans whose support ended (the case closed: died, moved away…) by the 8-week point with no review, "
            "are left out.",
            "Local measure (the 6-8 week light-touch review, timescales.json first_review_after_sign_off and "
            "first_review_latest); Care and Support Statutory Guidance 13.32 (a light-touch review 6 to 8 "
            "weeks after the plan is agreed).",
            [("on_time", "Reviewed within 8 weeks"), ("late", "Reviewed after 8 weeks"),
             ("not_done", "Not reviewed"), ("superseded", "Left out: replaced by a newer plan"),
             ("ended", "Left out: support ended before the review was due")],
            numerator=("on_time",), denominator_excludes=("superseded", "ended"), extract=_extract_first_reviews,
            empty="No plan reached its 8-week point in this period."),
    Measure("annual_reviews", "People in long-term support for 12 months or more reviewed in the last 12 months",
            "%",
            "Service users with long-term support open on the period's last day, unbroken for 12 months or "
            "more; the numerator those with a review (CLD Review event) completed in the 12 months to that day. "
            "12 months are calendar months (31 March 2031 to 31 March 2032 is 12 months, though it holds 29 "
            "February): in support since the same day a year before or earlier; reviewed after that day.",
            "SALT LTS002 principle (reviews of clients in long-term support for over 12 months), CLD-based: "
            f"{SALT_REPO}; Care Act 2014 s.27 and statutory guidance 13.32 (no later than every 12 months).",
            [("reviewed", "Reviewed in the last 12 months"), ("not_reviewed", "Not reviewed")],
            numerator=("reviewed",), at_date=_at_annual_reviews,
            empty="Nobody had been in long-term support for 12 months on the period's last day."),
    Measure("overdue_reviews", "Reviews overdue on the period's last day", "count",
            "Reviews of support plans that had fallen due, passed their escalation point (the review overdue "
            "timer fired) and were still not done at the end of the period's last day.",
            "Local measure (review escalation, timescales.json review_overdue_grace and first_review_latest).",
            [("overdue", "Overdue")], at_date=_at_overdue_reviews,
            empty="No review was overdue on the period's last day."),
    Measure("direct_payment_reviews", "Direct payment reviews done by their limit", "%",
            "Direct payment reviews whose limit (the escalation point: within 6 months for the first, then "
            "the council's interval) falls in the period; the numerator those done by the limit's day. Limits "
            "not yet reached in the data, and reviews whose case closed (died, moved away…) by the limit with "
            "no review, are left out.",
            "The Care and Support (Direct Payments) Regulations 2014 (SI 2014/2871) reg 7 (first review "
            "within 6 months, then at least every 12 months); timescales.json direct_payment_*.",
            [("on_time", "Reviewed by the limit"), ("late", "Late or not done"),
             ("not_yet_due", "Left out: limit not yet reached"),
             ("ended", "Left out: direct payment ended before the limit")],
            numerator=("on_time",), denominator_excludes=("not_yet_due", "ended"), extract=_extract_dp_reviews,
            resolve=_resolve_dp_reviews,  # "not yet due" is read against the latest day in the whole data
            empty="No direct payment review reached its limit in this period."),
    Measure("reablement_lengths", "Reablement length: median days, and extensions past 42 days", "days",
            "Reablement episodes that ended in the period: length in days from the start (the plan agreed) "
            "to the end; 42 days or fewer is within the six weeks; an extension is a team manager's decision "
            "to extend.",
            "Care and Support (Preventing Needs for Care and Support) Regulations 2014 reg 3-4 (intermediate "
            "care and reablement free for up to six weeks); timescales.json reablement_length.",
            [("within_42", "42 days or fewer"), ("over_42", "More than 42 days"),
             ("extended", "Extended by a manager")],
            extract=_extract_reablement, summarise=_day_stats, figure_is="median_days",
            empty="No reablement ended in this period."),
    Measure("discharge_pathways", "Hospital discharges by pathway", "count",
            "People discharged in the period (the recorded discharge date) by the pathway taken: 0 home with "
            "no new support, 1 home with reablement, 2 community bed-based recovery, 3 care home.",
            "NHS England / DHSC, Hospital discharge and community support guidance (discharge pathways 0-3); "
            "processes/discharge_pathway.dmn.",
            [("pathway_0", "Pathway 0: home, no new support"), ("pathway_1", "Pathway 1: home with reablement"),
             ("pathway_2", "Pathway 2: bed-based recovery"), ("pathway_3", "Pathway 3: care home"),
             ("pathway_unknown", "Pathway not yet known")],
            extract=_extract_discharges, empty="Nobody was discharged in this period."),
    Measure("discharge_delay", "Days from ready to leave hospital to discharge (mean)", "days",
            "People discharged in the period: the days from the recorded day they were ready to leave to the "
            "day they left (0 when the same day).",
            "NHS England discharge delay measures (days from discharge-ready date to discharge); "
            "processes/hospital_discharge.bpmn 'Work out the dates from discharge'.",
            [("same_day", "Left the day they were ready"), ("delayed", "Waited one day or more")],
            extract=_extract_discharges, summarise=_day_stats, figure_is="mean_days",
            empty="Nobody was discharged in this period."),
    Measure("safeguarding_enquiries", "Safeguarding concerns that led to an enquiry", "%",
            "Safeguarding concerns received in the period; the numerator those decided as a section 42 "
            "enquiry or another enquiry. Concerns with no decision yet are left out.",
            f"{SAC}.",
            [("s42_enquiry", "Section 42 enquiry"), ("other_enquiry", "Other enquiry"),
             ("no_further_action", "No further action, with advice"),
             ("no_decision_yet", "Left out: no decision yet")],
            numerator=("s42_enquiry", "other_enquiry"), denominator_excludes=("no_decision_yet",),
            extract=_extract_concerns, empty="No safeguarding concern was received in this period."),
    Measure("safeguarding_decision_time", "Safeguarding decisions made within their deadline", "%",
            "Decisions (enquiry or not) made in the period; on time when made before the decision deadline "
            "fired (timescales.json safeguarding_decision_working_days).",
            f"{SAC}; local timescales.",
            [("on_time", "Within the deadline"), ("late", "After the deadline")],
            numerator=("on_time",), extract=_extract_timeliness("triage_decision", "decision_overdue", "decided"),
            empty="No safeguarding decision was made in this period."),
    Measure("safeguarding_enquiry_time", "Safeguarding enquiries completed within 28 days", "%",
            "Enquiries completed in the period; on time when completed before the enquiry deadline fired "
            "(timescales.json safeguarding_enquiry, 28 days).",
            f"{SAC}; local timescales.",
            [("on_time", "Within the deadline"), ("late", "After the deadline")],
            numerator=("on_time",), extract=_extract_timeliness("enquiry", "enquiry_overdue", "enquiry done"),
            empty="No safeguarding enquiry was completed in this period."),
    Measure("safeguarding_outcomes", "Making Safeguarding Personal: desired outcomes asked", "%",
            "Enquiries concluded in the period (outcome recorded); the numerator those where the adult (or "
            "their representative) was asked about the outcomes they wanted; the parts say whether the "
            "outcomes were expressed and achieved fully, partially or not.",
            f"{SAC} (Making Safeguarding Personal).",
            [("asked", "Asked"), ("not_asked", "Not asked"), ("fully", "Outcomes fully achieved"),
             ("partially", "Partially achieved"), ("not_achieved", "Not achieved"),
             ("not_expressed", "No outcomes expressed")],
            numerator=("asked",), extract=_extract_outcomes,
            empty="No safeguarding enquiry was concluded in this period."),
    Measure("safeguarding_risk", "Safeguarding risk removed or reduced", "%",
            "Enquiries concluded in the period; the numerator those where the risk was removed or reduced. "
            "The Safeguarding Adults Collection counts only enquiries where a risk was identified: carepath's "
            "outcome form does not ask whether one was, so every concluded enquiry is counted.",
            f"{SAC} (risk outcomes).",
            [("risk_removed", "Risk removed"), ("risk_reduced", "Risk reduced"), ("risk_remains", "Risk remains")],
            numerator=("risk_removed", "risk_reduced"), extract=_extract_outcomes,
            caveat="Not recorded: whether a risk was identified. The Safeguarding Adults Collection counts only "
                   "enquiries where one was; here every concluded enquiry is counted.",
            empty="No safeguarding enquiry was concluded in this period."),
    Measure("dols_timeliness", "Deprivation of Liberty Safeguards applications decided in time", "%",
            "DoLS applications completed within the statutory timescales.",
            "Mental Capacity Act 2005 Schedule A1; NHS England DoLS collection.",
            [], not_recorded="carepath has no process for Deprivation of Liberty Safeguards applications, so "
                             "nothing about them is recorded and no figure can be given."),
]}

# the name each extraction's items are kept under (per case, and in measure_facts): the first measure using it
EXTRACTS: dict[int, str] = {}
for _m in MEASURES.values():
    if _m.extract is not None:
        EXTRACTS.setdefault(id(_m.extract), f"items:{_m.key}")

# everything kept per case (``case_facts``): each measure's extraction, and what the snapshot and in-year
# measures choose from
PER_CASE: dict[str, Callable[[Population], list]] = {
    **{EXTRACTS[id(_m.extract)]: _m.extract for _m in MEASURES.values() if _m.extract is not None},
    "3d_rows": lambda p: _3d_rows(p), "annual_rows": lambda p: _annual_rows(p),
    "review_waits": lambda p: _review_waits(p), "carers_3d": lambda p: _carer_rows(p)}

_READS: dict[int, str] = {  # the per-case list each measure's figures are worked out from (``_affected``)
    **{id(_m.extract): EXTRACTS[id(_m.extract)] for _m in MEASURES.values() if _m.extract is not None},
    id(_at_3d): "3d_rows", **{id(fn): "3d_rows" for fn in _AT_3D_BY_BAND.values()},
    id(_at_annual_reviews): "annual_rows", id(_at_overdue_reviews): "review_waits",
    **{id(fn): "carers_3d" for fn in _CARERS_BY_BAND.values()}}
