"""The installed `carepath` command: the engine's commands (engine/cli.py) and the ones about social care
and the web, which the engine knows nothing of.

`act`, `transition` and `close` act on a case with the web app's checks and roles (api/case_actions.py,
api/transition.py); `cld` and `measures` report from every case's history (handlers/cld.py,
handlers/measures.py); `evidence` exports a case's evidence pack (api/evidence.py); `subject-access` exports
everything held about a person (api/subject_access.py); `user` deactivates or
reactivates an account as the admin page does (api/admin.py); `serve` runs the web app with the timer job
(carepath/server.py); `backup` and `restore` copy the whole database to a file and back, and verify what
was restored (carepath/backup.py, docs/operations.md); `simulate` runs synthetic contacts through the
deployed processes on a throwaway simulated-clock database (carepath/simulate.py, docs/simulation.md), or
compares a draft with the live versions that way (`--compare-draft`, carepath/simulate_compare.py).
Everything else, with the global options, the messages and the exit statuses, is engine/cli.py's.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from engine import cli as engine_cli
from engine.cli import _engine, _out, case_arg, common_options, one_line, subcommands


def cmd_act(args: argparse.Namespace) -> int:
    """An action on a case from its record (api/case_actions.py), with the web app's role checks."""
    from api import case_actions

    eng = _engine(args)
    data = json.loads(args.data) if args.data else {}
    out = case_actions.cli_call(case_actions.act, eng, case_actions.cli_user(eng, args.actor), args.case,
                                args.action, data)
    _out(args, out, f"{args.action}: {out['process_id']} started (instance {out['instance_id']}); first task(s): "
                    + (", ".join(f"{one_line(t['name'])} [{one_line(t['team'])}]" for t in out["tasks"]) or "none"))
    return 0


def cmd_transition(args: argparse.Namespace) -> int:
    """A referral from children's services (api/transition.py), with the web app's checks and roles."""
    from api import case_actions, transition

    eng = _engine(args)
    data = json.loads(args.data) if args.data else {}
    out = case_actions.cli_call(transition.refer, eng, case_actions.cli_user(eng, args.actor), data, args.case)
    _out(args, out, f"referral from children's services: {out['reference']}, transition started (instance "
                    f"{out['instance_id']}); first task(s): "
                    + (", ".join(f"{one_line(t['name'])} [{one_line(t['team'])}]" for t in out["tasks"]) or "none"))
    return 0


def cmd_user(args: argparse.Namespace) -> int:
    """Deactivate or reactivate an account, as an administrator (--as), through the admin page's own function
    (api/admin.py `change`: audited as `user.changed`; deactivating ends the account's sessions)."""
    from api import admin, case_actions
    from engine.errors import CarepathError

    eng = _engine(args)
    actor = case_actions.cli_user(eng, args.actor)
    if not actor.has(admin.ADMIN):
        raise CarepathError(f"refused: only an administrator can {args.action} an account")
    out = case_actions.cli_call(lambda: admin.change(eng, actor, args.username, active=args.action == "reactivate"))
    _out(args, out, f"{args.username}: {'active' if out['active'] else 'deactivated, their sessions ended'}")
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


def cmd_retention(args: argparse.Namespace) -> int:
    """The retention list (handlers/retention.py): `due` lists what falls due now (and adds it to the list the
    administrators approve from), `erase` erases one due case, as an administrator (--as), as /admin/retention."""
    from api import admin, case_actions
    from engine.errors import CarepathError
    from handlers import retention

    eng = _engine(args)
    if args.action == "due":
        added = retention.list_due(eng)
        rows = [{k: r[k] for k in ("case_id", "reference", "rule", "closed_at", "due_on", "status")}
                for r in retention.reviews(eng, status="due")]
        lines = [f"{r['reference']}: closed {r['closed_at'][:10]}, due for erasure since {r['due_on']} ({r['rule']})"
                 for r in rows]
        _out(args, {"added": added, "due": rows}, "\n".join(lines) or "nothing is due for erasure")
        return 0
    if args.case is None:
        raise CarepathError("erase needs --case: the case to erase (its number or reference)")
    actor = case_actions.cli_user(eng, args.actor)
    if not actor.has(admin.ADMIN):
        raise CarepathError("refused: only an administrator can approve an erasure")
    out = retention.erase(eng, args.case, actor=actor.username)
    _out(args, out, f"case {args.case} erased under rule {out['rule']}: {out['events_erased']} events' data "
                    "destroyed; its history still verifies (carepath audit verify)")
    return 0


def cmd_cld(args: argparse.Namespace) -> int:
    """The Client Level Data return for a period, derived from every case's history (handlers/cld.py): the
    specification's CSV, what was withheld and why, the rows that could not be coded and (--check) the
    data-quality report. Bad input is a message on stderr and exit status 2."""
    from datetime import date

    from handlers import cld

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
    engine = _engine(args)
    user = None
    if args.out:  # the file is bulk personal data: the same people as the download page, and the same access log
        from api import case_actions, cld_returns
        from engine.errors import NotFoundError

        who = "a user who sends the returns (performance) or a team manager"
        try:
            user = case_actions.cli_user(engine, args.actor)
        except NotFoundError:
            return refuse(f"--out writes every person's NHS number and date of birth: name yourself with --as, {who} "
                          f"({args.actor!r} is not an active user); nothing was written")
        if not cld_returns.may_send(user):
            return refuse(f"--out writes every person's NHS number and date of birth: only {who} may write it "
                          f"({args.actor!r} is not one); nothing was written")
    rows = cld.cld_return(engine, start, end, la_code=args.la_code)
    if not rows:
        held = f" ({len(rows.withheld)} still open, withheld)" if rows.withheld else ""
        return refuse(f"no events in the period {start} to {end}{held}: nothing to return; check the dates")
    if args.out:
        try:
            cld.write_cld_csv(rows, args.out)
        except OSError as exc:
            return refuse(f"cannot write {args.out}: {exc.strerror or exc}")
        # one line in the access log of each case in the file, as a download from the page
        cld_returns.log_download(engine, user, cld_returns.Return(start, end, list(rows)), "carepath cld")
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

    from handlers import measures

    try:
        start, end = date.fromisoformat(args.start), date.fromisoformat(args.end)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--from and --to are dates like 2031-04-01 ({exc})") from None
    if end < start:
        raise argparse.ArgumentTypeError(f"--to ({end}) is before --from ({start})")
    if args.team and args.team not in measures.TEAM_CHOICES:
        raise argparse.ArgumentTypeError(f"--team {args.team!r} is not a team: {', '.join(measures.TEAM_CHOICES)}")
    population = measures.load_population(_engine(args))
    results = measures.kept_results(population, start, end, args.team or None)
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


def cmd_simulate(args: argparse.Namespace) -> int:
    """A what-if run of synthetic contacts through the deployed processes on a throwaway simulated-clock
    database (carepath/simulate.py, docs/simulation.md). `--db` is only read: the processes deployed there and,
    with --from-live, its open cases (carepath/simulate_today.py)."""
    from engine.errors import StateError, ValidationError

    from . import simulate

    if args.seeds is not None and args.compare_draft is None:
        raise ValidationError("--seeds is for --compare-draft (how many seeds each version is run with); one run takes "
                              "--seed")
    if args.scenario is not None and not args.scenario.strip():
        raise ValidationError("--scenario names a scenario file; leave it out for the default "
                              "(processes/config/simulation.yaml)")
    scenario = simulate.load_scenario(args.scenario)
    named = args.db
    copy = _unchanged_source(args)
    try:
        return _simulate(args, scenario)
    except StateError as exc:
        if copy is None:
            raise
        # said of the database the user named, not of the copy it was read from
        raise StateError(str(exc).replace(args.db, named or "the database")) from None
    finally:
        if copy is not None:
            made = getattr(args, "_engine_made", None)
            if made is not None:
                made.db.dispose()
            copy.cleanup()


def _unchanged_source(args: argparse.Namespace) -> Any:
    """A SQLite `--db` that is not in WAL mode is read from a copy (a TemporaryDirectory, returned; `args.db` is
    pointed at the copy): opening it as carepath opens a database would switch it to WAL, a write, and a simulation
    never writes to the live database. A WAL database (as `carepath init` and the server leave it) is read where it
    is. None when nothing was copied."""
    import sqlite3
    import tempfile
    from pathlib import Path
    from urllib.request import pathname2url

    from engine.errors import StateError
    path = _sqlite_file(args.db)  # a URL that is not one: _engine says what is wrong with it
    if path is None or not path.is_file():
        return None
    with path.open("rb") as f:
        head = f.read(20)
    if head[:16] == b"SQLite format 3\x00" and head[18:20] == b"\x02\x02":  # WAL: read in place
        return None
    tmp = tempfile.TemporaryDirectory(prefix="carepath-simulate-source-")
    copy = Path(tmp.name) / "source.db"
    try:
        src = sqlite3.connect(f"file:{pathname2url(str(path.resolve()))}?mode=ro", uri=True)
        try:
            dst = sqlite3.connect(copy)
            try:
                src.backup(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        tmp.cleanup()
        raise StateError(f"cannot reach the database {args.db or path}: {exc}") from None
    args.db = f"sqlite:///{copy}"
    return tmp


def _simulate(args: argparse.Namespace, scenario: Any) -> int:
    from engine.errors import StateError, ValidationError

    from . import simulate
    from .simulate_compare import workers_default

    if args.compare_draft is not None:
        return _compare_draft(args, scenario)
    try:
        source = _engine(args)
    except StateError:
        if args.from_live or not _no_sqlite_file(args.db):
            # starting from today's cases needs the live database, and a database that is there (or a server) but
            # cannot be read or reached is an error, not a run of other diagrams: its message says why
            raise
        source = None  # no database file: the diagrams in processes/
    if args.processes is not None and args.processes not in (1, 2):
        raise ValidationError(f"--processes must be 1 or 2, not {args.processes}")
    parts = args.processes if args.processes is not None else min(2, workers_default())
    out = simulate.simulate(scenario, source=source, days=args.days, seed=args.seed, from_live=args.from_live,
                            parts=parts)
    from . import simulate_today

    _out(args, out, simulate.summary_text(out) + simulate_today.summary_text(out))
    return 0


def _sqlite_file(db: str | None) -> Any:
    """The SQLite file (a Path) that `db` (or the setting, or the default) names, or None: another database, an
    in-memory or URI one, or a URL that is not one."""
    from pathlib import Path

    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from engine.db import resolve_url
    try:
        url = make_url(resolve_url(db))
    except ArgumentError:
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return None
    return Path(url.database)


def _no_sqlite_file(db: str | None) -> bool:
    """`db` (or the setting, or the default) names a SQLite file that is not there."""
    path = _sqlite_file(db)
    return path is not None and not path.exists()


def _compare_draft(args: argparse.Namespace, scenario: Any) -> int:
    """`simulate --compare-draft ID`: the live versions on `--db` against a draft of it, on the same caseload for
    `--seeds` seeds (carepath/simulate_compare.py, docs/simulation.md "Comparing a draft"); with --from-live every
    run starts from one anonymised copy of the live database's open cases."""
    from engine import drafts
    from engine.errors import ValidationError

    from . import simulate_compare

    if args.seeds is None:
        args.seeds = 3
    if not 2 <= args.seeds <= simulate_compare.MAX_SEEDS:
        raise ValidationError(f"--seeds must be from 2 to {simulate_compare.MAX_SEEDS} (the spread needs two runs "
                              f"at least), not {args.seeds}")
    live = _engine(args)  # the draft is in the database: without one there is nothing to compare
    draft = drafts.get_draft(live, args.compare_draft)
    first = args.seed if args.seed is not None else scenario.data.get("seed", 1)
    if not isinstance(first, int) or isinstance(first, bool):
        raise ValidationError(f"the scenario's seed must be a whole number, not {first!r}")
    out = simulate_compare.compare(scenario, live, draft, seeds=list(range(first, first + args.seeds)),
                                   days=args.days, from_live=args.from_live)
    _out(args, out, simulate_compare.compare_text(out))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from engine.worker import heads_settings

    from .server import serve

    if not args.no_timers:
        heads_settings()  # a bad CAREPATH_HEADS_* setting stops here with its message, before the server starts
    serve(_engine(args), host=args.host, port=args.port, timers=not args.no_timers)
    return 0


def cmd_evidence(args: argparse.Namespace) -> int:
    # the pack is built by the web layer (api/evidence.py: the same checks, log and PDF as the page)
    from api.evidence import export_to_file

    path, pack = export_to_file(_engine(args), str(args.case), args.actor, args.reason, args.out)
    _out(args, {"file": path, "files": sorted(pack.files)}, f"evidence pack written to {path}")
    return 0


def cmd_subject_access(args: argparse.Namespace) -> int:
    # built by the web layer (api/subject_access.py: the same check, history event, access log and PDF as the page)
    from api.case_actions import cli_call
    from api.subject_access import export_to_dir

    files = cli_call(export_to_dir, _engine(args), str(args.person), args.actor, args.reason, args.out)
    _out(args, {"files": files}, "subject access export written to " + " and ".join(files))
    return 0


def wall_clock() -> Any:
    """The wall clock, read here in the house (never in engine/ or handlers/)."""
    from datetime import datetime, timezone

    return datetime.now(timezone.utc)


def cmd_backup(args: argparse.Namespace) -> int:
    """The whole database into a new backup file (carepath/backup.py). A file that cannot be written is exit 2."""
    from . import backup

    now = wall_clock()  # read once: the default file name and the manifest give the same instant
    out = args.out
    if out is None:
        out = f"carepath-backup-{now:%Y%m%dT%H%M%SZ}.tar"
    try:
        manifest = backup.backup(args.db, out, now=now)
    except backup.BackupFileError as exc:
        print(f"carepath backup: {exc}", file=sys.stderr)
        return engine_cli.EXIT_USAGE
    except backup.BackupFailed as exc:
        print(f"carepath backup: {exc}", file=sys.stderr)
        return engine_cli.EXIT_REFUSED
    value = {"file": str(out), **{k: v for k, v in manifest.items() if k != "chains"},
             "chains": len(manifest["chains"])}
    _out(args, value, f"backup of the {manifest['kind']} database written to {out}: {manifest['events']} events, "
                      f"{manifest['cases']} cases, {len(manifest['chains'])} chains, schema "
                      f"{manifest['migration_head']}, {manifest['payload']['bytes']} bytes "
                      f"(SHA-256 {manifest['payload']['sha256'][:16]}...)")
    return 0


def cmd_restore(args: argparse.Namespace) -> int:
    """A backup file into the database named by --db, then its verification (carepath/backup.py).

    Exit 2: the file is missing, truncated, altered, foreign or from a newer carepath (nothing touched);
    1: the target is not empty (without --force), a database tool failed, or the restored database does
    not verify."""
    from . import backup

    try:
        report = backup.restore(args.file, args.db, force=args.force, sample=args.replay)
    except backup.BackupFileError as exc:
        print(f"carepath restore: {exc}; nothing was changed", file=sys.stderr)
        return engine_cli.EXIT_USAGE
    except backup.RestoreRefused as exc:
        print(f"carepath restore: {exc}; nothing was changed", file=sys.stderr)
        return engine_cli.EXIT_REFUSED
    except backup.BackupFailed as exc:
        print(f"carepath restore: {exc}", file=sys.stderr)
        return engine_cli.EXIT_REFUSED
    _out(args, report.to_dict(), str(report))
    if not report.ok:
        print("carepath restore: the restored database FAILED verification (see above)", file=sys.stderr)
        return engine_cli.EXIT_REFUSED
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The engine's parser with this house's commands added."""
    p = engine_cli.build_parser()
    p.description = "carepath: adult social care cases run on BPMN diagrams (`carepath COMMAND --help` for one)"
    sub = subcommands(p)
    common = common_options()

    s = sub.add_parser("act", parents=[common], help="act on a case: safeguarding, review, carers_assessment, "
                       "dp_review, hospital_discharge, change_in_circumstances (--as USER)")
    s.add_argument("case", type=case_arg, help="the case: its number (7) or reference (CASE-000007)")
    s.add_argument("action", help="safeguarding, review, carers_assessment, dp_review, hospital_discharge or "
                   "change_in_circumstances")
    s.add_argument("--data", help="the answers as a JSON object (the fields of the web form)")
    s.set_defaults(fn=cmd_act)

    s = sub.add_parser("transition", parents=[common], help="record a referral from children's services for a "
                       "young person aged 14 to 17 (--as USER)")
    s.add_argument("--data", help="the referral as a JSON object: name, date_of_birth (YYYY-MM-DD), address, "
                   "postcode, ehc_plan (yes/no), likely_needs, childrens_social_worker, childrens_team, "
                   "childrens_phone")
    s.add_argument("--case", type=case_arg, help="make the referral on this existing case: its number (7) or "
                   "reference (CASE-000007); default: a new case")
    s.set_defaults(fn=cmd_transition)

    s = sub.add_parser("close", parents=[common], help="close a case, or end one process (--instance), with a "
                       "reason: died, moved_away, declined, nhs_funded, no_longer_needed (--as USER)")
    s.add_argument("case", type=case_arg, help="the case: its number (7) or reference (CASE-000007)")
    s.add_argument("--reason", required=True, help="died, moved_away, declined, nhs_funded or no_longer_needed")
    s.add_argument("--details", help='JSON, e.g. {"date_of_death": "2031-03-02"} or {"council": "Southshire"}')
    s.add_argument("--instance", type=int, help="end only this process instance of the case")
    s.set_defaults(fn=cmd_close)

    s = sub.add_parser("user", parents=[common], help="deactivate or reactivate a user's account (--as an "
                                                      "administrator; audited, as on the admin page)")
    s.add_argument("action", choices=["deactivate", "reactivate"],
                   help="deactivate (their sessions end at once) or reactivate the account")
    s.add_argument("username", help="the account's username")
    s.set_defaults(fn=cmd_user)

    s = sub.add_parser("retention", parents=[common], help="cases whose retention period has ended: list them "
                       "(due) or erase one (erase --case ID --as an administrator)")
    s.add_argument("action", choices=["due", "erase"], help="due: list (and add to the approval list) what falls "
                   "due; erase: erase one due case")
    s.add_argument("--case", type=case_arg, help="the case to erase: its number (7) or reference (CASE-000007)")
    s.set_defaults(fn=cmd_retention)

    s = sub.add_parser("cld", parents=[common], help="the Client Level Data return for a period (CSV)")
    s.add_argument("--from", dest="start", required=True, help="first day, e.g. 2031-04-01")
    s.add_argument("--to", dest="end", required=True, help="last day, e.g. 2031-06-30")
    s.add_argument("--out", help="write the rows to this CSV file (personal data: --as a performance user or a team "
                                 "manager; recorded in each case's access log)")
    s.add_argument("--la-code", dest="la_code", help="the council's LA code (default: council.json la_code)")
    s.add_argument("--check", action="store_true", help="print the data-quality report before submission")
    s.set_defaults(fn=cmd_cld)

    s = sub.add_parser("measures", parents=[common], help="the published measures for a period (docs/measures.md)")
    s.add_argument("--from", dest="start", required=True, help="first day, e.g. 2031-04-01")
    s.add_argument("--to", dest="end", required=True, help="last day, e.g. 2032-03-31")
    s.add_argument("--team", help="only the work of this team (e.g. reablement)")
    s.set_defaults(fn=cmd_measures)

    s = sub.add_parser("simulate", parents=[common], help="what-if: run synthetic contacts through the deployed "
                       "processes on a throwaway simulated clock (docs/simulation.md)")
    s.add_argument("--scenario", metavar="FILE", help="scenario file (default processes/config/simulation.yaml)")
    s.add_argument("--days", type=int, help="days to simulate (default: the scenario's)")
    s.add_argument("--seed", type=int, help="random seed (default: the scenario's); with --compare-draft, the "
                   "first of the seeds")
    s.add_argument("--compare-draft", dest="compare_draft", type=int, metavar="DRAFT_ID",
                   help="run the live versions and this draft on the same caseload and compare them")
    s.add_argument("--seeds", type=int, help="with --compare-draft: how many seeds to run each "
                   "version with (default 3)")
    s.add_argument("--processes", type=int, metavar="N", help="1 or 2: share one run's cases between this many "
                   "processes, each on a core (default: 2 where there are two cores; the output is the same either "
                   "way; a run --from-live stays in one)")
    s.add_argument("--from-live", action="store_true", help="start from an anonymised copy of the open cases on "
                   "--db (their tasks and timers), at its clock's now; --db is only read. With --compare-draft, "
                   "every run of both versions starts from one such copy")
    s.set_defaults(fn=cmd_simulate)

    s = sub.add_parser("serve", parents=[common], help="run the web server (and the timer job)")
    s.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: 127.0.0.1)")
    s.add_argument("--port", type=int, default=8000, help="the port to listen on (default: 8000)")
    s.add_argument("--no-timers", action="store_true", help="do not fire timers in this process")
    s.set_defaults(fn=cmd_serve)

    s = sub.add_parser("evidence", parents=[common],
                       help="export a case's evidence pack (zip: PDF, history, chain heads, SHA-256 manifest)")
    s.add_argument("case", type=case_arg, help="the case: its number (7) or reference (CASE-000007)")
    s.add_argument("--reason", required=True, help="why it is exported (recorded in the case's access log)")
    s.add_argument("--out", help="the zip to write (default: evidence-CASE-...-YYYYMMDD.zip here)")
    s.set_defaults(fn=cmd_evidence)

    s = sub.add_parser("subject-access", parents=[common],
                       help="export everything held about a person (PDF and JSON) for a subject access request")
    s.add_argument("--person", type=case_arg, required=True,
                   help="one of the person's cases: its number (7) or reference (CASE-000007); their other cases "
                        "with the same NHS number are included")
    s.add_argument("--reason", required=True, help="the request's reference (recorded in each case's access log)")
    s.add_argument("--out", required=True, help="the folder to write the PDF and the JSON file to")
    s.set_defaults(fn=cmd_subject_access)

    s = sub.add_parser("backup", parents=[common], help="back up the whole database (--db) to a new file: "
                       "SQLite's online backup or pg_dump, with a manifest (docs/operations.md)")
    s.add_argument("--out", help="the backup file to create (default: carepath-backup-YYYYMMDDTHHMMSSZ.tar here); "
                   "never overwritten")
    s.set_defaults(fn=cmd_backup)

    s = sub.add_parser("restore", parents=[common], help="restore a backup file into the database (--db), then "
                       "verify every chain and replay a sample of cases")
    s.add_argument("file", help="the backup file, as `carepath backup` wrote it")
    s.add_argument("--force", action="store_true", help="overwrite a target database that is not empty")
    s.add_argument("--replay", type=int, default=20, metavar="N",
                   help="how many cases to replay after the restore, spread over the case numbers (default: 20)")
    s.set_defaults(fn=cmd_restore)

    return p


def main(argv: list[str] | None = None) -> int:
    return engine_cli.main(argv, parser=build_parser())


if __name__ == "__main__":
    sys.exit(main())
