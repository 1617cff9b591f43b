"""bench/verify_bench.py runs (a small size): the bench once broke unseen when the verifier began to check that a case
chain's events are filed under its case, and its synthetic chains were filed under none."""

from __future__ import annotations

from bench.verify_bench import verify_bench


def test_the_verify_bench_runs_and_finds_its_history_sound():
    out = verify_bench("sqlite", None, cases=30, per_case=8, repeat=1)
    assert out["database"] == "sqlite" and out["chains"] == 32
    assert out["events_in_database"] >= 30 * 8
    assert out["verify_one_real_case_ms"] > 0
