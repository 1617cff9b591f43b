"""A deep copy of plain data (task data, configuration) that gives what `copy.deepcopy` gives, faster.

Task data is dicts and lists of text, numbers, booleans and None. `copy.deepcopy` copies them through
its general machinery (a dispatch, a memo entry and a keep-alive entry for every container, a call for
every leaf); `plain_copy` walks exact dicts and lists itself and hands everything else — dates,
tuples, sets, subclasses, any other object — to `copy.deepcopy` with the same memo. The result is the
same: the same structure, the leaves that `deepcopy` shares (text, numbers) shared, every container new,
and a container reached twice (two keys naming one list) copied once, so the copy keeps the sharing
the original had (tests/test_plain_copy.py). Used where a script's variables are copied before it runs
(engine/expressions.py) and where configuration is handed out (handlers/config_files.py).
"""

from __future__ import annotations

import copy
from typing import Any

#: leaves `copy.deepcopy` returns as they are (immutable)
_SHARED = frozenset((str, int, float, bool, type(None)))


def plain_copy(value: Any, memo: dict[int, Any] | None = None) -> Any:
    """`copy.deepcopy(value)`, the plain-data parts walked here."""
    return _copy(value, {} if memo is None else memo)


def _copy(value: Any, memo: dict[int, Any]) -> Any:
    kind = type(value)
    if kind in _SHARED:
        return value
    if kind is dict:
        done = memo.get(id(value))
        if done is not None:
            return done
        out: dict[Any, Any] = {}
        memo[id(value)] = out
        for key, item in value.items():
            if type(key) not in _SHARED:
                key = copy.deepcopy(key, memo)
            out[key] = item if type(item) in _SHARED else _copy(item, memo)
        _keep_alive(value, memo)
        return out
    if kind is list:
        done = memo.get(id(value))
        if done is not None:
            return done
        seq: list[Any] = []
        memo[id(value)] = seq
        seq.extend(item if type(item) in _SHARED else _copy(item, memo) for item in value)
        _keep_alive(value, memo)
        return seq
    return copy.deepcopy(value, memo)


def _keep_alive(value: Any, memo: dict[int, Any]) -> None:
    """What `copy.deepcopy` does with every container it copies: keep the original alive for the memo's life,
    so no id in the memo is reused by another object while the copy is made."""
    try:
        memo[id(memo)].append(value)
    except KeyError:
        memo[id(memo)] = [value]
