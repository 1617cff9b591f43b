"""Several requests and several worker processes on one database: nothing is lost or applied twice."""

from __future__ import annotations

import threading
from datetime import timedelta

from engine.errors import ConflictError
from engine.forms import FormLibrary
from engine.runtime import Engine
from tests.conftest import DIAGRAMS


def _race(n: int, fn) -> list[object]:
    barrier = threading.Barrier(n)
    results: list[object] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = fn(i)
        except Exception as exc:  # collected and asserted on below
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    return results


def test_concurrent_completions_of_one_task_apply_exactly_once(make_engine, db_url, calls):
    eng = make_engine("three_tasks.bpmn")
    res = eng.start("three_tasks")
    task_id = res.ready_tasks[0]["id"]
    engines = [Engine(db_url, registry=calls.registry(), forms=FormLibrary()) for _ in range(6)]
    results = _race(6, lambda i: engines[i].complete_task(task_id, {"by": i}, actor=f"user{i}"))
    wins = [r for r in results if not isinstance(r, Exception)]
    losses = [r for r in results if isinstance(r, Exception)]
    assert len(wins) == 1, results
    assert all(isinstance(r, ConflictError) for r in losses), losses
    completed = [e for e in eng.history(res.case_id) if e["type"] == "task.completed"]
    assert len(completed) == 1
    [next_task] = eng.list_tasks(case_id=res.case_id)
    assert next_task["element_id"] == "screen"
    assert eng.verify()[1] == []
    for e in engines:
        e.db.dispose()


def test_concurrent_completions_in_one_case_never_fork_its_history(make_engine, db_url, calls):
    eng = make_engine("three_tasks.bpmn")
    case_id = eng.create_case("Kyle")
    starts = [eng.start("three_tasks", case_id=case_id) for _ in range(5)]
    engines = [Engine(db_url, registry=calls.registry(), forms=FormLibrary()) for _ in range(5)]

    def complete(i: int):
        for _attempt in range(20):  # a conflict on the shared case history is retried, as a client would
            try:
                return engines[i].complete_task(starts[i].ready_tasks[0]["id"], {"n": i}, actor=f"u{i}")
            except ConflictError:
                continue
        raise AssertionError("never succeeded")

    results = _race(5, complete)
    assert not [r for r in results if isinstance(r, Exception)], results
    assert len([e for e in eng.history(case_id) if e["type"] == "task.completed"]) == 5
    seqs = [e["seq"] for e in eng.history(case_id)]
    assert seqs == list(range(1, len(seqs) + 1))
    assert eng.verify(case_id)[1] == []
    for e in engines:
        e.db.dispose()


def test_several_timer_workers_fire_each_timer_exactly_once(make_engine, db_url, calls):
    eng = make_engine("deadline.bpmn")
    cases = [eng.start("deadline").case_id for _ in range(40)]
    with eng.db.transaction() as conn:
        eng._set_clock(conn, eng.now(conn) + timedelta(days=36))  # the reminders are now due, for every case
    workers = [Engine(db_url, registry=calls.registry(), forms=FormLibrary()) for _ in range(4)]
    results = _race(4, lambda i: workers[i].fire_due_timers(batch=5))
    assert not [r for r in results if isinstance(r, Exception)], results
    assert sum(results) == 40  # type: ignore[arg-type]
    assert len([c for c in calls.log if c[0] == "notify"]) == 40
    for case_id in cases:
        fired = [e for e in eng.history(case_id) if e["type"] == "timer.fired"]
        assert [e["data"]["element_id"] for e in fired] == ["reminder"]
    for w in workers:
        w.db.dispose()


def test_readers_are_not_blocked_by_a_writer_on_sqlite(tmp_path, calls):
    url = f"sqlite:///{tmp_path / 'r.db'}"
    eng = Engine(url, registry=calls.registry(), forms=FormLibrary())
    eng.init()
    eng.deploy([DIAGRAMS / "three_tasks.bpmn"])
    eng.start("three_tasks")
    with eng.db.transaction():  # a writer holds the write lock...
        reader = Engine(url, registry=calls.registry(), forms=FormLibrary())
        assert len(reader.list_tasks()) == 1  # ...and a caseworker's inbox still loads
        reader.db.dispose()
    eng.db.dispose()


def test_a_timer_batch_and_completions_in_the_same_cases_never_fork_or_lose_anything(make_engine, db_url, calls):
    """A worker fires a batch of timers while users complete tasks of other processes in the same cases: on
    PostgreSQL the batch takes the cases' history heads under row locks and a completion moves its case's
    head, before its events, only from the value it read (engine/pg_batch.py), so whichever loses a race
    is a conflict with nothing saved, retried — never a forked history, a lost step or a deadlock."""
    from datetime import timedelta

    eng = make_engine("deadline.bpmn", "three_tasks.bpmn")
    cases, tasks = [], []
    for i in range(5):
        case_id = eng.create_case(f"Case {i}")
        eng.start("deadline", case_id=case_id)
        tasks.append(eng.start("three_tasks", case_id=case_id).ready_tasks[0]["id"])
        cases.append(case_id)
    with eng.db.transaction() as conn:
        eng._set_clock(conn, eng.now(conn) + timedelta(days=36))  # every case's reminder is due
    worker, user = (Engine(db_url, registry=calls.registry(), forms=FormLibrary()) for _ in range(2))

    def work(i: int) -> int:
        done = 0
        for _attempt in range(50):  # a conflict is retried, as the worker loop and a client would
            try:
                if i == 0:
                    done += worker.fire_due_timers(batch=5)
                    if done >= 5:
                        return done
                else:
                    while done < len(tasks):
                        user.complete_task(tasks[done], {"n": done}, actor="u")
                        done += 1
                    return done
            except ConflictError:
                continue
        raise AssertionError(f"never finished ({done})")

    results = _race(2, work)
    assert results == [5, 5], results
    for case_id in cases:
        events = eng.history(case_id)
        assert [e["data"]["element_id"] for e in events if e["type"] == "timer.fired"] == ["reminder"]
        assert len([e for e in events if e["type"] == "task.completed"]) == 1
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert eng.verify()[1] == []
    for e in (worker, user):
        e.db.dispose()
