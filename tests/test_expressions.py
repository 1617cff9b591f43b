"""The restricted evaluator: classic sandbox escapes are refused, ordinary modelling code works."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from engine.errors import ExpressionError, UnsafeExpressionError
from engine.expressions import SAFE_BUILTINS, SafeEnvironment, check_expression

FIXED_NOW = dt.datetime(2024, 3, 1, 9, 0, tzinfo=dt.timezone.utc)


@pytest.fixture
def env() -> SafeEnvironment:
    return SafeEnvironment({"now": lambda: FIXED_NOW, "add_days": lambda d, n: d + dt.timedelta(days=n)})


def refused(env: SafeEnvironment, source: str, *, mode: str = "eval", context: dict | None = None) -> str:
    """Run `source`, assert it is refused as unsafe, and return the message."""
    run = env.evaluate if mode == "eval" else env.execute
    with pytest.raises(UnsafeExpressionError) as info:
        run(source, dict(context or {"x": 1}))
    message = info.value.message
    assert source.splitlines()[0] in message  # the message quotes the expression
    assert "refused" in message
    return message


# ------------------------------------------------------------------ escapes


def test_mro_subclasses_escape_is_refused(env: SafeEnvironment) -> None:
    message = refused(env, "().__class__.__mro__[1].__subclasses__()")
    assert '"__class__"' in message and "starts with \"_\"" in message


def test_dunder_import_is_refused(env: SafeEnvironment) -> None:
    assert '"__import__"' in refused(env, "__import__('os')")


def test_subclasses_in_comprehension_is_refused(env: SafeEnvironment) -> None:
    assert "__subclasses__" in refused(env, "[c for c in ().__class__.__base__.__subclasses__()]")


def test_function_globals_of_injected_function_is_refused(env: SafeEnvironment) -> None:
    assert "__globals__" in refused(env, "now.__globals__")


def test_function_globals_via_dynamic_getattr_is_refused(env: SafeEnvironment) -> None:
    # Built at run time, so only the runtime guard can catch it.
    assert "__globals__" in refused(env, "getattr(now, '__glo' + 'bals__')")


def test_builtins_name_is_refused(env: SafeEnvironment) -> None:
    assert "__builtins__" in refused(env, "__builtins__")


def test_underscore_name_is_refused(env: SafeEnvironment) -> None:
    assert '"_x"' in refused(env, "_x + 1")


def test_open_is_refused(env: SafeEnvironment) -> None:
    assert '"open()"' in refused(env, "open('/etc/passwd')")


def test_eval_is_refused(env: SafeEnvironment) -> None:
    assert "Eval calls are not allowed" in refused(env, "eval('1')")


def test_exec_is_refused(env: SafeEnvironment) -> None:
    assert "Exec calls are not allowed" in refused(env, "exec('x=1')")


def test_compile_is_refused(env: SafeEnvironment) -> None:
    assert '"compile()"' in refused(env, "compile('1', 'f', 'eval')")


def test_getattr_dunder_is_refused(env: SafeEnvironment) -> None:
    assert '"__class__"' in refused(env, "getattr(x, '__class__')")


def test_setattr_is_refused(env: SafeEnvironment) -> None:
    assert '"setattr()"' in refused(env, "setattr(x, 'y', 1)")


@pytest.mark.parametrize("source", ["globals()", "locals()", "vars()", "type(x)", "dir(x)"])
def test_namespace_and_type_introspection_is_refused(env: SafeEnvironment, source: str) -> None:
    assert "is not allowed" in refused(env, source)


def test_format_attribute_walk_is_refused(env: SafeEnvironment) -> None:
    assert "format()" in refused(env, '"{0.__class__}".format(1)')


def test_format_map_is_refused(env: SafeEnvironment) -> None:
    assert "format_map()" in refused(env, '"{x.__class__}".format_map({"x": 1})')


def test_format_via_str_type_at_runtime_is_refused(env: SafeEnvironment) -> None:
    assert "format()" in refused(env, "getattr(str, 'for' + 'mat')('{0.__class__}', 1)")


def test_import_statement_in_script_is_refused(env: SafeEnvironment) -> None:
    with pytest.raises(UnsafeExpressionError) as info:
        env.execute("y = 1\nimport os", {})
    assert "import statements are not allowed" in info.value.message
    assert "import os" in info.value.message
    assert info.value.context["line"] == 2


def test_from_import_in_script_is_refused(env: SafeEnvironment) -> None:
    assert "import statements are not allowed" in refused(env, "from os import path", mode="exec")


def test_a_script_that_imports_the_datetime_classes_it_already_has_runs_as_written(env: SafeEnvironment) -> None:
    """SpiffArena's and other engines' scripts begin `from datetime import datetime, timedelta`; the sandbox has those
    very classes, so the line changes nothing. Before, the whole script was refused."""
    data = {"n": 3}
    source = ("from datetime import date, timedelta\nfrom datetime import datetime, timezone\n"
              "due = (date(2027, 1, 1) + timedelta(days=n)).isoformat()\n"
              "at = datetime(2027, 1, 1, tzinfo=timezone.utc).isoformat()\n")
    assert check_expression(source, "exec") is None  # deploys
    env.execute(source, data)
    assert data == {"n": 3, "due": "2027-01-04", "at": "2027-01-01T00:00:00+00:00"}


@pytest.mark.parametrize("source", [
    "from datetime import date as d", "from datetime import *", "from datetime import MINYEAR",
    "import datetime", "from os import path", "from .datetime import date",
])
def test_any_other_import_is_refused_naming_what_is_there_without_one(env: SafeEnvironment, source: str) -> None:
    message = refused(env, source, mode="exec")
    assert "import statements are not allowed; date, datetime, timedelta and timezone" in message


def test_generator_frame_walk_is_refused(env: SafeEnvironment) -> None:
    message = refused(env, "(x for x in []).gi_frame.f_globals")
    assert "gi_frame" in message


def test_generator_frame_walk_at_runtime_is_refused(env: SafeEnvironment) -> None:
    assert "gi_frame" in refused(env, "getattr((x for x in []), 'gi_' + 'frame')")


def test_class_definition_is_refused(env: SafeEnvironment) -> None:
    assert "class definitions are not allowed" in refused(env, "class A:\n    pass", mode="exec")


def test_datetime_now_is_refused(env: SafeEnvironment) -> None:
    assert "use now() — time is injected" in refused(env, "datetime.now()")


@pytest.mark.parametrize("source", ["date.today()", "datetime.utcnow()", "date(2024, 1, 1).today()"])
def test_other_clock_reads_are_refused(env: SafeEnvironment, source: str) -> None:
    assert "use now() — time is injected" in refused(env, source)


def test_clock_read_via_dynamic_getattr_is_refused(env: SafeEnvironment) -> None:
    assert "use now() — time is injected" in refused(env, "getattr(datetime, 'no' + 'w')()")


def test_safe_builtins_datetime_refuses_now_even_outside_the_sandbox() -> None:
    with pytest.raises(UnsafeExpressionError, match="use now"):
        SAFE_BUILTINS["datetime"].now()
    with pytest.raises(UnsafeExpressionError, match="use now"):
        SAFE_BUILTINS["date"].today()


def test_local_time_zone_is_refused(env: SafeEnvironment) -> None:
    assert "local zone" in refused(env, "now().astimezone()")
    assert "local zone" in refused(env, "datetime.fromtimestamp(0)")


def test_attribute_assignment_is_refused(env: SafeEnvironment) -> None:
    assert "only dicts and lists can be changed" in refused(env, "now.x = 1", mode="exec")


# ------------------------------------------------------------------ ordinary failures


def test_unknown_name_is_an_expression_error(env: SafeEnvironment) -> None:
    with pytest.raises(ExpressionError) as info:
        env.evaluate("age >= 65", {})
    assert info.value.message == "name 'age' is not defined in expression 'age >= 65'"


def test_runtime_error_names_the_error_and_expression(env: SafeEnvironment) -> None:
    with pytest.raises(ExpressionError) as info:
        env.evaluate("score / visits", {"score": 3, "visits": 0})
    assert "ZeroDivisionError: division by zero" in info.value.message
    assert "'score / visits'" in info.value.message


def test_syntax_error_is_an_expression_error(env: SafeEnvironment) -> None:
    with pytest.raises(ExpressionError) as info:
        env.evaluate("age >", {"age": 1})
    assert not isinstance(info.value, UnsafeExpressionError)
    assert "syntax error" in info.value.message and "'age >'" in info.value.message


def test_script_error_reports_the_line(env: SafeEnvironment) -> None:
    with pytest.raises(ExpressionError) as info:
        env.execute("a = 1\nb = a / 0", {})
    assert info.value.context["line"] == 2
    assert "ZeroDivisionError" in info.value.message


def test_failed_script_leaves_task_data_unchanged(env: SafeEnvironment) -> None:
    data = {"items": [1], "n": 1}
    with pytest.raises(ExpressionError):
        env.execute("items.append(2)\nn = 5\nboom = 1 / 0", data)
    assert data == {"items": [1], "n": 1}


def test_task_data_hiding_an_injected_function_is_reported(env: SafeEnvironment) -> None:
    with pytest.raises(ExpressionError, match="now"):
        env.execute("y = 1", {"now": "2024-01-01"})


# ------------------------------------------------------------------ normal use


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("age >= 65", True),
        ("age >= 65 and not lives_alone or eligible", True),
        ("len(outcomes_unmet) >= 2", True),
        ("needs['mobility'] == 'high'", True),
        ("outcomes_unmet[0]", "washing"),
        ("[o.upper() for o in outcomes_unmet if o != 'meals']", ["WASHING", "DRESSING"]),
        ("{k: v for k, v in needs.items()}", {"mobility": "high"}),
        ("sum(x * 2 for x in [1, 2, 3])", 12),
        ("sorted(outcomes_unmet, key=lambda o: len(o))[0]", "meals"),
        ("max(1, 2) if age > 3 else min(1, 2)", 2),
        ("f'{age} years'", "70 years"),
        ("isinstance(age, int)", True),
    ],
)
def test_ordinary_expressions_work(env: SafeEnvironment, source: str, expected: object) -> None:
    data = {"age": 70, "lives_alone": True, "eligible": True,
            "outcomes_unmet": ["washing", "dressing", "meals"], "needs": {"mobility": "high"}}
    assert env.evaluate(source, data) == expected


def test_injected_functions_and_dates_work(env: SafeEnvironment) -> None:
    assert env.evaluate("now() > datetime(2024, 1, 1, tzinfo=timezone.utc)", {}) is True
    assert env.evaluate("add_days(date(2024, 1, 30), 3)", {}) == dt.date(2024, 2, 2)
    assert env.evaluate("isinstance(now(), datetime)", {}) is True
    next_day = env.evaluate("date.fromisoformat(d) + timedelta(days=1)", {"d": "2024-01-01"})
    assert next_day == dt.date(2024, 1, 2)


def test_expression_over_multiple_indented_lines_works(env: SafeEnvironment) -> None:
    assert env.evaluate("\n   age >= 65\n", {"age": 70}) is True


def test_external_context_is_visible_and_task_data_wins(env: SafeEnvironment) -> None:
    # DMN passes the input value as external context named dmninputexpr.
    assert env.evaluate("dmninputexpr > 3", {}, external_context={"dmninputexpr": 5}) is True
    assert env.evaluate("v", {"v": "task"}, external_context={"v": "external"}) == "task"


def test_script_assigns_and_mutates(env: SafeEnvironment) -> None:
    data = {"visits": [], "totals": {"hours": 1}, "count": 0}
    env.execute(
        "visits.append('monday')\n"
        "totals['hours'] += 2\n"
        "totals['days'] = 1\n"
        "count += 1\n"
        "for day in ['tue', 'wed']:\n"
        "    visits.append(day)\n"
        "a, b = 1, 2\n"
        "summary = {'n': len(visits), 'sum': a + b}\n",
        data,
    )
    assert data == {
        "visits": ["monday", "tue", "wed"], "totals": {"hours": 3, "days": 1}, "count": 1,
        "day": "wed", "a": 1, "b": 2, "summary": {"n": 3, "sum": 3},
    }


def test_script_with_helper_function(env: SafeEnvironment) -> None:
    data = {"scores": [3, 4, 5]}
    env.execute(
        "def band(score):\n"
        "    if score >= 4:\n"
        "        return 'high'\n"
        "    return 'low'\n"
        "bands = [band(s) for s in scores]\n",
        data,
    )
    assert data == {"scores": [3, 4, 5], "bands": ["low", "high", "high"]}


def test_script_can_delete_a_variable(env: SafeEnvironment) -> None:
    data = {"keep": 1, "scratch": 2}
    env.execute("del scratch", data)
    assert data == {"keep": 1}


def test_task_data_after_execute_holds_only_data(env: SafeEnvironment) -> None:
    data = {"x": 1}
    env.execute("f = lambda v: v\ng = len\nh = now\nprint('hello')\nwhen = now()\ny = f(x)", data)
    assert data == {"x": 1, "when": FIXED_NOW, "y": 1}
    assert not any(callable(v) or k.startswith("_") for k, v in data.items())
    json.dumps({k: v for k, v in data.items() if k != "when"})


def test_script_leaving_a_function_inside_data_is_an_error(env: SafeEnvironment) -> None:
    with pytest.raises(ExpressionError, match="plain data"):
        env.execute("handlers = [len]", {})


@pytest.mark.parametrize(
    "script", ["r = range(3)", "d = date(2024, 1, 1)", "m = {(1, 2): 'x'}", "g = map(str, [1])"]
)
def test_script_leaving_non_serialisable_data_is_an_error(env: SafeEnvironment, script: str) -> None:
    with pytest.raises(ExpressionError, match="task data must be plain data"):
        env.execute(script, {})


def test_script_cannot_change_builtins_or_functions_between_evaluations(env: SafeEnvironment) -> None:
    data: dict = {}
    env.execute("len = lambda v: 0\nabs = 5\nnow = 'then'", data)
    # A callable or injected-name assignment is dropped; plain data stays data for this task only.
    assert data == {"abs": 5}
    assert env.evaluate("len([1, 2]) + abs(-1)", {}) == 3
    assert env.evaluate("now()", {}) == FIXED_NOW
    assert SAFE_BUILTINS["len"] is len and SAFE_BUILTINS["abs"] is abs
    with pytest.raises(UnsafeExpressionError):
        env.execute("now.__code__ = None", {})
    with pytest.raises(UnsafeExpressionError):
        env.execute("datetime.now = now", {})
    with pytest.raises(UnsafeExpressionError):
        env.execute("date.today = now", {})
    with pytest.raises(UnsafeExpressionError):
        env.execute("SAFE = getattr(now, '__builtins__')", {})
    assert env.evaluate("now()", {}) == FIXED_NOW


def test_environments_do_not_share_builtins() -> None:
    a, b = SafeEnvironment(), SafeEnvironment()
    assert a._guards["__builtins__"] is not b._guards["__builtins__"]
    assert a._guards["__builtins__"] is not SAFE_BUILTINS


def test_safe_builtins_has_no_dangerous_names() -> None:
    for name in ("open", "eval", "exec", "compile", "__import__", "globals", "locals", "vars",
                 "type", "setattr", "delattr", "input", "breakpoint", "object", "__build_class__"):
        assert name not in SAFE_BUILTINS


# ------------------------------------------------------------------ deploy-time check


def test_check_expression() -> None:
    assert check_expression("age >= 65") is None
    assert check_expression("x = 1\ny = [x]", mode="exec") is None
    assert "import statements are not allowed" in (check_expression("import os", mode="exec") or "")
    assert "__class__" in (check_expression("().__class__") or "")
    assert "syntax error" in (check_expression("age >") or "")
    assert "use now()" in (check_expression("datetime.now()") or "")
    with pytest.raises(ValueError):
        check_expression("1", mode="single")


def test_compilation_is_cached() -> None:
    from engine.expressions import _compile

    check_expression("cached_probe_1 + 1")
    before = _compile.cache_info().hits
    check_expression("cached_probe_1 + 1")
    assert _compile.cache_info().hits == before + 1
