"""A step cannot hang or exhaust the machine (engine/budget.py): scripts and expressions run under a
CPU-time and memory budget; a step over budget is an incident naming the element and the timer job
moves on; constructs that can only exhaust the budget are refused at deploy. Also the timer job's own
guards: the claim query locks with SKIP LOCKED, a stale timer row fires nothing, loops are bounded."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql

from engine import runtime, timer_ops
from engine.budget import BudgetExceeded, ScriptBudget, bounded_at_sight, run_budgeted, straight_line
from engine.db import Database
from engine.errors import ClockError, ConflictError, DefinitionError
from engine.expressions import SafeEnvironment, check_expression
from engine.forms import FormLibrary
from engine.runtime import Engine
from engine.schema import instances, timers
from tests.budget_diagrams import CPU_BOMB, HEALTHY_INLINE, HEALTHY_LOOP, timer_then_script
from tests.conftest import START

SMALL = ScriptBudget(cpu_seconds=0.3, memory_mb=64, wall_seconds=60)


@pytest.fixture
def small_budget(monkeypatch):
    monkeypatch.setenv("CAREPATH_SCRIPT_CPU_SECONDS", "0.3")
    monkeypatch.setenv("CAREPATH_SCRIPT_MEMORY_MB", "64")
    monkeypatch.setenv("CAREPATH_SCRIPT_WALL_SECONDS", "60")


# ---------------------------------------------------------------- deploy time


@pytest.mark.parametrize(("source", "mode", "found"), [
    ("x = 10**10**8", "exec", "constant power"),
    ("x = 2 ** 10 ** 10 ** 10", "exec", "constant power"),
    ("x = 1 << 10**9", "exec", "shift"),
    ("while True: pass", "exec", "'while' loop"),
    ("n = 0\nwhile 1:\n    n = n + 1\n", "exec", "'while' loop"),
    ("x = 'x' * 10**10", "exec", "repeated 10,000,000,000 times"),
    ("x = [0] * 10**10", "exec", "repeated"),
    ("total = sum(range(10**12))", "exec", "range of"),
    ("amount > 10**10**8", "eval", "constant power"),
])
def test_unbounded_constructs_are_refused_at_deploy(source, mode, found):
    message = check_expression(source, mode)
    assert message is not None and found in message
    if mode == "exec":
        line = 2 if source.startswith("n = 0") else 1
        assert f"(line {line} of the script)" in message


@pytest.mark.parametrize(("source", "mode"), [
    ("x = 10**6", "exec"),
    ("x = 2**64", "exec"),
    ("x = '-' * 40", "exec"),
    ("while True:\n    n = n + 1\n    if n > 10:\n        break\n", "exec"),
    ("while True:\n    raise ValueError('stop')\n", "exec"),
    ("total = sum(range(1000))", "exec"),
    ("amount > 5", "eval"),
])
def test_bounded_constructs_deploy(source, mode):
    assert check_expression(source, mode) is None


def test_a_nested_break_does_not_end_the_outer_loop():
    source = "while True:\n    for i in range(3):\n        break\n"
    assert "'while' loop" in (check_expression(source, "exec") or "")


def test_a_deploy_refusal_names_file_element_and_line(make_engine):
    eng = make_engine()
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files={"bomb.bpmn": timer_then_script("bomb", "ok = 1\nx = 10**10**8\n")})
    [problem] = err.value.problems
    assert problem.file == "bomb.bpmn" and problem.element_id == "run" and problem.line is not None
    assert "line 2 of the script" in problem.message and "constant power" in problem.message


# ---------------------------------------------------------------- run time


def test_a_cpu_bomb_is_stopped_and_task_data_is_unchanged():
    env = SafeEnvironment(budget=SMALL)
    data = {"n": 1}
    with pytest.raises(BudgetExceeded, match="CPU-time budget of 0.3 s"):
        env.execute("partial = True\nwhile n > 0:\n    n = n + 1\n", data)
    assert data == {"n": 1}


def test_a_single_c_level_operation_is_stopped_too():
    env = SafeEnvironment(budget=SMALL)
    with pytest.raises(BudgetExceeded, match="CPU-time budget"):
        env.execute("x = base ** exponent", {"base": 10, "exponent": 10**8})
    with pytest.raises(BudgetExceeded, match="CPU-time budget"):
        env.evaluate("sum(range(limit)) > 0", {"limit": 10**13})


def test_a_memory_bomb_is_stopped():
    env = SafeEnvironment(budget=SMALL)
    data = {"n": 10**9}
    with pytest.raises(BudgetExceeded, match="memory budget of 64 MB"):
        env.execute("x = [0] * n", data)
    assert data == {"n": 10**9}


def test_the_child_gives_back_results_and_errors_as_in_process():
    env = SafeEnvironment(budget=SMALL)
    data = {"items": [1, 2, 3], "gone": 1, "start": START}
    assert env.execute(HEALTHY_LOOP + "del gone\nwhen = start + timedelta(days=total)\n", data)
    assert data == {"items": [1, 2, 3], "start": START, "total": 45, "i": 9, "when": START + timedelta(days=45)}
    with pytest.raises(Exception) as err:
        env.execute("for i in range(2):\n    x = 1 / 0\n", {})
    assert type(err.value).__name__ == "ExpressionError" and err.value.context["line"] == 2
    assert env.evaluate("[x * 2 for x in items]", {"items": [1, 2]}) == [2, 4]


def test_the_budget_holds_in_a_thread_beside_others():
    """The web server runs steps in worker threads: a fork from one of them keeps the budget the same way."""
    env = SafeEnvironment(budget=SMALL)
    outcomes: dict[str, object] = {}

    def run(name: str, script: str) -> None:
        data: dict = {"n": 1}
        try:
            env.execute(script, data)
            outcomes[name] = data.get("total")
        except BudgetExceeded as exc:
            outcomes[name] = exc.message

    threads = [threading.Thread(target=run, args=("bomb", "while n > 0:\n    n = n + 1\n")),
               *[threading.Thread(target=run, args=(f"ok{i}", HEALTHY_LOOP)) for i in range(4)]]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert "CPU-time budget of 0.3 s" in str(outcomes.pop("bomb"))
    assert outcomes == {f"ok{i}": 45 for i in range(4)}


def test_a_child_that_waits_instead_of_computing_is_stopped_after_the_wall_budget():
    import select

    with pytest.raises(BudgetExceeded, match=r"no answer within 1 s of waiting .* 0\.\d s of its 0.3 s CPU budget"):
        run_budgeted(lambda: select.select([], [], [], 3600), ScriptBudget(0.3, 64, 1), "script 'wait'")


def test_budget_settings_come_from_the_environment():
    assert ScriptBudget.from_env({}) == ScriptBudget(2.0, 256, 30.0)
    assert ScriptBudget.from_env({"CAREPATH_SCRIPT_CPU_SECONDS": "4", "CAREPATH_SCRIPT_MEMORY_MB": "512"}) == \
        ScriptBudget(4.0, 512, 60.0)
    with pytest.raises(ValueError, match="must be numbers"):
        ScriptBudget.from_env({"CAREPATH_SCRIPT_CPU_SECONDS": "two"})
    with pytest.raises(ValueError, match="positive"):
        ScriptBudget(0, 256, 30)


@pytest.mark.parametrize(("source", "bounded"), [
    ("amount > 5 and status == 'open'", True),
    ("now() + timedelta(days=3)", True),
    ("case().get('tier') in ('a', 'b')", True),
    ("name * 3", True),  # at most three times the data
    ("name * 3 * 1000 * 1000", False),  # 3,000,000 times: past the growth limit
    ("name * n", False),
    ("base ** exponent", False),
    ("1 << n", False),
    ("'%0*d' % (n, 1)", False),
    ("f'{x:>{n}}'", False),
    ("sum(range(n))", False),
    ("[x for x in items]", True),  # a filter: part of `items`
    ("not [i for i in items if i['free']]", True),
    ("[s['id'] for s in matches['found']]", True),  # a part of every item
    ("[[x, x] for x in items]", True),
    ("[x[x['k']] for x in items]", True),
    ("[x + x for x in items]", True),  # an expression: n items of twice an item, read by nothing after
    ("{k: str(v) for k, v in capital.items()}", True),
    ("[[y for y in x] for x in items]", False),  # nested: n * n * ...
    ("[y for y in [x + x for x in items]]", False),
    ("[x for x in items for y in items]", False),
    ("[x for x in items if [y for y in items if y]]", False),
    ("{x: x for x in items}", True),
    ("text.ljust(n)", False),
    ("text.replace('', text)", False),
    ("moment.replace(year=2031, day=1) > now()", True),
    ("'%s due on %s' % (what, day)", True),
    ("'%0*d' % (n, 1)", False),
    ("'%09999999d' % 1", False),
    ("text % 5", False),  # the format is data: '%0999999999d'
    ("(start.month - 1 + n) % 12", True),  # a number: never formatting
    ("', '.join(sorted(names))", True),
    ("separator.join(names)", False),  # a separator from the data between every name
    ("add_working_days(now(), n)", False),  # not declared bounded here
    ("lambda: 1", False),
])
def test_what_runs_in_process(source, bounded):
    import ast

    assert bounded_at_sight(ast.parse(source, mode="eval")) is bounded


def test_an_injected_function_named_like_a_trusted_call_sends_everything_to_the_child():
    """A registry function called `max` could loop for ever: then nothing is judged bounded at sight."""
    def endless(*_args):
        while True:
            pass

    env = SafeEnvironment(functions={"max": endless}, budget=SMALL)
    with pytest.raises(BudgetExceeded, match="CPU-time budget"):
        env.evaluate("max(1, 2) > 0", {})
    assert SafeEnvironment(functions={"add_working_days": endless})._trust_sight


DOUBLING = "s = text\n" + "s = s + s\n" * 40  # 2**40 times the text, in a script without a loop
HELPERS = ("def days_in(period):\n    number = int(period[1:-1])\n    return number * 7 if period.endswith('W') "
           "else number\nweeks = days_in(settings['length']) // 7\n")


@pytest.mark.parametrize(("source", "inline"), [
    (HEALTHY_INLINE, True),
    ("answers = {}\nclosed = now().isoformat()\n", True),
    ("s = text + text\ns = s + s\n", True),  # four times the text: a later line may read an earlier one's value
    (DOUBLING, False),  # ... but not double it forty times
    ("s = text\n" + "s = s * 100\n" * 4, False),
    ("n = count\n" + "n = n + n\n" * 40, False),  # no types at sight: `count` may be text
    ("n = int(count)\n" + "n = n + n\n" * 40, True),  # a number: one more digit a line
    ("n = int(count)\n" + "n = n * n\n" * 40, False),  # squaring doubles the digits
    (HEALTHY_LOOP, False),
    # straight-line if / try / raise / del, and item assignment into a container the script made
    ("answers = {}\ntry:\n    answers['a'] = a\nexcept NameError:\n    answers['a'] = None\n"
     "if answers['a'] is None:\n    raise ValueError('a is missing: %r' % (answers,))\ndel answers\n", True),
    ("a = {}\na['x'] = a\n", False),  # a dict holding itself
    ("a = {}\nb = a\na['x'] = b\n", False),
    ("a = {}\na['x'] = data\na['y'] = data\n", True),  # the data twice: twice its size
    ("data['x'] = data\n", False),  # only containers the script made
    ("a = data\na['x'] = 1\n", False),
    ("try:\n    x = 1\nexcept NameError as e:\n    x = 2\n", False),
    # def helpers: judged at every call; no helper calls a helper; no recursion
    ("def f():\n    return 1\nx = f()\n", True),
    (HELPERS, True),
    ("def f(x):\n    return f(x)\ny = f(1)\n", False),
    ("def f(x):\n    return x + x\ndef g(x):\n    return f(x) + f(x)\ny = g(text)\n", False),
    ("def f(x):\n    return x + x\ns = f(text)\n" + "s = f(s)\n" * 40, False),
    ("def f(x):\n    while x:\n        x = x\n    return x\ny = f(1)\n", False),
    ("def len(x):\n    return 1\ny = len(text)\n", False),  # a helper may not take a trusted name
    # in a branch, the later call could reach a registry function of the same name instead
    ("if flag:\n    def add_working_days(d, n):\n        return d\ny = add_working_days(d, n)\n", False),
    ("def f(x):\n    return 1\ng = f\n", False),  # a helper is only ever called
    ("a = {}\ndef f(k):\n    a[k] = data\n    return 1\nx = f(1)\n", False),  # fills a container per call
    ("len = text\ny = len(text)\n", False),  # nothing called is ever assigned
    ("for i in items:\n    pass\n", False),
    ("x = [p for p in open_processes() if p in ('a', 'b')]\n", True),
    ("x = [p + p for p in items]\n", False),  # in a script the next line could read it back: only filters
    ("x = {k: str(v) for k, v in capital.items()}\n", False),
])
def test_which_scripts_run_in_process(source, inline):
    import ast

    assert straight_line(ast.parse(source)) is inline


def test_a_registry_function_runs_in_process_only_when_declared_bounded():
    import ast

    tree = ast.parse("x = involvement('review', answers, None)\n")
    assert not straight_line(tree)
    assert straight_line(tree, frozenset({"involvement"}))
    # what the declared function returns still counts: forty doublings through it are not bounded at sight
    doubling = ast.parse("s = text\n" + "s = involvement(s, s, s)\n" * 40)
    assert not straight_line(doubling, frozenset({"involvement"}))
    # an injected function not declared bounded may not even be named: sorted() would call it for every item
    by_days = ast.parse("x = sorted(items, key=add_days)\n")
    assert straight_line(by_days)  # (not known to be a function: data, as far as the judge can tell)
    assert not straight_line(by_days, frozenset(), frozenset({"add_days"}))


def _no_fork(monkeypatch):
    import engine.expressions

    def refuse(*_args, **_kwargs):
        raise AssertionError("forked a budgeted child")

    monkeypatch.setattr(engine.expressions, "run_budgeted", refuse)


def test_every_script_and_condition_of_the_operating_model_runs_in_process():
    """The shipped diagrams' scripts and conditions (processes/*.bpmn) are all bounded at sight with the handlers'
    registry, so a step never pays for a fork (docs/performance.md, 3 December 2026, session 7)."""
    import textwrap
    import xml.etree.ElementTree as ET

    from engine.expressions import _in_process
    from engine.registry import load_registry

    functions = frozenset(load_registry("handlers").bounded_functions)
    seen, forked = 0, []
    for path in sorted((Path(__file__).parent.parent / "processes").glob("*.bpmn")):
        for el in ET.parse(path).getroot().iter():
            tag = el.tag.rsplit("}", 1)[-1]
            if tag in ("script", "conditionExpression", "timeDuration", "timeDate", "timeCycle", "inputParameter",
                       "outputParameter") and (el.text or "").strip():
                seen += 1
                if not _in_process("exec" if tag == "script" else "eval", el.text, functions):
                    forked.append(f"{path.name}: {textwrap.shorten(el.text, 80)}")
    assert seen > 100 and forked == []


def test_registry_functions_declared_bounded_cap_what_they_count():
    """`bounded=True` is the handlers' word; the functions that count (days, months) refuse a count past their cap
    at once, so a script calling them in-process with a huge number from the data cannot run for long."""
    from engine.registry import load_registry

    registry = load_registry("handlers")
    assert set(registry.bounded_functions) == {
        "add_working_days", "working_day_deadline", "next_working_day", "working_day_on_or_before", "uk_date",
        "involvement", "checked_carer", "carer_support_paid_once", "add_months"}
    assert all(registry.functions[name] is fn for name, fn in registry.bounded_functions.items())
    f = registry.functions
    with pytest.raises(ValueError, match="beyond the supported 3660 working days"):
        f["add_working_days"]("2031-03-03", 10**9)
    with pytest.raises(ValueError, match="beyond the supported"):
        f["working_day_deadline"]("2031-03-03T09:00:00+00:00", -10**12)
    with pytest.raises(ValueError, match="from 1 to 120"):
        f["add_months"]("2031-03-03T09:00:00+00:00", 10**9)
    assert f["next_working_day"]("9999-12-31") == "9999-12-31"  # a Friday; the walk ends within days


def test_a_function_replacing_a_declared_one_is_not_trusted(monkeypatch):
    """Only the very function the registry declared bounded is trusted: another of the same name (an engine's
    `functions=` or a second registration without bounded=True) sends the code to the child."""
    from engine.registry import HandlerRegistry
    from engine.scripting import CarepathScriptEngine

    def endless(*_args):
        while True:
            pass

    registry = HandlerRegistry()
    registry.expression_function("involvement", lambda *a: {"ok": True}, bounded=True)
    assert CarepathScriptEngine(registry, dict(registry.functions)).environment.bounded == {"involvement"}
    # replay's and the timeline's scratch engines: the registry's functions, an empty registry
    assert CarepathScriptEngine(HandlerRegistry(), dict(registry.functions)).environment.bounded == {"involvement"}
    assert CarepathScriptEngine(registry, {"involvement": endless}).environment.bounded == frozenset()
    registry.expression_function("involvement", endless)
    engine = CarepathScriptEngine(registry, dict(registry.functions))
    assert engine.environment.bounded == frozenset()
    engine.environment.budget = SMALL
    with pytest.raises(BudgetExceeded, match="CPU-time budget"):
        engine.environment.execute("x = involvement(1)\n", {})
    with pytest.raises(BudgetExceeded, match="CPU-time budget"):  # called by sorted(), not by name
        engine.environment.execute("x = sorted([1, 2], key=involvement)\n", {})


@pytest.mark.parametrize("script", [
    # looks like the operating model's scripts, but loops in a helper: the child stops it
    "def days_in(period):\n    n = 0\n    while n >= 0:\n        n = n + 1\n    return n\nx = days_in('P1D')\n",
    # straight-line, but doubles a string forty times: the child's memory budget stops it
    "s = 'xxxxxxxx'\n" + "s = s + s\n" * 40,
    # a helper calling a helper twice, twenty-five deep: 2**25 calls
    "def f0(x):\n    return x\n" + "".join(f"def f{i}(x):\n    return f{i - 1}(x) or f{i - 1}(x)\n"
                                           for i in range(1, 26)) + "y = f25(0)\n",
    # answers as the operating model builds them, then a cycle walked by the plain-data check
    "answers = {}\ntry:\n    answers['a'] = a\nexcept NameError:\n    answers['a'] = None\n"
    "b = [answers, answers]\n" + "b = [b, b]\n" * 40,
])
def test_hostile_scripts_shaped_like_the_operating_models_are_still_budget_incidents(make_engine, small_budget,
                                                                                     script):
    eng = make_engine()
    eng.deploy(files={"hostile.bpmn": timer_then_script("hostile", script)})
    eng.start("hostile")
    eng.advance_clock(timedelta(days=2))
    [incident] = eng.incidents()
    assert incident["element_id"] == "run"
    assert "budget" in incident["message"] and "script" in incident["message"]


def test_an_operating_model_script_runs_in_process_and_gives_what_the_child_gave(monkeypatch):
    """review.bpmn's scheduling script (helpers, try/except, if/else, raise, registry functions) runs in the step's
    own process with the handlers' registry, with the same result the budgeted child gives."""
    import xml.etree.ElementTree as ET

    from engine.registry import load_registry
    from engine.scripting import CarepathScriptEngine, StepScope

    root = ET.parse(Path(__file__).parent.parent / "processes" / "review.bpmn").getroot()
    [script] = [el.text for el in root.iter() if el.tag.endswith("}script") and
                "def add_period" in (el.text or "") and "UNPLANNED" in el.text]
    data = {"review_reason": "Planned", "first": True, "review_frequency_months": 12,
            "plan": {"signed_off_at": "2031-01-31T10:00:00+00:00", "review_frequency_months": 12},
            "settings": {"max_review_interval": "P12M", "first_review_after_sign_off": "P1M",
                         "first_review_latest": "P6W", "review_dates_on_working_days": True,
                         "review_overdue_grace": "P14D", "unplanned_review_within": "P7D"}}
    registry = load_registry("handlers")
    engine = CarepathScriptEngine(registry, dict(registry.functions))
    env = engine.environment
    scope = StepScope(now=START, case_id=1, instance_id=1, process_id="review", case_data={})
    token = engine.enter(scope)
    try:
        in_child = dict(data)
        env._trust_sight = False  # as before: the child
        env.execute(script, in_child)
        env._trust_sight = True
        _no_fork(monkeypatch)
        in_process = dict(data)
        env.execute(script, in_process)
    finally:
        engine.leave(token)
    # 31 January + 1 month is 28 February 2031, a Friday; the latest (6 weeks) is 14 March, a Friday
    assert in_process["review_due_at"].startswith("2031-02-28") and in_process == in_child


# ---------------------------------------------------------------- in the engine


def _bomb_and_healthy(eng: Engine, healthy: int) -> tuple[int, list[int]]:
    eng.deploy(files={"bomb.bpmn": timer_then_script("bomb", CPU_BOMB),
                      "loop.bpmn": timer_then_script("loop", HEALTHY_LOOP),
                      "inline.bpmn": timer_then_script("inline", HEALTHY_INLINE)})
    ok = [eng.start("loop" if i % 2 else "inline").case_id for i in range(healthy // 2)]
    bomb = eng.start("bomb").case_id
    ok += [eng.start("loop" if i % 2 else "inline").case_id for i in range(healthy - healthy // 2)]
    return bomb, ok


def test_a_bomb_beside_healthy_timers_is_one_incident_and_the_others_fire(make_engine, small_budget):
    eng = make_engine()
    bomb, ok = _bomb_and_healthy(eng, 12)
    moved = eng.advance_clock(timedelta(days=2))
    assert moved == 13  # every case stepped once: twelve completed, the bomb's step became an incident
    for case_id in ok:
        assert [e["type"] for e in eng.history(case_id)][-1] == "instance.completed"
    [incident] = eng.incidents()
    assert incident["element_id"] == "run" and "CPU-time budget of 0.3 s" in incident["message"]
    [bomb_instance] = [r for r in _instances(eng) if r.case_id == bomb]
    assert bomb_instance.status == "error"
    # nothing the bomb's script did was kept: its partial result is not in the instance's data
    assert "partial" not in eng.instance_snapshot(bomb_instance.id)["data"]
    # the timer job moves on: running it again does not take the bomb again
    assert eng.fire_due_timers() == 0


def test_retry_works_once_the_budget_is_raised(make_engine, small_budget, monkeypatch):
    eng = make_engine()
    eng.deploy(files={"slow.bpmn": timer_then_script("slow", "n = 0\nwhile n < limit:\n    n = n + 1\n")})
    case_id = eng.start("slow", data={"limit": 20_000_000}).case_id
    eng.advance_clock(timedelta(days=2))
    [incident] = eng.incidents()
    assert incident["element_id"] == "run" and "CPU-time budget" in incident["message"]
    eng.script_engine.environment.budget = ScriptBudget(cpu_seconds=120, memory_mb=256, wall_seconds=600)
    [row] = [r for r in _instances(eng) if r.case_id == case_id]
    result = eng.retry(row.id)
    assert result.incident is None and result.status == "completed"
    assert eng.instance_snapshot(row.id)["data"]["n"] == 20_000_000


def test_a_script_in_the_child_reads_open_processes_from_the_step(make_engine):
    """open_processes() reads the database; in the child it answers from what the parent read first."""
    eng = make_engine()
    eng.deploy(files={"other.bpmn": timer_then_script("other", "x = 1", wait="P10D"),
                      "asker.bpmn": timer_then_script("asker", "names = []\nfor p in open_processes():\n"
                                                               "    names.append(p)\n")})
    case_id = eng.start("other").case_id
    asker = eng.start("asker", case_id=case_id).instance_id
    eng.advance_clock(timedelta(days=2))
    assert eng.incidents() == []
    assert eng.instance_snapshot(asker)["data"]["names"] == ["other"]


def _instances(eng: Engine):
    with eng.db.engine.connect() as conn:
        return conn.execute(select(instances)).all()


# ---------------------------------------------------------------- the timer job's own guards


def test_the_claim_query_locks_and_skips_locked_rows_on_postgresql():
    """SQLite serializes writers itself, so only PostgreSQL's SQL shows the lock: compile it for that dialect."""
    pg = Database("postgresql+psycopg://nobody@127.0.0.1:1/none")  # never connects: only its dialect is used
    stmt = Engine.claim_due(SimpleNamespace(db=pg), START, 50)  # type: ignore[arg-type]
    sql = str(stmt.compile(dialect=postgresql.dialect()))
    assert sql.rstrip().endswith("FOR UPDATE OF instances SKIP LOCKED"), sql  # the timer rows are not locked
    assert "timers.due_at <=" in sql and "ORDER BY timers.due_at" in sql and "LIMIT" in sql
    pg.engine.dispose()


def test_a_stale_timer_row_fires_nothing_and_is_healed(make_engine, calls):
    eng = make_engine("deadline.bpmn")
    case_id = eng.start("deadline").case_id
    with eng.db.engine.connect() as conn:
        due_before = sorted(runtime.as_utc(d) for d in conn.execute(select(timers.c.due_at)).scalars())
        [version_before] = conn.execute(select(instances.c.version)).scalars()
    events_before = len(eng.history(case_id))
    with eng.db.transaction() as conn:  # the row says "due now"; the workflow's timers are weeks away
        conn.execute(update(timers).values(due_at=START))
    assert eng.fire_due_timers() == 0
    assert len(eng.history(case_id)) == events_before
    assert calls.log == []
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(instances.c.version)).scalar_one() == version_before
        due_after = sorted(runtime.as_utc(d) for d in conn.execute(select(timers.c.due_at)).scalars())
    assert due_after == due_before and min(due_after) > START  # the rows say again what the workflow says
    assert [t["element_id"] for t in eng.list_tasks(case_id=case_id)] == ["reablement"]


def test_timer_rows_that_disagree_with_their_workflow_end_the_timer_loops(make_engine, monkeypatch):
    """A due-time comparison off by one (the rows say due, the workflow says not yet) used to make the
    timer job take the same rows again and again, for ever: now it stops, and the case has not moved."""
    eng = make_engine("deadline.bpmn")
    case_id = eng.start("deadline").case_id
    # the timer job reads _due_timers in engine/timer_ops.py (engine/runtime.py before the split)
    monkeypatch.setattr(timer_ops, "_due_timers", lambda before, now: [])  # the workflow never agrees
    with eng.db.transaction() as conn:
        eng._set_clock(conn, eng.now(conn) + timedelta(days=60))
    assert eng.fire_due_timers() == 0
    assert eng.advance_clock(timedelta(days=1)) == 0
    assert [t["element_id"] for t in eng.list_tasks(case_id=case_id)] == ["reablement"]


def test_advance_clock_gives_up_on_an_instant_that_stays_due(make_engine, monkeypatch):
    """Timers that keep falling due at the same instant (fired, yet due again) end in a clear error."""
    eng = make_engine("deadline.bpmn")
    eng.start("deadline")
    fired: list[int] = []
    monkeypatch.setattr(eng, "fire_due_timers", lambda: fired.append(1) or 1)  # moves, but nothing changes
    with pytest.raises(ClockError, match="kept falling due at 2031-04-07T09:00:00.* 100 times over"):
        eng.advance_clock(timedelta(days=60))
    assert len(fired) == 100


def test_a_step_whose_instance_changed_underneath_it_saves_nothing(make_engine, calls, monkeypatch):
    """The instance version check: another worker saved the instance between our load and our save (here:
    right after the load, in the same transaction), so our save must change nothing and say so."""
    eng = make_engine("deadline.bpmn")
    case_id = eng.start("deadline").case_id
    with eng.db.transaction() as conn:
        eng._set_clock(conn, eng.now(conn) + timedelta(days=36))
    load = Engine._load

    def load_then_someone_saves(self, conn, instance_id, row=None):
        loaded = load(self, conn, instance_id, row)
        conn.execute(update(instances).where(instances.c.id == instance_id)
                     .values(version=instances.c.version + 1))
        return loaded

    monkeypatch.setattr(Engine, "_load", load_then_someone_saves)
    events_before = len(eng.history(case_id))
    with pytest.raises(ConflictError, match="nothing was saved"):
        eng.fire_due_timers()
    monkeypatch.setattr(Engine, "_load", load)
    assert len(eng.history(case_id)) == events_before  # (the handler ran; its step was not kept)
    assert eng.fire_due_timers() == 1  # the step runs once the instance is read as it is
    assert [e["data"]["element_id"] for e in eng.history(case_id) if e["type"] == "timer.fired"] == ["reminder"]


@pytest.mark.postgres
def test_a_worker_skips_an_instance_another_worker_holds(pg_url, calls):
    """Two workers claiming the same due timers on PostgreSQL: while one holds an instance, the other fires
    every other due timer at once (SKIP LOCKED) instead of waiting for it; each timer fires once."""
    eng = Engine(pg_url, registry=calls.registry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    eng.deploy([Path(__file__).parent / "diagrams" / "deadline.bpmn"])
    cases = [eng.start("deadline").case_id for _ in range(6)]
    with eng.db.transaction() as conn:
        eng._set_clock(conn, eng.now(conn) + timedelta(days=36))
    other = Engine(pg_url, registry=calls.registry(), forms=FormLibrary())
    held = eng.db.engine.connect()
    tx = held.begin()
    held.execute(select(instances.c.id).order_by(instances.c.id).limit(1).with_for_update()).scalar_one()
    result: list[object] = []
    worker = threading.Thread(target=lambda: result.append(other.fire_due_timers()))
    try:
        worker.start()
        worker.join(120)  # a liveness check, not a timing: without SKIP LOCKED this waits for `held` forever
        assert not worker.is_alive(), "the timer job waited for a row another worker holds"
        assert result == [5]
    finally:
        tx.rollback()
        held.close()
        worker.join()
    assert eng.fire_due_timers() == 1  # the held one, once released
    for case_id in cases:
        fired = [e for e in eng.history(case_id) if e["type"] == "timer.fired"]
        assert [e["data"]["element_id"] for e in fired] == ["reminder"]
    other.db.dispose()
    eng.db.dispose()
