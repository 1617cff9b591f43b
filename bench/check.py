"""Compare a yardstick run's ratios with the last committed result and say what moved.

    make bench-check                                   # run bench.yardstick now, compare with the baseline
    python -m bench.check --run --rounds 6 --n 150     # the same; unknown options go to bench.yardstick
    python -m bench.check --new bench/results/yardstick-X.json [--baseline OLD.json] [--tolerance 0.15]

Only ratios are compared (carepath's rate over SpiffWorkflow's in the same round), never absolute times,
which follow the machine and its load; each ratio twice, by wall clock and by the benchmark process's CPU
time (steady under load, but blind to fsync and to PostgreSQL's own work). The checked ratios set carepath
against the library yardstick. A checked ratio is a regression, exit status 1, when its median falls more
than the tolerance (default 15%, relative) below the baseline's median AND the fall is larger than the two
runs' noise (twice the standard error of the difference of the two medians, estimated from each run's
quartiles and number of rounds). A fall past the tolerance but inside the noise is printed as NOT
CONCLUSIVE and does not fail: on a heavily loaded machine the wall-clock ratios cannot tell 15% apart, the
CPU-time ratios still can. A checked ratio the baseline has and the new run lacks also fails (a variant
left out is not a pass). Ratios between two carepath variants (d/c, c_full/c, c_nocache/c) and the
library's own b_prime/b are reported but never fail: d/c falls when c alone gets faster.

The baseline is the committed `bench/results/yardstick-*.json` with the latest "when" (`git ls-files`);
a result file not yet committed is never the baseline. Exit status 2: no baseline, or a file unreadable.
"""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

DEFAULT_TOLERANCE = 0.15
#: carepath against the library: these fail the check when they fall
CHECKED = ("c/b", "c/b_prime", "c_full/b_prime", "c_nocache/b_prime", "d/b_prime")
#: reported, never failing
REPORTED = ("d/c", "b_prime/b", "c_full/c", "c_nocache/c")
MACHINE_KEYS = ("cpu", "cores", "python", "sqlite", "postgres", "spiffworkflow", "sqlalchemy")
ROOT = Path(__file__).resolve().parent.parent


class CheckError(Exception):
    """A file that cannot be compared: missing, not JSON, or not a yardstick result."""


@dataclass
class Report:
    tolerance: float
    lines: list[str] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    improvements: list[str] = field(default_factory=list)
    inconclusive: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.regressions or self.missing)

    def text(self) -> str:
        if self.failed:
            verdict = "FAIL: " + "; ".join(self.regressions + [f"{r} not measured" for r in self.missing])
        else:
            verdict = f"OK: no checked ratio fell more than {self.tolerance:.0%} below the baseline beyond the noise"
        if self.inconclusive:
            verdict += "\nNOT CONCLUSIVE (past the tolerance, inside the noise): " + ", ".join(self.inconclusive)
        return "\n".join([*self.lines, verdict])


def ratios_of(result: dict[str, Any], where: str = "result") -> dict[str, dict[str, Any]]:
    try:
        ratios = result["throughput"]["ratios"]
    except (KeyError, TypeError):
        raise CheckError(f"{where} has no throughput.ratios: is it a bench.yardstick result?") from None
    for name, value in ratios.items():
        if not isinstance(value, dict) or not isinstance(value.get("median"), (int, float)):
            raise CheckError(f"{where}: ratio {name!r} has no numeric median")
    return ratios


def _sha(result: dict[str, Any]) -> str:
    c = result.get("commit")
    return str(c.get("sha") or "?")[:10] if isinstance(c, dict) else "?"


def _noise(r: dict[str, Any]) -> float:
    """Standard error of a median over the rounds, from the quartiles (normal approximation:
    sigma = IQR / 1.349, SE = 1.253 sigma / sqrt(rounds)); 0 when the result does not give them."""
    q1, q3, rounds = r.get("q1"), r.get("q3"), len(r.get("by_round") or [])
    if q1 is None or q3 is None or rounds < 2:
        return 0.0
    return 1.253 * ((q3 - q1) / 1.349) / math.sqrt(rounds)


def _compare_one(rep: Report, name: str, measure: str, o: dict[str, Any], n: dict[str, Any], checked: bool) -> None:
    tol = rep.tolerance
    tag = "checked " if checked else "reported"
    change = n["median"] / o["median"] - 1 if o["median"] else float("inf")
    # the fall that two runs' noise alone could make: twice the standard error of the difference of medians
    noise = 2 * math.hypot(_noise(o), _noise(n)) / o["median"] if o["median"] else 0.0
    moved = ""
    if change < -tol:
        if -change > noise:
            moved = "FELL"
            if checked:
                rep.regressions.append(f"{name} ({measure}) fell {-change:.0%} "
                                       f"({o['median']:.3f} -> {n['median']:.3f})")
        else:
            moved = "fell, within the runs' noise: not conclusive (rerun on a quieter machine or with more rounds)"
            if checked:
                rep.inconclusive.append(f"{name} ({measure})")
    elif change > tol:
        if change > noise:
            moved = "ROSE"
            if checked:
                rep.improvements.append(f"{name} ({measure})")
        else:
            moved = "rose, within the runs' noise"
    spread = f"[{n.get('min', n['median']):.3f}-{n.get('max', n['median']):.3f}]"
    rep.lines.append(f"  {tag} {name:>18} {measure:>4}: {o['median']:.3f} -> {n['median']:.3f} {spread} "
                     f"({change:+.0%}; noise {noise:.0%}) {moved}".rstrip())


def compare(baseline: dict[str, Any], new: dict[str, Any], tolerance: float = DEFAULT_TOLERANCE) -> Report:
    """What moved between two yardstick results, ratio by ratio, by wall clock and by CPU time.
    A checked ratio is a regression when its median is more than `tolerance` below the baseline's
    AND the fall is larger than the two runs' noise (twice the standard error of the difference of the
    medians, from their quartiles); a fall past the tolerance but inside the noise is reported as not
    conclusive; a rise past the tolerance as an improvement."""
    if not 0 < tolerance < 1:
        raise CheckError(f"tolerance must be between 0 and 1 (a fraction, e.g. 0.15), not {tolerance}")
    old_r, new_r = ratios_of(baseline, "the baseline"), ratios_of(new, "the new result")
    rep = Report(tolerance)
    rep.lines.append(f"baseline {baseline.get('when', '?')} (commit {_sha(baseline)}) vs new "
                     f"{new.get('when', '?')} (commit {_sha(new)}); tolerance {tolerance:.0%}")
    old_m, new_m = baseline.get("machine", {}), new.get("machine", {})
    for key in MACHINE_KEYS:
        if old_m.get(key) != new_m.get(key):
            rep.lines.append(f"  note: {key} differs: {old_m.get(key)!r} then, {new_m.get(key)!r} now")
    for name in CHECKED + REPORTED + tuple(sorted((set(old_r) | set(new_r)) - set(CHECKED + REPORTED))):
        checked = name in CHECKED
        tag = "checked " if checked else "reported"
        if name not in old_r and name not in new_r:
            continue
        if name not in new_r:
            rep.lines.append(f"  {tag} {name:>18}: baseline {old_r[name]['median']:.3f}, not measured now")
            if checked:
                rep.missing.append(name)
            continue
        if name not in old_r:
            rep.lines.append(f"  {tag} {name:>18}: {new_r[name]['median']:.3f} now, no baseline")
            continue
        _compare_one(rep, name, "wall", old_r[name], new_r[name], checked)
        o_cpu, n_cpu = old_r[name].get("cpu"), new_r[name].get("cpu")
        if isinstance(o_cpu, dict) and isinstance(n_cpu, dict) and o_cpu.get("median") and n_cpu.get("median"):
            _compare_one(rep, name, "cpu", o_cpu, n_cpu, checked)
    return rep


def load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CheckError(f"cannot read {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise CheckError(f"{path} is not JSON (line {exc.lineno}: {exc.msg})") from None
    if not isinstance(data, dict):
        raise CheckError(f"{path} is not a bench.yardstick result (a JSON object)")
    return data


def last_committed(exclude: Path | None = None, root: Path = ROOT) -> Path:
    """The committed yardstick result with the latest "when"."""
    try:
        listed = subprocess.run(["git", "ls-files", "bench/results/yardstick-*.json"], cwd=root,
                                capture_output=True, text=True, check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise CheckError(f"cannot list committed results with git in {root}: {exc}") from None
    candidates = [root / p for p in listed if exclude is None or (root / p).resolve() != exclude.resolve()]
    if not candidates:
        raise CheckError("no committed bench/results/yardstick-*.json to compare with: "
                         "commit a result of `python -m bench.yardstick` as the baseline first")
    return max(candidates, key=lambda p: (str(load(p).get("when", "")), p.name))


def main(argv: list[str] | None = None) -> int:
    # no abbreviations: the yardstick's own options (--n, --rounds) pass through, never taken for --new or --run
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter,
                                allow_abbrev=False)
    p.add_argument("--new", type=Path, help="a yardstick result to check (instead of --run)")
    p.add_argument("--run", action="store_true", help="run bench.yardstick now (other options go to it)")
    p.add_argument("--baseline", type=Path, help="default: the last committed bench/results/yardstick-*.json")
    p.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE,
                   help=f"relative fall of a median that fails (default {DEFAULT_TOLERANCE})")
    args, rest = p.parse_known_args(argv)
    if args.run == bool(args.new):
        p.error("give either --run (run the benchmark now) or --new RESULT.json")
    if rest and not args.run:
        p.error(f"unrecognised arguments: {' '.join(rest)}")
    try:
        new_path = args.new
        if args.run:
            from bench import yardstick

            new_path = yardstick.main(rest)
        baseline_path = args.baseline or last_committed(exclude=new_path)
        print(f"comparing {new_path} with {baseline_path}")
        report = compare(load(baseline_path), load(new_path), args.tolerance)
    except CheckError as exc:
        print(f"bench-check: {exc}", file=sys.stderr)
        return 2
    print(report.text())
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
