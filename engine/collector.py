"""Fewer runs of Python's cycle collector while a piece of work makes many long-lived objects.

The collector's default threshold runs it every 700 net allocations, and every tenth run of the oldest
generation walks every tracked object. Work that builds hundreds of thousands of dicts at once (reading a
county's kept measure facts, a simulation's SpiffWorkflow tasks) spends a third to a half of its time there
while nothing it made is garbage yet. ``fewer_collections()`` raises the threshold for the duration of a
block and puts the earlier one back when the last such block ends: blocks may nest and may run in several
threads at once (the threshold is process-wide), so a count of the blocks open, under a lock, decides when
to restore it. Reference counting still frees everything acyclic at once; the collector still runs, every
``GEN0`` allocations.

``fewer_collections(keep=True)`` is for work whose objects stay alive after it (a population the measures hold
between pages): when the last block ends, what the blocks made is moved to the oldest generation without a
collection (``gc.freeze()`` then ``gc.unfreeze()``), so the default threshold, put back, does not walk a
million objects that are not garbage at the next allocation. Nothing is exempt from collection for good: cyclic
garbage among them is found by the next full collection, which runs as it would have for any old objects.
"""

from __future__ import annotations

import gc
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GEN0, GEN1, GEN2 = 200_000, 50, 200

_lock = threading.Lock()
_open: list[int] = []  # the gen0 threshold each open block asked for
_saved: tuple[int, int, int] | None = None
_keep = False


@contextmanager
def fewer_collections(keep: bool = False, gen0: int = GEN0) -> Iterator[None]:
    """`gen0`: the youngest generation's threshold this block asks for; while blocks asking for different ones
    are open, the highest holds."""
    global _saved, _keep
    with _lock:
        if not _open:
            _saved = gc.get_threshold()
        _open.append(gen0)
        gc.set_threshold(max(_open), GEN1, GEN2)
    try:
        yield
    finally:
        with _lock:
            _keep = _keep or keep
            _open.remove(gen0)
            if _open:
                gc.set_threshold(max(_open), GEN1, GEN2)
            elif _saved is not None:
                if _keep:  # into the oldest generation, uncollected (see above)
                    gc.freeze()
                    gc.unfreeze()
                gc.set_threshold(*_saved)
                _saved, _keep = None, False
