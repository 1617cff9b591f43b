"""How the CLD return reads the histories fast (docs/cld.md, "Speed"; bench/cld_bench.py): a service-task call no
CLD row reads comes as its element and handler only — from the head of its text — and the return is the same as
from the whole histories, also when a call's head is cut before its handler."""

from __future__ import annotations

from datetime import date

from handlers import cld
from tests.test_case_actions import app, eng, planned_case  # noqa: F401  (fixtures)

YEAR = (date(2030, 4, 1), date(2031, 3, 3))


def test_every_handler_a_mapping_reads_is_parsed_whole():
    assert cld._HANDLERS_READ >= {"cost_support_plan", "adult_eligibility", "record_signposting"}
    assert "local_settings" not in cld._HANDLERS_READ
    head = '{"element_id":"contact","handler":"local_settings","inputs":{},"output":{"a":1}}'
    assert cld._slim_data("handler.called", head) == {"handler": "local_settings", "element_id": "contact",
                                                      "output": {}}
    whole = '{"element_id":"cost","handler":"cost_support_plan","inputs":{},"output":{"weekly":"10.00"}}'
    assert cld._slim_data("handler.called", whole)["output"] == {"weekly": "10.00"}


def test_slim_histories_give_the_same_rows_as_whole_ones(eng):  # noqa: F811
    planned_case(eng)
    whole, slim = list(cld.read_cases(eng)), list(cld.read_cases(eng, slim=True))
    assert [c for c, _ in whole] == [c for c, _ in slim]
    slimmed = 0
    for (case, full), (_, light) in zip(whole, slim, strict=True):
        assert [e["seq"] for e in full] == [e["seq"] for e in light]
        assert cld.derive_cld_events(case, full) == cld.derive_cld_events(case, light)
        assert cld.person_fields(case, full) == cld.person_fields(case, light)
        for a, b in zip(full, light, strict=True):
            if a["data"] != b["data"]:
                assert a["type"] == "handler.called" and a["data"]["handler"] not in cld._HANDLERS_READ
                assert b["data"] == {"handler": a["data"]["handler"], "element_id": a["data"].get("element_id"),
                                     "output": {}}
                slimmed += 1
        assert "hash" not in light[0] and "hash" in full[0]
    assert slimmed > 0  # the timescales each process reads when it starts, at least


def test_a_call_cut_before_its_handler_is_read_whole(eng, monkeypatch):  # noqa: F811
    planned_case(eng)
    expected = cld.cld_return(eng, *YEAR, la_code="E1")
    monkeypatch.setattr(cld, "_HEAD_CHARS", 5)  # every unread call cut to '{"ele': not JSON, no handler
    read = []
    real = cld._event_data
    monkeypatch.setattr(cld, "_event_data", lambda engine, event_id: read.append(event_id) or real(engine, event_id))
    got = cld.cld_return(eng, *YEAR, la_code="E1")
    assert read  # read again, whole
    assert list(got) == list(expected) and got.problems == expected.problems and got.withheld == expected.withheld
