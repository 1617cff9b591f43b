"""`carepath simulate --from-live` (issue 16 item 4, carepath/simulate_today.py): a simulation that starts from an
anonymised copy of the live database's open cases, their open tasks and timers, at the live clock's now.

One live database is built once for the module (SQLite, on a simulated clock so its dates are known): the demo
cases at their stages (api/demo_cases.py), a person referred with every personal detail and a case note, a
contact recorded with a caller and free text, and a closed case; then its clock is moved on ten days so the
signposting call-backs fall due within the simulated week. One simulation runs from it and its scratch database
is dumped whole before it is thrown away: the tests read the output and that dump.

The live source is SQLite here; `test_a_postgresql_live_database_is_copied_read_only` runs a smaller copy from
PostgreSQL, whose read is a read-only repeatable-read transaction and whose times come back with their zone.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import insert, text

from api.demo_cases import create_demo_cases
from carepath import cli, simulate
from engine.forms import FormLibrary
from engine.history import iso
from engine.runtime import Engine
from engine.schema import case_notes
from tests.simulation_held_world import state

ROOT = Path(__file__).resolve().parent.parent
LIVE_START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
LIVE_NOW = LIVE_START + timedelta(days=10)  # Thursday 12 March 2026, 09:00
DAYS = 7

# a few contacts a day on top, so the run is the usual one; teams large enough to clear the carried-over work
SCENARIO = """\
seed: 5
arrivals:
  self: {per_year: 400, process: front_door, caller: self}
teams:
  default: {staff: 20, hours: "09:00-17:00"}
"""

REFERRED = {"name": "Zebedee Quixote-Thistlewood", "date_of_birth": "1941-05-17", "nhs_number": "943 476 5919",
            "postcode": "NB7 1AB", "phone": "07700 900461", "email": "zebedee.qt@example.org",
            "address": ["41 Quillfeather Crescent", "Northby"], "area": "north"}
NOTE = "Spoke to the neighbour Mrs Pettigrew-Vance about the keysafe code"
CONTACT = {
    "caller": {"name": "Ottoline Brackenbury", "relationship": "family_or_friend", "phone": "07700 900517"},
    "reason": "Fell down the cellar steps at Kestrelgate last winter",
    "person": {"name": "Wilhelmina Fairweather-Ashdown", "age": 71, "address": "17 Kestrelgate Mews, Northby",
               "area": "north", "lives_alone": True},
    "needs": ["mental_wellbeing", "transport"], "outcomes_unable": [], "safeguarding_concern": False,
    "crisis": False, "consents_to_referral": True, "from_hospital": False,
}
CLOSED = "Bartholomew Closedcase"
# every personal value the live database holds about these people, as typed and as the search table keeps it
PERSONAL = ["Zebedee", "Quixote", "Thistlewood", "1941-05-17", "943 476 5919", "9434765919", "NB7 1AB", "NB71AB",
            "07700 900461", "zebedee.qt@example.org", "Quillfeather", "Pettigrew", "keysafe",
            "Ottoline", "Brackenbury", "07700 900517", "Wilhelmina", "Fairweather", "Ashdown", "Kestrelgate",
            "cellar steps", "Bartholomew", "Closedcase",
            # the demo people (api/demo_cases.py), their addresses, callers and what was said
            "Kyle Morgan", "Joan Barker", "Arthur Penn", "Peter Clarke", "Margaret Ellis", "Harriet Jones",
            "Mill Lane", "Station Road", "Church Street", "Quay Road", "Elm Road", "NS2 4BB", "Amy Shah",
            "husband died", "Anxiety and insomnia", "anxious and mostly housebound", "Demo social worker"]
OTHER_SPELLINGS = ["07700900461", "07700900517", "943-476-5919"]  # not in the live database, looked for all the same


def _build(url: str, *, demo: bool = True) -> dict:
    """The live database: open cases at different stages, one closed. Returns what the tests look for."""
    live = Engine(url, forms=FormLibrary.from_folder(ROOT / "forms"))
    live.init(simulated_start=LIVE_START)
    live.deploy([ROOT / "processes"])
    if demo:
        create_demo_cases(live)
    referred = live.create_case(REFERRED["name"], {"person": dict(REFERRED)}, actor="social-worker")
    live.start("needs_assessment", case_id=referred, actor="social-worker", data={"person": dict(REFERRED)})
    with live.db.transaction() as conn:
        conn.execute(insert(case_notes).values(case_id=referred, author="social-worker", at=live.now(conn),
                                               kind="note", text=NOTE))
    res = live.start("front_door", actor="front-door-advisor", title=CONTACT["person"]["name"])
    task = next(t for t in live.list_tasks(case_id=res.case_id) if t["element_id"] == "record_contact")
    live.complete_task(task["id"], CONTACT, actor="front-door-advisor")
    closed = live.start("front_door", actor="front-door-advisor", title=CLOSED).case_id
    live.close_case(closed, reason="no_longer_needed", actor="front-door-advisor")
    live.advance_clock(to=LIVE_NOW)
    with live.db.engine.connect() as conn:
        tasks = {r.element_id: r.id for r in conn.execute(text("select id, element_id from tasks"))}
        timers = [dict(r._mapping) for r in conn.execute(text(
            "select task_id, element_id, due_at from timers order by due_at"))]
    live.db.dispose()
    return {"tasks": tasks, "timers": timers}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("live")
    db = folder / "live.db"
    facts = _build(f"sqlite:///{db}")
    scenario = folder / "s.yaml"
    scenario.write_text(SCENARIO)
    before = state(db)
    dump: dict[str, list] = {}

    def inspect(eng):
        with eng.db.engine.connect() as conn:
            for (t,) in conn.exec_driver_sql("select name from sqlite_master where type='table'"):
                dump[t] = [dict(r._mapping) for r in conn.exec_driver_sql(f'select * from "{t}"')]

    source = Engine(f"sqlite:///{db}", forms=FormLibrary.from_folder(ROOT / "forms"))
    out = simulate.simulate(simulate.load_scenario(scenario), source=source, days=DAYS, from_live=True,
                            inspect=inspect)
    source.db.dispose()
    return {"db": db, "scenario": scenario, "before": before, "out": out, "dump": dump, **facts}


def _events(world, type_: str) -> list[dict]:
    return [dict(e, data=json.loads(e["data"])) for e in world["dump"]["events"] if e["type"] == type_]


def test_the_open_cases_tasks_and_timers_are_carried_over_and_counted(world):
    c = world["out"]["carried_over"]
    # seven demo cases, the referred person and the recorded contact are open; the closed case is not copied
    assert (c["cases"], c["instances"], c["tasks"], c["timers"]) == (9, 11, 8, 9)
    assert c["from"] == iso(LIVE_NOW) and world["out"]["start"] == "2026-03-12"
    assert c["tasks_by_team"] == {"finance": 2, "front_door": 1, "reablement": 2, "social_work": 2,
                                  "team_manager": 1}
    assert world["out"]["teams"]["social_work"]["carried_over"] == 2
    assert c["left_out"] == {}
    assert len(world["dump"]["cases"]) >= 9  # and the new arrivals on top
    titles = [r["title"] for r in world["dump"]["cases"]]
    assert titles[:9] == [f"Carried-over case {n}" for n in range(1, 10)] and CLOSED not in titles
    assert world["out"]["contacts"] > 0 and world["out"]["incidents"] == {}


def test_a_carried_over_task_is_done_in_the_run_and_its_case_moves_on(world):
    plan = world["tasks"]["plan_reablement"]  # Joan Barker's reablement, waiting for its plan since day 0
    done = [e for e in _events(world, "task.completed") if e["data"]["task_id"] == plan]
    assert len(done) == 1 and done[0]["actor"] == "simulation"
    assert done[0]["at"] >= iso(LIVE_NOW)
    # the reablement goes on to its delivery, in the same (copied) case and instance
    ready = [e for e in _events(world, "task.ready") if e["instance_id"] == done[0]["instance_id"]
             and e["data"]["element_id"] == "deliver_reablement"]
    assert ready and ready[0]["case_id"] == done[0]["case_id"]
    assert world["out"]["carried_over"]["tasks_completed"] >= 6
    # it had waited since it became ready on day 0: ten days and more, in the reablement team's waits
    assert world["out"]["teams"]["reablement"]["wait_hours_p95"] >= 240


def test_a_carried_over_timer_fires_at_its_due_time(world):
    call_back = [t for t in world["timers"] if t["element_id"] == "wait_for_call_back"]
    assert len(call_back) == 2  # Kyle Morgan's and the recorded contact's, due 14 days after day 0
    fired = {e["data"]["task_id"]: e for e in _events(world, "timer.fired")}
    for t in call_back:
        due = datetime.fromisoformat(str(t["due_at"])).replace(tzinfo=timezone.utc)
        assert LIVE_NOW < due < LIVE_NOW + timedelta(days=DAYS)
        assert fired[t["task_id"]]["at"] == iso(due)
    assert world["out"]["carried_over"]["timers_fired"] == 2
    assert world["out"]["timers_fired"]["front_door/wait_for_call_back"] == 2


def test_no_personal_value_from_the_live_database_reaches_the_scratch_database(world):
    live = sqlite3.connect(world["db"])
    try:
        live_text = json.dumps([list(r) for t in ("cases", "instances", "people", "case_notes", "events")
                                for r in live.execute(f'select * from "{t}"')], default=str)
    finally:
        live.close()
    scratch_text = json.dumps(world["dump"], default=str)
    # the live database holds them (else the search below proves nothing), the scratch database none of them
    assert [p for p in PERSONAL if p not in live_text] == []
    assert [p for p in PERSONAL + OTHER_SPELLINGS if p.lower() in scratch_text.lower()] == []
    # what stands in their place: a synthetic person whose forms still validate (the run completed their tasks)
    person = json.loads(world["dump"]["cases"][7]["data"])["person"]  # the referred person: the 8th open case
    assert person["name"] == "Simulated Person 8" and person["postcode"] == "ZZ99 9ZZ"
    assert person["address"] == ["8 Simulated Road", "Simtown"] and person["phone"] == "01632 960008"
    nhs = person["nhs_number"]
    check = (11 - sum(int(d) * (10 - i) for i, d in enumerate(nhs[:9])) % 11) % 11  # modulus 11
    assert len(nhs) == 10 and nhs.startswith("999") and check == int(nhs[9])  # the range never issued
    # the date of birth is not theirs, but the age in years on the live day is
    born = date.fromisoformat(person["date_of_birth"])
    assert born != date(1941, 5, 17)
    today = date(2026, 3, 12)
    assert today.year - born.year - ((today.month, today.day) < (born.month, born.day)) == 84
    assert world["dump"]["case_notes"] == []  # notes are not copied at all
    assert world["dump"]["people"] == []  # simulation mode keeps no people search index (docs/simulation.md)


def test_the_live_database_is_only_read(world):
    after = state(world["db"])
    assert after == world["before"]
    assert world["before"][1]["cases"] == 10 and world["before"][1]["case_notes"] == 1


def test_the_command_starts_from_live_and_says_what_it_carried_over(world, tmp_path, capsys):
    url = f"sqlite:///{world['db']}"
    code = cli.main(["--db", url, "--json", "simulate", "--from-live", "--days", "1", "--scenario",
                     str(world["scenario"])])
    out = json.loads(capsys.readouterr().out)
    assert code == 0
    assert {k: out["carried_over"][k] for k in ("cases", "instances", "tasks", "timers")} == {
        "cases": 9, "instances": 11, "tasks": 8, "timers": 9}
    assert state(world["db"]) == world["before"]
    code = cli.main(["--db", url, "simulate", "--from-live", "--days", "1", "--scenario", str(world["scenario"])])
    printed = capsys.readouterr().out
    assert code == 0 and f"Carried over from the live database at {iso(LIVE_NOW)} (anonymised): 9 open cases, " \
                          "11 process instances, 8 open tasks, 9 timers" in printed
    # no live database to start from: one line, exit 1, nothing created
    code = cli.main(["--db", f"sqlite:///{tmp_path / 'none.db'}", "simulate", "--from-live", "--days", "1"])
    assert code == 1 and "there is no database at" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_a_postgresql_live_database_is_copied_read_only(pg_url, tmp_path):
    facts = _build(pg_url, demo=False)
    eng = Engine(pg_url, forms=FormLibrary.from_folder(ROOT / "forms"))

    def counts() -> dict[str, int]:
        with eng.db.engine.connect() as conn:
            names = [r[0] for r in conn.execute(text(
                "select table_name from information_schema.tables where table_schema = current_schema()"))]
            return {t: conn.execute(text(f'select count(*) from "{t}"')).scalar() for t in names}

    before = counts()
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SCENARIO)
    dump: list[str] = []

    def inspect(scratch):
        with scratch.db.engine.connect() as conn:
            for (t,) in conn.exec_driver_sql("select name from sqlite_master where type='table'"):
                dump.append(json.dumps([list(r) for r in conn.exec_driver_sql(f'select * from "{t}"')], default=str))

    out = simulate.simulate(simulate.load_scenario(scenario), source=eng, days=DAYS, from_live=True,
                            inspect=inspect)
    c = out["carried_over"]
    assert (c["cases"], c["tasks"], c["timers"]) == (2, 1, 2) and c["from"] == iso(LIVE_NOW)
    assert c["timers_fired"] == 1 and c["tasks_completed"] == 1
    assert facts["timers"] and counts() == before
    scratch = "\n".join(dump).lower()
    assert [p for p in PERSONAL[:23] if p.lower() in scratch] == []
    eng.db.dispose()


def test_the_anonymiser_keeps_what_the_product_defines_and_replaces_the_rest():
    from carepath.simulate_today import _Anonymiser, _Person

    anon = _Anonymiser({"Registered care home", "Not known"}, date(2026, 3, 12))
    anon.usernames = {"j.barker-staff"}
    anon.learn({"person": {"name": "Joan Barker", "nhs_number": "943 476 5919", "postcode": "NB7 1AB"}})
    person = _Person(3, 78, date(2026, 3, 12))
    data = {"person": {"name": "Joan Barker", "age": 78, "nhs_number": "943 476 5919", "date_of_birth": "1947-06-01",
                       "address": ["4 Mill Lane", "Northby"], "phone": "07700 900461", "lives_alone": True},
            "caller": {"name": "Dr Amy Shah", "relationship": "gp_or_social_prescriber"},
            "reason": "Falls at home", "accommodation": "Registered care home", "ethnicity": "Not known",
            "route": "reablement", "length": "P42D", "due": "2026-04-01", "at": "2026-03-12T09:00:00+00:00",
            "amount": "277.27", "score": 7, "decided_by": "j.barker-staff", "assignee": "someone",
            "typed": {"typename": "date", "value": "2026-03-01"}, "note_code": "barker", "ref": "nb7 1ab",
            "kept_code": "home_support", "nhs_elsewhere": "9434765919"}
    out = anon.value(data, person)
    assert out["person"] == {"name": "Simulated Person 3", "age": 78, "nhs_number": out["person"]["nhs_number"],
                             "date_of_birth": "1947-09-12",  # 78 on the live day
                             "address": ["3 Simulated Road", "Simtown"], "phone": "01632 960003", "lives_alone": True}
    assert out["caller"] == {"name": "Simulated name", "relationship": "gp_or_social_prescriber"}
    assert out["reason"] == "Simulated text 1"  # free text, whatever it says: numbered by first occurrence
    kept = ("accommodation", "ethnicity", "route", "length", "due", "at", "amount", "score", "typed", "kept_code")
    assert {k: out[k] for k in kept} == {k: data[k] for k in kept}
    # a staff username, and live values in strings the rules would keep (a code, a postcode, a number) are swept
    assert out["decided_by"] == "simulated-staff" and out["assignee"] == "simulated-staff"
    assert (out["note_code"], out["ref"], out["nhs_elsewhere"]) == ("Simulated text 2", "Simulated text 3",
                                                                    "Simulated text 4")


def test_equal_free_texts_stay_equal_and_different_ones_stay_different_wherever_they_are():
    """A message correlated on free text must match, in the copy, the receiver it would have matched live and no
    other: one text for every free text let a message reach a receiver waiting on another text."""
    from carepath.simulate_today import _Anonymiser, _Person

    anon = _Anonymiser(set(), date(2026, 3, 12))
    first, second = _Person(1, 80, date(2026, 3, 12)), _Person(2, 70, date(2026, 3, 12))
    case_a = anon.value({"ward": "Ward 7 east wing", "note": "Call after lunch"}, first)
    case_b = anon.value({"ward": "Ward 9 south", "note": "Call after lunch"}, second)
    correlation = anon.value({"ward": "Ward 7 east wing"}, first)
    assert correlation["ward"] == case_a["ward"] != case_b["ward"]
    assert case_a["note"] == case_b["note"]
    assert all(v.startswith("Simulated text ") for v in (*case_a.values(), *case_b.values()))
    assert "Ward" not in json.dumps([case_a, case_b, correlation])
    # in a workflow's saved state too, the same text gives the same replacement
    state = json.loads(anon.state(json.dumps({"data": {"ward": "Ward 9 south"}, "tasks": {}}), second))
    assert state["data"]["ward"] == case_b["ward"]


# one person's details as someone might type them, and the value the case record holds
SPELLINGS = [("date_of_birth", "1941-05-17", "17/05/1941"), ("date_of_birth", "1941-05-17", "17 5 1941"),
             ("nhs_number", "943 476 5919", "943-476-5919"), ("nhs_number", "943 476 5919", "9434765919"),
             ("postcode", "NB7 1AB", "nb71ab"), ("postcode", "NB7 1AB", "NB7 1AB")]


@pytest.mark.parametrize("key,held,typed", SPELLINGS, ids=[f"{k}-{t}" for k, _h, t in SPELLINGS])
def test_the_anonymiser_and_the_front_door_search_recognise_the_same_details(key, held, typed):
    """handlers/person_patterns.py: the search box picks the detail out of a query, and the anonymiser's sweep
    finds the live value in a string the rules would keep, however either was spelt."""
    from api.intake import parse_query
    from carepath.simulate_today import _Anonymiser

    terms = parse_query(f"Zebedee {typed}", date(2026, 3, 12)).to_dict()
    assert terms[key].replace("-", "") == held.replace(" ", "").replace("-", "") and terms["name"] == "Zebedee"
    anon = _Anonymiser(set(), date(2026, 3, 12))
    anon.learn({"person": {key: held}})
    assert anon.personal(typed) and anon.personal(f"ref-{typed}")
    assert not anon.personal("ref-2026-03-12") and not anon.personal("01234 567890")


def test_the_search_and_the_anonymiser_share_one_set_of_patterns():
    import api.intake
    import handlers.people
    from handlers import person_patterns

    assert (api.intake._NHS, api.intake._POSTCODE, api.intake._DATE_ISO, api.intake._DATE_DMY,
            api.intake._POSTCODE_PART, handlers.people.POSTCODE) == (
        person_patterns.NHS_NUMBER, person_patterns.POSTCODE, person_patterns.DATE_ISO, person_patterns.DATE_DMY,
        person_patterns.POSTCODE_PART, person_patterns.POSTCODE_FIELD)
    source = (ROOT / "carepath" / "simulate_today.py").read_text(encoding="utf-8")
    assert "person_patterns" in source and "[A-Za-z]{1,2}" not in source  # no postcode pattern of its own


# ---------------------------------------------------------------------- held and waiting work (docs/simulation.md)
@pytest.fixture(scope="module")
def held(tmp_path_factory):
    """A run of two days from tests/simulation_held_world.py: a suspended instance, one in error, messages."""
    from tests import simulation_held_world as hw

    db = tmp_path_factory.mktemp("held") / "live.db"
    facts = hw.build(f"sqlite:///{db}")
    before = hw.state(db)
    dump: dict[str, list] = {}

    def inspect(eng):
        with eng.db.engine.connect() as conn:
            for (t,) in conn.exec_driver_sql("select name from sqlite_master where type='table'"):
                dump[t] = [dict(r._mapping) for r in conn.exec_driver_sql(f'select * from "{t}"')]

    source = Engine(f"sqlite:///{db}", forms=FormLibrary.from_folder(ROOT / "forms"))
    try:
        out = simulate.simulate(simulate.load_scenario(hw.SCENARIO), source=source, days=2, from_live=True,
                                inspect=inspect)
    finally:
        source.db.dispose()
    return {"db": db, "before": before, "out": out, "dump": dump, "hw": hw, **facts}


def _copied(held, process_id: str) -> dict:
    """The one copied instance of a process that is not await_reply (the scratch database's row)."""
    [row] = [i for i in held["dump"]["instances"] if i["process_id"] == process_id and i["id"] <= 6]
    return row


def test_the_held_and_waiting_work_is_counted(held):
    c = held["out"]["carried_over"]
    # the reply, expired, failed, s1, s2 and paused cases; the closed case is not copied
    assert (c["cases"], c["instances"], c["tasks"], c["timers"]) == (6, 6, 4, 2)
    assert c["tasks_by_team"] == {"front_door": 2, "safeguarding": 2}  # the queues: no held task in them
    assert held["out"]["teams"]["safeguarding"]["carried_over"] == 2
    assert c["suspended"] == {"instances": 1, "tasks": 1, "timers": 1, "tasks_by_team": {"safeguarding": 1},
                              "at_end": 1}
    assert c["in_error"] == {"instances": 1, "tasks": 1, "tasks_by_team": {"finance": 1}, "at_end": 1,
                             "incidents": {"fragile/boom": 1}}
    assert c["messages"] == {"waiting": 1, "delivered": 1}
    assert c["left_out"] == {"messages_expired": 1, "messages_for_cases_not_copied": 1}
    text = simulate_today_summary(held["out"])
    assert "suspended (paused, and kept paused: the run resumes nothing): 1 instance, their 1 task and 1 timer " \
           "held (safeguarding 1)" in text
    assert "in error (kept in error: the run retries nothing): 1 instance, their 1 task held; stopped at " \
           "fragile/boom 1" in text
    assert "messages waiting for a receiver: 1, 1 delivered in the run" in text
    assert "not carried over: 1 messages expired, 1 messages for cases not copied" in text


def simulate_today_summary(out) -> str:
    from carepath.simulate_today import summary_text

    return summary_text(out)


def test_a_suspended_instance_stays_suspended_its_task_and_timer_held(held):
    paused = next(i for i in held["dump"]["instances"] if i["status"] == "suspended")
    assert paused["process_id"] == "safeguarding" and paused["id"] <= 6  # a copied one, still paused
    [task] = [t for t in held["dump"]["tasks"] if t["instance_id"] == paused["id"]]
    [timer] = [t for t in held["dump"]["timers"] if t["instance_id"] == paused["id"]]
    assert task["element_id"] == "record_concern" and timer["element_id"] == "triage_overdue"
    # its triage deadline (17:00 on the first day) passed in the run without firing; its task was never worked
    end = LIVE_START + timedelta(days=12)
    assert datetime.fromisoformat(str(timer["due_at"])).replace(tzinfo=timezone.utc) < end
    moved = [e for e in held["dump"]["events"] if e["instance_id"] == paused["id"]
             and e["type"] in ("task.completed", "timer.fired", "task.ready")]
    assert moved == []
    # the other two concerns, running, were worked
    others = [i["id"] for i in held["dump"]["instances"] if i["process_id"] == "safeguarding" and i["id"] <= 6
              and i["id"] != paused["id"]]
    done = {e["instance_id"] for e in held["dump"]["events"] if e["type"] == "task.completed"}
    assert len(others) == 2 and set(others) <= done


def test_an_instance_in_error_stays_in_error_its_task_held(held):
    failed = _copied(held, "fragile")
    assert failed["status"] == "error"
    [task] = [t for t in held["dump"]["tasks"] if t["instance_id"] == failed["id"]]
    assert task["element_id"] == "look" and task["team"] == "finance"
    assert not [e for e in held["dump"]["events"] if e["instance_id"] == failed["id"] and e["type"] == "task.completed"]
    # the run's own incidents are its own: the copied failure is reported under carried_over, not there
    assert held["out"]["incidents"] == {} and held["dump"]["incidents"] == []
    assert held["out"]["processes"]["fragile"] == {"error": 1}


def test_a_message_waiting_for_a_receiver_is_copied_anonymised_and_delivered_when_one_waits(held):
    [message] = held["dump"]["messages"]
    reply_case = next(c for c in held["dump"]["cases"] if c["id"] <= 6
                      and json.loads(c["data"])["person"]["name"] == "Simulated Person 1")
    assert message["case_id"] == reply_case["id"] and message["status"] == "delivered"
    assert message["key"] == "simulated-message-1" and message["name"] == "provider_reply"
    data = json.loads(message["data"])
    assert data == {"contact": data["contact"], "nhs_number": data["nhs_number"],
                    "note": data["note"], "phone": "01632 960001", "provider": data["provider"]}
    texts = [data["contact"], data["note"], data["provider"]]  # three different live texts: three replacements
    assert len(set(texts)) == 3 and all(t.startswith("Simulated text ") for t in texts)
    # the case's own synthetic NHS number, the same as its record's
    assert data["nhs_number"] == json.loads(reply_case["data"])["person"]["nhs_number"]
    # its first task done in the run, the receiver waited and took the message: the next task became ready
    inst = message["instance_id"]
    ready = [e for e in held["dump"]["events"] if e["instance_id"] == inst and e["type"] == "task.ready"]
    assert [json.loads(e["data"])["element_id"] for e in ready] == ["read_reply"]
    assert held["out"]["processes"]["await_reply"] == {"completed": 1, "waiting": 1}  # the expired one waits


def test_no_personal_value_of_held_or_waiting_work_reaches_the_scratch_database(held):
    hw = held["hw"]
    live = sqlite3.connect(held["db"])
    try:
        live_text = json.dumps([list(r) for t in ("cases", "instances", "messages", "events", "incidents", "people")
                                for r in live.execute(f'select * from "{t}"')], default=str)
    finally:
        live.close()
    assert [p for p in hw.PERSONAL if p not in live_text] == []
    scratch = json.dumps(held["dump"], default=str).lower()
    assert [p for p in hw.PERSONAL if p.lower() in scratch] == []
    assert hw.state(held["db"]) == held["before"]
