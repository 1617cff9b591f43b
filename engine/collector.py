"""Fewer runs of Python's cycle collector while a piece of work makes many long-lived objects.

The collector's default threshold runs it every 700 net allocations, and every tenth run of the oldest
generation walks every tracked object. Work that builds hundreds of thousands of dicts at once (reading a
county's kept measure facts, a simulation's SpiffWorkflow tasks) spends a third to a half of its time there
while nothing it made is garbage yet. ``fewer_collections()`` raises the threshold for the duration of a
block and puts the earlier one back when the last such block ends: blocks may nest and may run in several
threads at once (the threshold is process-wide), so a count of the blocks open, under a lock, decides when
to restore it. Reference counting still frees everything acyclic at once; the collector still runs, every
``GEN0`` allocations.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GEN0, GEN1, GEN2 = 200_000, 50, 200

_lock = threading.Lock()
_open = 0
_saved: tuple[int, int, int] | None = None


@contextmanager
def fewer_collections() -> Iterator[None]:
    global _open, _saved
    with _lock:
        if _open == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(GEN0, GEN1, GEN2)
        _open += 1
    try:
        yield
    finally:
        with _lock:
            _open -= 1
            if _open == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
