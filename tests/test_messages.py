"""Messages delivered to cases by name and correlation keys (engine/messages.py): receive tasks, intermediate
catch events, boundary events and message start events; kept messages; once-only delivery enforced by the
database; refusals that store nothing; the API and the command line.

Before this, a message could not be delivered at all: a diagram with a receive task waited for ever.
"""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import exc, func, insert, select

from engine.cli import main as cli_main
from engine.errors import NotFoundError, StateError, ValidationError
from engine.replay import replay_case
from engine.runtime import Engine
from engine.schema import events, instances, messages
from tests.conftest import START

FIXTURES = Path(__file__).parent / "fixtures" / "messages"


@pytest.fixture
def eng(make_engine):
    e = make_engine()
    e.deploy([FIXTURES / "provider_reply.bpmn", FIXTURES / "event_race.bpmn"])
    return e


def _counts(e) -> tuple[int, int, int]:
    with e.db.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar_one()  # type: ignore[return-value]
                     for t in (messages, events, instances))


def _open(e, case_id) -> list[str]:
    return sorted(t["element_id"] for t in e.list_tasks(case_id=case_id))


def _status(e, instance_id) -> str:
    with e.db.engine.connect() as conn:
        return conn.execute(select(instances.c.status).where(instances.c.id == instance_id)).scalar_one()


def test_a_public_style_diagram_with_a_receive_task_runs_to_the_end(eng):
    started = eng.deliver_message("care_needed", data={"name": "Ann Example", "referral": 7}, actor="provider-hub")
    assert started.status == "started" and started.case_reference == "CASE-000001"
    [iid] = started.instance_ids
    assert eng.get_case(started.case_id)["title"] == "Ann Example"
    assert _open(eng, started.case_id) == []  # waiting in the receive task
    quote = eng.deliver_message("provider_quote", case_id=started.case_id, correlation={"referral": 7},
                                data={"weekly_cost": 420.5})
    assert quote.status == "delivered" and quote.instance_ids == [iid]
    [check] = eng.list_tasks(case_id=started.case_id)
    assert check["element_id"] == "Activity_check"
    eng.complete_task(check["id"], {}, actor="broker1")
    confirm = eng.deliver_message("provider_quote", case_id=started.case_id, data={"start": "2031-04-01"})
    assert confirm.status == "delivered"
    assert _status(eng, iid) == "completed"
    final = eng.instance_snapshot(iid)["data"]
    assert final["weekly_cost"] == 420.5 and final["start"] == "2031-04-01" and final["referral"] == 7
    types = [e["type"] for e in eng.history(started.case_id)]
    assert types.count("message.received") == 3 and types[-1] == "instance.completed"
    assert eng.verify(started.case_id)[1] == []
    assert replay_case(eng, started.case_id).ok, str(replay_case(eng, started.case_id))


def test_a_message_sent_twice_is_applied_once(eng):
    started = eng.deliver_message("care_needed", data={"referral": 1})
    again = eng.deliver_message("care_needed", data={"referral": 1})  # same content: the same derived key
    assert again.status == "duplicate" and again.case_id == started.case_id
    assert again.instance_ids == started.instance_ids
    before = _counts(eng)
    first = eng.deliver_message("provider_quote", case_id=started.case_id, data={"weekly_cost": 1}, key="q-1")
    assert first.status == "delivered"
    after_first = _counts(eng)
    # the same key with other data (a client that retries with a changed body) is still the same message
    dup = eng.deliver_message("provider_quote", case_id=started.case_id, data={"weekly_cost": 2}, key="q-1")
    assert dup.status == "duplicate" and dup.instance_ids == first.instance_ids
    assert _counts(eng) == after_first and after_first[0] == before[0] + 1
    assert [e["data"]["data"]["weekly_cost"] for e in eng.history(started.case_id) if e["type"] == "message.received"
            and e["data"]["name"] == "provider_quote"] == [1]


def test_the_database_refuses_a_second_row_with_the_same_key(eng):
    case_id = eng.create_case("Someone")
    row = dict(key="k", name="provider_quote", case_id=case_id, correlation="{}", data="{}", status="kept",
               received_at=START, actor="t")
    with eng.db.transaction() as conn:
        conn.execute(insert(messages).values(**row))
    with pytest.raises(exc.IntegrityError), eng.db.transaction() as conn:
        conn.execute(insert(messages).values(**row))


def test_the_same_message_from_two_processes_at_once_is_applied_once(make_engine, db_url, calls):
    first = make_engine()
    first.deploy([FIXTURES / "provider_reply.bpmn"])
    started = first.deliver_message("care_needed", data={"referral": 3})
    engines = [first] + [Engine(db_url, registry=calls.registry(), forms=first.forms) for _ in range(3)]
    barrier = threading.Barrier(len(engines))
    results, errors = [], []

    def send(e) -> None:
        barrier.wait()
        try:
            results.append(e.deliver_message("provider_quote", case_id=started.case_id, data={"weekly_cost": 9},
                                             key="same-quote").status)
        except Exception as err:  # noqa: BLE001 - a conflict would be reported
            errors.append(err)

    threads = [threading.Thread(target=send, args=(e,)) for e in engines]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for e in engines[1:]:
        e.db.dispose()
    assert errors == [] and sorted(results) == ["delivered", "duplicate", "duplicate", "duplicate"]
    received = [e for e in first.history(started.case_id) if e["type"] == "message.received"
                and e["data"]["name"] == "provider_quote"]
    assert len(received) == 1 and len(first.list_tasks(case_id=started.case_id)) == 1


def test_a_kept_message_is_delivered_when_a_receiver_starts_waiting(eng):
    """The cancellation arrives before the quote: nothing waits for it yet (the boundary event exists only while
    the quote is checked), so it is kept; the step that opens the check delivers it at once."""
    started = eng.deliver_message("care_needed", data={"referral": 5})
    kept = eng.deliver_message("referral_cancelled", case_id=started.case_id, data={"reason": "moved away"})
    assert kept.status == "kept" and kept.expires_at == START + timedelta(days=7)
    eng.advance_clock(timedelta(days=2))
    out = eng.deliver_message("provider_quote", case_id=started.case_id, data={"weekly_cost": 10})
    assert out.status == "delivered"
    assert _open(eng, started.case_id) == []  # the check was opened and withdrawn by the boundary event
    assert _status(eng, started.instance_ids[0]) == "completed"
    assert eng.instance_snapshot(started.instance_ids[0])["data"]["reason"] == "moved away"
    delivered = [e for e in eng.history(started.case_id) if e["type"] == "message.delivered"]
    assert [d["data"]["element_ids"] for d in delivered] == [["Event_cancelled"]]
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(messages.c.status).where(messages.c.name == "referral_cancelled")).scalar_one() \
            == "delivered"
    assert replay_case(eng, started.case_id).ok, str(replay_case(eng, started.case_id))


def test_a_kept_message_expires_and_is_never_delivered(eng):
    eng.message_ttl = "P1D"
    started = eng.deliver_message("care_needed", data={"referral": 6})
    kept = eng.deliver_message("referral_cancelled", case_id=started.case_id)
    assert kept.expires_at == START + timedelta(days=1)
    eng.advance_clock(timedelta(days=1))  # expired exactly now: not delivered
    eng.deliver_message("provider_quote", case_id=started.case_id, data={"weekly_cost": 10})
    assert _open(eng, started.case_id) == ["Activity_check"]
    assert not [e for e in eng.history(started.case_id) if e["type"] == "message.delivered"]


def test_with_no_time_to_live_a_message_nothing_waits_for_is_refused_and_nothing_stored(eng):
    eng.message_ttl = "P0D"
    started = eng.deliver_message("care_needed", data={"referral": 8})
    before = _counts(eng)
    with pytest.raises(StateError, match="nothing in case CASE-000001 waits for message 'referral_cancelled'"):
        eng.deliver_message("referral_cancelled", case_id=started.case_id)
    assert _counts(eng) == before


def test_unknown_case_unknown_name_and_bad_data_are_refused_and_nothing_stored(eng):
    started = eng.deliver_message("care_needed", data={"referral": 9})
    before = _counts(eng)
    with pytest.raises(NotFoundError, match="no case 999"):
        eng.deliver_message("provider_quote", case_id=999)
    with pytest.raises(NotFoundError, match=r"no deployed process receives a message named 'no_such'.*"
                                            r"care_needed, provider_quote, provider_reply, referral_cancelled"):
        eng.deliver_message("no_such", case_id=started.case_id)
    with pytest.raises(ValidationError, match="data: must be a JSON object"):
        eng.deliver_message("provider_quote", case_id=started.case_id, data=[1, 2])  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="name: give the message's name"):
        eng.deliver_message("  ", case_id=started.case_id)
    with pytest.raises(ValidationError, match="correlation: must be a JSON object"):
        eng.deliver_message("provider_quote", case_id=started.case_id, correlation="x")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="without a case"):
        eng.deliver_message("provider_quote")
    assert _counts(eng) == before


def test_correlation_keys_pick_the_instance_and_two_candidates_are_refused(eng):
    a = eng.deliver_message("care_needed", data={"referral": 1})
    b = eng.deliver_message("care_needed", case_id=a.case_id, data={"referral": 2})
    assert b.case_id == a.case_id and b.status == "started"
    before = _counts(eng)
    with pytest.raises(StateError, match=r"2 process instances of case CASE-000001 wait for message "
                                         r"'provider_quote'.*give correlation keys"):
        eng.deliver_message("provider_quote", case_id=a.case_id, data={"weekly_cost": 5})
    assert _counts(eng) == before
    out = eng.deliver_message("provider_quote", case_id=a.case_id, correlation={"referral": 2},
                              data={"weekly_cost": 5})
    assert out.instance_ids == b.instance_ids
    nobody = eng.deliver_message("provider_quote", case_id=a.case_id, correlation={"referral": 3})
    assert nobody.status == "kept"  # no instance has referral 3 (yet)


def test_the_command_line_delivers_and_refuses_bad_json(eng, db_url, capsys):
    started = eng.deliver_message("care_needed", data={"referral": 4})
    code = cli_main(["message", "provider_quote", "--db", db_url, "--case", "CASE-000001", "--data",
                     '{"weekly_cost": 12}', "--correlation", '{"referral": 4}', "--key", "cli-1", "--as", "hub"])
    out = capsys.readouterr().out
    assert code == 0 and "message 'provider_quote' to CASE-000001: delivered" in out and "Check the quote" in out
    assert cli_main(["message", "provider_quote", "--db", db_url, "--case", "1", "--key", "cli-1"]) == 0
    assert ": duplicate" in capsys.readouterr().out
    before = _counts(eng)
    assert cli_main(["message", "provider_quote", "--db", db_url, "--case", "1", "--data", "{not json"]) != 0
    assert "--data is not valid JSON" in capsys.readouterr().err
    assert cli_main(["message", "provider_quote", "--db", db_url, "--case", "CASE-000404"]) != 0
    err = capsys.readouterr().err
    assert "no case" in err and "CASE-000404" in err
    assert cli_main(["message", "provider_quote", "--db", db_url, "--case", "1", "--correlation", "[1]"]) != 0
    assert "--correlation must be a JSON object" in capsys.readouterr().err
    assert _counts(eng) == before
    assert [e["actor"] for e in eng.history(started.case_id) if e["type"] == "message.received"][-1] == "hub"


def test_the_api_delivers_with_role_and_case_checks(eng):
    from api.app import create_app
    from api.demo_users import create_demo_users, demo_password, demo_username

    app = create_app(eng, run_timers=False)
    create_demo_users(eng)
    started = eng.deliver_message("care_needed", data={"referral": 11})

    def session(role: str) -> tuple[TestClient, dict[str, str]]:
        client = TestClient(app)
        r = client.post("/api/session", json={"username": demo_username(role), "password": demo_password(role)})
        assert r.status_code == 200, r.text
        return client, {"X-CSRF-Token": r.json()["csrf_token"]}

    body = {"name": "provider_quote", "case": started.case_reference, "data": {"weekly_cost": 3}, "key": "api-1"}
    anonymous = TestClient(app).post("/api/messages", json=body)
    assert anonymous.status_code == 401
    auditor, h = session("auditor")
    assert auditor.post("/api/messages", json=body, headers=h).status_code == 403
    worker, h = session("social_worker")
    refused = worker.post("/api/messages", json=body, headers=h)  # no task on the case, never worked on it
    assert refused.status_code == 403
    assert worker.post("/api/messages", json={**body, "case": "CASE-999999"}, headers=h).status_code == 404
    manager, hm = session("team_manager")
    bad = manager.post("/api/messages", json={**body, "data": [1]}, headers=hm)
    assert bad.status_code == 422
    before = _counts(eng)
    unknown = manager.post("/api/messages", json={**body, "name": "nope"}, headers=hm)
    assert unknown.status_code == 404 and "no deployed process receives a message named 'nope'" in unknown.text
    assert _counts(eng) == before
    ok = manager.post("/api/messages", json=body, headers=hm)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] == "delivered" and ok.json()["ready_tasks"][0]["element_id"] == "Activity_check"
    assert manager.post("/api/messages", json=body, headers=hm).json()["status"] == "duplicate"
    assert [e["actor"] for e in eng.history(started.case_id) if e["type"] == "message.received"][-1] \
        == demo_username("team_manager")
