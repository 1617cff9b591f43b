"""engine/plain_copy.py: the same copy `copy.deepcopy` makes of task data and configuration, made faster.

A script runs on a copy of its task's data (all-or-nothing, and never reaching the data of the tasks it
shares nested values with); a handler gets its own copy of a configuration file. The copy must be the one
`copy.deepcopy` made: equal, every container new, and the sharing the original had (two variables naming
one list) kept — pickle spells out that sharing, so equal pickles mean the same shape.
"""

from __future__ import annotations

import copy
import datetime as dt
import pickle
from collections import OrderedDict
from decimal import Decimal

import pytest

from engine.expressions import SafeEnvironment
from engine.plain_copy import plain_copy
from handlers import config_files


def _values() -> list[object]:
    shared = {"hours": [4, 2], "when": dt.datetime(2026, 4, 1, 9, tzinfo=dt.timezone.utc)}
    loop: list[object] = [1]
    loop.append(loop)
    return [
        {},
        {"person": {"name": "A", "age": 80, "needs": ["washing", "meals"]}, "n": 1.5, "ok": True, "x": None},
        {"plan": shared, "copy_of_plan": shared, "hours": shared["hours"]},  # one value reached three ways
        {"loop": loop},
        {1: "int key", (1, 2): "tuple key", "when": dt.date(2026, 4, 1)},
        {"t": (1, [2, 3]), "s": {1, 2}, "money": Decimal("12.50"), "od": OrderedDict(a=[1])},
        [[], [[]], {"a": []}],
    ]


@pytest.mark.parametrize("value", _values())
def test_the_copy_is_the_one_deepcopy_makes(value: object) -> None:
    made = plain_copy(value)
    assert pickle.dumps(made) == pickle.dumps(copy.deepcopy(value))  # equal, with the same sharing
    originals = set()

    def containers(v: object, into: set[int], seen: set[int]) -> None:
        if isinstance(v, (dict, list)) and id(v) not in seen:
            seen.add(id(v))
            into.add(id(v))
            for item in (v.values() if isinstance(v, dict) else v):
                containers(item, into, seen)

    containers(value, originals, set())
    copied: set[int] = set()
    containers(made, copied, set())
    assert copied and not copied & originals  # every dict and list is new


def test_sharing_inside_the_data_is_kept() -> None:
    shared = [1]
    made = plain_copy({"a": shared, "b": shared})
    made["a"].append(2)
    assert made["b"] == [1, 2] and shared == [1]


def test_after_a_script_its_task_holds_nothing_it_shared_with_other_tasks() -> None:
    # SpiffWorkflow gives a task a shallow copy of its parent's data (the nested values are the parent's) and
    # later merges into them in place; a script's results are its own copies, the sharing it made kept
    parent = {"plan": {"items": ["meals"]}, "reviews": [{"due": "2026-05-01"}]}
    child = dict(parent)
    SafeEnvironment().execute("same_plan = plan\nfirst = reviews[0]", child)
    assert child == {**parent, "same_plan": parent["plan"], "first": parent["reviews"][0]}
    assert child["plan"] is not parent["plan"] and child["reviews"][0] is not parent["reviews"][0]
    assert child["same_plan"] is child["plan"] and child["first"] is child["reviews"][0]


def test_a_script_changing_a_list_it_was_given_changes_only_its_own_task() -> None:
    parent = {"items": ["meals"]}
    child = dict(parent)
    SafeEnvironment().execute("items.append('washing')", child)  # run in the budgeted child process
    assert child == {"items": ["meals", "washing"]} and parent == {"items": ["meals"]}


def test_each_caller_gets_its_own_copy_of_a_configuration_file(tmp_path) -> None:
    path = tmp_path / "settings.json"
    path.write_text('{"review_weeks": [6, 52]}', encoding="utf-8")

    def load(p):  # type: ignore[no-untyped-def]
        import json
        return json.loads(p.read_text(encoding="utf-8"))

    first = config_files.cached(path, load)
    first["review_weeks"].append(99)
    assert config_files.cached(path, load) == {"review_weeks": [6, 52]}
