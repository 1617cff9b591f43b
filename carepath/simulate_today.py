"""Starting a simulation from today (issue 16 item 4): a copy of the live database's open cases, anonymised.

`read_live(source)` reads, in one read-only transaction on the live database, every open case (not closed, not
erased) with an unfinished process instance (running, waiting, suspended or in error): those instances with their
saved workflow state at the versions they run, their open user tasks and their pending timers, the messages
waiting for a receiver on those cases, the live clock's "now" (`Engine.now`: real time on a real-clock database,
the simulated instant on a simulated one), and the deployed versions the instances run. Everything personal is
replaced on the way out of that transaction (`_Anonymiser`, the table in docs/simulation.md): only the anonymised
copy is ever held or written.

`LiveStart.copy_into(eng)` moves the scratch engine's clock to the live "now" and inserts the copy (new case,
instance and message numbers; the task ids are the workflows' own); `LiveStart.run(eng, ck)` is the simulation's
run with the copied open tasks of running and waiting instances already in their teams' queues (waiting since
they became ready) and no arrival before "now"; the copied timers fire when due through the engine's own
`advance_clock`, and a copied message is delivered by the engine when a receiver comes to wait for it. Suspended
instances and instances in error are held as they are, their tasks in no queue (docs/simulation.md, "Held
work"). `LiveStart.report(out, eng)` adds what was carried over, and what became of it, to the output. One
`LiveStart` can start any number of runs (a comparison's: carepath/simulate_compare.py).

Nothing is written to the live database: it is read in one connection, one transaction (PostgreSQL: read only,
repeatable read), and the deployed versions once more by `scratch_engine` as for any simulation.
"""

from __future__ import annotations

import heapq
import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select

from engine import history
from engine.clock import as_utc
from engine.errors import CarepathError
from engine.history import Event, case_chain
from engine.schema import (
    cases,
    definition_files,
    deployments,
    events,
    incidents,
    instances,
    messages,
    people,
    process_versions,
    tasks,
    timers,
    users,
)
from handlers import person_patterns as patterns

ROOT = Path(__file__).resolve().parent.parent
ACTOR = "simulation"
CHUNK = 500
COPIED = ("running", "waiting")  # moved on by the run: their open tasks join the queues, their timers fire
HELD = ("suspended", "error")  # copied as they are and held: nothing in the run resumes or retries them
OPEN = COPIED + HELD

# ---------------------------------------------------------------------- what is personal (docs/simulation.md)
NAME_KEYS = {"name", "full_name", "preferred_name", "given_name", "given_names", "first_name", "family_name",
             "last_name", "surname", "known_as", "maiden_name", "previous_name"}
ADDRESS_KEYS = {"address", "address_lines", "home_address", "correspondence_address", "previous_address"}
POSTCODE_KEYS = {"postcode", "post_code"}
NHS_KEYS = {"nhs_number", "nhs_no"}
DOB_KEYS = {"date_of_birth", "dob", "birth_date"}
PHONE_KEYS = {"phone", "telephone", "mobile", "phone_number", "telephone_number", "mobile_number",
              "contact_number", "childrens_phone"}
EMAIL_KEYS = {"email", "email_address"}
STAFF_KEYS = {"assignee", "owner", "candidate_users", "initiator"}
# the parts of a saved workflow that hold the process's data (everything else is the task tree's shape)
STATE_DATA_KEYS = {"data", "internal_data", "correlations", "bpmn_events"}
TEXT = "Simulated text"
NAME = "Simulated name"
STAFF = "simulated-staff"
POSTCODE = "ZZ99 9ZZ"

_CODE = re.compile(r"[a-z0-9][a-z0-9_\-]*")
_LONG_DIGITS = re.compile(r"[\d\s\-+()]{7,}")
_NUMBER = re.compile(r"-?\d{1,9}(\.\d+)?")
_INSTANT = re.compile(r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?")
_TIME = re.compile(r"\d{2}:\d{2}(:\d{2})?")
_WORD = re.compile(r"[^\W\d_]{3,}")
_DURATION = re.compile(r"(R\d*/)?-?P(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(\d+H)?(\d+M)?(\d+(\.\d+)?S)?)?")


def vocabulary(forms: Any, definition_texts: list[str]) -> set[str]:
    """The strings the product itself defines, kept wherever they appear: every form's choices (enum, const,
    default), every string literal in the deployed diagrams and decision tables (what their scripts and
    outputs write), and every string in the configuration (processes/config/*.json)."""
    words: set[str] = set()

    def walk(node: Any, config: bool) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if not config and k in ("enum", "const", "default", "examples"):
                    for x in v if isinstance(v, list) else [v]:
                        if isinstance(x, str):
                            words.add(x)
                walk(v, config)
        elif isinstance(node, list):
            for x in node:
                walk(x, config)
        elif config and isinstance(node, str):
            words.add(node)

    for name in forms.names():
        walk(forms.schema(name), False)
    for path in sorted((ROOT / "processes" / "config").glob("*.json")):
        try:
            walk(json.loads(path.read_text(encoding="utf-8")), True)
        except (OSError, ValueError):
            continue
    import html

    for text in definition_texts:
        for m in re.finditer(r'&quot;(.*?)&quot;|"([^"<>]*)"|\'([^\'<>]*)\'', text):
            words.add(html.unescape(next(g for g in m.groups() if g is not None)))
    return {w for w in words if w}


def _synthetic_nhs(n: int) -> str:
    """A 10-digit NHS number in the 999 range (never issued to anyone) with a valid modulus 11 check digit."""
    k = 0
    while True:
        body = f"999{(n * 7 + k) % 1_000_000:06d}"
        total = sum(int(d) * (10 - i) for i, d in enumerate(body))
        check = 11 - total % 11
        check = 0 if check == 11 else check
        if check != 10:
            return body + str(check)
        k += 1


@dataclass
class _Person:
    """One copied case's synthetic person: the same values wherever the case's data names them."""

    n: int
    age: int | None
    today: date

    @property
    def name(self) -> str:
        return f"Simulated Person {self.n}"

    def address(self, like: Any) -> Any:
        first = f"{self.n} Simulated Road"
        if isinstance(like, list):
            return [first] + ["Simtown"] * max(0, len(like) - 1)
        return f"{first}, Simtown"

    @property
    def phone(self) -> str:
        return f"01632 960{self.n % 1000:03d}"  # Ofcom's numbers for drama: never a real line

    @property
    def email(self) -> str:
        return f"person{self.n}@example.com"

    def date_of_birth(self) -> str:
        """A birthday half a year ago: the same age in whole years on the live day as the real one."""
        age = self.age if self.age is not None else 50
        try:
            anniversary = self.today.replace(year=self.today.year - age)
        except ValueError:  # 29 February
            anniversary = self.today.replace(year=self.today.year - age, day=28)
        return (anniversary - timedelta(days=182)).isoformat()


class _Anonymiser:
    """Replaces every personal value in a case's data and its workflows' saved state (docs/simulation.md)."""

    def __init__(self, vocab: set[str], today: date) -> None:
        self.vocab = vocab
        self.today = today
        self.usernames: set[str] = set()
        self.references: dict[str, str] = {}
        # the live values the sweep looks for in whatever the rules keep: the words of names and addresses
        # (folded), NHS and phone numbers and postcodes (digits and letters only), dates of birth, e-mail addresses
        self._words: set[str] = set()
        self._codes: set[str] = set()
        self._exact: set[str] = set()
        self._swept: dict[str, bool] = {}
        # each distinct free text replaced gets its own number, the same wherever it occurs in the copy, so texts
        # that were equal stay equal and texts that differed stay different (a message correlated on free text
        # matches the receiver it would have matched live, and no other)
        self._texts: dict[str, str] = {}

    def learn(self, value: Any, key: str | None = None) -> None:
        """Note the personal values in a structure (by their keys) for the sweep."""
        if isinstance(value, dict):
            for k, v in value.items():
                self.learn(v, str(k).lower())
            return
        if isinstance(value, list):
            for v in value:
                self.learn(v, key)
            return
        if not isinstance(value, (str, int)) or isinstance(value, bool) or key is None:
            return
        text = str(value)
        if key in NAME_KEYS | ADDRESS_KEYS:
            self.learn_words(text)
        elif key in NHS_KEYS | PHONE_KEYS | POSTCODE_KEYS:
            code = patterns.compact(text)
            if len(code) >= 5:
                self._codes.add(code)
        elif key in DOB_KEYS:
            # however it was typed, looked for however it is written: 1941-05-17, 17/05/1941, 17 5 1941
            self._exact.update(patterns.dates(text) or ([text.strip().lower()] if len(text) >= 6 else []))
        elif key in EMAIL_KEYS and len(text) >= 6:
            self._exact.add(text.strip().lower())
        self._swept.clear()

    def learn_words(self, text: str | None) -> None:
        if text:
            self._words.update(w.casefold() for w in _WORD.findall(text) if w.casefold() not in _COMMON)
            self._swept.clear()

    def personal(self, text: str) -> bool:
        """Whether a string the rules would keep still holds a live personal value (a word of a name or address,
        an NHS or phone number, a postcode, a date of birth, an e-mail address) or is a member of staff's username.
        By sets, not one pattern of every value: a county's open cases give tens of thousands."""
        if text in self.usernames:
            return True
        hit = self._swept.get(text)
        if hit is None:
            hit = (any(w.casefold() in self._words for w in _WORD.findall(text))
                   or any(c in self._codes for c in _codes(text))
                   or any(d in self._exact for d in patterns.dates(text))
                   or any(m in self._exact for m in patterns.EMAIL.findall(text.lower())))
            self._swept[text] = hit
        return hit

    # the rules
    def string(self, text: str, key: str | None = None) -> str:
        """A string that is not under a personal key: kept if the product defines it or it is a code, a number, a
        date, a time or a duration, and it holds no live personal value; replaced otherwise."""
        if text in self.references:
            return self.references[text]
        if text in self.usernames:
            return STAFF
        kept = (text in self.vocab or (_CODE.fullmatch(text) or _NUMBER.fullmatch(text))
                and not _LONG_DIGITS.fullmatch(text)
                or patterns.DATE_ISO.fullmatch(text) or _INSTANT.fullmatch(text) or _TIME.fullmatch(text)
                or text.startswith(("P", "R", "-P")) and _DURATION.fullmatch(text))
        if kept and not self.personal(text):
            return text
        got = self._texts.get(text)
        if got is None:
            got = self._texts[text] = f"{TEXT} {len(self._texts) + 1}"
        return got

    def value(self, v: Any, person: _Person, key: str | None = None, parent: str | None = None) -> Any:
        """One value of a case's data, under `key` in a mapping that is under `parent` (None: the top)."""
        k = key.lower() if isinstance(key, str) else None
        if isinstance(v, dict):
            if isinstance(v.get("typename"), str) and "value" in v and len(v) == 2:  # a typed value (dates...)
                return {"typename": v["typename"], "value": self.value(v["value"], person, key, parent)}
            return {kk: self.value(vv, person, kk, k) for kk, vv in v.items()}
        if isinstance(v, list):
            if k in ADDRESS_KEYS and all(isinstance(x, str) for x in v):
                return person.address(v)
            return [self.value(x, person, key, parent) for x in v]
        if v is None or isinstance(v, bool):
            return v
        if k in NHS_KEYS:
            return _synthetic_nhs(person.n)
        if k in PHONE_KEYS:
            return person.phone
        if k in EMAIL_KEYS:
            return person.email
        if k in DOB_KEYS:
            return person.date_of_birth()
        if k in POSTCODE_KEYS:
            return POSTCODE
        if k in STAFF_KEYS and isinstance(v, str):
            return STAFF
        if isinstance(v, (int, float)):
            return v
        if not isinstance(v, str):
            return TEXT
        if k in ADDRESS_KEYS:
            return person.address(v)
        if k in NAME_KEYS and v not in self.vocab:
            # the person's own name (a case's `person`, or a case whose data is the person): their synthetic one
            return person.name if k in ("name", "full_name") and parent in (None, "person") else NAME
        return self.string(v, k)

    def state(self, text: str, person: _Person) -> str:
        """A saved workflow (engine/state.py) with its data anonymised and its task tree as it was."""

        def walk(node: Any) -> Any:
            if isinstance(node, dict):
                out = {}
                for k, v in node.items():
                    if k in STATE_DATA_KEYS:
                        out[k] = self.value(v, person) if k != "data" or isinstance(v, dict) else v
                    elif k == "delta" and isinstance(v, dict):
                        out[k] = {**v, "updates": self.value(v.get("updates") or {}, person)}
                    else:
                        out[k] = walk(v)
                return out
            if isinstance(node, list):
                return [walk(x) for x in node]
            return node

        return json.dumps(walk(json.loads(text)), separators=(",", ":"))


# words of addresses and names too common to mean anyone (a name word "Road" would blank every road)
_COMMON = {"road", "street", "lane", "avenue", "close", "drive", "court", "flat", "house", "way", "the", "and",
           "north", "south", "east", "west", "mr", "mrs", "miss", "dr", "simulated", "person", "social", "worker",
           "team", "care", "home", "support", "demo", "council", "hospital", "centre", "service", "services",
           "other", "none", "unknown", "not", "known", "surgery", "practice", "health"}


def _codes(text: str) -> set[str]:
    """The codes in a string as the sweep compares them (handlers/person_patterns.py, as the front door's search
    reads them): NHS numbers, postcodes and runs of digits (a phone number), letters and digits only."""
    found = set(patterns.nhs_numbers(text)) | set(patterns.postcodes(text))
    return found | {patterns.compact(m) for m in patterns.DIGIT_RUN.findall(text)}


def _age(data: dict[str, Any], today: date) -> int | None:
    person = data.get("person") if isinstance(data.get("person"), dict) else data
    age = person.get("age")
    if isinstance(age, int) and not isinstance(age, bool):
        return age
    for k in DOB_KEYS:
        dob = person.get(k)
        found = patterns.dates(dob[:10]) if isinstance(dob, str) else []
        if found:
            born = date.fromisoformat(found[0])
            return today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    return None


# ---------------------------------------------------------------------- the copy
@dataclass
class LiveStart:
    """The anonymised copy of the live database's open work, and how it joins a simulation. Read once, it can
    start any number of runs (a comparison's live and draft runs of every seed): nothing here changes it."""

    now: datetime
    cases: list[dict[str, Any]] = field(default_factory=list)
    instances: list[dict[str, Any]] = field(default_factory=list)
    tasks: list[dict[str, Any]] = field(default_factory=list)
    timers: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, Any]] = field(default_factory=list)
    versions: list[dict[str, Any]] = field(default_factory=list)
    files: list[dict[str, Any]] = field(default_factory=list)
    deployments: list[dict[str, Any]] = field(default_factory=list)
    incidents: dict[str, int] = field(default_factory=dict)  # "process/element" -> instances in error there
    left_out: dict[str, int] = field(default_factory=dict)

    @property
    def today(self) -> date:
        from .simulate import UK

        return self.now.astimezone(UK).date()

    def status(self) -> dict[int, str]:
        """Copied instance number -> its status (running, waiting, suspended, error)."""
        return {i["id"]: i["status"] for i in self.instances}

    def queued(self) -> list[dict[str, Any]]:
        """The copied open tasks the run's teams work: those of running and waiting instances."""
        status = self.status()
        return [t for t in self.tasks if status[t["instance_id"]] in COPIED]

    def copy_into(self, eng: Any) -> None:
        """Move the scratch clock to the live "now" and insert the copy (one transaction)."""
        if as_utc(self.now) > eng.now():
            eng.advance_clock(to=self.now, actor=ACTOR)
        with eng.db.transaction() as conn:
            version_of = self._definitions(conn)
            rows = [dict(i, process_version_id=version_of[i["process_version_id"]]) for i in self.instances]
            for table, values in ((cases, self.cases), (instances, rows), (tasks, self.tasks), (timers, self.timers),
                                  (messages, self.messages)):
                if values:
                    conn.execute(insert(table), values)
            per_case: dict[int, dict[str, int]] = defaultdict(
                lambda: {"instances": 0, "tasks": 0, "timers": 0, "messages": 0})
            for kind, values in (("instances", self.instances), ("tasks", self.tasks), ("timers", self.timers),
                                 ("messages", self.messages)):
                for r in values:
                    per_case[r["case_id"]][kind] += 1
            for c in self.cases:
                for listener in eng.registry.case_listeners:  # the people search table, as for any case
                    listener(conn, c["id"])
            history.append_many(conn, eng.now(conn), [
                (case_chain(c["id"]), c["id"], [Event("case.carried_over", dict(per_case[c["id"]]), actor=ACTOR)])
                for c in self.cases], lock=eng.db.is_postgres)
        if eng.simulation is not None:  # rows written past the engine's steps: it reads them again
            eng.simulation.written_outside()

    def _definitions(self, conn: Any) -> dict[int, int]:
        """Add the versions the copied instances run, with their files and deployments, where the scratch
        database lacks them; return live version id -> scratch version id.

        Matched by content, not by number: a file by its SHA-256, a version by its process and version number
        (which must have the same content). A comparison's draft run copies its versions from the draft's
        database, where the draft's own file or version may hold a number a live one has: a live row whose
        number is taken gets a new one, and the versions that name it are written with it."""
        by_sha = dict(conn.execute(select(definition_files.c.sha256, definition_files.c.id)).all())
        taken = set(by_sha.values())
        file_of: dict[int, int] = {}
        for f in self.files:
            if f["sha256"] not in by_sha:
                row = {k: v for k, v in f.items() if k != "id" or v not in taken}
                by_sha[f["sha256"]] = conn.execute(insert(definition_files).values(**row)
                                                   .returning(definition_files.c.id)).scalar_one()
                taken.add(by_sha[f["sha256"]])
            file_of[f["id"]] = by_sha[f["sha256"]]
        have = {r.id: (r.deployed_by, r.source) for r in conn.execute(
            select(deployments.c.id, deployments.c.deployed_by, deployments.c.source))}
        deployment_of: dict[int, int] = {}
        for d in self.deployments:
            if have.get(d["id"]) == (d["deployed_by"], d["source"]):
                deployment_of[d["id"]] = d["id"]
                continue
            row = {k: v for k, v in d.items() if k != "id" or v not in have}
            deployment_of[d["id"]] = conn.execute(insert(deployments).values(**row)
                                                  .returning(deployments.c.id)).scalar_one()
            have[deployment_of[d["id"]]] = (d["deployed_by"], d["source"])
        present = {(r.process_id, r.version): (r.id, r.content_sha256) for r in conn.execute(
            select(process_versions.c.id, process_versions.c.process_id, process_versions.c.version,
                   process_versions.c.content_sha256))}
        numbers = {v[0] for v in present.values()}
        version_of: dict[int, int] = {}
        for pv in self.versions:
            found = present.get((pv["process_id"], pv["version"]))
            if found is not None:
                if found[1] != pv["content_sha256"]:
                    raise CarepathError(f"version {pv['version']} of process '{pv['process_id']}' differs between "
                                        "the live database and the simulation's processes: a carried-over case "
                                        "cannot be run on it")
                version_of[pv["id"]] = found[0]
                continue
            row = dict(pv, deployment_id=deployment_of[pv["deployment_id"]],
                       file_ids=json.dumps(sorted(file_of[i] for i in json.loads(pv["file_ids"]))))
            if row["id"] in numbers:
                del row["id"]
            version_of[pv["id"]] = conn.execute(insert(process_versions).values(**row)
                                                .returning(process_versions.c.id)).scalar_one()
            numbers.add(version_of[pv["id"]])
        return version_of

    def run(self, eng: Any, ck: Any) -> Any:
        """The simulation's run with the copied open tasks in their teams' queues and arrivals from now on. The
        tasks of suspended instances and of instances in error are held: they are in the scratch database, in no
        queue (a suspended instance's tasks cannot be completed; nothing retries one in error)."""
        from . import simulate as sim

        live = self

        class _FromToday(sim._Run):
            def arrivals(self) -> None:
                super().arrivals()
                self.events = [e for e in self.events if not (e[2] == "arrive" and e[0] < self.t0)]
                heapq.heapify(self.events)

        run = _FromToday(eng, ck)
        contact_route = {"caller": "self", "per_year": 0}
        for t in sorted(live.queued(), key=lambda r: (as_utc(r["created_at"]), r["id"])):
            name, _ = run.team(t["team"])
            run.queues[name].append(sim._Task(t["id"], name, t["element_id"], t["process_id"], t["form"],
                                              as_utc(t["created_at"])))
            if t["form"] == "contact":  # a contact not yet recorded: its answers drawn for a person, as new ones
                run.pending[t["id"]] = sim._person_contact(ck, contact_route, run.rng, live.today, len(run.pending))
            run.wake(name, run.t0)
        return run

    def report(self, out: dict[str, Any], eng: Any) -> dict[str, Any]:
        """Add `carried_over` to a run's output, and each team's carried-over tasks."""
        status = self.status()
        queued = self.queued()
        task_ids = {t["id"] for t in queued}
        live_timers = [t for t in self.timers if status[t["instance_id"]] in COPIED]
        timer_ids = {t["task_id"] for t in live_timers}
        done = fired = 0
        with eng.db.engine.connect() as conn:
            for typ, data in conn.execute(select(events.c.type, events.c.data).where(
                    events.c.type.in_(("task.completed", "timer.fired")))):
                tid = json.loads(data).get("task_id")
                done += typ == "task.completed" and tid in task_ids
                fired += typ == "timer.fired" and tid in timer_ids
            # the copied rows are numbered 1..n, the run's own after them (a county's copy: no list of ids)
            delivered = conn.execute(select(func.count()).select_from(messages).where(
                messages.c.id <= len(self.messages), messages.c.status == "delivered")).scalar()
            now_status = dict(conn.execute(select(instances.c.id, instances.c.status).where(
                instances.c.id <= len(self.instances))).all())
        by_team: dict[str, int] = defaultdict(int)
        for t in queued:
            by_team[t["team"] or "default"] += 1
        for name, team in out["teams"].items():
            team["carried_over"] = by_team.get(name, 0)

        def held(kind: str) -> dict[str, Any]:
            ids = {i for i, s in status.items() if s == kind}
            teams: dict[str, int] = defaultdict(int)
            for t in self.tasks:
                if t["instance_id"] in ids:
                    teams[t["team"] or "default"] += 1
            return {"instances": len(ids), "tasks": sum(teams.values()),
                    "timers": sum(1 for t in self.timers if t["instance_id"] in ids),
                    "tasks_by_team": dict(sorted(teams.items())),
                    "at_end": sum(1 for i in ids if now_status.get(i) == kind)}  # still so as the run ends

        in_error = held("error")
        del in_error["timers"]  # an instance in error has none (engine/step.py)
        out["carried_over"] = {
            "from": history.iso(self.now), "cases": len(self.cases), "instances": len(self.instances),
            "tasks": len(queued), "timers": len(live_timers), "tasks_completed": done, "timers_fired": fired,
            "tasks_by_team": dict(sorted(by_team.items())), "suspended": held("suspended"),
            "in_error": {**in_error, "incidents": dict(sorted(self.incidents.items()))},
            "messages": {"waiting": len(self.messages), "delivered": delivered},
            "left_out": dict(sorted(self.left_out.items()))}
        return out


def _chunks(ids: list[Any]) -> list[list[Any]]:
    return [ids[i:i + CHUNK] for i in range(0, len(ids), CHUNK)]


def _count(counts: dict[str, int], key: str) -> None:
    counts[key] = counts.get(key, 0) + 1


def read_live(source: Any, forms: Any = None) -> LiveStart:
    """The live database's open work, anonymised (see the module's docstring). One connection, read only.
    `forms`: the form library whose choices are kept (default: the one the simulation loads)."""
    import os

    from engine.erasure import erased
    from engine.forms import FormLibrary
    from engine.lifecycle import closure

    if source is None:
        raise CarepathError("--from-live needs the live database (--db URL or CAREPATH_DATABASE_URL), and there is "
                            "no initialised database there to start from")
    if forms is None:
        forms = FormLibrary.from_folder(os.environ.get("CAREPATH_FORMS", ROOT / "forms"))

    with source.db.engine.connect() as conn:
        if source.db.is_postgres:
            conn = conn.execution_options(isolation_level="REPEATABLE READ")
            conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        source.db.require_initialised(conn)
        now = as_utc(source.now(conn))
        start = LiveStart(now=now)
        live = conn.execute(select(instances.c.id, instances.c.case_id)
                            .where(instances.c.status.in_(OPEN))).all()
        case_ids = sorted({r.case_id for r in live})
        rows = [r for chunk in _chunks(case_ids) for r in conn.execute(
            select(cases).where(cases.c.id.in_(chunk)).order_by(cases.c.id))]
        kept = {}
        for r in rows:
            data = json.loads(r.data)
            if not isinstance(data, dict) or closure(data) or erased(data):
                _count(start.left_out, "closed_cases")
                continue
            kept[r.id] = (r, data)
        inst_rows = [r for chunk in _chunks(sorted(kept)) for r in conn.execute(
            select(instances).where(instances.c.case_id.in_(chunk), instances.c.status.in_(OPEN))
            .order_by(instances.c.id))]
        iids = [r.id for r in inst_rows]
        task_rows = [r for chunk in _chunks(iids) for r in conn.execute(
            select(tasks).where(tasks.c.instance_id.in_(chunk)).order_by(tasks.c.created_at, tasks.c.id))]
        timer_rows = [r for chunk in _chunks(iids) for r in conn.execute(
            select(timers).where(timers.c.instance_id.in_(chunk)).order_by(timers.c.due_at, timers.c.id))]
        failed = [r.id for r in inst_rows if r.status == "error"]
        incident_rows = [r for chunk in _chunks(failed) for r in conn.execute(
            select(incidents.c.instance_id, incidents.c.element_id).where(
                incidents.c.instance_id.in_(chunk), incidents.c.resolved_at.is_(None)).order_by(incidents.c.id))]
        # messages no receiver has taken yet (engine/messages.py: "kept", delivered when one comes to wait)
        message_rows = []
        for r in conn.execute(select(messages).where(messages.c.status == "kept").order_by(messages.c.id)):
            if r.expires_at is None or as_utc(r.expires_at) <= now:
                _count(start.left_out, "messages_expired")
            elif r.case_id not in kept:
                _count(start.left_out, "messages_for_cases_not_copied")
            else:
                message_rows.append(r)
        people_rows = [r for chunk in _chunks(sorted(kept)) for r in conn.execute(
            select(people).where(people.c.case_id.in_(chunk)))]
        staff = conn.execute(select(users.c.username, users.c.display_name)).all()
        vids = sorted({r.process_version_id for r in inst_rows})
        pvs = [dict(r._mapping) for chunk in _chunks(vids) for r in conn.execute(
            select(process_versions).where(process_versions.c.id.in_(chunk)))]
        fids = sorted({f for pv in pvs for f in json.loads(pv["file_ids"])})
        start.files = [dict(r._mapping) for chunk in _chunks(fids) for r in conn.execute(
            select(definition_files).where(definition_files.c.id.in_(chunk)))]
        dids = sorted({pv["deployment_id"] for pv in pvs})
        start.deployments = [dict(r._mapping) for chunk in _chunks(dids) for r in conn.execute(
            select(deployments).where(deployments.c.id.in_(chunk)))]
        start.versions = pvs
        conn.rollback()  # a read-only transaction: nothing to keep

    texts = [f["content"].decode("utf-8", "replace") if isinstance(f["content"], bytes) else str(f["content"])
             for f in start.files]
    anon = _Anonymiser(vocabulary(forms, texts), start.today)
    anon.usernames = {s.username for s in staff}
    for s in staff:
        anon.learn_words(s.display_name)
    for case_row, data in kept.values():
        anon.learn(data)
        anon.learn_words(case_row.title)
    for p in people_rows:
        anon.learn({"name": p.name, "date_of_birth": p.date_of_birth, "postcode": p.postcode,
                    "nhs_number": p.nhs_number})
    for r in inst_rows:  # what the workflows hold of the person, recorded at the tasks (caller, contacts...)
        anon.learn(json.loads(r.state or "{}"))
    for m in message_rows:  # what a hospital's or a provider's message says of the person
        anon.learn({"correlation": json.loads(m.correlation), "data": json.loads(m.data)})

    case_no = {cid: n for n, cid in enumerate(sorted(kept), start=1)}
    anon.references = {kept[cid][0].reference: f"CASE-{n:06d}" for cid, n in case_no.items()}
    persons = {cid: _Person(n, _age(kept[cid][1], start.today), start.today) for cid, n in case_no.items()}
    for cid, n in case_no.items():
        r, data = kept[cid]
        start.cases.append({"id": n, "reference": f"CASE-{n:06d}", "title": f"Carried-over case {n}",
                            "data": json.dumps(anon.value(data, persons[cid]), sort_keys=True),
                            "created_at": as_utc(r.created_at), "updated_at": as_utc(r.updated_at)})
    inst_no = {r.id: n for n, r in enumerate(inst_rows, start=1)}
    for r in inst_rows:
        start.instances.append({
            "id": inst_no[r.id], "case_id": case_no[r.case_id], "process_version_id": r.process_version_id,
            "process_id": r.process_id, "parent_instance_id": inst_no.get(r.parent_instance_id), "status": r.status,
            "version": r.version, "state_format": r.state_format,
            "state": anon.state(r.state, persons[r.case_id]) if r.state else None, "data": None,
            "started_at": as_utc(r.started_at), "updated_at": as_utc(r.updated_at), "completed_at": None})
    process_of = {r.id: r.process_id for r in inst_rows}
    for i in incident_rows:  # where each instance in error stopped: the diagram's element ids, nothing typed
        where = f"{process_of[i.instance_id]}/{i.element_id or '?'}"
        _count(start.incidents, where)
    for t in task_rows:
        start.tasks.append({
            "id": t.id, "instance_id": inst_no[t.instance_id], "case_id": case_no[t.case_id],
            "process_id": t.process_id, "element_id": t.element_id, "name": t.name, "form": t.form, "team": t.team,
            "candidate_groups": t.candidate_groups, "lane": t.lane, "assignee": None, "owner": None,
            "created_at": as_utc(t.created_at), "due_at": as_utc(t.due_at) if t.due_at else None,
            "follow_up_at": as_utc(t.follow_up_at) if t.follow_up_at else None, "candidate_users": None,
            "draft": None, "revision": 0})
    for t in timer_rows:
        start.timers.append({
            "instance_id": inst_no[t.instance_id], "case_id": case_no[t.case_id], "task_id": t.task_id,
            "element_id": t.element_id, "name": t.name, "attached_to": t.attached_to, "due_at": as_utc(t.due_at)})
    for n, m in enumerate(message_rows, start=1):
        person = persons[m.case_id]
        start.messages.append({
            # the name is the diagram's (a message no deployed process receives is refused when sent); the key may
            # be the sender's own text: a new one
            "id": n, "key": f"simulated-message-{n}", "name": TEXT if anon.personal(m.name) else m.name,
            "case_id": case_no[m.case_id], "status": "kept", "actor": anon.string(m.actor),
            "correlation": json.dumps(anon.value(json.loads(m.correlation), person), sort_keys=True),
            "data": json.dumps(anon.value(json.loads(m.data), person), sort_keys=True),
            "received_at": as_utc(m.received_at), "expires_at": as_utc(m.expires_at), "delivered_at": None,
            "instance_id": None})
    for f in start.files:
        f["created_at"] = as_utc(f["created_at"])
    for d in start.deployments:
        d["deployed_at"] = as_utc(d["deployed_at"])
    for pv in start.versions:
        pv["deployed_at"] = as_utc(pv["deployed_at"])
    return start



def counted(n: int, word: str) -> str:
    """"1 timer", "2 timers": a count with its noun (every noun here takes an s)."""
    return f"{n} {word}{'' if n == 1 else 's'}"

def summary_text(out: dict[str, Any]) -> str:
    """The lines `carepath simulate --from-live` prints after the summary: what was carried over from today."""
    c = out.get("carried_over")
    if not c:
        return ""
    left = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in c["left_out"].items())
    s, e, m = c["suspended"], c["in_error"], c["messages"]
    lines = [
        "", f"Carried over from the live database at {c['from']} (anonymised): {counted(c['cases'], 'open case')}, "
            f"{counted(c['instances'], 'process instance')}, {counted(c['tasks'], 'open task')}, "
            f"{counted(c['timers'], 'timer')}",
        "  open tasks by team: " + (", ".join(f"{k} {v}" for k, v in c["tasks_by_team"].items()) or "none"),
        f"  in the run: {c['tasks_completed']} of those tasks completed, {c['timers_fired']} of those timers fired"]
    if s["instances"]:
        lines.append("  suspended (paused, and kept paused: the run resumes nothing): "
                     f"{counted(s['instances'], 'instance')}, their {counted(s['tasks'], 'task')} and "
                     f"{counted(s['timers'], 'timer')} held"
                     + (" (" + ", ".join(f"{k} {v}" for k, v in s["tasks_by_team"].items()) + ")"
                        if s["tasks_by_team"] else ""))
    if e["instances"]:
        lines.append("  in error (kept in error: the run retries nothing): "
                     f"{counted(e['instances'], 'instance')}, their {counted(e['tasks'], 'task')} held; stopped at "
                     + ", ".join(f"{k} {v}" for k, v in e["incidents"].items()))
    if m["waiting"]:
        lines.append(f"  messages waiting for a receiver: {m['waiting']}, {m['delivered']} delivered in the run")
    if left:
        lines.append(f"  not carried over: {left}")
    return "\n" + "\n".join(lines)
