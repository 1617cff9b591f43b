"""The command line behaves as its help says (issue 13, item 7): global options anywhere on the line,
a case's number or reference alike, one clear line (and no stray file) for a database that is missing,
empty or unreachable, incidents retried by their own number with exit 1 when they fail again, times
shown with their zone, and help for every argument and option."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.cli import build_parser, main

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(monkeypatch, tmp_path, capsys):
    """Run `carepath ARGS` in-process, in an empty folder of the test's own, with the tour's handlers;
    returns (exit status, stdout, stderr)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CAREPATH_DATABASE_URL", raising=False)
    monkeypatch.delenv("CAREPATH_TOUR_RATES", raising=False)
    monkeypatch.setenv("CAREPATH_HANDLERS", "tests.tour_handlers")
    monkeypatch.setenv("CAREPATH_FORMS", str(ROOT / "tests" / "diagrams" / "forms"))

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(list(argv))
        out, err = capsys.readouterr()
        return code, out, err

    return run


def _ready(cli, db: str, start: str = "2027-01-04T09:00:00Z") -> None:
    assert cli("init", "--simulated", start, "--db", db)[0] == 0
    assert cli("deploy", str(ROOT / "tests" / "diagrams"), "--db", db)[0] == 0


def _history(cli, db: str, case: str = "1") -> list[dict]:
    code, out, err = cli("--json", "--db", db, "history", case)
    assert code == 0, err
    return json.loads(out)


# ------------------------------------------------------------------ global options anywhere
def test_global_options_before_the_command_are_kept_in_the_audit_trail(cli, db_url):
    _ready(cli, db_url)
    code, out, err = cli("--as", "alice", "--db", db_url, "start", "deadline", "--title", "Harriet Jones")
    assert code == 0, err
    code, out, err = cli("--db", db_url, "--json", "tasks", "--team", "reablement")
    assert code == 0, err
    task = json.loads(out)[0]["id"]  # --json before the command gave JSON
    code, out, err = cli("--as", "bob", "--db", db_url, "complete", task, "--data", '{"outcome": "independent"}')
    assert code == 0, err
    actors = {e["type"]: e["actor"] for e in _history(cli, db_url)}
    assert actors["case.created"] == "alice" and actors["instance.started"] == "alice"
    assert actors["task.completed"] == "bob"


def test_global_options_after_the_command_still_count_and_win_over_the_ones_before(cli, tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    _ready(cli, db)
    assert cli("start", "deadline", "--as", "carol", "--db", db)[0] == 0
    assert cli("--as", "nobody", "start", "deadline", "--as", "dave", "--db", db)[0] == 0
    assert [_history(cli, db, c)[0]["actor"] for c in ("1", "2")] == ["carol", "dave"]


def test_db_before_a_nested_command_is_the_database_used(cli, tmp_path):
    db = f"sqlite:///{tmp_path / 'n.db'}"
    _ready(cli, db)
    code, out, err = cli("--db", db, "audit", "verify")
    assert code == 0 and out.startswith("intact:"), err
    for argv in (("--db", db, "clock", "advance", "P1D"), ("clock", "--db", db, "advance", "P1D"),
                 ("clock", "advance", "P1D", "--db", db), ("--as", "eve", "--db", db, "clock", "advance", "P1D")):
        assert cli(*argv)[0] == 0, argv
    assert cli("--db", db, "clock")[1].startswith("simulated clock: 2027-01-08 09:00 GMT")  # four days on, there
    assert not (tmp_path / "carepath.db").exists()  # and the default one was never touched


# ------------------------------------------------------------------ case numbers and references
def test_a_case_reference_and_its_number_are_accepted_alike(cli, tmp_path):
    db = f"sqlite:///{tmp_path / 'r.db'}"
    _ready(cli, db)
    assert cli("start", "deadline", "--title", "Harriet Jones", "--db", db)[0] == 0
    by_number = cli("history", "1", "--db", db)
    assert by_number[0] == 0 and "case.created" in by_number[1]
    for ref in ("CASE-000001", "case-000001"):
        assert cli("history", ref, "--db", db) == by_number
        assert cli("case", ref, "--db", db) == cli("case", "1", "--db", db)
        assert cli("tasks", "--case", ref, "--db", db) == cli("tasks", "--case", "1", "--db", db)
        code, out, _ = cli("replay", ref, "--db", db)
        assert code == 0 and "replay of case 1 matches" in out
        code, out, _ = cli("audit", "verify", "--case", ref, "--db", db)
        assert code == 0 and out.startswith("intact:")
    code, out, err = cli("start", "three_tasks", "--case", "CASE-000001", "--db", db)
    assert code == 0 and out.startswith("case 1, instance 2"), err


def test_an_unknown_reference_is_one_line_naming_it(cli, tmp_path):
    db = f"sqlite:///{tmp_path / 'u.db'}"
    _ready(cli, db)
    code, out, err = cli("history", "CASE-000099", "--db", db)
    assert code == 1 and out == ""
    assert err.strip().count("\n") == 0 and "no case 'CASE-000099'" in err and "CASE-000007" in err


# ------------------------------------------------------------------ a database that is not there
def test_a_missing_sqlite_database_is_one_line_and_no_file_is_made(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "CAREPATH_HANDLERS": "tests.tour_handlers"}
    for argv in (["history", "1"], ["tasks"], ["--db", "sqlite:///sub/x.db", "audit", "verify"],
                 ["incidents", "--db", "sqlite:///elsewhere.db"], ["worker", "--once"]):
        proc = subprocess.run([sys.executable, "-m", "engine.cli", *argv], cwd=tmp_path, env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 1, (argv, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
        assert proc.stderr.startswith("carepath: there is no database at ") and "carepath init" in proc.stderr
        assert sorted(p.name for p in tmp_path.iterdir()) == [], argv  # no carepath.db, no folder sub/


def test_an_empty_database_says_it_is_not_initialised(cli, tmp_path):
    (tmp_path / "empty.db").write_bytes(b"")
    code, out, err = cli("tasks", "--db", "sqlite:///empty.db")
    assert code == 1 and out == ""
    assert err == "carepath: the database sqlite:///empty.db is not initialised: run `carepath init` first\n"


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path):
    # port 1 on this machine: nothing listens, the connection is refused at once
    url = "postgresql://carer:s3cret-pw@127.0.0.1:1/nowhere"
    proc = subprocess.run([sys.executable, "-m", "engine.cli", "--db", url, "history", "CASE-000001"],
                          cwd=tmp_path, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("carepath: cannot reach the database postgresql+psycopg://carer:***@127.0.0.1:1/")
    assert "s3cret-pw" not in proc.stderr


def test_init_still_creates_a_new_database(cli, tmp_path):
    code, out, err = cli("init", "--db", "sqlite:///var/new.db")
    assert code == 0 and "real clock" in out, err
    assert (tmp_path / "var" / "new.db").exists()


# ------------------------------------------------------------------ incidents
def _incident_on_instance_2(cli, db: str, monkeypatch) -> None:
    """Instance 1 runs without trouble; instance 2 fails: incident 1 is on instance 2."""
    _ready(cli, db)
    assert cli("start", "deadline", "--db", db)[0] == 0
    monkeypatch.setenv("CAREPATH_TOUR_RATES", "missing")
    code, out, _ = cli("start", "budget", "--data", '{"points": 60}', "--db", db)
    assert "instance 2: error" in out and "INCIDENT 1 at calculate" in out
    code, out, _ = cli("incidents", "--db", db)
    assert out.startswith("incident 1  instance 2  at calculate")


def test_an_incident_is_retried_by_its_own_number(cli, tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'i.db'}"
    _incident_on_instance_2(cli, db, monkeypatch)
    monkeypatch.delenv("CAREPATH_TOUR_RATES")  # the rates table is back
    code, out, err = cli("retry", "2", "--db", db)  # the instance's number is not an incident's
    assert code == 1 and err == "carepath: no incident 2: `carepath incidents` lists the open ones (incident=2)\n"
    code, out, err = cli("--as", "admin1", "--db", db, "retry", "1")
    assert code == 0, err
    assert out.startswith("case 2, instance 2: waiting") and "Approve budget" in out
    retried = [e for e in _history(cli, db, "2") if e["type"] == "incident.retried"]
    assert [(e["actor"], e["data"]["incident_ids"]) for e in retried] == [("admin1", [1])]
    assert cli("incidents", "--db", db)[1] == "no open incidents\n"
    code, out, err = cli("retry", "1", "--db", db)
    assert code == 1 and "incident 1 was already resolved at 2027-01-04 09:00 GMT by admin1" in err


def test_a_retry_that_fails_again_exits_non_zero(cli, tmp_path, monkeypatch):
    db = f"sqlite:///{tmp_path / 'f.db'}"
    _incident_on_instance_2(cli, db, monkeypatch)
    code, out, err = cli("retry", "1", "--as", "admin1", "--db", db)  # the rates table is still missing
    assert code == 1
    assert "instance 2: error" in out and "INCIDENT 2 at calculate" in out
    assert err == ("carepath: incident 1 failed again: incident 2 at calculate: RuntimeError: the rates table is "
                   "missing\n")
    code, out, _ = cli("--json", "retry", "1", "--db", db)
    assert code == 1
    assert cli("incidents", "--db", db)[1].startswith("incident 2  instance 2  at calculate")


# ------------------------------------------------------------------ times with their zone
def test_history_and_tasks_show_uk_time_with_its_zone(cli, tmp_path):
    db = f"sqlite:///{tmp_path / 't.db'}"
    _ready(cli, db, start="2027-03-01T09:00:00Z")
    assert cli("start", "deadline", "--db", db)[0] == 0
    code, out, _ = cli("history", "1", "--db", db)
    assert out.splitlines()[0].startswith("#1    2027-03-01 09:00:00 GMT  case.created")
    # the 5-week deadline is in summer time: the same instant is shown as UK time, an hour on
    assert "due 2027-04-05 10:00 BST" in cli("tasks", "--db", db)[1]
    code, out, _ = cli("clock", "advance", "P36D", "--db", db)  # the 5-week reminder fires at 2027-04-05 09:00 UTC
    assert out.startswith("clock 2027-03-01 09:00 GMT -> 2027-04-06 10:00 BST; 1 instance step(s)")
    fired = [line for line in cli("history", "1", "--db", db)[1].splitlines() if "timer.fired" in line]
    assert fired and fired[0].split()[1:4] == ["2027-04-05", "10:00:00", "BST"]



def test_json_gives_every_time_in_one_shape_with_its_zone(cli, tmp_path, monkeypatch):
    """Before: `case --json` and `incidents --json` wrote `2027-01-04 09:00:00` (no zone: SQLite gives times back
    without one), `tasks --json` `2027-01-04 09:00:00+00:00`, `clock --json` `2027-01-04T09:00:00+00:00`."""
    import re

    db = f"sqlite:///{tmp_path / 'j.db'}"
    _incident_on_instance_2(cli, db, monkeypatch)
    iso = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00$")
    times: list[str] = []

    def collect(value) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if (key.endswith("_at") or key in ("now", "at")) and item is not None:
                    times.append(item)
                else:
                    collect(item)
        elif isinstance(value, list):
            for item in value:
                collect(item)

    for argv in (("case", "2"), ("incidents",), ("tasks",), ("clock",), ("history", "2")):
        code, out, err = cli("--json", "--db", db, *argv)
        assert code == 0, err
        before = len(times)
        collect(json.loads(out))
        assert len(times) > before, f"{argv} gave no time"
    assert times and [t for t in times if not iso.match(t)] == []


def test_output_cut_short_by_its_reader_is_no_traceback(tmp_path):
    """`carepath --json history 1 | head -1`: the reader goes away; before, a BrokenPipeError traceback."""
    db = f"sqlite:///{tmp_path / 'p.db'}"
    run = [sys.executable, "-m", "carepath", "--db", db]
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "CAREPATH_HANDLERS": "tests.tour_handlers",
           "CAREPATH_FORMS": str(ROOT / "tests" / "diagrams" / "forms")}
    subprocess.run([*run, "init", "--simulated", "2027-01-04T09:00:00Z"], env=env, check=True, capture_output=True)
    subprocess.run([*run, "deploy", str(ROOT / "tests" / "diagrams")], env=env, check=True, capture_output=True)
    subprocess.run([*run, "start", "deadline"], env=env, check=True, capture_output=True)
    reader = subprocess.Popen([*run, "--json", "history", "1"], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    reader.stdout.close()  # the reader is gone before a byte is written
    err = reader.stderr.read().decode()
    assert reader.wait(timeout=60) == 141
    assert err == ""


# ------------------------------------------------------------------ help for everything
def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions}
            for name, sub in action.choices.items():
                assert name in helped, f"carepath {' '.join(path + (name,))} has no help line"
                yield from _commands(sub, path + (name,))


def _without_help(parser: argparse.ArgumentParser) -> list[str]:
    missing = []
    for path, p in _commands(parser):
        for action in p._actions:
            if isinstance(action, argparse._SubParsersAction | argparse._HelpAction):
                continue
            if not (action.help or "").strip():
                missing.append(f"carepath {' '.join(path)} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_argument_and_option_has_help():
    from carepath.cli import build_parser as house_parser

    assert _without_help(build_parser()) == []
    assert _without_help(house_parser()) == []


def test_help_names_the_case_forms_and_the_incident_number(capsys):
    for argv, wanted in ((["history", "--help"], "CASE-000007"), (["retry", "--help"], "`carepath incidents`")):
        with pytest.raises(SystemExit) as stop:
            main(argv)
        assert stop.value.code == 0
        assert wanted in " ".join(capsys.readouterr().out.split())


def test_a_refused_form_names_each_field_and_what_is_wrong_with_it(cli, tmp_path):
    # the command line said only "the form 'overrun' has 2 error(s)": a user could not tell what to send
    db = f"sqlite:///{tmp_path / 'f.db'}"
    _ready(cli, db)
    assert cli("start", "deadline", "--db", db)[0] == 0
    assert cli("clock", "advance", "P43D", "--db", db)[0] == 0
    code, out, err = cli("--json", "tasks", "--team", "team_manager", "--db", db)
    [task] = [t["id"] for t in json.loads(out) if t["element_id"] == "review_overrun"]
    code, out, err = cli("complete", task, "--data", '{"decision": "maybe"}', "--db", db)
    assert code == 1 and out == ""
    lines = err.splitlines()
    assert lines[0].startswith("carepath: the form 'overrun' has 2 error(s)")
    assert sorted(lines[1:]) == ["  - decision: 'maybe' is not one of ['extend', 'end']",
                                 "  - reason: 'reason' is required"]
    code, out, err = cli("--json", "complete", task, "--data", '{"decision": "maybe"}', "--db", db)
    assert code == 1 and {e["field"] for e in json.loads(err)["errors"]} == {"decision", "reason"}


@pytest.mark.parametrize(("argv", "said"), [
    ([], "carepath clock advance: error: clock advance needs a duration (e.g. P43D) or --to INSTANT"),
    # both given: the duration was used and --to silently dropped
    (["P1D", "--to", "2027-02-01T00:00Z"], "carepath clock advance: error: give a duration (e.g. P43D) or --to "
                                           "INSTANT, not both"),
])
def test_clock_advance_wants_exactly_one_of_a_duration_and_an_instant_and_says_so_in_its_own_usage(cli, tmp_path,
                                                                                                   capsys, argv, said):
    db = f"sqlite:///{tmp_path / 'k.db'}"
    _ready(cli, db)
    capsys.readouterr()
    with pytest.raises(SystemExit) as stop:
        main(["clock", "advance", *argv, "--db", db])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and said in err and err.startswith("usage: carepath clock advance ")
    assert cli("--json", "clock", "--db", db)[1].count("2027-01-04T09:00:00") == 1  # the clock did not move


@pytest.mark.parametrize(("argv", "said"), [
    (["--to", "notadate"], "carepath: --to: 'notadate' is not an ISO 8601 instant such as 2027-03-01T09:00Z"),
    (["--to", "2027-13-01"], "carepath: --to: '2027-13-01' is not an ISO 8601 instant"),
    (["P9000Y"], "carepath: 'P9000Y' from 2027-01-04 goes past the year 9999"),
])
def test_clock_advance_to_a_time_that_is_no_time_is_one_line_and_the_clock_stays(cli, tmp_path, argv, said):
    """Before: a ValueError or OverflowError traceback."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    _ready(cli, db)
    code, out, err = cli("clock", "advance", *argv, "--db", db)
    assert code == 2 and err.startswith(said), err
    assert "Traceback" not in err
    assert cli("--json", "clock", "--db", db)[1].count("2027-01-04T09:00:00") == 1  # the clock did not move


def test_init_with_a_simulated_start_that_is_no_time_is_one_line_and_makes_no_file(cli, tmp_path):
    code, out, err = cli("init", "--simulated", "4 January", "--db", f"sqlite:///{tmp_path / 'new.db'}")
    assert (code, err.strip()) == (2, "carepath: --simulated: '4 January' is not an ISO 8601 instant such as "
                                      "2027-03-01T09:00Z or 2027-03-01")
    assert not (tmp_path / "new.db").exists()


@pytest.mark.parametrize(("content", "said"), [
    (None, "cannot be read (No such file or directory); nothing was saved"),
    (b"\xff\xfe{}", "not UTF-8 text (byte 0); nothing was saved"),
    (b'{"deep": ' + b"[" * 5000 + b"]" * 5000 + b"}", "is nested too deeply to read; nothing was saved"),
    (b"[1, 2]", "must be a JSON object"),
])
def test_a_data_file_that_cannot_be_read_is_one_line_naming_it(cli, tmp_path, content, said):
    """Before: FileNotFoundError, UnicodeDecodeError and RecursionError tracebacks."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    _ready(cli, db)
    path = tmp_path / "answers.json"
    if content is not None:
        path.write_bytes(content)
    code, out, err = cli("--db", db, "start", "deadline", "--data-file", str(path))
    assert code == 1 and err.startswith(f"carepath: --data-file {path}") and said in err
    assert "Traceback" not in err and err.count("\n") == 1  # one line
    assert cli("--db", db, "case", "1")[0] == 1  # no case was made


@pytest.mark.parametrize(("argv", "said"), [
    (["case", "99999999999999999999"], "carepath: no case 99999999999999999999"),
    (["history", "9223372036854775808"], "carepath: no case 9223372036854775808"),
    (["start", "deadline", "--case", "9223372036854775808"], "carepath: no case 9223372036854775808"),
    (["suspend", "9223372036854775808", "--reason", "r", "--as", "ops"],
     "carepath: no process instance 9223372036854775808"),
    (["retry", "9223372036854775808", "--as", "ops"], "carepath: no incident 9223372036854775808"),
    (["audit", "verify", "--case", "9223372036854775808"], "carepath: no case 9223372036854775808"),
    (["audit", "verify", "--case", "999"], "carepath: no case 999"),
])
def test_a_number_no_case_or_instance_has_is_not_found(cli, db_url, argv, said):
    """Before: on PostgreSQL a number past the largest bigint was "cannot reach the database …: bigint out of range"
    (it was reachable), on SQLite an OverflowError; and `audit verify --case` of a case that does not exist reported
    its missing chain as an altered history."""
    _ready(cli, db_url)
    code, out, err = cli("--db", db_url, *argv)
    assert code == 1 and err.startswith(said) and "cannot reach" not in err and "Traceback" not in err, err
    assert "ALTERED" not in out


def test_a_title_or_actor_with_escape_sequences_cannot_drive_the_terminal(cli, tmp_path):
    """A case titled (or a user named) with ESC sequences and a line break was printed raw by `case` and `history`:
    the operator's screen cleared, recoloured, and a fake line of output. Now each is written as its escapes."""
    db = f"sqlite:///{tmp_path / 'k.db'}"
    _ready(cli, db)
    title = "Evil\x1b[2J\x1b[31mRED\nCASE-000099  Someone else"
    assert cli("--db", db, "--as", "bob\x1b[2J", "start", "deadline", "--title", title)[0] == 0
    code, out, err = cli("--db", db, "case", "1")
    assert out.splitlines()[0] == "CASE-000001  Evil\\x1b[2J\\x1b[31mRED\\nCASE-000099  Someone else"
    assert "\x1b" not in out and len(out.splitlines()) == 2  # the case's line and its instance's
    code, out, err = cli("--db", db, "history", "1")
    assert "\x1b" not in out and "by bob\\x1b[2J" in out
    assert json.loads(cli("--db", db, "--json", "case", "1")[1])["title"] == title  # stored as given


# ------------------------------------------------------------------ data the history cannot hold
@pytest.mark.parametrize(("data", "field", "said"), [
    ('{"a": NaN}', "'a'", "is not a finite number"),
    ('{"a": {"b": [1, 1e999]}}', "'a/b/1'", "is not a finite number"),
    ('{"a": "x\\ud800y"}', "'a'", "unpaired surrogate"),
])
def test_data_json_cannot_hold_is_one_line_naming_the_field_and_nothing_is_stored(cli, db_url, data, field, said):
    """Python's JSON reader takes NaN, Infinity (1e999) and a lone \\ud800 escape; the history cannot keep them
    (NaN never equals itself, so the case never replayed again; a surrogate was a UnicodeEncodeError
    traceback). Refused at a start and a completion, naming the field; nothing stored."""
    _ready(cli, db_url)
    code, out, err = cli("--db", db_url, "start", "deadline", "--title", "Harriet Jones", "--data", data)
    assert code == 1 and "Traceback" not in err
    assert f"the start data of 'deadline': {field} " in err and said in err and "nothing was saved" in err
    code, out, err = cli("--db", db_url, "case", "1")
    assert code == 1 and "no case 1" in err  # no case was made
    assert cli("--db", db_url, "start", "deadline", "--title", "Harriet Jones")[0] == 0
    code, out, err = cli("--db", db_url, "--json", "tasks")
    task = json.loads(out)[0]["id"]
    events = len(_history(cli, db_url))
    code, out, err = cli("--db", db_url, "--as", "bob", "complete", task, "--data", data)
    assert code == 1 and "Traceback" not in err and field in err and said in err
    assert len(_history(cli, db_url)) == events
    assert cli("--db", db_url, "--as", "bob", "complete", task, "--data", '{"a": 1.5, "b": "ñ 𝔘 \\u200b"}')[0] == 0
    code, out, err = cli("--db", db_url, "replay", "1")
    assert code == 0 and "replay of case 1 matches" in out


@pytest.mark.parametrize(("name", "value", "said"), [
    ("CAREPATH_SCRIPT_CPU_SECONDS", "two", "CAREPATH_SCRIPT_* settings must be numbers"),
    ("CAREPATH_SCRIPT_MEMORY_MB", "-5", "CAREPATH_SCRIPT_*) must be positive"),
    ("CAREPATH_STEP_MAX_TASKS", "lots", "CAREPATH_STEP_MAX_TASKS must be a whole number, not 'lots'"),
    ("CAREPATH_STEP_MAX_NESTING", "0", "CAREPATH_STEP_MAX_NESTING must be 1 or more, not 0"),
])
def test_a_setting_the_engine_cannot_use_is_one_line_naming_it(cli, tmp_path, monkeypatch, name, value, said):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    _ready(cli, db)
    monkeypatch.setenv(name, value)
    code, out, err = cli("--db", db, "case", "1")  # before: a traceback ending in ValueError
    assert code == 1 and out == ""
    assert err.startswith("carepath: ") and said in err and len(err.strip().splitlines()) == 1
    code, out, err = cli("--json", "--db", db, "tasks")
    assert code == 1 and json.loads(err)["error"] == "setting" and said in json.loads(err)["message"]


_TWO_LINE_NAMES = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="d" targetNamespace="http://x">
  <bpmn:process id="zeilen" name="Zeilen" isExecutable="true">
    <bpmn:startEvent id="s"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:task id="Aufgabe_ß" name="Überprüfen&#10;und bestätigen&#13;FAKE"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:task>
    <bpmn:scriptTask id="fail" name="Fail" scriptFormat="python"><bpmn:incoming>f2</bpmn:incoming>
      <bpmn:outgoing>f3</bpmn:outgoing>
      <bpmn:script>raise ValueError("first line\\nincident 99  instance 1  at x")</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:endEvent id="e"><bpmn:incoming>f3</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="Aufgabe_ß"/>
    <bpmn:sequenceFlow id="f2" sourceRef="Aufgabe_ß" targetRef="fail"/>
    <bpmn:sequenceFlow id="f3" sourceRef="fail" targetRef="e"/>
  </bpmn:process>
</bpmn:definitions>"""


def test_a_task_name_or_incident_drawn_on_several_lines_is_one_line_where_a_step_is_shown(cli, tmp_path):
    """Before: `start`, `complete`, `retry` and `incidents` printed a name or message as written, so a name drawn on
    two lines (or with a carriage return) split the output or overwrote it; `tasks` already wrote it as one."""
    db = f"sqlite:///{tmp_path / 'n.db'}"
    _ready(cli, db)
    (tmp_path / "zeilen.bpmn").write_text(_TWO_LINE_NAMES, encoding="utf-8")
    assert cli("deploy", str(tmp_path / "zeilen.bpmn"), "--db", db)[0] == 0
    code, out, err = cli("--db", db, "start", "zeilen", "--title", "Zoë Ångström")
    assert code == 0, err
    [_, ready] = out.splitlines()
    assert "  Überprüfen\\nund bestätigen\\rFAKE  [team -" in ready and "\r" not in out
    task = ready.split()[1]
    code, out, err = cli("--db", db, "complete", task)
    assert code == 0, err
    [_, incident] = out.splitlines()
    assert incident.startswith("  INCIDENT 1 at fail: ") and "first line\\nincident 99" in incident
    code, out, err = cli("--db", db, "incidents")
    assert len(out.splitlines()) == 1 and out.startswith("incident 1  instance 1  at fail")
