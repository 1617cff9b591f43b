"""The `carepath` command line: the engine's own commands.

Every command takes `--db URL` (or CAREPATH_DATABASE_URL; a SQLite file `carepath.db` by
default), `--as USER` and `--json` for output that scripts can read, before or after the
command's name. A case is named by its number (7) or its reference (CASE-000007) alike. Times
are shown in UK time with their zone (GMT or BST), as the web pages show them. Errors print
what went wrong and where, on one line, and exit non-zero: 1 for a refused request, 2 for bad
usage, 3 for a conflict.

This module knows only the engine. The commands about social care and the web (`act`, `cld`,
`measures`, `evidence`, `serve`, ...) are added by the composition above it, `carepath/cli.py`,
which extends `build_parser()`; the installed `carepath` script is that one.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .bpmn_timers import add_duration
from .clock import as_utc, parse_instant
from .errors import CarepathError, ConflictError, NotFoundError, StateError
from .schema import MAX_ROW_ID

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3


def parse_duration(text: str, start: datetime) -> timedelta:
    """ISO 8601 duration (P43D, P1Y2M, PT12H) from `start`, months and years by the calendar."""
    try:
        return add_duration(start, text) - start
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO 8601 duration such as P43D, P1Y or PT12H") from None
    except OverflowError:
        raise argparse.ArgumentTypeError(f"'{text}' from {start.date().isoformat()} goes past the year 9999, the last "
                                         "a date can hold") from None


def instant_arg(text: str, option: str) -> datetime:
    """An ISO 8601 instant given as `option` (UTC without an offset), or a usage error naming the option."""
    try:
        return parse_instant(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{option}: '{text}' is not an ISO 8601 instant such as 2027-03-01T09:00Z "
                                         "or 2027-03-01") from None


def _data_arg(args: argparse.Namespace) -> dict[str, Any]:
    option = "--data"
    if getattr(args, "data_file", None):
        option = f"--data-file {args.data_file}"
        try:
            raw = Path(args.data_file).read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            raise CarepathError(f"{option}: not UTF-8 text (byte {exc.start}); nothing was saved") from None
        except OSError as exc:  # missing, a folder, not readable
            raise CarepathError(f"{option}: cannot be read ({exc.strerror or type(exc).__name__}); nothing was "
                                "saved") from None
    else:
        raw = getattr(args, "data", None) or "{}"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CarepathError(f"{option} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    except RecursionError:  # [[[[… thousands deep: Python's reader gives up
        raise CarepathError(f"{option} is nested too deeply to read; nothing was saved") from None
    if not isinstance(data, dict):
        raise CarepathError(f"{option} must be a JSON object, e.g. '{{\"name\": \"Harriet\"}}'")
    return data


def _engine(args: argparse.Namespace, *, initialised: bool = True):  # type: ignore[no-untyped-def]
    """The engine on `--db`, made once per command. Unless `initialised=False` (`init` itself) the
    database must exist and be initialised: a missing SQLite file is not created, and an unreachable
    or empty database is one line saying so, not a traceback."""
    eng = getattr(args, "_engine_made", None)
    if eng is not None:
        return eng
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from .db import ENV_VAR, resolve_url
    from .runtime import Engine

    try:
        url = make_url(resolve_url(args.db))
    except ArgumentError:
        raise StateError(f"{args.db or 'the database URL'} is not a database URL: give one such as "
                         "sqlite:///carepath.db or postgresql://user@host/db, with --db URL or "
                         f"{ENV_VAR}") from None
    if initialised and url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:") \
            and not Path(url.database).exists():
        raise StateError(f"there is no database at {url.database}: create it with `carepath init`, or name "
                         f"another with --db URL or {ENV_VAR}")
    eng = Engine(args.db)
    if initialised:
        try:
            with eng.db.engine.connect() as conn:
                eng.db.require_initialised(conn)
        except _db_errors() as exc:
            raise StateError(_unreachable(eng.db.safe_url, exc)) from None
    args._engine_made = eng
    return eng


def _db_errors() -> tuple[type[BaseException], ...]:
    # DatabaseError: also a file that is not a database at all ("file is not a database"); OperationalError is one
    from sqlalchemy.exc import DatabaseError, InterfaceError

    return (DatabaseError, InterfaceError)


def _unreachable(where: str, exc: BaseException) -> str:
    """One line for a database that cannot be reached, without the driver's traceback."""
    cause = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    return f"cannot reach the database {where}: {cause[0].strip() if cause else type(exc).__name__}"


_REFERENCE = re.compile(r"\S+")


def case_arg(text: str) -> int | str:
    """A case on the command line: its number (7) or its reference (CASE-000007), resolved once the
    database is open (`_resolve_case`)."""
    text = text.strip()
    if text.isdigit():
        return int(text)
    if not _REFERENCE.fullmatch(text):
        raise argparse.ArgumentTypeError(f"{text!r} is not a case: give its number (7) or its reference "
                                         "(CASE-000007)")
    return text


def _resolve_case(eng: Any, ref: int | str) -> int:
    """The id of the case numbered or referenced `ref`."""
    if isinstance(ref, int):
        return ref
    from sqlalchemy import select

    from .schema import cases

    with eng.db.engine.connect() as conn:
        for text in dict.fromkeys((ref, ref.upper())):
            found = conn.execute(select(cases.c.id).where(cases.c.reference == text)).scalar_one_or_none()
            if found is not None:
                return int(found)
    raise NotFoundError(f"no case {ref!r}: give its number (7) or its reference (CASE-000007)", case=ref)


def _json_value(value: Any) -> Any:
    """What `--json` writes for a value JSON has no type for: an instant as ISO 8601 in UTC with its offset
    (`2027-03-27T10:00:00+00:00`, as `clock --json` and the history give it) — a time read back from SQLite has
    no zone, and `str` wrote it as `2027-03-27 10:00:00`, so `case`, `incidents` and `tasks` each wrote another
    shape and two of them no zone at all; a date as ISO 8601; anything else as its text."""
    if isinstance(value, datetime):
        return as_utc(value).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _out(args: argparse.Namespace, value: Any, text: str) -> None:
    if args.json:
        print(json.dumps(value, default=_json_value, indent=2, sort_keys=True))
    else:
        print(text)
    sys.stdout.flush()  # now, inside main: a reader gone away is a BrokenPipeError main handles, not one at exit


UK = ZoneInfo("Europe/London")  # the web pages show times in UK time (api/page_kit.py); so does the CLI


def _fmt_dt(value: Any, *, seconds: bool = False) -> str:
    """An instant in UK time with its zone, e.g. `2027-01-04 09:00 GMT` or `2027-06-01 10:00 BST`; a
    naive datetime or an ISO text without a zone is taken to be UTC, as the engine stores them."""
    if value is None:
        return "-"
    if isinstance(value, str):
        try:
            value = parse_instant(value)
        except ValueError:
            return value
    if isinstance(value, datetime):
        from .clock import as_utc

        return as_utc(value).astimezone(UK).strftime("%Y-%m-%d %H:%M:%S %Z" if seconds else "%Y-%m-%d %H:%M %Z")
    return str(value)


# ---------------------------------------------------------------------------- commands
def cmd_init(args: argparse.Namespace) -> int:
    start = instant_arg(args.simulated, "--simulated") if args.simulated else None  # before anything is made
    eng = _engine(args, initialised=False)
    eng.init(simulated_start=start)
    mode = eng.clock_mode()
    now = eng.now()
    _out(args, {"database": eng.db.safe_url, "clock": mode, "now": now.isoformat()},
         f"initialised {eng.db.safe_url} ({mode} clock, now {_fmt_dt(now)})")
    return 0


def cmd_deploy(args: argparse.Namespace) -> int:
    from .definitions import read_sources
    from .lint import lint_files

    files = read_sources(args.paths)
    if not args.strict:  # --strict refuses with the same findings listed as problems
        for problem in lint_files(files):
            if problem.rule is not None and problem.severity == "warning":
                print(f"warning: {problem}", file=sys.stderr)
    refs = _engine(args).deploy(files=files, actor=args.actor, note=args.note, strict=args.strict,
                                source=", ".join(str(p) for p in args.paths))
    lines = [("decision " if r.kind == "decision" else "") + f"{r.process_id} version {r.version}"
             + ("" if r.created else " (unchanged)") for r in refs]
    _out(args, [r.__dict__ for r in refs], "\n".join(lines) or "nothing to deploy")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    res = _engine(args).start(args.process, case_id=args.case, data=_data_arg(args), actor=args.actor,
                              title=args.title, version=args.version)
    _out(args, res.to_dict(), _describe_step(res))
    return 0


def _describe_step(res: Any) -> str:
    lines = [f"case {res.case_id}, instance {res.instance_id}: {res.status}"]
    for t in res.ready_tasks:
        lines.append(f"  ready: {t['id']}  {one_line(t['name'])}  [team {one_line(t['team'] or '-')}, "
                     f"form {one_line(t['form'] or '-')}, "
                     f"due {_fmt_dt(t['due_at'])}]")
    if res.started_instances:
        lines.append(f"  started instances: {', '.join(map(str, res.started_instances))}")
    if res.incident:
        lines.append(f"  INCIDENT {res.incident['id']} at {one_line(res.incident['element_id'] or '-')}: "
                     f"{one_line(res.incident['message'])}")
    return "\n".join(lines)


def cmd_tasks(args: argparse.Namespace) -> int:
    rows = _engine(args).list_tasks(case_id=args.case, team=args.team, assignee=args.assignee,
                                    process_id=args.process)
    lines = [f"{r['id']}  {r['reference']}  {one_line(r['name']):<32} team {r['team'] or '-':<18} "
             f"assignee {one_line(r['assignee'] or '-'):<12} due {_fmt_dt(r['due_at'])}" for r in rows]
    _out(args, rows, "\n".join(lines) or "no open tasks")
    return 0


def cmd_complete(args: argparse.Namespace) -> int:
    res = _engine(args).complete_task(args.task, _data_arg(args), actor=args.actor,
                                      expected_revision=args.revision)
    _out(args, res.to_dict(), _describe_step(res))
    return 0


def cmd_claim(args: argparse.Namespace) -> int:
    row = _engine(args).claim(args.task, args.actor)
    _out(args, row, f"{row['id']} claimed by {row['assignee']}")
    return 0


def cmd_clock(args: argparse.Namespace) -> int:
    eng = _engine(args)
    if args.clock_cmd == "advance":
        start = eng.now()
        if args.to:
            moved = eng.advance_clock(to=instant_arg(args.to, "--to"), actor=args.actor)
        else:
            moved = eng.advance_clock(parse_duration(args.duration, start), actor=args.actor)
        now = eng.now()
        _out(args, {"from": start.isoformat(), "now": now.isoformat(), "instances_moved": moved},
             f"clock {_fmt_dt(start)} -> {_fmt_dt(now)}; {moved} instance step(s) fired by timers")
        return 0
    now = eng.now()
    _out(args, {"mode": eng.clock_mode(), "now": now.isoformat(), "next_due": eng.next_due()},
         f"{eng.clock_mode()} clock: {_fmt_dt(now)}; next timer due {_fmt_dt(eng.next_due())}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    rows = _engine(args).history(args.case)
    lines = []
    for r in rows:
        d = r["data"]
        detail = d.get("name") or d.get("element_id") or d.get("process_id") or d.get("handler") or ""
        lines.append(f"#{r['seq']:<4} {_fmt_dt(r['at'], seconds=True)}  {r['type']:<22} {one_line(detail):<30} "
                     f"by {one_line(r['actor'])}")
    _out(args, rows, "\n".join(lines) or "no events")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    anchor = None
    folder = getattr(args, "heads_dir", None)
    if args.against and folder:
        raise argparse.ArgumentTypeError("give --against HEADS_FILE or --heads-dir FOLDER, not both")
    if args.against or folder or args.public_key:
        from . import anchoring

        if not ((args.against or folder) and args.public_key):
            raise argparse.ArgumentTypeError("--against HEADS_FILE (or --heads-dir FOLDER) needs --public-key PUB "
                                             "(and the other way round)")
        if args.case is not None and args.against:
            raise argparse.ArgumentTypeError("--against checks every chain: leave out --case (or use --heads-dir)")
        public_key = anchoring.load_public_key(args.public_key)
        if args.against:
            anchor = anchoring.read_heads_file(args.against, public_key)
        elif not anchoring.heads_files(folder):
            raise anchoring.AnchoringError(f"there is no heads file (heads-*.json) in {folder}")
    eng = _engine(args)
    index = None
    if anchor is not None:
        findings = anchoring.verify_against(eng, anchor)
        checked = eng.verify()[0]
    elif folder:
        chain = history_case_chain(args.case) if args.case is not None else None
        findings, index = anchoring.verify_against_files(eng, folder, public_key, chain)
        checked = eng.verify(args.case)[0]
    else:
        checked, findings = eng.verify(args.case)
    from .erasure import erased_chains

    erased = erased_chains(eng, args.case)
    value = {"events_checked": checked, "intact": not findings, "findings": [str(f) for f in findings],
             "heads": eng.chain_heads(), "erased": erased}
    if anchor is not None:
        value["against"] = {"file": args.against, "signed_at": anchor["signed_at"], "key_id": anchor["key_id"],
                            "chains": len(anchor["heads"])}
    if index is not None:
        value["against_files"] = {"folder": folder, "files_checked": index.trusted,
                                  "untrusted": [{"file": f, "why": why} for f, why in index.untrusted],
                                  "other_key": [f for f, _why in index.other_key]}
    if findings:
        text = f"ALTERED: {len(findings)} problem(s) in {checked} events\n" + "\n".join(f"  {f}" for f in findings)
    else:
        text = f"intact: {checked} events, every hash chain unbroken"
        text += "".join(f"\nchain {name} verified; data erased on {e['at'][:10]} under rule {e['rule']} "
                        f"(approved by {e['by']}; {e['events_erased']} events' data destroyed)"
                        for name, e in erased.items())
        if anchor is not None:
            text += (f"\nanchored: all {len(anchor['heads'])} chains hold the heads signed at {anchor['signed_at']} "
                     f"(key {anchor['key_id']}) and were not rewritten since")
        if index is not None:
            text += (f"\nanchored: {'the chain holds' if args.case is not None else 'every chain holds'} every head "
                     f"signed in the {index.trusted} heads file(s) in {folder}")
    if index is not None:
        text += "".join(f"\nwarning: {why}" for _f, why in index.untrusted)
        if index.other_key:
            text += f"\nnot checked: {len(index.other_key)} heads file(s) signed with another key"
    _out(args, value, text)
    return 0 if not findings else EXIT_REFUSED


def history_case_chain(case_id: int) -> str:
    from .history import case_chain

    return case_chain(case_id)


def cmd_keygen(args: argparse.Namespace) -> int:
    from .anchoring import generate_keys, key_id, load_public_key

    private, public, pem = generate_keys(args.out, args.public_out)
    value = {"private_key": str(private), "public_key_file": str(public), "public_key": pem,
             "key_id": key_id(load_public_key(public))}
    _out(args, value, f"private key written to {private} (readable by you only; keep it off the database server)\n"
                      f"public key written to {public} (key {value['key_id']}):\n{pem.rstrip()}")
    return 0


def cmd_sign_heads(args: argparse.Namespace) -> int:
    from .anchoring import SigningRefused, sign_heads

    try:
        doc = sign_heads(_engine(args), args.key, args.out, args.previous)
    except SigningRefused as exc:
        for f in exc.findings[:50]:
            print(f"  {printable(str(f))}", file=sys.stderr)
        raise
    _out(args, {"file": args.out, "signed_at": doc["signed_at"], "key_id": doc["key_id"], "heads": doc["heads"]},
         f"signed the heads of {len(doc['heads'])} chains at {doc['signed_at']} (key {doc['key_id']}) into {args.out}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay_case

    report = replay_case(_engine(args), args.case)
    _out(args, report.to_dict(), str(report))
    return 0 if report.ok else EXIT_REFUSED


def cmd_incidents(args: argparse.Namespace) -> int:
    rows = _engine(args).incidents(open_only=not args.all)
    lines = [f"incident {r['id']}  instance {r['instance_id']}  at {one_line(r['element_id'] or '-')}  "
             f"handler {one_line(r['handler'] or '-')}: {one_line(r['message'])}" for r in rows]
    _out(args, rows, "\n".join(lines) or "no open incidents")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    """Retry an incident by its number, as `carepath incidents` lists it: what failed in its instance runs
    again. Exit 1 when it fails again (the new incident is shown)."""
    eng = _engine(args)
    incident = next((r for r in eng.incidents(open_only=False) if r["id"] == args.incident), None)
    if incident is None:
        raise NotFoundError(f"no incident {args.incident}: `carepath incidents` lists the open ones",
                            incident=args.incident)
    if incident["resolved_at"] is not None:
        raise StateError(f"incident {args.incident} was already resolved at {_fmt_dt(incident['resolved_at'])} "
                         f"by {incident['resolved_by'] or '-'}: nothing to retry", incident=args.incident)
    res = eng.retry(incident["instance_id"], actor=args.actor)
    _out(args, res.to_dict(), _describe_step(res))
    if res.incident or res.status == "error":
        again = res.incident or {}
        print(f"carepath: incident {args.incident} failed again"
              + (f": incident {again['id']} at {again['element_id'] or '-'}: {again['message']}" if again else ""),
              file=sys.stderr)
        return EXIT_REFUSED
    return 0


def cmd_suspend(args: argparse.Namespace) -> int:
    if args.actor == "cli":
        raise CarepathError("say who is pausing the process with --as USER (it is kept in the case's history)")
    out = _engine(args).suspend_instance(args.instance, reason=args.reason, actor=args.actor)
    _out(args, out, f"instance {args.instance} suspended at {out['suspended_at']}: no timer fires and no task "
                    f"completes until it is resumed ({len(out['timers'])} timer(s) stopped)")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    if args.actor == "cli":
        raise CarepathError("say who is resuming the process with --as USER (it is kept in the case's history)")
    then_start = None
    if args.then_start:
        then_start = {"process_id": args.then_start, "data": _data_arg(args)}
        if args.then_version is not None:
            then_start["version"] = args.then_version
    elif args.data or args.data_file or args.then_version is not None:
        raise CarepathError("--data, --data-file and --then-version give the start of --then-start PROCESS: "
                            "name the process to start")
    res = _engine(args).resume_instance(args.instance, actor=args.actor, mode=args.mode, reason=args.reason,
                                        then_start=then_start)
    text = f"instance {args.instance} {'resumed' if args.mode == 'remaining' else 'ended'}: {res.status}"
    if res.started_instances:
        text += f"; {args.then_start} started as instance {res.started_instances[0]}"
        text += "".join(f"\n  ready: {t['id']}  {one_line(t['name'])}  [team {one_line(t['team'] or '-')}]"
                        for t in res.ready_tasks)
    _out(args, res.to_dict(), text)
    return 0


def cmd_case(args: argparse.Namespace) -> int:
    case = _engine(args).get_case(args.case)
    lines = [f"{case['reference']}  {one_line(case['title'])}"]
    lines += [f"  instance {i['id']}  {i['process_id']:<28} {i['status']}" for i in case["instances"]]
    _out(args, case, "\n".join(lines))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    """Dry-run or move a process's open cases from one version to another (engine/instance_migration.py)."""
    from . import instance_migration as im

    mapping: dict[str, str] = {}
    for pair in args.map or []:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise CarepathError(f"--map {pair!r} must be OLD=NEW, two element ids (e.g. --map screen=screen_needs)")
        mapping[old.strip()] = new.strip()
    if args.from_version == args.to_version:
        raise CarepathError(f"--from and --to are both version {args.from_version}: choose two different versions")
    eng = _engine(args)
    common = dict(mapping=mapping, case_ids=args.case or None, keep_timers=args.keep_timers,
                  recompute_timers=args.recompute_timers)
    if args.dry_run:
        plan = im.dry_run(eng, args.process, args.from_version, args.to_version, **common)
        lines = [f"{args.process}: version {plan.from_version} -> {plan.to_version}: {len(plan.movable)} of "
                 f"{len(plan.cases)} open case(s) can move"]
        lines += [f"  element {m['from']} -> {m['to'] or '(none)'} ({m['how']})" for m in plan.moves
                  if m["how"] != "same id"]
        for c in plan.cases:
            at = ", ".join(x["element_id"] for x in c.current) or "-"
            lines.append(f"  {c.case_reference} (at {at}): " + ("can move" if c.can_move else "cannot move"))
            lines += [f"      - {r}" for r in c.reasons] + [f"      note: {n}" for n in c.notes]
        _out(args, plan.to_dict(), "\n".join(lines))
        return 0 if len(plan.movable) == len(plan.cases) else EXIT_REFUSED
    if args.actor == "cli":
        raise CarepathError("say who is moving the cases with --as USER (it is kept in each case's history)")
    result = im.migrate(eng, args.process, args.from_version, args.to_version, actor=args.actor,
                        reason=args.reason or "", batch=args.batch, **common)
    lines = [f"{args.process}: version {result.from_version} -> {result.to_version}: {len(result.moved)} moved, "
             f"{len(result.refused)} not moved"]
    for c in result.cases:
        lines.append(f"  {c.case_reference}: " + ("moved" if c.moved else "not moved"))
        lines += [f"      - {r}" for r in c.reasons]
        lines += [f"      timer {t['element_id']}: due {t['due_before']} -> {t['due_after']}" for t in c.timers
                  if t["due_before"] != t["due_after"]]
    _out(args, result.to_dict(), "\n".join(lines))
    return EXIT_REFUSED if result.refused else 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import heads_settings, run_worker

    heads_settings()  # checked before the worker starts (CAREPATH_HEADS_KEY, _DIR, _INTERVAL)
    _engine(args)  # the database is there and initialised, or one line says why not
    run_worker(args.db, interval=args.interval, once=args.once)
    return 0


def _global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> argparse.ArgumentParser:
    """--db, --json and --as. The top-level parser holds their defaults; every command's parser takes them
    again without a default (SUPPRESS), so an option given before the command is not overwritten by the
    command's own default: `carepath --as alice complete T` and `carepath complete T --as alice` agree."""
    unset = argparse.SUPPRESS
    parser.add_argument("--db", metavar="URL", default=None if defaults else unset,
                        help="database URL (default: CAREPATH_DATABASE_URL or sqlite:///carepath.db)")
    parser.add_argument("--json", action="store_true", default=False if defaults else unset,
                        help="machine-readable output")
    parser.add_argument("--as", dest="actor", metavar="USER", default="cli" if defaults else unset,
                        help="who is acting (recorded in the history; default: cli)")
    return parser


def common_options() -> argparse.ArgumentParser:
    """The parent every command's parser is made with (`sub.add_parser(NAME, parents=[common_options()])`)."""
    return _global_options(argparse.ArgumentParser(add_help=False), defaults=False)


def subcommands(parser: argparse.ArgumentParser) -> Any:
    """The commands of a parser from `build_parser()`, for a composition to add its own to."""
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


def build_parser() -> argparse.ArgumentParser:
    common = common_options()

    p = _global_options(argparse.ArgumentParser(
        prog="carepath", description=__doc__.splitlines()[0],
        epilog="--db, --as and --json may come before or after the command. A case is given by its number (7) or "
               "its reference (CASE-000007). Times are UK time with their zone. Exit status: 0 done, 1 refused, "
               "2 bad usage, 3 a conflict with another change."), defaults=True)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    s = sub.add_parser("init", parents=[common], help="create or upgrade the database")
    s.add_argument("--simulated", metavar="START", help="use a simulated clock starting at this ISO instant")
    s.set_defaults(fn=cmd_init)

    s = sub.add_parser("deploy", parents=[common], help="deploy BPMN/DMN files or folders as new versions")
    s.add_argument("paths", nargs="+", metavar="PATH", help="a .bpmn or .dmn file, or a folder of them")
    s.add_argument("--note", help="change note recorded with the new versions (who: --as, author and approver)")
    s.add_argument("--strict", action="store_true", help="refuse while the diagrams have any lint warning")
    s.set_defaults(fn=cmd_deploy)

    s = sub.add_parser("start", parents=[common], help="start a process for a case")
    s.add_argument("process", help="the process id (the BPMN process element's id)")
    s.add_argument("--case", type=case_arg, help="an existing case: its number (7) or reference (CASE-000007); "
                   "default: a new case")
    s.add_argument("--title", help="title of a new case (the person's name)")
    s.add_argument("--version", type=int, help="process version (default: latest)")
    s.add_argument("--data", help="initial data as a JSON object")
    s.add_argument("--data-file", help="initial data from a JSON file")
    s.set_defaults(fn=cmd_start)

    s = sub.add_parser("tasks", parents=[common], help="list open user tasks")
    s.add_argument("--case", type=case_arg, help="only this case: its number (7) or reference (CASE-000007)")
    s.add_argument("--team", help="only this team's tasks (e.g. reablement)")
    s.add_argument("--assignee", metavar="USER", help="only the tasks assigned to this user")
    s.add_argument("--process", help="only the tasks of this process id")
    s.set_defaults(fn=cmd_tasks)

    s = sub.add_parser("complete", parents=[common], help="complete a user task with form data")
    s.add_argument("task", help="the task's id, as `carepath tasks` lists it")
    s.add_argument("--data", help="form data as a JSON object")
    s.add_argument("--data-file", metavar="FILE", help="form data from a JSON file")
    s.add_argument("--revision", type=int, help="refuse if the task changed since this revision")
    s.set_defaults(fn=cmd_complete)

    s = sub.add_parser("claim", parents=[common], help="claim a task for the acting user (--as)")
    s.add_argument("task", help="the task's id, as `carepath tasks` lists it")
    s.set_defaults(fn=cmd_claim)

    s = sub.add_parser("clock", parents=[common], help="show or advance the clock")
    csub = s.add_subparsers(dest="clock_cmd", metavar="advance", help="without it: show the clock")
    a = csub.add_parser("advance", parents=[common], help="advance a simulated clock, firing due timers")
    a.add_argument("duration", nargs="?", help="ISO 8601 duration, e.g. P43D")
    a.add_argument("--to", metavar="INSTANT", help="advance to this ISO instant instead, e.g. 2027-03-01T09:00Z")
    a.set_defaults(advance_parser=a)  # its own usage line for a refusal made after parsing (`main`)
    s.set_defaults(fn=cmd_clock)

    s = sub.add_parser("history", parents=[common], help="a case's history events (times in UK time)")
    s.add_argument("case", type=case_arg, help="the case: its number (7) or reference (CASE-000007)")
    s.set_defaults(fn=cmd_history)

    s = sub.add_parser("audit", parents=[common], help="audit the history")
    asub = s.add_subparsers(dest="audit_cmd", required=True, metavar="{verify,keygen,sign-heads}")
    v = asub.add_parser("verify", parents=[common], help="check every hash chain; exit 1 if altered")
    v.add_argument("--case", type=case_arg, help="only this case's chain: its number (7) or reference "
                   "(CASE-000007)")
    v.add_argument("--against", metavar="HEADS_FILE",
                   help="also check the history was not rewritten since this signed heads file")
    v.add_argument("--heads-dir", metavar="FOLDER",
                   help="also check every chain (or --case) against every heads file (heads-*.json) in FOLDER, "
                        "naming the oldest that disagrees")
    v.add_argument("--public-key", metavar="PUB", help="the public key the heads file is checked with")
    v.set_defaults(fn=cmd_audit)
    k = asub.add_parser("keygen", parents=[common], help="make an Ed25519 key pair for signing heads files")
    k.add_argument("--out", required=True, metavar="KEY", help="the private key file to create (mode 0600)")
    k.add_argument("--public-out", metavar="PUB", help="the public key file (default: KEY.pub)")
    k.set_defaults(fn=cmd_keygen)
    h = asub.add_parser("sign-heads", parents=[common], help="write every chain's head, signed, to a new file")
    h.add_argument("--key", required=True, metavar="KEY", help="the private key file (never in the database)")
    h.add_argument("--out", required=True, metavar="FILE", help="the heads file to create")
    h.add_argument("--previous", metavar="HEADS_FILE",
                   help="the last heads file signed: the history must still extend it (default: the newest "
                        "heads-*.json beside --out signed with this key; with none, every chain is verified)")
    h.set_defaults(fn=cmd_sign_heads)

    s = sub.add_parser("replay", parents=[common], help="re-execute a case from its history and compare")
    s.add_argument("case", type=case_arg, help="the case: its number (7) or reference (CASE-000007)")
    s.set_defaults(fn=cmd_replay)

    s = sub.add_parser("incidents", parents=[common], help="list handler failures and other incidents")
    s.add_argument("--all", action="store_true", help="include resolved ones")
    s.set_defaults(fn=cmd_incidents)

    s = sub.add_parser("retry", parents=[common],
                       help="retry an open incident: re-run what failed (exit 1 if it fails again)")
    s.add_argument("incident", type=int, help="the incident's number, as `carepath incidents` lists it")
    s.set_defaults(fn=cmd_retry)

    s = sub.add_parser("suspend", parents=[common], help="pause a process instance: its timers stop (--as USER)")
    s.add_argument("instance", type=int, help="the process instance's number (`carepath case CASE` lists them)")
    s.add_argument("--reason", required=True, help="why it is paused (kept in the history)")
    s.set_defaults(fn=cmd_suspend)

    s = sub.add_parser("resume", parents=[common],
                       help="resume a suspended instance with its timers' remaining time, or end it (--as USER)")
    s.add_argument("instance", type=int, help="the suspended process instance's number")
    s.add_argument("--mode", choices=("remaining", "end"), default="remaining",
                   help="remaining: carry on with the timers' remaining time (default); end: end the instance")
    s.add_argument("--reason", help="why (kept in the history)")
    s.add_argument("--then-start", metavar="PROCESS",
                   help="with --mode end: start this process for the case in the same step")
    s.add_argument("--then-version", type=int, help="its version (default: latest)")
    s.add_argument("--data", help="its start data as a JSON object")
    s.add_argument("--data-file", help="its start data from a JSON file")
    s.set_defaults(fn=cmd_resume)

    s = sub.add_parser("case", parents=[common], help="show a case and its process instances")
    s.add_argument("case", type=case_arg, help="the case: its number (7) or reference (CASE-000007)")
    s.set_defaults(fn=cmd_case)

    s = sub.add_parser("migrate", parents=[common],
                       help="move a process's open cases to another version (--dry-run first)")
    s.add_argument("process", help="the process id whose cases move")
    s.add_argument("--from", dest="from_version", type=int, required=True, help="the version the cases are on")
    s.add_argument("--to", dest="to_version", type=int, required=True, help="the version to move them to")
    s.add_argument("--dry-run", action="store_true", help="say which cases can move and why not; change nothing")
    s.add_argument("--case", action="append", metavar="CASE",
                   help="only this case: its number (7) or reference (CASE-000007); repeat for more")
    s.add_argument("--map", action="append", metavar="OLD=NEW", help="an element renamed or replaced in the target")
    timers = s.add_mutually_exclusive_group()
    timers.add_argument("--keep-timers", action="store_true",
                        help="waiting timers whose definition changed keep their due dates")
    timers.add_argument("--recompute-timers", action="store_true",
                        help="waiting timers whose definition changed are worked out again from when they started")
    s.add_argument("--reason", help="why the cases are moved (required to move; kept in each case's history)")
    s.add_argument("--batch", type=int, default=100, help="cases read per batch (each moves in its own transaction)")
    s.set_defaults(fn=cmd_migrate)

    s = sub.add_parser("worker", parents=[common], help="fire due timers (run one or several)")
    s.add_argument("--interval", type=float, default=1.0, help="at most this many seconds between looks at the "
                   "database (the job also wakes when the next timer falls due, or one is stored)")
    s.add_argument("--once", action="store_true", help="fire what is due now and exit")
    s.set_defaults(fn=cmd_worker)

    add_message_command(sub, common)
    return p


def add_message_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """`carepath message NAME --case … --correlation … --data … --key …` (engine/messages.py)."""
    s = sub.add_parser("message", parents=[common], help="deliver a message to a case by name (once per --key)")
    s.add_argument("name", help="the message's name, as in the diagram's <message name=…>")
    s.add_argument("--case", type=case_arg, help="the case: its number or reference (CASE-000007); without it "
                   "the message may "
                                  "only start a process on a new case")
    s.add_argument("--correlation", help="JSON object: keys the receiving process's data must have, e.g. "
                                         "'{\"referral_id\": 17}'")
    s.add_argument("--data", help="the message's data as a JSON object")
    s.add_argument("--data-file", help="the message's data from a JSON file")
    s.add_argument("--key", help="idempotency key: a message sent again with it is applied once (default: the "
                                 "SHA-256 of name, case, correlation and data)")

    def cmd_message(args: argparse.Namespace) -> int:
        from .messages import resolve_case

        correlation: Any = {}
        if args.correlation:
            try:
                correlation = json.loads(args.correlation)
            except json.JSONDecodeError as exc:
                raise CarepathError(f"--correlation is not valid JSON: {exc.msg} at line {exc.lineno} column "
                                    f"{exc.colno}; nothing was stored") from None
            if not isinstance(correlation, dict):
                raise CarepathError("--correlation must be a JSON object, e.g. '{\"referral_id\": 17}'; nothing "
                                    "was stored")
        data = _data_arg(args)
        eng = _engine(args)
        res = eng.deliver_message(args.name, case_id=resolve_case(eng, args.case), correlation=correlation,
                                  data=data, key=args.key, actor=args.actor)
        lines = [f"message {res.name!r} to {res.case_reference}: {res.status}"
                 + (f" (instances {', '.join(map(str, res.instance_ids))})" if res.instance_ids else "")
                 + (f", kept until {_fmt_dt(res.expires_at)}" if res.expires_at else "")]
        lines += [f"  ready: {t['id']}  {one_line(t['name'])}  [team {one_line(t['team'] or '-')}]" for st in res.steps
                  for t in st.ready_tasks]
        lines += [f"  not delivered: {res.note}"] if res.note else []
        _out(args, res.to_dict(), "\n".join(lines))
        return 0

    s.set_defaults(fn=cmd_message)


def main(argv: list[str] | None = None, *, parser: argparse.ArgumentParser | None = None) -> int:
    """Run one command; `parser` is a composition's extension of `build_parser()` (carepath/cli.py)."""
    parser = parser or build_parser()
    args = parser.parse_args(argv)
    if args.command == "clock" and args.clock_cmd == "advance" and bool(args.duration) == bool(args.to):
        args.advance_parser.error("give a duration (e.g. P43D) or --to INSTANT, not both" if args.duration else
                                  "clock advance needs a duration (e.g. P43D) or --to INSTANT")
    try:
        for name, what in (("case", "case"), ("instance", "process instance"), ("incident", "incident")):
            value = getattr(args, name, None)  # a number no row can have: PostgreSQL refused it as "out of range"
            if isinstance(value, int) and not 0 < value <= MAX_ROW_ID:
                raise NotFoundError(f"no {what} {value}", **{name: value})
        if isinstance(getattr(args, "case", None), str):  # a reference: the case's id from the database
            args.case = _resolve_case(_engine(args), args.case)
        return int(args.fn(args) or 0)
    except argparse.ArgumentTypeError as exc:
        print(f"carepath: {printable(str(exc))}", file=sys.stderr)
        return EXIT_USAGE
    except CarepathError as exc:
        if args.json:
            print(json.dumps(exc.to_dict(), default=_json_value, indent=2), file=sys.stderr)
        else:
            print(f"carepath: {printable(str(exc))}", file=sys.stderr)
            for err in getattr(exc, "errors", None) or []:  # a form's refusal: each field and what is wrong with it
                if isinstance(err, dict):
                    field = err.get("field") or "(the form as a whole)"
                    print(f"  - {printable(str(field))}: {printable(str(err.get('message', '')))}", file=sys.stderr)
        return EXIT_CONFLICT if isinstance(exc, ConflictError) else EXIT_REFUSED
    except _db_errors() as exc:  # the database went away during the command
        made = getattr(args, "_engine_made", None)
        print(f"carepath: {printable(_unreachable(made.db.safe_url if made else 'named by --db', exc))}",
              file=sys.stderr)
        return EXIT_REFUSED
    except BrokenPipeError:  # `carepath --json history 7 | head`: the reader went away; what was done is done
        _quiet_stdout()
        return EXIT_PIPE
    except KeyboardInterrupt:  # Ctrl-C: a step under way is rolled back by its transaction
        print("carepath: stopped (interrupted); a step under way was not saved", file=sys.stderr)
        return EXIT_INTERRUPTED


EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C
EXIT_PIPE = 141  # as a shell reports a command ended by SIGPIPE (128 + 13)


def _quiet_stdout() -> None:
    """After the reader of our output went away: send the rest of it (and Python's flush at exit) nowhere, so
    the command ends without a traceback or an "Exception ignored" message, as `git log | head` does."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a file (a test's capture)
        pass


def one_line(value: Any) -> str:
    """A value someone typed (a case's title, a name, who acted), for one line of a listing: `printable`, and a line
    break written as \\n, so a title cannot clear the screen, recolour it or fake a line of the output."""
    return printable(str(value)).replace("\n", "\\n")


def printable(text: str) -> str:
    """`text` for a terminal: control characters (an escape sequence in a route's name, a NUL) written as their
    escapes, so a message quoting a file's text cannot move the cursor, recolour or clear the screen."""
    return "".join(c if c.isprintable() or c == "\n" else repr(c)[1:-1] for c in text)


if __name__ == "__main__":
    sys.exit(main())
