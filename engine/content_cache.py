"""A small, bounded, thread-safe cache of work computed from diagram files, keyed by their content.

Reading a diagram (the hardened XML intake, carepath's checks, the layout lint, SpiffWorkflow's parser)
is pure work on the file's bytes, and the same files are read again and again in one process: every
`Engine.deploy`, every first start of a process version on a new engine, every check of a draft. The
callers (engine/bpmn.py `parse_bundle` and `build_specs`, engine/lint `lint_files`) keep what they
computed here, under a key made of the files' names and the SHA-256 of their bytes, never their paths:
a file changed on disk under the same name is a new key and is read again.

Only results are kept: a call that raises keeps nothing, so a broken diagram is read, and refused,
every time. Each cache holds at most `size` entries and forgets the least recently used one first.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from typing import Generic, TypeVar

__all__ = ["ContentCache", "files_key", "frozen"]

V = TypeVar("V")


def files_key(files: Mapping[str, bytes]) -> tuple[tuple[str, bytes], ...]:
    """The files' names and the SHA-256 of their bytes, in the order given (the parsers read them in order)."""
    return tuple((name, hashlib.sha256(data).digest()) for name, data in files.items())


def frozen(value: object) -> Hashable:
    """A hashable stand-in for a check's argument: None, a mapping (name -> required parameters) or a collection
    of names, each tagged so that None, an empty collection and an empty mapping stay different keys."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        return ("str", value)
    if isinstance(value, Mapping):
        return ("map", tuple(sorted((k, frozen(v)) for k, v in value.items())))
    return ("set", frozenset(frozen(v) if not isinstance(v, str) else v for v in value))


class ContentCache(Generic[V]):
    """At most `size` values by key, least recently used forgotten first; `get` builds a missing one."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._values: OrderedDict[Hashable, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, build: Callable[[], V]) -> V:
        """The value kept for `key`, or `build()`'s, kept when it returns (an exception keeps nothing)."""
        with self._lock:
            if key in self._values:
                self._values.move_to_end(key)
                self.hits += 1
                return self._values[key]
            self.misses += 1
        value = build()  # outside the lock: two threads may both build a new key, and the last one is kept
        with self._lock:
            self._values[key] = value
            self._values.move_to_end(key)
            while len(self._values) > self.size:
                self._values.popitem(last=False)
        return value

    def clear(self) -> None:
        with self._lock:
            self._values.clear()

    def __len__(self) -> int:
        return len(self._values)
