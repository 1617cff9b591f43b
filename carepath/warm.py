"""Imported by a simulation's forkserver when it starts (carepath/forked.py), and by nothing else: the modules a
simulation's processes need, and one scratch engine made and thrown away, so that the forms' meta-schema checks and
the diagrams' parse and checks (kept by content: engine/forms.py, engine/content_cache.py) are done once here, not in
every process forked from it. Nothing here starts a thread. A failure is not raised (the forkserver would fail every
start with it): each process then does the work itself, and says what is wrong as it would have.
"""

from __future__ import annotations

from datetime import date

WARMED = False

try:
    from carepath import simulate, simulate_ahead, simulate_compare  # noqa: F401 - imported for the processes

    _eng = simulate.scratch_engine(None, date(2026, 1, 5))  # a Monday; nothing kept depends on the day
    _eng.db.dispose()
    del _eng
    WARMED = True
except Exception:  # noqa: BLE001, S110 - see the module's docstring
    pass
