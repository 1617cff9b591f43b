"""The `carepath` command line.

Every command takes `--db URL` (or CAREPATH_DATABASE_URL; a SQLite file `carepath.db` by
default) and `--json` for output that scripts can read. Errors print what went wrong and
where, and exit non-zero: 1 for a refused request, 2 for bad usage.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from .bpmn_timers import add_duration
from .clock import parse_instant
from .errors import CarepathError, ConflictError

EXIT_REFUSED = 1
EXIT_USAGE = 2
EXIT_CONFLICT = 3


def parse_duration(text: str, start: datetime) -> timedelta:
    """ISO 8601 duration (P43D, P1Y2M, PT12H) from `start`, months and years by the calendar."""
    try:
        return add_duration(start, text) - start
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not an ISO 8601 duration such as P43D, P1Y or PT12H") from None


def _data_arg(args: argparse.Namespace) -> dict[str, Any]:
    if getattr(args, "data_file", None):
        raw = Path(args.data_file).read_text(encoding="utf-8")
    else:
        raw = getattr(args, "data", None) or "{}"
    try:
        data = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise CarepathError(f"--data is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}") from None
    if not isinstance(data, dict):
        raise CarepathError("--data must be a JSON object, e.g. '{\"name\": \"Harriet\"}'")
    return data


def _engine(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from .runtime import Engine

    return Engine(args.db)


def _out(args: argparse.Namespace, value: Any, text: str) -> None:
    if args.json:
        print(json.dumps(value, default=str, indent=2, sort_keys=True))
    else:
        print(text)


def _fmt_dt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M")
    return str(value)


# ---------------------------------------------------------------------------- commands
def cmd_init(args: argparse.Namespace) -> int:
    eng = _engine(args)
    start = parse_instant(args.simulated) if args.simulated else None
    eng.init(simulated_start=start)
    mode = eng.clock_mode()
    now = eng.now()
    _out(args, {"database": eng.db.safe_url, "clock": mode, "now": now.isoformat()},
         f"initialised {eng.db.safe_url} ({mode} clock, now {now.isoformat()})")
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
    lines = [f"{r.process_id} version {r.version}" + ("" if r.created else " (unchanged)") for r in refs]
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
        lines.append(f"  ready: {t['id']}  {t['name']}  [team {t['team'] or '-'}, form {t['form'] or '-'}, "
                     f"due {_fmt_dt(t['due_at'])}]")
    if res.started_instances:
        lines.append(f"  started instances: {', '.join(map(str, res.started_instances))}")
    if res.incident:
        lines.append(f"  INCIDENT {res.incident['id']} at {res.incident['element_id']}: {res.incident['message']}")
    return "\n".join(lines)


def cmd_tasks(args: argparse.Namespace) -> int:
    rows = _engine(args).list_tasks(case_id=args.case, team=args.team, assignee=args.assignee,
                                    process_id=args.process)
    lines = [f"{r['id']}  {r['reference']}  {r['name']:<32} team {r['team'] or '-':<18} "
             f"assignee {r['assignee'] or '-':<12} due {_fmt_dt(r['due_at'])}" for r in rows]
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
            moved = eng.advance_clock(to=parse_instant(args.to), actor=args.actor)
        else:
            moved = eng.advance_clock(parse_duration(args.duration, start), actor=args.actor)
        now = eng.now()
        _out(args, {"from": start.isoformat(), "now": now.isoformat(), "instances_moved": moved},
             f"clock {start.isoformat()} -> {now.isoformat()}; {moved} instance step(s) fired by timers")
        return 0
    now = eng.now()
    _out(args, {"mode": eng.clock_mode(), "now": now.isoformat(), "next_due": eng.next_due()},
         f"{eng.clock_mode()} clock: {now.isoformat()}; next timer due {_fmt_dt(eng.next_due())}")
    return 0


def cmd_history(args: argparse.Namespace) -> int:
    rows = _engine(args).history(args.case)
    lines = []
    for r in rows:
        d = r["data"]
        detail = d.get("name") or d.get("element_id") or d.get("process_id") or d.get("handler") or ""
        lines.append(f"#{r['seq']:<4} {r['at'][:19]}  {r['type']:<22} {detail:<30} by {r['actor']}")
    _out(args, rows, "\n".join(lines) or "no events")
    return 0


def cmd_audit(args: argparse.Namespace) -> int:
    anchor = None
    if args.against or args.public_key:
        from . import anchoring

        if not (args.against and args.public_key):
            raise argparse.ArgumentTypeError("--against HEADS_FILE needs --public-key PUB (and the other way round)")
        if args.case is not None:
            raise argparse.ArgumentTypeError("--against checks every chain: leave out --case")
        anchor = anchoring.read_heads_file(args.against, anchoring.load_public_key(args.public_key))
    eng = _engine(args)
    if anchor is not None:
        findings = anchoring.verify_against(eng, anchor)
        checked = eng.verify()[0]
    else:
        checked, findings = eng.verify(args.case)
    value = {"events_checked": checked, "intact": not findings, "findings": [str(f) for f in findings],
             "heads": eng.chain_heads()}
    if anchor is not None:
        value["against"] = {"file": args.against, "signed_at": anchor["signed_at"], "key_id": anchor["key_id"],
                            "chains": len(anchor["heads"])}
    if findings:
        text = f"ALTERED: {len(findings)} problem(s) in {checked} events\n" + "\n".join(f"  {f}" for f in findings)
    else:
        text = f"intact: {checked} events, every hash chain unbroken"
        if anchor is not None:
            text += (f"\nanchored: all {len(anchor['heads'])} chains hold the heads signed at {anchor['signed_at']} "
                     f"(key {anchor['key_id']}) and were not rewritten since")
    _out(args, value, text)
    return 0 if not findings else EXIT_REFUSED


def cmd_keygen(args: argparse.Namespace) -> int:
    from .anchoring import generate_keys, key_id, load_public_key

    private, public, pem = generate_keys(args.out, args.public_out)
    value = {"private_key": str(private), "public_key_file": str(public), "public_key": pem,
             "key_id": key_id(load_public_key(public))}
    _out(args, value, f"private key written to {private} (readable by you only; keep it off the database server)\n"
                      f"public key written to {public} (key {value['key_id']}):\n{pem.rstrip()}")
    return 0


def cmd_sign_heads(args: argparse.Namespace) -> int:
    from .anchoring import sign_heads

    doc = sign_heads(_engine(args), args.key, args.out)
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
    lines = [f"incident {r['id']}  instance {r['instance_id']}  at {r['element_id']}  "
             f"handler {r['handler'] or '-'}: {r['message']}" for r in rows]
    _out(args, rows, "\n".join(lines) or "no open incidents")
    return 0


def cmd_retry(args: argparse.Namespace) -> int:
    res = _engine(args).retry(args.instance, actor=args.actor)
    _out(args, res.to_dict(), _describe_step(res))
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
        text += "".join(f"\n  ready: {t['id']}  {t['name']}  [team {t['team'] or '-'}]" for t in res.ready_tasks)
    _out(args, res.to_dict(), text)
    return 0


def cmd_act(args: argparse.Namespace) -> int:
    """An action on a case from its record (api/case_actions.py), with the web app's role checks."""
    from api import case_actions

    eng = _engine(args)
    data = json.loads(args.data) if args.data else {}
    out = case_actions.cli_call(case_actions.act, eng, case_actions.cli_user(eng, args.actor), args.case,
                                args.action, data)
    _out(args, out, f"{args.action}: {out['process_id']} started (instance {out['instance_id']}); first task(s): "
                    + (", ".join(f"{t['name']} [{t['team']}]" for t in out["tasks"]) or "none"))
    return 0


def cmd_transition(args: argparse.Namespace) -> int:
    """A referral from children's services (api/transition.py), with the web app's checks and roles."""
    from api import case_actions, transition

    eng = _engine(args)
    data = json.loads(args.data) if args.data else {}
    out = case_actions.cli_call(transition.refer, eng, case_actions.cli_user(eng, args.actor), data, args.case)
    _out(args, out, f"referral from children's services: {out['reference']}, transition started (instance "
                    f"{out['instance_id']}); first task(s): "
                    + (", ".join(f"{t['name']} [{t['team']}]" for t in out["tasks"]) or "none"))
    return 0


def cmd_close(args: argparse.Namespace) -> int:
    """Close a case, or end one of its processes (--instance), with a reason (api/case_actions.py)."""
    from api import case_actions

    eng = _engine(args)
    details = json.loads(args.details) if args.details else {}
    out = case_actions.cli_call(case_actions.close, eng, case_actions.cli_user(eng, args.actor), args.case,
                                args.reason, details, args.instance)
    what = f"instance {args.instance} ended" if args.instance else f"case {args.case} closed"
    _out(args, out, f"{what} ({args.reason}): {len(out['cancelled_instances'])} process(es) ended, "
                    "their tasks and timers withdrawn")
    return 0


def cmd_case(args: argparse.Namespace) -> int:
    case = _engine(args).get_case(args.case)
    lines = [f"{case['reference']}  {case['title']}"]
    lines += [f"  instance {i['id']}  {i['process_id']:<28} {i['status']}" for i in case["instances"]]
    _out(args, case, "\n".join(lines))
    return 0


def cmd_cld(args: argparse.Namespace) -> int:
    """The Client Level Data return for a period, derived from every case's history (handlers/cld.py): the
    specification's CSV, what was withheld and why, the rows that could not be coded and (--check) the
    data-quality report. Bad input is a message on stderr and exit status 2."""
    from datetime import date

    from handlers import cld  # the return is about social care, not the engine: imported only here

    def refuse(message: str) -> int:
        print(f"carepath cld: {message}", file=sys.stderr)
        return 2

    dates = {}
    for flag, value in (("--from", args.start), ("--to", args.end)):
        try:
            dates[flag] = date.fromisoformat(value)
        except ValueError:
            return refuse(f"{flag} {value!r} is not a date: give it as YYYY-MM-DD, e.g. 2031-04-01")
    start, end = dates["--from"], dates["--to"]
    if end < start:
        return refuse(f"--to ({end}) is before --from ({start}): the period must end on or after its first day")
    rows = cld.cld_return(_engine(args), start, end, la_code=args.la_code)
    if not rows:
        held = f" ({len(rows.withheld)} still open, withheld)" if rows.withheld else ""
        return refuse(f"no events in the period {start} to {end}{held}: nothing to return; check the dates")
    if args.out:
        try:
            cld.write_cld_csv(rows, args.out)
        except OSError as exc:
            return refuse(f"cannot write {args.out}: {exc.strerror or exc}")
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["Event_Type"]] = counts.get(r["Event_Type"], 0) + 1
    summary = ", ".join(f"{n} {t}" for t, n in sorted(counts.items()))
    where = f"; written to {args.out}" if args.out else ""
    lines = [f"CLD return {start} to {end}: {len(rows)} rows ({summary}){where}"]
    if rows.withheld:
        lines.append(f"Withheld ({len(rows.withheld)}): events of the period not in the return")
        lines += [f"  {w['case_reference']}  {w['event_type']} from {w['event_start']}: {w['why']}"
                  for w in rows.withheld]
    if rows.problems:
        lines.append(f"Problems ({len(rows.problems)}): cells left empty because the value could not be coded")
        for p in rows.problems:
            value = "" if p["value"] is None else f" {p['value']!r}"
            lines.append(f"  {p['case_reference'] or '(the return)'}  {p['event'] or ''}  {p['field'] or ''}"
                         f"{value}: {p['why']}")
    report = None
    if args.check:
        from handlers import cld_quality

        report = cld_quality.quality_report(rows, rows.problems)
        lines.append(cld_quality.format_report(report))
    _out(args, {"from": str(start), "to": str(end), "rows": len(rows), "by_event_type": counts, "file": args.out,
                "withheld": rows.withheld, "problems": rows.problems, "quality": report}, "\n".join(lines))
    return 0


def cmd_measures(args: argparse.Namespace) -> int:
    """The published measures for a period, from every case's history (handlers/measures.py, docs/measures.md)."""
    from datetime import date

    from handlers import measures  # about social care, not the engine: imported only here

    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--from and --to are dates like 2031-04-01 ({exc})") from None
    if end < start:
        raise argparse.ArgumentTypeError(f"--to ({end}) is before --from ({start})")
    if args.team and args.team not in measures.TEAM_CHOICES:
        raise argparse.ArgumentTypeError(f"--team {args.team!r} is not a team: {', '.join(measures.TEAM_CHOICES)}")
    population = measures.load_population(_engine(args))
    results = measures.compute_all(population, start, end, args.team or None)
    lines = [f"Measures {start} to {end}" + (f", team {args.team}" if args.team else "")]
    if population.cld_errors:
        lines.append(f"{len(population.cld_errors)} case(s) left out of the CLD-based measures: "
                     + "; ".join(population.cld_errors.values()))
    for r in results:
        if r.not_recorded:
            shown = f"not recorded ({r.not_recorded})"
        elif r.figure is None:
            shown = r.message or "none"
        else:
            unit = {"%": "%", "days": " days"}.get(r.unit, "")
            shown = f"{r.figure}{unit}"
            if r.denominator is not None:
                shown += f" ({r.numerator} of {r.denominator})"
        lines.append(f"- {r.title}: {shown}")
        for p in r.parts:
            if p.count:
                lines.append(f"    {p.label}: {p.count}")
    if all(not r.items for r in results):
        lines.append("No events in this period: every count is zero and no rate can be given.")
    value = {"from": str(start), "to": str(end), "team": args.team or None,
             "cases_left_out": {population.reference(c): why for c, why in population.cld_errors.items()},
             "measures": [{**r.as_dict(), "definition": measures.MEASURES[r.key].definition,
                           "source": measures.MEASURES[r.key].source,
                           "cases": [population.reference(c) for c in r.case_ids]} for r in results]}
    for m in value["measures"]:
        for part in m["parts"]:
            part["cases"] = [population.reference(c) for c in part.pop("case_ids")]
        m.pop("case_ids")
    _out(args, value, "\n".join(lines))
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


def cmd_serve(args: argparse.Namespace) -> int:
    from .server import serve
    from .worker import heads_settings

    if not args.no_timers:
        heads_settings()  # a bad CAREPATH_HEADS_* setting stops here with its message, before the server starts
    serve(args.db, host=args.host, port=args.port, timers=not args.no_timers)
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    # the pack is built by the web layer (api/evidence.py: the same checks, log and PDF as the page),
    # imported only here, as `serve` imports the app: the engine itself knows nothing of it
    from api.evidence import export_to_file

    path, pack = export_to_file(_engine(args), args.case, args.actor, args.reason, args.out)
    _out(args, {"file": path, "files": sorted(pack.files)}, f"evidence pack written to {path}")
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import heads_settings, run_worker

    heads_settings()  # checked before the worker starts (CAREPATH_HEADS_KEY, _DIR, _INTERVAL)
    run_worker(args.db, interval=args.interval, once=args.once)
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--db", help="database URL (default: CAREPATH_DATABASE_URL or sqlite:///carepath.db)")
    common.add_argument("--json", action="store_true", help="machine-readable output")
    common.add_argument("--as", dest="actor", default="cli", help="who is acting (recorded in the history)")

    p = argparse.ArgumentParser(prog="carepath", description=__doc__.splitlines()[0], parents=[common])
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("init", parents=[common], help="create or upgrade the database")
    s.add_argument("--simulated", metavar="START", help="use a simulated clock starting at this ISO instant")
    s.set_defaults(fn=cmd_init)

    s = sub.add_parser("deploy", parents=[common], help="deploy BPMN/DMN files or folders as new versions")
    s.add_argument("paths", nargs="+")
    s.add_argument("--note", help="change note recorded with the new versions (who: --as, author and approver)")
    s.add_argument("--strict", action="store_true", help="refuse while the diagrams have any lint warning")
    s.set_defaults(fn=cmd_deploy)

    s = sub.add_parser("start", parents=[common], help="start a process for a case")
    s.add_argument("process")
    s.add_argument("--case", type=int, help="existing case id (default: a new case)")
    s.add_argument("--title", help="title of a new case (the person's name)")
    s.add_argument("--version", type=int, help="process version (default: latest)")
    s.add_argument("--data", help="initial data as a JSON object")
    s.add_argument("--data-file", help="initial data from a JSON file")
    s.set_defaults(fn=cmd_start)

    s = sub.add_parser("tasks", parents=[common], help="list open user tasks")
    s.add_argument("--case", type=int)
    s.add_argument("--team")
    s.add_argument("--assignee")
    s.add_argument("--process")
    s.set_defaults(fn=cmd_tasks)

    s = sub.add_parser("complete", parents=[common], help="complete a user task with form data")
    s.add_argument("task")
    s.add_argument("--data", help="form data as a JSON object")
    s.add_argument("--data-file")
    s.add_argument("--revision", type=int, help="refuse if the task changed since this revision")
    s.set_defaults(fn=cmd_complete)

    s = sub.add_parser("claim", parents=[common], help="claim a task for the acting user (--as)")
    s.add_argument("task")
    s.set_defaults(fn=cmd_claim)

    s = sub.add_parser("clock", parents=[common], help="show or advance the clock")
    csub = s.add_subparsers(dest="clock_cmd")
    a = csub.add_parser("advance", parents=[common], help="advance a simulated clock, firing due timers")
    a.add_argument("duration", nargs="?", help="ISO 8601 duration, e.g. P43D")
    a.add_argument("--to", help="advance to this ISO instant instead")
    s.set_defaults(fn=cmd_clock)

    s = sub.add_parser("history", parents=[common], help="a case's history events")
    s.add_argument("case", type=int)
    s.set_defaults(fn=cmd_history)

    s = sub.add_parser("audit", parents=[common], help="audit the history")
    asub = s.add_subparsers(dest="audit_cmd", required=True)
    v = asub.add_parser("verify", parents=[common], help="check every hash chain; exit 1 if altered")
    v.add_argument("--case", type=int)
    v.add_argument("--against", metavar="HEADS_FILE",
                   help="also check the history was not rewritten since this signed heads file")
    v.add_argument("--public-key", metavar="PUB", help="the public key the heads file is checked with")
    v.set_defaults(fn=cmd_audit)
    k = asub.add_parser("keygen", parents=[common], help="make an Ed25519 key pair for signing heads files")
    k.add_argument("--out", required=True, metavar="KEY", help="the private key file to create (mode 0600)")
    k.add_argument("--public-out", metavar="PUB", help="the public key file (default: KEY.pub)")
    k.set_defaults(fn=cmd_keygen)
    h = asub.add_parser("sign-heads", parents=[common], help="write every chain's head, signed, to a new file")
    h.add_argument("--key", required=True, metavar="KEY", help="the private key file (never in the database)")
    h.add_argument("--out", required=True, metavar="FILE", help="the heads file to create")
    h.set_defaults(fn=cmd_sign_heads)

    s = sub.add_parser("replay", parents=[common], help="re-execute a case from its history and compare")
    s.add_argument("case", type=int)
    s.set_defaults(fn=cmd_replay)

    s = sub.add_parser("incidents", parents=[common], help="list handler failures and other incidents")
    s.add_argument("--all", action="store_true", help="include resolved ones")
    s.set_defaults(fn=cmd_incidents)

    s = sub.add_parser("retry", parents=[common], help="re-run what failed in an instance in error")
    s.add_argument("instance", type=int)
    s.set_defaults(fn=cmd_retry)

    s = sub.add_parser("suspend", parents=[common], help="pause a process instance: its timers stop (--as USER)")
    s.add_argument("instance", type=int)
    s.add_argument("--reason", required=True, help="why it is paused (kept in the history)")
    s.set_defaults(fn=cmd_suspend)

    s = sub.add_parser("resume", parents=[common],
                       help="resume a suspended instance with its timers' remaining time, or end it (--as USER)")
    s.add_argument("instance", type=int)
    s.add_argument("--mode", choices=("remaining", "end"), default="remaining")
    s.add_argument("--reason", help="why (kept in the history)")
    s.add_argument("--then-start", metavar="PROCESS",
                   help="with --mode end: start this process for the case in the same step")
    s.add_argument("--then-version", type=int, help="its version (default: latest)")
    s.add_argument("--data", help="its start data as a JSON object")
    s.add_argument("--data-file", help="its start data from a JSON file")
    s.set_defaults(fn=cmd_resume)

    s = sub.add_parser("act", parents=[common], help="act on a case: safeguarding, review, carers_assessment, "
                       "dp_review, hospital_discharge, change_in_circumstances (--as USER)")
    s.add_argument("case", type=int)
    s.add_argument("action")
    s.add_argument("--data", help="the answers as a JSON object (the fields of the web form)")
    s.set_defaults(fn=cmd_act)

    s = sub.add_parser("transition", parents=[common], help="record a referral from children's services for a "
                       "young person aged 14 to 17 (--as USER)")
    s.add_argument("--data", help="the referral as a JSON object: name, date_of_birth (YYYY-MM-DD), address, "
                   "postcode, ehc_plan (yes/no), likely_needs, childrens_social_worker, childrens_team, "
                   "childrens_phone")
    s.add_argument("--case", type=int, help="make the referral on this existing case (else a new case)")
    s.set_defaults(fn=cmd_transition)

    s = sub.add_parser("close", parents=[common], help="close a case, or end one process (--instance), with a "
                       "reason: died, moved_away, declined, nhs_funded, no_longer_needed (--as USER)")
    s.add_argument("case", type=int)
    s.add_argument("--reason", required=True)
    s.add_argument("--details", help='JSON, e.g. {"date_of_death": "2031-03-02"} or {"council": "Southshire"}')
    s.add_argument("--instance", type=int, help="end only this process instance of the case")
    s.set_defaults(fn=cmd_close)

    s = sub.add_parser("case", parents=[common], help="show a case and its process instances")
    s.add_argument("case", type=int)
    s.set_defaults(fn=cmd_case)

    s = sub.add_parser("cld", parents=[common], help="the Client Level Data return for a period (CSV)")
    s.add_argument("--from", dest="start", required=True, help="first day, e.g. 2031-04-01")
    s.add_argument("--to", dest="end", required=True, help="last day, e.g. 2031-06-30")
    s.add_argument("--out", help="write the rows to this CSV file")
    s.add_argument("--la-code", dest="la_code", help="the council's LA code (default: council.json la_code)")
    s.add_argument("--check", action="store_true", help="print the data-quality report before submission")
    s.set_defaults(fn=cmd_cld)

    s = sub.add_parser("measures", parents=[common], help="the published measures for a period (docs/measures.md)")
    s.add_argument("--from", dest="start", required=True, help="first day, e.g. 2031-04-01")
    s.add_argument("--to", dest="end", required=True, help="last day, e.g. 2032-03-31")
    s.add_argument("--team", help="only the work of this team (e.g. reablement)")
    s.set_defaults(fn=cmd_measures)

    s = sub.add_parser("migrate", parents=[common],
                       help="move a process's open cases to another version (--dry-run first)")
    s.add_argument("process")
    s.add_argument("--from", dest="from_version", type=int, required=True, help="the version the cases are on")
    s.add_argument("--to", dest="to_version", type=int, required=True, help="the version to move them to")
    s.add_argument("--dry-run", action="store_true", help="say which cases can move and why not; change nothing")
    s.add_argument("--case", action="append", help="only this case (id or reference); repeat for more")
    s.add_argument("--map", action="append", metavar="OLD=NEW", help="an element renamed or replaced in the target")
    timers = s.add_mutually_exclusive_group()
    timers.add_argument("--keep-timers", action="store_true",
                        help="waiting timers whose definition changed keep their due dates")
    timers.add_argument("--recompute-timers", action="store_true",
                        help="waiting timers whose definition changed are worked out again from when they started")
    s.add_argument("--reason", help="why the cases are moved (required to move; kept in each case's history)")
    s.add_argument("--batch", type=int, default=100, help="cases read per batch (each moves in its own transaction)")
    s.set_defaults(fn=cmd_migrate)

    s = sub.add_parser("serve", parents=[common], help="run the web server (and the timer job)")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8000)
    s.add_argument("--no-timers", action="store_true", help="do not fire timers in this process")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("evidence", parents=[common],
                       help="export a case's evidence pack (zip: PDF, history, chain heads, SHA-256 manifest)")
    s.add_argument("case", help="the case's reference (CASE-000123) or id")
    s.add_argument("--reason", required=True, help="why it is exported (recorded in the case's access log)")
    s.add_argument("--out", help="the zip to write (default: evidence-CASE-...-YYYYMMDD.zip here)")
    s.set_defaults(fn=cmd_evidence)

    s = sub.add_parser("worker", parents=[common], help="fire due timers (run one or several)")
    s.add_argument("--interval", type=float, default=1.0, help="seconds between scans")
    s.add_argument("--once", action="store_true", help="fire what is due now and exit")
    s.set_defaults(fn=cmd_worker)

    add_message_command(sub, common)
    return p


def add_message_command(sub: Any, common: argparse.ArgumentParser) -> None:
    """`carepath message NAME --case … --correlation … --data … --key …` (engine/messages.py)."""
    s = sub.add_parser("message", parents=[common], help="deliver a message to a case by name (once per --key)")
    s.add_argument("name", help="the message's name, as in the diagram's <message name=…>")
    s.add_argument("--case", help="the case: its number or reference (CASE-000007); without it the message may "
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
        lines += [f"  ready: {t['id']}  {t['name']}  [team {t['team'] or '-'}]" for st in res.steps
                  for t in st.ready_tasks]
        _out(args, res.to_dict(), "\n".join(lines))
        return 0

    s.set_defaults(fn=cmd_message)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "clock" and args.clock_cmd == "advance" and not (args.duration or args.to):
        parser.error("clock advance needs a duration (e.g. P43D) or --to INSTANT")
    try:
        return int(args.fn(args) or 0)
    except argparse.ArgumentTypeError as exc:
        print(f"carepath: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except CarepathError as exc:
        if args.json:
            print(json.dumps(exc.to_dict(), default=str, indent=2), file=sys.stderr)
        else:
            print(f"carepath: {exc}", file=sys.stderr)
        return EXIT_CONFLICT if isinstance(exc, ConflictError) else EXIT_REFUSED


if __name__ == "__main__":
    sys.exit(main())
