"""Deploying BPMN/DMN files as immutable, numbered versions per process id and per decision id, and building
the executable specs of a version (cached: a version never changes; its business rule tasks use the latest
version of their decisions, so a spec is built again when a decision is deployed).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import threading
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, bindparam, func, insert, select

from .bpmn import Bundle, ProcessInfo, build_specs, parse_bundle
from .dmn import pinned_key
from .driver_sql import Prepared
from .errors import DefinitionError, NotFoundError, Problem
from .history import Event
from .library_problems import index, unexpected_problem
from .lint import lint_files
from .schema import decision_versions, definition_files, deployments, process_versions, users
from .xmlsafe import parse_xml

DEFINITION_SUFFIXES = (".bpmn", ".dmn", ".bpmn20.xml")


@dataclass(frozen=True)
class VersionRef:
    id: int
    process_id: str
    version: int
    name: str
    created: bool  # False when identical content was already deployed
    kind: str = "process"  # or "decision": `process_id` is then the decision id (engine.dmn)


def read_sources(paths: Iterable[str | Path]) -> dict[str, bytes]:
    """Collect definition files from folders (recursively) and single files, keyed by a readable name."""
    files: dict[str, bytes] = {}
    problems: list[Problem] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(DEFINITION_SUFFIXES))
            if not found:
                problems.append(Problem(str(path), "no .bpmn or .dmn files in this folder"))
            for p in found:
                files[str(p.relative_to(path.parent))] = p.read_bytes()
        elif path.is_file():
            files[path.name] = path.read_bytes()
        else:
            problems.append(Problem(str(path), "no such file or folder"))
    if problems:
        raise DefinitionError(problems)
    return files


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def info_to_json(info: ProcessInfo) -> str:
    def conv(v: Any) -> Any:
        if dataclasses.is_dataclass(v):
            return {f.name: conv(getattr(v, f.name)) for f in dataclasses.fields(v)}
        if isinstance(v, dict):
            return {k: conv(x) for k, x in v.items()}
        if isinstance(v, (list, tuple, set, frozenset)):
            return sorted(conv(x) for x in v) if isinstance(v, (set, frozenset)) else [conv(x) for x in v]
        return v

    return json.dumps(conv(info), sort_keys=True)


def _dependency_files(bundle: Bundle, process_id: str) -> set[str]:
    """The bundle files one process needs: its own, its called processes' (transitively), its decisions'."""
    seen: set[str] = set()
    files: set[str] = set()
    todo = [process_id]
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in bundle.processes:
            continue
        seen.add(pid)
        info = bundle.processes[pid]
        files.add(info.file)
        todo.extend(info.called_processes)
        required = {d: list(i.required) for d, i in bundle.decision_infos.items()}
        for d in _required_closure(info.decisions_used, required):
            if d in bundle.decisions:
                files.add(bundle.decisions[d])
    return files


def _external_deps(conn: Connection, bundle: Bundle, process_id: str) -> list[int]:
    """File ids of already-deployed processes and decisions this process uses but the bundle lacks."""
    needed_processes: set[str] = set()
    needed_decisions: set[str] = set()
    seen: set[str] = set()
    todo = [process_id]
    while todo:
        pid = todo.pop()
        if pid in seen:
            continue
        seen.add(pid)
        info = bundle.processes.get(pid)
        if info is None:
            needed_processes.add(pid)
            continue
        todo.extend(info.called_processes)
        needed_decisions |= {d for d in info.decisions_used if d not in bundle.decisions}
    ids: set[int] = set()
    for pid in needed_processes:
        row = latest_version(conn, pid)
        if row is not None:
            ids |= set(json.loads(row.file_ids))
    if needed_decisions:
        stored = latest_decisions(conn)
        for decision_id in _required_closure(needed_decisions, stored):
            if decision_id in stored:
                ids.add(stored[decision_id].file_id)
        if not needed_decisions <= set(stored):  # deployed before decisions had versions of their own
            for row in conn.execute(select(process_versions.c.file_ids)):
                ids |= set(json.loads(row.file_ids))  # decisions live in files deployed with some process
    return sorted(ids)


def latest_decisions(conn: Connection, up_to: int | None = None) -> dict[str, Any]:
    """decision id -> the row of its latest deployed version (among those with an id up to `up_to`)."""
    chosen = select(decision_versions.c.decision_id, func.max(decision_versions.c.version).label("version"))
    if up_to is not None:
        chosen = chosen.where(decision_versions.c.id <= up_to)
    newest = chosen.group_by(decision_versions.c.decision_id).subquery()
    rows = conn.execute(select(decision_versions).join(
        newest, (decision_versions.c.decision_id == newest.c.decision_id)
        & (decision_versions.c.version == newest.c.version)))
    return {row.decision_id: row for row in rows}


def latest_decision_files(conn: Connection, up_to: int | None = None) -> dict[str, bytes]:
    """The .dmn files holding the latest version of every deployed decision, by file name."""
    ids = sorted({row.file_id for row in latest_decisions(conn, up_to).values()})
    return _files_by_id(conn, ids) if ids else {}


def _required_closure(ids: Iterable[str], required: Mapping[str, Any]) -> set[str]:
    """`ids` and every decision they require, directly or not; `required` maps a decision id to the ids it
    requires, or to its decision_versions row."""
    seen: set[str] = set()
    todo = list(ids)
    while todo:
        decision_id = todo.pop()
        if decision_id in seen:
            continue
        seen.add(decision_id)
        if decision_id in required:
            needs = required[decision_id]
            todo.extend(needs if isinstance(needs, list) else json.loads(needs.required))
    return seen


# built and compiled once, on SQLite run straight on the driver: every start and child process started reads it
_LATEST_VERSION = Prepared(select(process_versions).where(process_versions.c.process_id == bindparam("pid"))
                           .order_by(process_versions.c.version.desc()).limit(1))


def latest_version(conn: Connection, process_id: str):  # type: ignore[no-untyped-def]
    """The latest deployed version's row of `process_id` (read by attribute), or None."""
    return _LATEST_VERSION.first(conn, {"pid": process_id})


def newest_versions(conn: Connection) -> dict[str, int]:
    """Each deployed process's newest (live) version number, by process id in order."""
    return {pid: int(v) for pid, v in conn.execute(
        select(process_versions.c.process_id, func.max(process_versions.c.version))
        .group_by(process_versions.c.process_id).order_by(process_versions.c.process_id))}


def known_ids(conn: Connection) -> tuple[set[str], set[str]]:
    """Process ids already deployed, and decision ids in their files."""
    processes = set(conn.execute(select(process_versions.c.process_id).distinct()).scalars())
    decisions: set[str] = set()
    for info in conn.execute(select(process_versions.c.info)).scalars():
        decisions |= set(json.loads(info).get("decisions_used", []))
    decisions |= set(conn.execute(select(decision_versions.c.decision_id).distinct()).scalars())
    return processes, decisions


def known_users(conn: Connection) -> set[str] | None:
    """Every username, when the database has users (the web app's); None when it has none (an engine on its
    own): then candidate users named in a diagram are not checked at deploy."""
    names = set(conn.execute(select(users.c.username)).scalars())
    return names or None


def deploy(conn: Connection, files: Mapping[str, bytes], *, now: datetime, actor: str,
           handlers: Collection[str] | None, forms: Collection[str] | None, source: str,
           change_note: str | None = None, author: str | None = None, approver: str | None = None,
           strict: bool = False, teams: Collection[str] | None = None) -> tuple[list[VersionRef], list[Event]]:
    """Validate and store a bundle of files inside the caller's transaction.

    `change_note`, `author` and `approver` are recorded on the deployment and in its event.
    The drawing is linted (engine.lint): a finding of severity "error" is a problem; warnings
    are problems only when `strict` (callers show them with `engine.lint.lint_files`).
    Raises DefinitionError (every problem at once) and then nothing is stored.
    """
    known_processes, known_decisions = known_ids(conn)
    blocking = [p for p in lint_files(files) if p.rule is not None and (strict or p.severity == "error")]
    try:
        bundle = parse_bundle(files, handlers=handlers, forms=forms, teams=teams, users=known_users(conn),
                              known_processes=known_processes, known_decisions=known_decisions)
    except DefinitionError as exc:
        raise DefinitionError([*exc.problems, *blocking]) from None
    refs: list[VersionRef] = []
    file_ids: dict[str, int] = {}
    problems: list[Problem] = list(blocking)
    pending: list[tuple[ProcessInfo, list[int], str]] = []
    stored = latest_decision_files(conn)
    decision_files = {**{(f"(deployed) {n}" if n in bundle.files else n): d for n, d in stored.items()},
              **{name: bundle.files[name] for name in dict.fromkeys(bundle.decisions.values())}}
    for pid, info in sorted(bundle.processes.items()):
        dep_names = _dependency_files(bundle, pid)
        ids = [_store_file(conn, name, bundle.files[name], now, file_ids) for name in sorted(dep_names)]
        ids = sorted(set(ids) | set(_external_deps(conn, bundle, pid)))
        content = {name: bundle.files[name] for name in dep_names}
        digest = _sha(b"".join(sorted(_sha(c).encode() for c in content.values())))
        latest = latest_version(conn, pid)
        if latest is not None and latest.content_sha256 == digest:
            refs.append(VersionRef(latest.id, pid, latest.version, latest.name, created=False))
            continue
        bound = _binding_problems(conn, bundle, info)
        if bound:
            problems.extend(bound)
            continue
        try:  # prove it builds before anything is stored
            build_specs(_files_by_id(conn, ids), pid, decision_files)
        except DefinitionError as exc:
            problems.extend(exc.problems)
            continue
        except Exception as exc:  # noqa: BLE001 - the library's own failure, reported against the process
            where = index({info.file: parse_xml(bundle.files[info.file], info.file)})
            problems.append(unexpected_problem(exc, info.file, pid, where, f"build process '{pid}'"))
            continue
        pending.append((info, ids, digest))
    if problems:
        raise DefinitionError(problems)
    pending_decisions = _pending_decisions(conn, bundle, refs)
    events: list[Event] = []
    if pending or pending_decisions:
        dep_id = conn.execute(insert(deployments).values(deployed_at=now, deployed_by=actor, source=source,
                                                         change_note=change_note, author=author, approver=approver)
                              .returning(deployments.c.id)).scalar_one()
        for info, ids, digest in pending:
            latest_no = conn.execute(select(func.max(process_versions.c.version))
                                     .where(process_versions.c.process_id == info.process_id)).scalar() or 0
            vid = conn.execute(insert(process_versions).values(
                process_id=info.process_id, version=latest_no + 1, name=info.name or info.process_id,
                content_sha256=digest, deployment_id=dep_id, file_ids=json.dumps(ids), main_file=info.file,
                info=info_to_json(info), deployed_at=now).returning(process_versions.c.id)).scalar_one()
            refs.append(VersionRef(vid, info.process_id, latest_no + 1, info.name or info.process_id, created=True))
        refs.extend(_store_decisions(conn, bundle, pending_decisions, dep_id, now, file_ids))
        events.append(Event("definitions.deployed", {
            "deployment_id": dep_id, "source": source,
            "versions": [{"process_id": r.process_id, "version": r.version, "process_version_id": r.id}
                         for r in refs if r.created and r.kind == "process"],
            **({"decisions": [{"decision_id": r.process_id, "version": r.version, "decision_version_id": r.id}
                              for r in refs if r.created and r.kind == "decision"]} if pending_decisions else {}),
            "files": {name: _sha(data) for name, data in sorted(files.items())},
            **({"change_note": change_note, "author": author, "approver": approver}
               if (change_note, author, approver) != (None, None, None) else {}),
        }, actor=actor))
    return sorted(refs, key=lambda r: (r.kind != "process", r.process_id)), events


def _pending_decisions(conn: Connection, bundle: Bundle, refs: list[VersionRef]) -> list[str]:
    """The bundle's decisions whose file differs from their latest version's (the others are added to `refs`
    as unchanged)."""
    stored = latest_decisions(conn)
    pending: list[str] = []
    for decision_id, name in sorted(bundle.decisions.items()):
        row = stored.get(decision_id)
        if row is not None and row.content_sha256 == _sha(bundle.files[name]):
            refs.append(VersionRef(row.id, decision_id, row.version, row.name, created=False, kind="decision"))
        else:
            pending.append(decision_id)
    return pending


def _store_decisions(conn: Connection, bundle: Bundle, pending: list[str], deployment_id: int, now: datetime,
                     file_ids: dict[str, int]) -> list[VersionRef]:
    refs: list[VersionRef] = []
    for decision_id in pending:
        name = bundle.decisions[decision_id]
        info = bundle.decision_infos.get(decision_id)
        number = (conn.execute(select(func.max(decision_versions.c.version))
                               .where(decision_versions.c.decision_id == decision_id)).scalar() or 0) + 1
        label = (info.name if info else decision_id)[:255]
        vid = conn.execute(insert(decision_versions).values(
            decision_id=decision_id, version=number, name=label,
            file_id=_store_file(conn, name, bundle.files[name], now, file_ids),
            content_sha256=_sha(bundle.files[name]), required=json.dumps(info.required if info else []),
            version_tag=(info.version_tag if info else None),
            deployment_id=deployment_id, deployed_at=now).returning(decision_versions.c.id)).scalar_one()
        refs.append(VersionRef(vid, decision_id, number, label, created=True, kind="decision"))
    return refs


def _binding_problems(conn: Connection, bundle: Bundle, info: ProcessInfo) -> list[Problem]:
    """A business rule task bound to a version (number or tag) of its decision that is neither deployed nor
    deployed by this bundle: a problem naming the task, the attribute and the versions there are."""
    problems: list[Problem] = []
    for b in info.decision_bindings:
        versions = _decision_versions(conn, bundle, b.decision_id)
        if _bound(versions, b.kind, b.value) is not None:
            continue
        wanted = f"version {b.value}" if b.kind == "version" else f"a version tagged '{b.value}'"
        there = ", ".join(f"{n}" + (f" (tagged '{t}')" if t else "") for n, t in versions)
        problems.append(Problem(info.file, (
            f"business rule task '{b.name}' is bound to {wanted} of decision '{b.decision_id}' ({b.attribute}), "
            f"which is not deployed: " + (f"its versions are {there}" if there else "no version of it is deployed")
            + "; deploy that version of the decision first (or in the same bundle), or bind to the latest"),
            b.element_id, b.line))
    return problems


def _decision_versions(conn: Connection, bundle: Bundle, decision_id: str) -> list[tuple[int, str | None]]:
    """(number, tag) of every version of a decision, deployed or about to be by this bundle, oldest first."""
    rows = conn.execute(select(decision_versions.c.version, decision_versions.c.version_tag,
                               decision_versions.c.content_sha256)
                        .where(decision_versions.c.decision_id == decision_id)
                        .order_by(decision_versions.c.version)).all()
    found = [(r.version, r.version_tag) for r in rows]
    if decision_id in bundle.decisions:
        name = bundle.decisions[decision_id]
        if not rows or rows[-1].content_sha256 != _sha(bundle.files[name]):
            tag = bundle.decision_infos[decision_id].version_tag if decision_id in bundle.decision_infos else None
            found.append(((rows[-1].version if rows else 0) + 1, tag))
    return found


def _bound(versions: list[tuple[int, str | None]], kind: str, value: str) -> int | None:
    """The version number a binding chooses: the version itself, or the latest with the tag; None if none."""
    chosen = [n for n, tag in versions if (str(n) == value if kind == "version" else tag == value)]
    return chosen[-1] if chosen else None


def pinned_decision_files(conn: Connection, info: dict[str, Any], up_to: int | None = None) -> dict[str, bytes]:
    """The .dmn file of each decision version a process's business rule tasks are bound to, by `pinned_key`
    (among the versions with an id up to `up_to`: a replay sees those deployed by its time)."""
    out: dict[str, bytes] = {}
    for b in info.get("decision_bindings") or []:
        q = select(decision_versions.c.file_id).where(decision_versions.c.decision_id == b["decision_id"])
        if up_to is not None:
            q = q.where(decision_versions.c.id <= up_to)
        if b["kind"] == "version":
            q = q.where(decision_versions.c.version == int(b["value"]))
        else:
            q = q.where(decision_versions.c.version_tag == b["value"])
        file_id = conn.execute(q.order_by(decision_versions.c.version.desc()).limit(1)).scalar()
        if file_id is not None:
            [content] = _files_by_id(conn, [file_id]).values()
            out[pinned_key(b["decision_id"], b["kind"], b["value"])] = content
    return out


def _store_file(conn: Connection, name: str, data: bytes, now: datetime, cache: dict[str, int]) -> int:
    if name in cache:
        return cache[name]
    sha = _sha(data)
    fid = conn.execute(select(definition_files.c.id).where(definition_files.c.sha256 == sha)).scalar()
    if fid is None:
        fid = conn.execute(insert(definition_files).values(name=name, sha256=sha, content=data, created_at=now)
                           .returning(definition_files.c.id)).scalar_one()
    cache[name] = fid
    return fid


def _files_by_id(conn: Connection, ids: Iterable[int]) -> dict[str, bytes]:
    rows = conn.execute(select(definition_files.c.name, definition_files.c.content)
                        .where(definition_files.c.id.in_(list(ids))))
    return {r.name: bytes(r.content) for r in rows}


@dataclass
class LoadedVersion:
    id: int
    process_id: str
    version: int
    info: dict[str, Any]
    spec: Any
    subprocess_specs: dict[str, Any]


class SpecCache:
    """Executable specs per process version, built once per process (versions never change) and again when a
    decision is deployed (business rule tasks use the latest version of their decision).

    `now` (for a replay): the decisions are those deployed up to the clock's reading, as they were when the
    recorded step ran; without it, every decision deployed so far (the same, while the clock goes forward).
    """

    def __init__(self, size: int = 256, now: Callable[[Connection], datetime] | None = None) -> None:
        self._get = lru_cache(maxsize=size)(self._build)  # by (version id, newest decision version id)
        self._conn: Connection | None = None
        self._lock = threading.Lock()
        self._now = now
        #: versions with no business rule task (no decision to look for) -> the key they were built under, so
        #: every later get() returns that same spec: a migration aligns spec objects (engine/instance_migration.py)
        #: and a workflow loaded with a second build of the same version would not match its plan
        self._without_decisions: dict[int, int] = {}
        #: simulation mode (engine/simulation.py): one process owns the database and deploys only through
        #: Engine.deploy, which calls `forget_newest`; the newest decision version is read once, not every step
        self.hold_newest = False
        self._newest: int | None = None

    def forget_newest(self) -> None:
        self._newest = None

    def get(self, conn: Connection, version_id: int) -> LoadedVersion:
        with self._lock:  # the builder reads through the caller's connection
            self._conn = conn
            try:
                if version_id in self._without_decisions:
                    return self._get(version_id, self._without_decisions[version_id])
                if self.hold_newest and self._newest is not None:
                    return self._get(version_id, self._newest)
                newest = select(func.max(decision_versions.c.id))
                if self._now is not None:
                    newest = newest.where(decision_versions.c.deployed_at <= self._now(conn))
                newest_decision = conn.execute(newest).scalar() or 0
                if self.hold_newest:
                    self._newest = newest_decision
                return self._get(version_id, newest_decision)
            finally:
                self._conn = None

    def _build(self, version_id: int, newest_decision: int) -> LoadedVersion:
        assert self._conn is not None
        row = self._conn.execute(select(process_versions).where(process_versions.c.id == version_id)).first()
        if row is None:
            raise NotFoundError(f"no process version with id {version_id}", process_version=version_id)
        files = _files_by_id(self._conn, json.loads(row.file_ids))
        info = json.loads(row.info)
        spec, subprocess_specs = build_specs(files, row.process_id,
                                             latest_decision_files(self._conn, newest_decision),
                                             pinned_decision_files(self._conn, info, newest_decision or None))
        if not any(hasattr(task_spec, "dmnEngine") for one in (spec, *subprocess_specs.values())
                   for task_spec in one.task_specs.values()):
            self._without_decisions.setdefault(version_id, newest_decision)
        return LoadedVersion(row.id, row.process_id, row.version, info, spec, subprocess_specs)


def resolve_version(conn: Connection, process_id: str, version: int | None = None):  # type: ignore[no-untyped-def]
    if version is not None:
        row = conn.execute(select(process_versions).where(process_versions.c.process_id == process_id,
                                                          process_versions.c.version == version)).first()
    else:
        row = latest_version(conn, process_id)
    if row is None:
        what = f"version {version} of process '{process_id}'" if version else f"process '{process_id}'"
        raise NotFoundError(f"{what} is not deployed", process=process_id)
    return row
