"""The CLD return reads the next batch while this one is used (handlers/cld.py `read_cases`; docs/performance.md,
"Where PostgreSQL's wall time went"): batches of one case give the same cases and histories, in the same order, as
one batch; a read that stops early leaves nothing running; an in-memory database (one connection per thread) is
read in its own thread."""

from __future__ import annotations

from engine.runtime import Engine
from handlers import cld
from tests.test_case_actions import eng, planned_case  # noqa: F401  (fixtures)
from tests.test_cld_returns_background import PERIOD


def test_batches_read_ahead_give_the_same_cases_in_the_same_order(eng):  # noqa: F811
    for _ in range(3):
        planned_case(eng)
    one_batch = list(cld.read_cases(eng, slim=True))
    read_ahead = list(cld.read_cases(eng, batch=1, slim=True))
    assert [c["id"] for c, _ in read_ahead] == [c["id"] for c, _ in one_batch] and len(one_batch) == 3
    assert read_ahead == one_batch
    reader = cld.read_cases(eng, batch=1, slim=True)
    first = next(reader)
    reader.close()  # the batch read ahead is waited for, not left running
    assert first == one_batch[0]
    whole = cld.cld_return(eng, *PERIOD, la_code="E1")
    assert len(whole) == 6 and all(r["Event_Type"] in ("Assessment", "Service") for r in whole)


def test_an_in_memory_database_is_read_in_its_own_thread(eng):  # noqa: F811
    assert not cld._in_memory(eng)
    memory = Engine("sqlite://")
    assert cld._in_memory(memory)
    with cld._Inline() as pool:
        assert pool.submit(lambda a, b: a + b, 1, 2).result() == 3
    memory.db.dispose()
