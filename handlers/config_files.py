"""Configuration files read once and again only when they change.

`cached(path, load)` keeps `load(path)`'s result until the file's modification time changes,
so handlers called on every step do not read and parse their JSON each time, and an edited
file is still picked up without a restart. Each caller gets its own deep copy (engine/plain_copy.py):
a handler result that ends up in workflow data can never alter the cached configuration.

`read_json(path, what, error)` reads one such file with the same two clear errors for every caller:
"<what> <path> cannot be read: <reason>" and "<what> <path> is not JSON: <where the parser stopped>".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from engine.plain_copy import plain_copy

T = TypeVar("T")

_cache: dict[tuple[Path, Callable[..., Any]], tuple[int, Any]] = {}


def cached(path: Path, load: Callable[[Path], T], *, share: bool = False) -> T:
    """`load(path)`, reused while the file is unchanged (a missing file: whatever `load` raises).

    `share=True` returns the cached object itself, for results nobody mutates."""
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return load(path)  # let the loader say what is wrong with it
    key = (path, load)
    hit = _cache.get(key)
    if hit is None or hit[0] != mtime:
        hit = (mtime, load(path))
        _cache[key] = hit
    return hit[1] if share else plain_copy(hit[1])  # copy.deepcopy's result, faster


def read_json(path: Path, what: str, error: type[Exception] = ValueError) -> Any:
    """The JSON document in `path`; a file that cannot be read or is not JSON raises `error` naming `what`
    (e.g. "the groups file"), the file and what is wrong. Checking the document's content is the caller's."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    except ValueError as exc:  # json.JSONDecodeError, and UnicodeDecodeError for a file that is not UTF-8
        raise error(f"{what} {path} is not JSON: {exc}") from None
