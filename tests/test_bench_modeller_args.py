"""bench/modeller_bench.py refuses counts it cannot measure: `--opens 1` leaves no warm opening to measure and
ended in an IndexError after the cold one had run (session 27's trial of the documented benchmark commands)."""

from __future__ import annotations

import sys

import pytest

from bench import modeller_bench


@pytest.mark.parametrize(("argv", "said"), [
    (["--opens", "1"], "--opens: 1 is too few: at least 2"),
    (["--opens", "two"], "--opens: 'two' is not a whole number"),
    (["--edits", "0"], "--edits: 0 is too few: at least 1"),
])
def test_counts_the_bench_cannot_measure_are_refused_before_it_runs(monkeypatch, capsys, argv, said):
    ran = []
    monkeypatch.setattr(modeller_bench, "run", lambda *a: ran.append(a))
    monkeypatch.setattr(sys, "argv", ["modeller_bench.py", *argv])
    with pytest.raises(SystemExit) as stop:
        modeller_bench.main()
    assert stop.value.code == 2 and said in capsys.readouterr().err
    assert ran == []
