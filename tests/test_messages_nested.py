"""Messages to receivers below a process's top level: inside an embedded subprocess and inside the process a call
activity runs (carepath runs a called process inside the caller's instance, as SpiffWorkflow does), with the
diagram's own correlation (SpiffWorkflow's waiting_event.bpmn) — and never to two receivers at once.

Before this change, one message given to a case whose instance had two receivers of that name waiting (two items
of a multi-instance call activity) was taken by both: one reply completed every check. A message whose diagram
correlation did not match the waiting receiver was kept with no word of why. Delivery to receivers in subprocesses,
called processes and separate child instances already worked: those tests guard it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.errors import StateError
from engine.replay import replay_case
from engine.schema import events, instances, messages

FIXTURES = Path(__file__).parent / "fixtures" / "messages"
WAITING_EVENT = Path(__file__).parent / "conformance" / "files" / "spiff-waiting_event.bpmn"


@pytest.fixture
def eng(make_engine):
    e = make_engine()
    e.deploy([FIXTURES / "nested_receivers.bpmn"])
    return e


def _counts(e) -> tuple[int, int, int]:
    with e.db.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
                     for t in (messages, events, instances))


def _row_status(e, instance_id: int) -> str:
    with e.db.engine.connect() as conn:
        return conn.execute(select(instances.c.status).where(instances.c.id == instance_id)).scalar_one()


def _received(e, case_id: int) -> list[tuple[str, list[str]]]:
    return [(ev["type"], ev["data"]["element_ids"]) for ev in e.history(case_id)
            if ev["type"] in ("message.received", "message.delivered")]


def _message_status(e, name: str) -> list[str]:
    with e.db.engine.connect() as conn:
        return list(conn.execute(select(messages.c.status).where(messages.c.name == name)
                                 .order_by(messages.c.id)).scalars())


def test_receivers_in_an_embedded_subprocess_and_in_a_called_process_take_the_case_s_messages(eng):
    started = eng.start("nested_wait", data={"person": 1})
    early = eng.deliver_message("ot_report", case_id=started.case_id, data={"ot": "stairs"})
    assert early.status == "kept" and early.note is None  # nothing waits for it yet, and nothing of that name
    gp = eng.deliver_message("gp_letter", case_id=started.case_id, data={"gp": "seen"})
    assert gp.status == "delivered" and gp.instance_ids == [started.instance_id]
    # the receive task in the subprocess took the letter; the kept OT report went to the catch event after it
    assert _received(eng, started.case_id) == [("message.received", ["await_gp"]),
                                               ("message.delivered", ["await_ot"])]
    reply = eng.deliver_message("housing_reply", case_id=started.case_id, data={"housing": "suitable"})
    assert reply.status == "delivered" and reply.instance_ids == [started.instance_id]
    assert _received(eng, started.case_id)[-1] == ("message.received", ["await_housing"])
    assert _row_status(eng, started.instance_id) == "completed"
    assert eng.instance_snapshot(started.instance_id)["data"] == {
        "person": 1, "gp": "seen", "ot": "stairs", "housing": "suitable"}
    assert replay_case(eng, started.case_id).ok, str(replay_case(eng, started.case_id))


def test_one_message_never_reaches_two_receivers_of_one_instance(eng):
    """Two homes checked in parallel by one call activity: one reply is for one home, never for both."""
    started = eng.start("many_homes", data={"homes": ["Elm Court", "Oak House"]})
    before = _counts(eng)
    with pytest.raises(StateError, match=r"2 receivers in process instance 1 of case CASE-000001 wait for message "
                                         r"'housing_reply' \('await_housing' in 'each_home'.*give correlation keys"):
        eng.deliver_message("housing_reply", case_id=started.case_id, data={"housing": "suitable"})
    assert _counts(eng) == before  # refused: nothing stored, neither check moved
    first = eng.deliver_message("housing_reply", case_id=started.case_id, correlation={"home": "Oak House"},
                                data={"housing": "suitable"})
    assert first.status == "delivered"
    assert _received(eng, started.case_id) == [("message.received", ["await_housing"])]  # one receiver
    assert _row_status(eng, started.instance_id) == "waiting"  # Elm Court still waits for its own reply
    second = eng.deliver_message("housing_reply", case_id=started.case_id, data={"housing": "unsuitable"})
    assert second.status == "delivered"  # one receiver left: no key needed
    assert _row_status(eng, started.instance_id) == "completed"
    assert replay_case(eng, started.case_id).ok, str(replay_case(eng, started.case_id))


def test_a_process_started_as_an_instance_of_its_own_takes_the_case_s_message_and_two_are_refused(eng):
    """start_process runs the child as an instance of its own in the same case: the case's message reaches it;
    two such children waiting are two instances, refused unless a correlation key picks one."""
    first = eng.start("refer_on", data={"home": "Elm Court"})
    [child] = first.started_instances
    assert _row_status(eng, first.instance_id) == "completed" and _row_status(eng, child) == "waiting"
    reply = eng.deliver_message("housing_reply", case_id=first.case_id, data={"housing": "suitable"})
    assert reply.status == "delivered" and reply.instance_ids == [child]
    assert _row_status(eng, child) == "completed"
    eng.start("refer_on", case_id=first.case_id, data={"home": "Oak House"})
    eng.start("refer_on", case_id=first.case_id, data={"home": "Ash Lodge"})
    before = _counts(eng)
    with pytest.raises(StateError, match=r"2 process instances of case CASE-000001 wait for message 'housing_reply'"):
        eng.deliver_message("housing_reply", case_id=first.case_id)
    assert _counts(eng) == before
    picked = eng.deliver_message("housing_reply", case_id=first.case_id, correlation={"home": "Ash Lodge"})
    assert picked.status == "delivered"
    assert eng.instance_snapshot(picked.instance_ids[0])["data"]["home"] == "Ash Lodge"


def test_a_kept_message_two_receivers_would_take_stays_kept(eng):
    started = eng.start("nested_wait", data={"person": 2})
    kept = eng.deliver_message("housing_reply", case_id=started.case_id, data={"housing": "early"})
    assert kept.status == "kept"
    many = eng.start("many_homes", case_id=started.case_id, data={"homes": ["Elm Court", "Oak House"]})
    # the new instance's first step leaves two receivers waiting: the kept reply is for neither in particular
    assert _message_status(eng, "housing_reply") == ["kept"]
    assert _row_status(eng, many.instance_id) == "waiting"
    assert not [ev for ev in eng.history(started.case_id) if ev["type"] == "message.delivered"]


def test_a_message_the_diagram_correlates_elsewhere_is_kept_and_the_result_says_which_receiver_waits(make_engine):
    """SpiffWorkflow's waiting_event.bpmn: the receive task in the subprocess correlates on uid, which the
    process sets to 1 (spiffworkflow:processVariableCorrelation); a message for uid 7 is another conversation."""
    eng = make_engine()
    eng.deploy(files={"waiting_event.bpmn": WAITING_EVENT.read_bytes()})
    started = eng.start("main", data={"uid": 7})
    other = eng.deliver_message("B", case_id=started.case_id, data={"uid": 7})
    assert other.status == "kept"
    assert other.note == ("instance 1: 'Activity_0qpzdpu' in 'Activity_0ifb3pp' waits for it, but the diagram "
                          "correlates it on 'uid' and the message's value differs from the one the process holds")
    assert other.to_dict()["note"] == other.note
    assert "7" not in other.note  # key names only: no values from the process or the message
    mine = eng.deliver_message("B", case_id=started.case_id, data={"uid": 1, "text": "asdf"})
    assert mine.status == "delivered" and mine.note is None
    assert _row_status(eng, started.instance_id) == "completed"
    assert eng.instance_snapshot(started.instance_id)["data"]["a_var"] == {"uid": 1, "text": "asdf"}
    assert _message_status(eng, "B") == ["kept", "delivered"]  # uid 7's message was not taken


def test_without_a_time_to_live_the_refusal_says_which_receiver_did_not_match(make_engine):
    eng = make_engine()
    eng.message_ttl = "P0D"
    eng.deploy([FIXTURES / "nested_receivers.bpmn"])
    started = eng.start("many_homes", data={"homes": ["Elm Court"]})
    before = _counts(eng)
    with pytest.raises(StateError, match=r"messages are not kept .*'await_housing' in 'each_home' waits for it, but "
                                         r"its process data has another value \(or none\) for the correlation "
                                         r"key\(s\) 'home'"):
        eng.deliver_message("housing_reply", case_id=started.case_id, correlation={"home": "Oak House"})
    assert _counts(eng) == before


def test_the_command_line_says_why_a_message_was_kept(make_engine, db_url, capsys):
    from engine.cli import main as cli_main

    eng = make_engine()
    eng.deploy(files={"waiting_event.bpmn": WAITING_EVENT.read_bytes()})
    started = eng.start("main", data={"uid": 7})
    assert started.case_id == 1
    assert cli_main(["message", "B", "--db", db_url, "--case", "CASE-000001", "--data", '{"uid": 7}']) == 0
    out = capsys.readouterr().out
    assert "message 'B' to CASE-000001: kept" in out
    assert "  not delivered: instance 1: 'Activity_0qpzdpu' in 'Activity_0ifb3pp' waits for it, but the diagram " \
           "correlates it on 'uid'" in out
