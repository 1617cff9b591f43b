"""Process drafts: a change to a process that a process owner writes, another reviews, and only
then goes live (four eyes).

A draft holds the files of one process (its own .bpmn and the .dmn files of the decisions it
uses), the version it starts from (its *base*), who wrote it and its review status:

    draft ──submit──▶ submitted ──approve (another owner)──▶ deployed
      ▲  ◀──save / rebase──┘  └──refuse──▶ refused ──save──▶ draft
      └──────────── withdraw (from draft, submitted or refused) ──▶ withdrawn

A draft never runs: it is not in `process_versions` until `approve_draft` deploys it through
`engine.definitions.deploy`, in the same transaction that marks it deployed. Every action is an
event in the system history chain. Nobody who wrote or saved a draft may approve it; a draft
whose base is no longer the live version must be rebased first (`rebase_draft` says what changed
meanwhile); a save names the revision it started from, and a stale one is refused.

Files are vetted by the hardened XML intake (`engine.xmlsafe`) before anything is stored.
Nothing here knows about the web: the API (api/processes.py) is a thin layer over it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from lxml import etree
from sqlalchemy import Connection, func, insert, select, update

from . import definitions, history
from .bpmn import parse_bundle
from .bpmn_parser import BPMN_NS
from .diagram_changes import Change, compare_files
from .errors import (
    ConflictError,
    DefinitionError,
    NotFoundError,
    Problem,
    StateError,
    UnsafeXmlError,
    ValidationError,
)
from .history import Event
from .lint import lint_files
from .schema import chains, deployments, instances, process_drafts, process_versions
from .xmlsafe import parse_xml

__all__ = [
    "Change", "FourEyesError", "OPEN", "approve_draft", "compare_files", "create_draft", "draft_changes",
    "draft_from_upload", "draft_problems", "get_draft", "list_drafts", "list_processes", "list_versions",
    "rebase_draft", "refuse_draft", "save_draft", "submit_draft", "version_files", "withdraw_draft",
]

OPEN = ("draft", "submitted", "refused")  # a draft someone is still working on or reviewing
RUNNING = ("running", "waiting", "error")  # an instance that has not finished
MAX_FILES = 20
MAX_NOTE = 2000
_SUFFIXES = (".bpmn", ".dmn", ".bpmn20.xml")
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 ._()-]{0,200}$")
_PROCESS_ID = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,254}$")


class FourEyesError(StateError):
    """The person approving a draft wrote or saved it: another process owner must approve it."""

    code = "four_eyes"


# ---------------------------------------------------------------------- files
def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_files(files: Mapping[str, bytes | str]) -> dict[str, bytes]:
    """Names and contents a draft may hold: vetted by the hardened XML intake, or an error naming the file."""
    if not isinstance(files, Mapping) or not files:
        raise DefinitionError([Problem("(draft)", "a draft needs at least one .bpmn or .dmn file")])
    if len(files) > MAX_FILES:
        raise DefinitionError([Problem("(draft)", f"a draft holds at most {MAX_FILES} files; {len(files)} were sent")])
    problems: list[Problem] = []
    out: dict[str, bytes] = {}
    for name, content in files.items():
        if not isinstance(name, str) or not _FILE_NAME.match(name) or not name.lower().endswith(_SUFFIXES):
            problems.append(Problem(str(name)[:100], "a file name must end in .bpmn or .dmn and use only letters, "
                                    "digits, spaces, '.', '_', '-' and brackets (no folders)"))
            continue
        data = content.encode("utf-8") if isinstance(content, str) else content
        if not isinstance(data, bytes):
            problems.append(Problem(name, "the file's content must be text"))
            continue
        parse_xml(data, name)  # UnsafeXmlError (hostile, too big) or DefinitionError (not well-formed)
        out[name] = data
    if problems:
        raise DefinitionError(problems)
    return out


def _process_ids(data: bytes, name: str) -> list[str]:
    root = parse_xml(data, name).getroot()
    return [p.get("id") for p in root.iter(f"{{{BPMN_NS}}}process") if p.get("id")]


def _decision_ids(data: bytes, name: str) -> set[str]:
    root = parse_xml(data, name).getroot()
    return {d.get("id") for d in root.iter()
            if isinstance(d.tag, str) and etree.QName(d).localname == "decision" and d.get("id")}


def _main_file(files: Mapping[str, bytes], process_id: str) -> str | None:
    for name, data in sorted(files.items()):
        if name.lower().endswith(".dmn"):
            continue
        try:
            if process_id in _process_ids(data, name):
                return name
        except (DefinitionError, UnsafeXmlError):
            continue
    return None


def version_files(conn: Connection, row: Any) -> dict[str, bytes]:
    """A deployed version's own files, by file name (no folder): the file holding the process and the
    .dmn files of the decisions it uses (called processes are versions of their own)."""
    stored = definitions._files_by_id(conn, json.loads(row.file_ids))
    used = set(json.loads(row.info).get("decisions_used", []))
    out: dict[str, bytes] = {}
    for name, data in sorted(stored.items()):
        short = PurePosixPath(name).name
        if name.lower().endswith(".dmn"):
            if used & _decision_ids(data, name):
                out[short if short not in out else name] = data
        elif row.process_id in _process_ids(data, name):
            out[PurePosixPath(row.main_file).name] = data
    return out


# ---------------------------------------------------------------------- reading
@contextmanager
def _reading(source: Any) -> Iterator[Connection]:
    if isinstance(source, Connection):
        yield source
    else:
        with source.db.engine.connect() as conn:
            yield conn


def _live(conn: Connection, process_id: str) -> Any:
    return definitions.latest_version(conn, process_id)


def _version_no(conn: Connection, version_id: int | None) -> int | None:
    if version_id is None:
        return None
    return conn.execute(select(process_versions.c.version).where(process_versions.c.id == version_id)).scalar()


def _row(conn: Connection, draft_id: int, *, lock: bool = False) -> Any:
    q = select(process_drafts).where(process_drafts.c.id == draft_id)
    if lock and conn.dialect.name == "postgresql":
        q = q.with_for_update()
    row = conn.execute(q).first()
    if row is None:
        raise NotFoundError(f"there is no draft {draft_id}", draft=draft_id)
    return row


def _as_dict(conn: Connection, row: Any) -> dict[str, Any]:
    live = _live(conn, row.process_id)
    files = json.loads(row.files)
    others = conn.execute(
        select(process_drafts.c.id, process_drafts.c.author, process_drafts.c.updated_at,
               process_drafts.c.status, process_drafts.c.base_version_id)
        .where(process_drafts.c.process_id == row.process_id, process_drafts.c.id != row.id,
               process_drafts.c.status.in_(OPEN))
        .order_by(process_drafts.c.id)).all()
    return {
        "id": row.id, "process_id": row.process_id,
        "base_version": _version_no(conn, row.base_version_id), "base_version_id": row.base_version_id,
        "live_version": live.version if live is not None else None,
        "live_version_id": live.id if live is not None else None,
        "base_is_live": (live.id if live is not None else None) == row.base_version_id,
        "author": row.author, "editors": json.loads(row.editors),
        "created_at": row.created_at, "updated_at": row.updated_at, "updated_by": row.updated_by,
        "revision": row.revision, "status": row.status, "change_note": row.change_note,
        "files": files, "main_file": _main_file({k: v.encode("utf-8") for k, v in files.items()}, row.process_id),
        "example": json.loads(row.example) if row.example else None,
        "others": [{"id": o.id, "author": o.author, "updated_at": o.updated_at, "status": o.status,
                    "base_version": _version_no(conn, o.base_version_id),
                    "same_base": o.base_version_id == row.base_version_id} for o in others],
        "rebase_changes": json.loads(row.rebase_changes) if row.rebase_changes else None,
        "submitted_at": row.submitted_at, "decided_at": row.decided_at, "decided_by": row.decided_by,
        "decision_note": row.decision_note,
        "deployed_version": _version_no(conn, row.deployed_version_id),
    }


def get_draft(source: Any, draft_id: int) -> dict[str, Any]:
    """A draft with its files, its base and live version, and the other open drafts of its process."""
    with _reading(source) as conn:
        return _as_dict(conn, _row(conn, draft_id))


def list_drafts(source: Any, *, process_id: str | None = None, open_only: bool = True) -> list[dict[str, Any]]:
    """Drafts (newest first) without their files."""
    with _reading(source) as conn:
        q = select(process_drafts.c.id, process_drafts.c.process_id, process_drafts.c.base_version_id,
                   process_drafts.c.author, process_drafts.c.updated_at, process_drafts.c.updated_by,
                   process_drafts.c.revision, process_drafts.c.status, process_drafts.c.change_note)
        if process_id is not None:
            q = q.where(process_drafts.c.process_id == process_id)
        if open_only:
            q = q.where(process_drafts.c.status.in_(OPEN))
        rows = conn.execute(q.order_by(process_drafts.c.id.desc())).all()
        return [{"id": r.id, "process_id": r.process_id, "base_version": _version_no(conn, r.base_version_id),
                 "author": r.author, "updated_at": r.updated_at, "updated_by": r.updated_by,
                 "revision": r.revision, "status": r.status, "change_note": r.change_note} for r in rows]


def _running(conn: Connection, process_id: str | None = None) -> dict[int, int]:
    q = (select(instances.c.process_version_id, func.count()).where(instances.c.status.in_(RUNNING))
         .group_by(instances.c.process_version_id))
    if process_id is not None:
        q = q.where(instances.c.process_id == process_id)
    return {vid: n for vid, n in conn.execute(q)}


def list_versions(source: Any, process_id: str) -> list[dict[str, Any]]:
    """Every deployed version of a process, newest first: who wrote and approved it, why, and its running cases."""
    with _reading(source) as conn:
        rows = conn.execute(
            select(process_versions.c.id, process_versions.c.version, process_versions.c.name,
                   process_versions.c.deployed_at, deployments.c.deployed_by, deployments.c.author,
                   deployments.c.approver, deployments.c.change_note, deployments.c.source)
            .join(deployments, deployments.c.id == process_versions.c.deployment_id)
            .where(process_versions.c.process_id == process_id)
            .order_by(process_versions.c.version.desc())).all()
        if not rows:
            raise NotFoundError(f"process '{process_id}' is not deployed", process=process_id)
        running = _running(conn, process_id)
        return [{"id": r.id, "version": r.version, "name": r.name, "deployed_at": r.deployed_at,
                 "deployed_by": r.deployed_by, "author": r.author or r.deployed_by, "approver": r.approver,
                 "change_note": r.change_note or "", "source": r.source, "running": running.get(r.id, 0),
                 "live": i == 0} for i, r in enumerate(rows)]


def list_processes(source: Any) -> list[dict[str, Any]]:
    """Every deployed process (and every process that so far has only drafts) with its live version,
    number of versions, running cases and open drafts."""
    with _reading(source) as conn:
        latest = conn.execute(
            select(process_versions.c.process_id, func.max(process_versions.c.version).label("live"),
                   func.count().label("versions")).group_by(process_versions.c.process_id)).all()
        names = dict(conn.execute(select(process_versions.c.process_id, process_versions.c.name)
                                  .order_by(process_versions.c.version)).all())
        running: dict[str, dict[int, int]] = {}
        for pid, version, n in conn.execute(
                select(process_versions.c.process_id, process_versions.c.version, func.count())
                .join(instances, instances.c.process_version_id == process_versions.c.id)
                .where(instances.c.status.in_(RUNNING))
                .group_by(process_versions.c.process_id, process_versions.c.version)):
            running.setdefault(pid, {})[version] = n
        drafts: dict[str, int] = {}
        for pid, n in conn.execute(select(process_drafts.c.process_id, func.count())
                                   .where(process_drafts.c.status.in_(OPEN)).group_by(process_drafts.c.process_id)):
            drafts[pid] = n
        out = {r.process_id: {"process_id": r.process_id, "name": names.get(r.process_id, r.process_id),
                              "live_version": r.live, "versions": r.versions,
                              "running": sum(running.get(r.process_id, {}).values()),
                              "running_by_version": dict(sorted(running.get(r.process_id, {}).items(), reverse=True)),
                              "open_drafts": drafts.get(r.process_id, 0)}
               for r in latest}
        for pid, n in drafts.items():
            out.setdefault(pid, {"process_id": pid, "name": pid, "live_version": None, "versions": 0,
                                 "running": 0, "running_by_version": {}, "open_drafts": n})
        return [out[k] for k in sorted(out)]


# ---------------------------------------------------------------------- validation
def _lint(files: Mapping[str, bytes]) -> list[Problem]:
    """The lint rules' findings (a file the intake refuses is reported by the deploy checks already)."""
    return [p for p in lint_files(files) if p.rule is not None]


def _problems(engine: Any, conn: Connection, process_id: str, files: Mapping[str, bytes]) -> list[Problem]:
    problems: list[Problem] = []
    known_processes, known_decisions = definitions.known_ids(conn)
    try:
        parse_bundle(files, **engine.definition_checks(), known_processes=known_processes,
                     known_decisions=known_decisions)
    except DefinitionError as exc:
        problems.extend(exc.problems)
    except UnsafeXmlError as exc:
        problems.append(Problem(str(exc.context.get("file", "(draft)")), exc.message, line=exc.context.get("line")))
    if _main_file(files, process_id) is None:
        problems.append(Problem("(draft)", f"no file in the draft holds the process '{process_id}'",
                                element_id=process_id))
    problems.extend(_lint(files))
    return problems


def _blocking(problems: list[Problem]) -> list[Problem]:
    return [p for p in problems if getattr(p, "severity", "error") == "error"]


def draft_problems(engine: Any, draft_id: int) -> list[Problem]:
    """What the deploy checks (and the lint rules) say about a draft; warnings do not block approval."""
    with engine.db.engine.connect() as conn:
        row = _row(conn, draft_id)
        return _problems(engine, conn, row.process_id, _files(row))


def _files(row: Any) -> dict[str, bytes]:
    return {k: v.encode("utf-8") for k, v in json.loads(row.files).items()}


def draft_changes(source: Any, draft_id: int) -> dict[str, Any]:
    """What the draft changes against the version it starts from (the live one, once rebased):
    {base_version, live_version, changes: [Change...]}; a new process is compared with nothing."""
    with _reading(source) as conn:
        row = _row(conn, draft_id)
        live = _live(conn, row.process_id)
        base = None
        if row.base_version_id is not None:
            base = conn.execute(select(process_versions).where(process_versions.c.id == row.base_version_id)).first()
        before = version_files(conn, base) if base is not None else {}
        return {"base_version": base.version if base is not None else None,
                "live_version": live.version if live is not None else None,
                "changes": compare_files(before, _files(row))}


# ---------------------------------------------------------------------- writing
def _text(value: Any, what: str, limit: int = MAX_NOTE) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise ValidationError(f"the {what} must be text")
    if len(value) > limit:
        raise ValidationError(f"the {what} is {len(value)} characters long; the limit is {limit}")
    return value.strip()


def _example(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) - {"start_data", "answers"}:
        raise ValidationError('the example must be {"start_data": {...}, "answers": {element id: {...}}}')
    for key in ("start_data", "answers"):
        if not isinstance(value.get(key, {}), dict):
            raise ValidationError(f"the example's {key} must be an object")
    if any(not isinstance(v, dict) for v in value.get("answers", {}).values()):
        raise ValidationError("each of the example's answers must be an object of form answers")
    return history.canonical_json(value)


def on_change(engine: Any, listener: Callable[[], None]) -> None:
    """Call `listener()` after a draft change made through `engine` in this process commits (created, saved,
    submitted, decided, withdrawn, rebased): the simulation runs made ahead look again at once
    (carepath/simulate_ahead.py). A listener that raises is logged by the error's type; the change stands."""
    engine.__dict__.setdefault("_draft_listeners", []).append(listener)


@contextmanager
def _writing(engine: Any) -> Iterator[Connection]:
    """A write transaction holding the system chain's head first (PostgreSQL; SQLite's writers are serial).

    Every draft change ends by appending to that chain, so taking it first keeps one lock order
    (chain, then draft) and makes approvals one at a time: each checks the live version first. Once committed,
    the `on_change` listeners are told."""
    with engine.db.transaction() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(select(chains.c.seq).where(chains.c.chain == history.SYSTEM_CHAIN).with_for_update())
        yield conn
    for listener in getattr(engine, "__dict__", {}).get("_draft_listeners", ()):
        try:
            listener()
        except Exception as exc:  # noqa: BLE001 - a listener's trouble is not the change's
            logging.getLogger("carepath.drafts").error("a draft change's listener failed: %s", type(exc).__name__)


def _record(engine: Any, conn: Connection, now: datetime, evs: list[Event]) -> None:
    history.append(conn, history.SYSTEM_CHAIN, None, now, evs, lock=engine.db.is_postgres)


def _digest(files: Mapping[str, bytes]) -> dict[str, str]:
    return {name: _sha(data) for name, data in sorted(files.items())}


def create_draft(engine: Any, *, process_id: str, files: Mapping[str, bytes | str], base_version: int | None,
                 actor: str, note: str = "") -> dict[str, Any]:
    """A new draft of `process_id` from `base_version` (None: the live version, or none for a new process)."""
    if not isinstance(process_id, str) or not _PROCESS_ID.match(process_id):
        raise ValidationError(f"'{str(process_id)[:80]}' is not a process id (letters, digits, '_', '-', '.')")
    checked = check_files(files)
    note = _text(note, "change note")
    with _writing(engine) as conn:
        engine.db.require_initialised(conn)
        now = engine.now(conn)
        if base_version is not None:
            base = definitions.resolve_version(conn, process_id, base_version)
        else:
            base = _live(conn, process_id)
        did = conn.execute(insert(process_drafts).values(
            process_id=process_id, base_version_id=base.id if base is not None else None, author=actor,
            editors=json.dumps([actor]), created_at=now, updated_at=now, updated_by=actor, revision=1,
            status="draft", change_note=note,
            files=json.dumps({k: v.decode("utf-8") for k, v in checked.items()}, sort_keys=True),
        ).returning(process_drafts.c.id)).scalar_one()
        _record(engine, conn, now, [Event("draft.created", {
            "draft_id": did, "process_id": process_id, "base_version": base.version if base is not None else None,
            "files": _digest(checked), "note": note}, actor=actor)])
        return _as_dict(conn, _row(conn, did))


def _process_using(engine: Any, data: bytes, name: str) -> str:
    """The one live process using a decision of an uploaded .dmn file: its draft takes the file (on approval
    the decisions get new versions, which every process using them evaluates from then on)."""
    root = parse_xml(data, name).getroot()
    held = [d.get("id") for d in root if isinstance(d.tag, str) and etree.QName(d).localname == "decision"
            and d.get("id")]
    with engine.db.engine.connect() as conn:
        newest = (select(process_versions.c.process_id, func.max(process_versions.c.version).label("version"))
                  .group_by(process_versions.c.process_id).subquery())
        rows = conn.execute(select(process_versions.c.process_id, process_versions.c.info).join(
            newest, (process_versions.c.process_id == newest.c.process_id)
            & (process_versions.c.version == newest.c.version))).all()
    users = sorted(r.process_id for r in rows if set(json.loads(r.info).get("decisions_used", [])) & set(held))
    named = ", ".join(f"'{d}'" for d in held) or "none"
    if len(users) == 1:
        return users[0]
    if not users:
        raise StateError(f"no deployed process uses the decisions of {name} ({named}): upload it from the page "
                         "of the process that will use it, or deploy it on its own with `carepath deploy`")
    raise StateError(f"the decisions of {name} ({named}) are used by the processes {', '.join(users)}: upload it "
                     "from the page of one of them (the new version of a decision is used by all of them)")


def draft_from_upload(engine: Any, *, process_id: str | None, filename: str, data: bytes, actor: str,
                      note: str = "") -> dict[str, Any]:
    """A new draft from one uploaded .bpmn or .dmn file, in place of the same file of the live version.

    A .bpmn must hold `process_id` (or, with none given, names the process from the one it holds);
    a .dmn replaces the live version's file of that name or is added (with none given, the draft is of the one
    live process using its decisions). Nothing is stored on error.
    """
    name = PurePosixPath(str(filename).replace("\\", "/")).name
    checked = check_files({name: data})
    if name.lower().endswith(".dmn"):
        if process_id is None:
            process_id = _process_using(engine, checked[name], name)
    else:
        held = _process_ids(checked[name], name)
        if process_id is None:
            if len(held) != 1:
                raise DefinitionError([Problem(name, "the file holds no process" if not held else
                                               f"the file holds {len(held)} processes ({', '.join(held)}): "
                                               "upload it from the page of the one you are changing")])
            process_id = held[0]
        elif process_id not in held:
            raise DefinitionError([Problem(name, f"the file does not hold the process '{process_id}'"
                                           + (f" (it holds {', '.join(held)})" if held else ""))])
    with engine.db.engine.connect() as conn:
        live = _live(conn, process_id)
        files = version_files(conn, live) if live is not None else {}
    if name.lower().endswith(".dmn") or name in files:
        files[name] = checked[name]
    else:  # the process's file under another name ("front_door (1).bpmn" from a browser's downloads): it keeps
        # the live file's name, so the version's files still fit processes/ when they are committed back
        diagrams = [k for k in files if not k.lower().endswith(".dmn")]
        files = {k: v for k, v in files.items() if k.lower().endswith(".dmn")}
        files[diagrams[0] if len(diagrams) == 1 else name] = checked[name]
    return create_draft(engine, process_id=process_id, files=files, base_version=live.version if live else None,
                        actor=actor, note=note or f"uploaded {name}")


def save_draft(engine: Any, draft_id: int, *, files: Mapping[str, bytes | str], expected_revision: int,
               actor: str, example: dict[str, Any] | None = None, note: str | None = None) -> dict[str, Any]:
    """Store new files (and the example case, the change note); refused when someone saved since."""
    checked = check_files(files)
    example_json = _example(example)
    note_text = _text(note, "change note") if note is not None else None
    if not isinstance(expected_revision, int) or isinstance(expected_revision, bool):
        raise ValidationError("say which revision of the draft the change starts from")
    with _writing(engine) as conn:
        now = engine.now(conn)
        row = _row(conn, draft_id, lock=True)
        _require_open(row)
        editors = sorted(set(json.loads(row.editors)) | {actor})
        values: dict[str, Any] = dict(
            files=json.dumps({k: v.decode("utf-8") for k, v in checked.items()}, sort_keys=True),
            revision=row.revision + 1, updated_at=now, updated_by=actor, editors=json.dumps(editors),
            status="draft")
        if example is not None:
            values["example"] = example_json
        if note_text is not None:
            values["change_note"] = note_text
        done = conn.execute(update(process_drafts).where(process_drafts.c.id == draft_id,
                                                         process_drafts.c.revision == expected_revision)
                            .values(**values)).rowcount
        if done != 1:
            raise _stale(row, expected_revision)
        _record(engine, conn, now, [Event("draft.saved", {
            "draft_id": draft_id, "process_id": row.process_id, "revision": row.revision + 1,
            "files": _digest(checked), "example": example is not None,
            **({"was": row.status} if row.status != "draft" else {})}, actor=actor)])
        return _as_dict(conn, _row(conn, draft_id))


def _stale(row: Any, expected: int | None) -> ConflictError:
    return ConflictError(
        f"draft {row.id} was saved by {row.updated_by} at {history.iso(row.updated_at)[:16].replace('T', ' ')} UTC "
        f"(revision {row.revision}); your change started from revision {expected}. Reload the draft and make "
        "your change again", draft=row.id, revision=row.revision, saved_by=row.updated_by)


def _not_submitted(row: Any, expected: int | None, done: str) -> StateError:
    """Why a draft that is not waiting for review cannot be approved or refused, in the reviewer's terms: "draft 11
    is draft" said nothing of its author saving it again after submitting it, which sends it back to them."""
    if row.status == "draft":
        when = history.iso(row.updated_at)[:16].replace("T", " ")
        why = (f"was changed by {row.updated_by} at {when} UTC (revision {row.revision}) after you opened it, so it "
               "is back with its author" if expected is not None and row.revision != expected else
               "is still being changed by its author (not submitted for review)")
        return StateError(f"draft {row.id} {why}: it must be submitted again before it can be {done}",
                          draft=row.id, status=row.status)
    return StateError(f"draft {row.id} is {row.status}, not waiting for review: only a submitted draft can be "
                      f"{done}", draft=row.id, status=row.status)


def _require_open(row: Any) -> None:
    if row.status not in OPEN:
        raise StateError(f"draft {row.id} is {row.status}: start a new draft from the live version",
                         draft=row.id, status=row.status)


def _check_revision(row: Any, expected: int | None) -> None:
    if expected is not None and row.revision != expected:
        raise _stale(row, expected)


def _require_base_live(conn: Connection, row: Any) -> Any:
    live = _live(conn, row.process_id)
    if (live.id if live is not None else None) != row.base_version_id:
        base = _version_no(conn, row.base_version_id)
        raise StateError(
            f"draft {row.id} starts from version {base if base is not None else '(none)'} of {row.process_id}, "
            f"but version {live.version if live is not None else '(none)'} is live now: rebase the draft and "
            "check what changed meanwhile", draft=row.id)
    return live


def submit_draft(engine: Any, draft_id: int, *, actor: str, note: str | None = None,
                 expected_revision: int | None = None) -> dict[str, Any]:
    """Ask another process owner to review the draft; it must validate and start from the live version."""
    note_text = _text(note, "change note") if note is not None else None
    with _writing(engine) as conn:
        now = engine.now(conn)
        row = _row(conn, draft_id, lock=True)
        if row.status == "submitted":
            raise StateError(f"draft {draft_id} is already waiting for review", draft=draft_id)
        _require_open(row)
        _check_revision(row, expected_revision)
        _require_base_live(conn, row)
        blocking = _blocking(_problems(engine, conn, row.process_id, _files(row)))
        if blocking:
            raise DefinitionError(blocking)
        values: dict[str, Any] = dict(status="submitted", submitted_at=now, decided_at=None, decided_by=None,
                                      decision_note=None)
        if note_text is not None:
            values["change_note"] = note_text
        conn.execute(update(process_drafts).where(process_drafts.c.id == draft_id).values(**values))
        _record(engine, conn, now, [Event("draft.submitted", {
            "draft_id": draft_id, "process_id": row.process_id, "revision": row.revision,
            "note": note_text if note_text is not None else row.change_note}, actor=actor)])
        return _as_dict(conn, _row(conn, draft_id))




def approve_draft(engine: Any, draft_id: int, *, actor: str, note: str,
                  expected_revision: int | None = None) -> dict[str, Any]:
    """Deploy a submitted draft as the next version, approved by `actor`, who must not have written it.

    Returns {"draft": ..., "process_id", "version", "process_version_id", "deployment_id"}.
    """
    note_text = _text(note, "change note")
    with _writing(engine) as conn:
        now = engine.now(conn)
        row = _row(conn, draft_id, lock=True)
        writers = set(json.loads(row.editors)) | {row.author}
        if actor in writers:
            raise FourEyesError(
                f"you cannot approve draft {draft_id}: you " + ("wrote it" if actor == row.author else "saved it")
                + "; another process owner must review and approve it (four eyes)", draft=draft_id)
        if row.status != "submitted":
            raise _not_submitted(row, expected_revision, "approved")
        _check_revision(row, expected_revision)
        _require_base_live(conn, row)
        note_text = note_text or row.change_note
        if not note_text:
            raise ValidationError("write a change note: it says what changed and why, in the version history")
        files = _files(row)
        blocking = _blocking(_problems(engine, conn, row.process_id, files))
        if blocking:
            raise DefinitionError(blocking)
        refs, deploy_events = definitions.deploy(
            conn, files, now=now, actor=actor, **engine.definition_checks(), source=f"draft {draft_id}",
            change_note=note_text,
            author=row.author, approver=actor)
        ref = next((r for r in refs if r.kind == "process" and r.process_id == row.process_id), None)
        if ref is None or not ref.created:
            version = f"version {ref.version}" if ref is not None else "the live version"
            raise StateError(f"draft {draft_id} is the same as {version} of {row.process_id}: there is nothing "
                             "to deploy", draft=draft_id)
        conn.execute(update(process_drafts).where(process_drafts.c.id == draft_id).values(
            status="deployed", decided_at=now, decided_by=actor, change_note=note_text,
            deployed_version_id=ref.id))
        _record(engine, conn, now, [Event("draft.approved", {
            "draft_id": draft_id, "process_id": row.process_id, "revision": row.revision, "author": row.author,
            "approver": actor, "note": note_text, "version": ref.version}, actor=actor), *deploy_events])
        dep_id = conn.execute(select(process_versions.c.deployment_id)
                              .where(process_versions.c.id == ref.id)).scalar_one()
        return {"draft": _as_dict(conn, _row(conn, draft_id)), "process_id": row.process_id,
                "name": ref.name, "version": ref.version, "process_version_id": ref.id, "deployment_id": dep_id}


def refuse_draft(engine: Any, draft_id: int, *, actor: str, reason: str,
                 expected_revision: int | None = None) -> dict[str, Any]:
    """Send a submitted draft back to its author with the reviewer's reason."""
    reason_text = _text(reason, "reason")
    if not reason_text:
        raise ValidationError("say why the draft is refused: its author reads the reason")
    with _writing(engine) as conn:
        now = engine.now(conn)
        row = _row(conn, draft_id, lock=True)
        if actor == row.author:
            raise FourEyesError(f"draft {draft_id} is yours: withdraw it instead of refusing it", draft=draft_id)
        if row.status != "submitted":
            raise _not_submitted(row, expected_revision, "refused")
        _check_revision(row, expected_revision)
        conn.execute(update(process_drafts).where(process_drafts.c.id == draft_id).values(
            status="refused", decided_at=now, decided_by=actor, decision_note=reason_text))
        _record(engine, conn, now, [Event("draft.refused", {
            "draft_id": draft_id, "process_id": row.process_id, "revision": row.revision, "reason": reason_text},
            actor=actor)])
        return _as_dict(conn, _row(conn, draft_id))


def withdraw_draft(engine: Any, draft_id: int, *, actor: str, reason: str = "") -> dict[str, Any]:
    """Its author (or someone who saved it) gives the draft up; it stays on record, read-only."""
    reason_text = _text(reason, "reason")
    with _writing(engine) as conn:
        now = engine.now(conn)
        row = _row(conn, draft_id, lock=True)
        _require_open(row)
        if actor not in set(json.loads(row.editors)) | {row.author}:
            raise FourEyesError(f"only someone who wrote draft {draft_id} can withdraw it; "
                                f"{row.author} wrote it", draft=draft_id)
        conn.execute(update(process_drafts).where(process_drafts.c.id == draft_id).values(
            status="withdrawn", decided_at=now, decided_by=actor, decision_note=reason_text or None))
        _record(engine, conn, now, [Event("draft.withdrawn", {
            "draft_id": draft_id, "process_id": row.process_id, "revision": row.revision, "reason": reason_text},
            actor=actor)])
        return _as_dict(conn, _row(conn, draft_id))


def rebase_draft(engine: Any, draft_id: int, *, actor: str, expected_revision: int | None = None) -> dict[str, Any]:
    """Move the draft's base to the live version; returns what changed between the old base and live.

    The draft's files are kept as they are: the owner carries over what changed meanwhile (the list
    stays on the draft until the next rebase). A submitted draft goes back to draft, to be resubmitted.
    """
    with _writing(engine) as conn:
        now = engine.now(conn)
        row = _row(conn, draft_id, lock=True)
        _require_open(row)
        _check_revision(row, expected_revision)
        live = _live(conn, row.process_id)
        live_id = live.id if live is not None else None
        if live_id == row.base_version_id:
            raise StateError(f"draft {draft_id} already starts from the live version", draft=draft_id)
        old = None
        if row.base_version_id is not None:
            old = conn.execute(select(process_versions).where(process_versions.c.id == row.base_version_id)).first()
        changes = compare_files(version_files(conn, old) if old is not None else {},
                                version_files(conn, live) if live is not None else {})
        record = {"from_version": old.version if old is not None else None,
                  "to_version": live.version if live is not None else None,
                  "changes": [c.to_dict() for c in changes]}
        conn.execute(update(process_drafts).where(process_drafts.c.id == draft_id).values(
            base_version_id=live_id, revision=row.revision + 1, updated_at=now, updated_by=actor, status="draft",
            rebase_changes=json.dumps(record, sort_keys=True)))
        _record(engine, conn, now, [Event("draft.rebased", {
            "draft_id": draft_id, "process_id": row.process_id, "from_version": record["from_version"],
            "to_version": record["to_version"], "changes": len(changes)}, actor=actor)])
        return {"draft": _as_dict(conn, _row(conn, draft_id)), "changes": changes, **{
            k: record[k] for k in ("from_version", "to_version")}}
