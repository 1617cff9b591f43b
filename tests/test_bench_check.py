"""`make bench-check` (bench/check.py): the yardstick's ratios compared with the last committed result, on
synthetic results. A checked ratio falling past the tolerance must fail the check; noise inside it must not."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest

from bench import check

MACHINE = {"cpu": "Intel(R) Xeon(R) Processor", "cores": 2, "python": "3.11.7", "sqlite": "3.40.1",
           "postgres": "15.20", "spiffworkflow": "3.2.0", "sqlalchemy": "2.1.9"}


def _spread(median: float, width: float = 0.02, rounds: int = 30) -> dict:
    """A ratio over `rounds` rounds whose quartiles are `width` apart."""
    return {"median": median, "min": median - width, "max": median + width, "q1": median - width / 2,
            "q3": median + width / 2, "by_round": [median] * rounds}


def _ratio(median: float, cpu_median: float, width: float = 0.02) -> dict:
    return {**_spread(median, width), "cpu": _spread(cpu_median, width), "cpu_median": cpu_median}


DEFAULTS = {"c/b": 0.55, "c/b_prime": 0.30, "c_full/b_prime": 0.20, "c_nocache/b_prime": 0.25,
            "d/b_prime": 0.10, "d/c": 0.35, "b_prime/b": 1.8, "c_full/c": 0.7, "c_nocache/c": 0.85}


def result(when: str = "2026-12-03T14:00:00+00:00", sha: str = "a" * 40, **medians: float) -> dict:
    """A yardstick result; keyword arguments (c__b_prime=0.24) change a ratio's wall-clock median only,
    None leaves the ratio out; the CPU-time ratios stay at the defaults × 1.1."""
    wall = dict(DEFAULTS, **{k.replace("__", "/"): v for k, v in medians.items()})
    return {"when": when, "machine": dict(MACHINE), "commit": {"sha": sha, "uncommitted_changes": []},
            "throughput": {"ratios": {k: _ratio(v, DEFAULTS[k] * 1.1) for k, v in wall.items() if v is not None}}}


def _write(path: Path, data: dict) -> Path:
    path.write_text(json.dumps(data))
    return path


def _check(tmp_path: Path, baseline: dict, new: dict, *extra: str) -> int:
    return check.main(["--new", str(_write(tmp_path / "new.json", new)),
                       "--baseline", str(_write(tmp_path / "old.json", baseline)), *extra])


def test_a_checked_ratio_falling_past_the_tolerance_fails_and_names_it(tmp_path, capsys):
    # c/b_prime 0.30 -> 0.24 is a 20% fall, past the default 15%
    assert _check(tmp_path, result(), result(c__b_prime=0.24)) == 1
    out = capsys.readouterr().out
    assert "FAIL" in out
    assert "c/b_prime (wall) fell 20% (0.300 -> 0.240)" in out


def test_each_checked_ratio_fails_on_its_own(tmp_path):
    for name in check.CHECKED:
        old = result()
        new = copy.deepcopy(old)
        new["throughput"]["ratios"][name]["median"] = old["throughput"]["ratios"][name]["median"] * 0.8
        assert check.compare(old, new).regressions, name


def test_a_fall_inside_the_tolerance_passes(tmp_path, capsys):
    # 0.30 -> 0.27 is 10%: the machine's noise, not a regression
    assert _check(tmp_path, result(), result(c__b_prime=0.27)) == 0
    out = capsys.readouterr().out
    assert out.rstrip().splitlines()[-1].startswith("OK")
    assert "(-10%;" in out


def test_the_tolerance_is_an_option(tmp_path):
    # the same 10% fall fails when the tolerance is 5%
    assert _check(tmp_path, result(), result(c__b_prime=0.27), "--tolerance", "0.05") == 1
    # just inside and just outside 15%
    assert check.compare(result(), result(c__b_prime=0.256)).failed is False
    assert check.compare(result(), result(c__b_prime=0.254)).failed is True


def test_a_rise_is_reported_and_passes(tmp_path, capsys):
    assert _check(tmp_path, result(), result(c__b_prime=0.45)) == 0
    out = capsys.readouterr().out
    assert "c/b_prime" in out and "(+50%; noise 3%) ROSE" in out


def test_a_carepath_to_carepath_ratio_falling_is_reported_but_does_not_fail(tmp_path, capsys):
    # d/c falls when c alone gets faster: reported, never a failure
    assert _check(tmp_path, result(), result(d__c=0.2, c__b_prime=0.5)) == 0
    out = capsys.readouterr().out
    assert "d/c" in out and "FELL" in out


def test_a_checked_ratio_not_measured_now_fails(tmp_path, capsys):
    # the baseline ran PostgreSQL; a run without --pg cannot pass for one that checked it
    assert _check(tmp_path, result(), result(d__b_prime=None, d__c=None)) == 1
    out = capsys.readouterr().out
    assert "d/b_prime not measured" in out


def test_a_different_machine_or_library_is_said(tmp_path, capsys):
    new = result()
    new["machine"]["spiffworkflow"] = "3.3.0"
    new["machine"]["cores"] = 4
    assert _check(tmp_path, result(), new) == 0
    out = capsys.readouterr().out
    assert "spiffworkflow differs: '3.2.0' then, '3.3.0' now" in out
    assert "cores differs: 2 then, 4 now" in out


def test_a_fall_inside_a_noisy_runs_spread_is_not_conclusive_and_does_not_fail(tmp_path, capsys):
    # a loaded machine: the wall-clock quartiles 0.15 apart over 30 rounds, so a 20% fall of the median
    # (0.30 -> 0.24) is inside twice the standard error of the difference; the CPU-time ratio did not move
    old, new = result(), result(c__b_prime=0.24)
    for r in (old, new):
        r["throughput"]["ratios"]["c/b_prime"].update(q1=0.2, q3=0.35)
    assert _check(tmp_path, old, new) == 0
    out = capsys.readouterr().out
    assert "fell, within the runs' noise: not conclusive" in out
    assert "NOT CONCLUSIVE (past the tolerance, inside the noise): c/b_prime (wall)" in out
    # and a rise as noisy is not called a rise
    assert _check(tmp_path, new, old) == 0
    out = capsys.readouterr().out
    assert "c/b_prime wall: 0.240 -> 0.300" in out and "rose, within the runs' noise" in out
    assert "ROSE" not in out


def test_the_cpu_time_ratio_fails_on_its_own(tmp_path, capsys):
    # the wall-clock ratio noisy and inconclusive, the CPU-time ratio clear: the step's own work got slower
    old, new = result(), result(c__b_prime=0.24)
    for r in (old, new):
        r["throughput"]["ratios"]["c/b_prime"].update(q1=0.2, q3=0.35)
    new["throughput"]["ratios"]["c/b_prime"]["cpu"] = _spread(0.25)
    assert _check(tmp_path, old, new) == 1
    assert "c/b_prime (cpu) fell 24% (0.330 -> 0.250)" in capsys.readouterr().out


def test_files_that_cannot_be_compared_give_exit_2_and_say_why(tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    assert check.main(["--new", str(bad), "--baseline", str(_write(tmp_path / "o.json", result()))]) == 2
    assert "bad.json is not JSON (line 1" in capsys.readouterr().err
    other = _write(tmp_path / "other.json", {"throughput": {"instances_per_run": 300}})
    assert check.main(["--new", str(other), "--baseline", str(tmp_path / "o.json")]) == 2
    assert "no throughput.ratios" in capsys.readouterr().err
    assert check.main(["--new", str(tmp_path / "absent.json"), "--baseline", str(tmp_path / "o.json")]) == 2
    with pytest.raises(check.CheckError, match="tolerance must be between 0 and 1"):
        check.compare(result(), result(), tolerance=15)


def _git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args], cwd=root,
                   check=True, capture_output=True)


def test_the_baseline_is_the_latest_committed_result_never_an_uncommitted_one(tmp_path):
    results = tmp_path / "bench" / "results"
    results.mkdir(parents=True)
    _git(tmp_path, "init", "-q")
    older = _write(results / "yardstick-20261203T100000.json", result(when="2026-12-03T10:00:00+00:00"))
    newer = _write(results / "yardstick-20261203T120000.json", result(when="2026-12-03T12:00:00+00:00"))
    _write(results / "engine-20261203T130000.json", {"when": "2026-12-03T13:00:00+00:00"})
    _git(tmp_path, "add", ".")
    _git(tmp_path, "commit", "-qm", "results")
    uncommitted = _write(results / "yardstick-20261203T140000.json", result(when="2026-12-03T14:00:00+00:00"))
    assert check.last_committed(root=tmp_path) == newer
    assert check.last_committed(exclude=newer, root=tmp_path) == older
    assert uncommitted != check.last_committed(root=tmp_path)


def test_no_committed_result_says_how_to_make_one(tmp_path):
    _git(tmp_path, "init", "-q")
    with pytest.raises(check.CheckError, match="commit a result of `python -m bench.yardstick`"):
        check.last_committed(root=tmp_path)


def test_a_real_yardstick_result_is_what_the_check_reads(tmp_path):
    # the library variants only (milliseconds): the result's shape is the one compare() reads
    from bench import yardstick

    out = yardstick.main(["--variants", "a,b,b_prime", "--n", "3", "--rounds", "2", "--warmup", "1",
                          "--out", str(tmp_path / "y.json")])
    data = json.loads(out.read_text())
    assert set(data["throughput"]["ratios"]) == {"b_prime/b"}
    assert len(data["throughput"]["ratios"]["b_prime/b"]["by_round"]) == 2
    assert data["machine"]["sqlite"] and "sha" in data["commit"]  # None outside a git checkout
    rep = check.compare(data, data)
    assert not rep.failed


def test_the_yardsticks_options_pass_through_a_run_even_where_they_begin_like_the_checks(tmp_path, capsys):
    # `--n` begins like `--new`: it must reach the yardstick, not be taken for the result to check
    baseline = _write(tmp_path / "base.json", json.loads(json.dumps(_library_only_result(tmp_path))))
    assert check.main(["--run", "--variants", "a,b,b_prime", "--n", "3", "--rounds", "2", "--warmup", "1",
                       "--out", str(tmp_path / "new.json"), "--baseline", str(baseline)]) == 0
    assert json.loads((tmp_path / "new.json").read_text())["throughput"]["instances_per_run"] == 3


def _library_only_result(tmp_path):  # type: ignore[no-untyped-def]
    from bench import yardstick

    out = yardstick.main(["--variants", "a,b,b_prime", "--n", "2", "--rounds", "2", "--warmup", "1",
                          "--out", str(tmp_path / "lib.json")])
    return json.loads(out.read_text())
