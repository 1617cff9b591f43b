"""engine/collector.py: the cycle collector's threshold is raised while any block that asks for it runs, and the
earlier threshold comes back only when the last one ends, whichever thread ends last (the measures page and a
simulation can run at once in one server)."""

from __future__ import annotations

import gc
import threading

import pytest

from engine import collector
from engine.collector import fewer_collections


@pytest.fixture(autouse=True)
def _known_threshold():
    before = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    yield
    gc.set_threshold(*before)


def test_the_threshold_is_raised_inside_and_restored_after():
    with fewer_collections():
        assert gc.get_threshold() == (collector.GEN0, collector.GEN1, collector.GEN2)
    assert gc.get_threshold() == (700, 10, 10)


def test_nested_blocks_restore_only_when_the_outer_one_ends():
    with fewer_collections():
        with fewer_collections():
            pass
        assert gc.get_threshold() == (collector.GEN0, collector.GEN1, collector.GEN2)
    assert gc.get_threshold() == (700, 10, 10)


def test_an_exception_still_restores_the_threshold():
    with pytest.raises(RuntimeError), fewer_collections():
        raise RuntimeError("boom")
    assert gc.get_threshold() == (700, 10, 10)


def test_as_a_decorator_each_call_raises_and_restores():
    seen = []

    @fewer_collections()
    def work() -> None:
        seen.append(gc.get_threshold())

    work()
    work()
    assert seen == [(collector.GEN0, collector.GEN1, collector.GEN2)] * 2
    assert gc.get_threshold() == (700, 10, 10)


def test_two_threads_overlapping_leave_it_raised_until_the_last_ends_then_restore_the_original():
    first_in, second_in, first_may_end, first_done = (threading.Event() for _ in range(4))
    seen: dict[str, tuple] = {}

    def first() -> None:
        with fewer_collections():
            first_in.set()
            first_may_end.wait(5)
        first_done.set()

    t = threading.Thread(target=first)
    t.start()
    assert first_in.wait(5)
    with fewer_collections():  # starts while the first is open: must not save the raised threshold as "earlier"
        second_in.set()
        first_may_end.set()
        assert first_done.wait(5)
        seen["after_first_ended"] = gc.get_threshold()
    t.join(5)
    assert seen["after_first_ended"] == (collector.GEN0, collector.GEN1, collector.GEN2)
    assert gc.get_threshold() == (700, 10, 10)


def test_the_measures_are_read_and_worked_out_with_fewer_collections(monkeypatch):
    """A county's first page after an event is about twice as slow without it (docs/performance.md)."""
    from datetime import date

    from handlers import measures

    raised = (collector.GEN0, collector.GEN1, collector.GEN2)
    seen: list[tuple] = []

    class Stop(Exception):
        pass

    def mark(conn):
        seen.append(gc.get_threshold())
        raise Stop

    monkeypatch.setattr(measures, "_mark", mark)

    class FakeDb:
        class engine:
            @staticmethod
            def connect():
                from contextlib import nullcontext
                return nullcontext(None)

    class FakeEngine:
        db = FakeDb

    with pytest.raises(Stop):
        measures.load_population(FakeEngine())
    real_compute = measures.compute

    def compute(*a, **k):
        seen.append(gc.get_threshold())
        return real_compute(*a, **k)

    monkeypatch.setattr(measures, "compute", compute)
    population = measures.population_of({})
    measures.page_figures(population, date(2031, 4, 1), date(2031, 6, 30), series=False)
    measures.measure_cases(population, "new_requests", date(2031, 4, 1), date(2031, 6, 30))
    assert seen and all(t == raised for t in seen), seen
    assert gc.get_threshold() == (700, 10, 10)


class _Marker:
    pass


def test_keep_moves_what_the_block_made_to_the_oldest_generation_without_freezing_anything_for_good():
    with fewer_collections(keep=True):
        made = [_Marker() for _ in range(10)]
    assert gc.get_freeze_count() == 0  # nothing left exempt from collection
    oldest = {id(o) for o in gc.get_objects(generation=2)}
    assert all(id(o) in oldest for o in made)
    # without keep, young objects stay young
    with fewer_collections():
        young = _Marker()
    assert id(young) not in {id(o) for o in gc.get_objects(generation=2)}


def test_cyclic_garbage_made_in_a_keep_block_is_still_collected():
    import weakref

    with fewer_collections(keep=True):
        a, b = _Marker(), _Marker()
        a.other, b.other = b, a  # a cycle: only the cycle collector frees it
        gone = weakref.ref(a)
        del a, b
    assert gone() is not None  # not collected by the block's end
    gc.collect()
    assert gone() is None


def test_keep_in_an_inner_block_is_applied_when_the_outer_one_ends():
    with fewer_collections():
        with fewer_collections(keep=True):
            inner = _Marker()
        assert id(inner) not in {id(o) for o in gc.get_objects(generation=2)}
    assert id(inner) in {id(o) for o in gc.get_objects(generation=2)}
    assert gc.get_threshold() == (700, 10, 10)


def test_blocks_asking_for_different_thresholds_hold_the_highest_until_it_ends():
    with fewer_collections():
        with fewer_collections(gen0=1_000_000):
            assert gc.get_threshold() == (1_000_000, collector.GEN1, collector.GEN2)
            with fewer_collections():  # a lower one inside does not lower it
                assert gc.get_threshold()[0] == 1_000_000
            assert gc.get_threshold()[0] == 1_000_000
        assert gc.get_threshold() == (collector.GEN0, collector.GEN1, collector.GEN2)  # the outer one's again
    assert gc.get_threshold() == (700, 10, 10)


def test_a_simulation_runs_with_its_own_higher_threshold_and_puts_the_earlier_one_back():
    from carepath import simulate

    seen: list[tuple] = []
    simulate.simulate(simulate.load_scenario(), days=1, seed=3, inspect=lambda eng: seen.append(gc.get_threshold()))
    assert seen == [(simulate.COLLECTOR_GEN0, collector.GEN1, collector.GEN2)]
    assert simulate.COLLECTOR_GEN0 >= 1_000_000
    assert gc.get_threshold() == (700, 10, 10)
