"""A live database for starting a simulation from today with work that is held or waiting (tests/test_simulate_today.py,
tests/test_simulate_compare.py): a suspended safeguarding instance, an instance in error, and messages waiting for a
receiver, beside two running safeguarding concerns. Small, so a run from it takes about a second.

The live clock starts on Monday 2 March 2026 (09:00 UTC) and stands at NOW, Thursday 12 March 09:00, when it is
copied. Its open work then:

* `await_reply` (tests/fixtures/simulation_held.bpmn) on case "reply": its first task (front door) open; the message
  `provider_reply` sent on day 9 is kept until a receiver waits (it waits after that task), until day 16.
* `await_reply` on case "expired": the same, but its message was sent on day 0 and expired on day 7.
* `await_reply` on a closed case with a message sent on day 9: the case is not copied, nor its message.
* `fragile` on case "failed": in error as it started (a script in one branch), its other branch's finance task open.
* `safeguarding` on cases "s1" and "s2", started on day 9: their concern to record, the triage deadline at 17:00 on
  Thursday (one working day).
* `safeguarding` on case "paused", started on day 9 and suspended on day 9 (the person went into hospital): its task
  and its triage timer held.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)  # a Monday
NOW = START + timedelta(days=10)  # Thursday 12 March 2026, 09:00
FILES = [ROOT / "processes" / n for n in ("front_door.bpmn", "screening.dmn", "safeguarding.bpmn")] + [
    ROOT / "tests" / "fixtures" / "simulation_held.bpmn"]
SCENARIO = ROOT / "tests" / "fixtures" / "simulation_compare.yaml"


def _person(name: str, nhs: str, postcode: str, dob: str) -> dict[str, Any]:
    return {"name": name, "nhs_number": nhs, "postcode": postcode, "date_of_birth": dob, "area": "north",
            "address": ["3 Gallowglass Terrace", "Northby"], "phone": "07700 900733"}


PEOPLE = {
    "reply": _person("Ignatius Wobblethorpe", "401 023 2137", "NB3 7QX", "1938-11-23"),
    "expired": _person("Perpetua Snodgrass", "943 476 5919", "NB9 4RT", "1950-02-14"),
    "closed": _person("Cuthbert Dillywhistle", "123 456 7881", "NB2 8YU", "1944-07-04"),
    "failed": _person("Araminta Gooseberry", "999 888 7776", "NB5 5HJ", "1961-09-30"),
    "s1": _person("Leopold Thrushcombe", "456 789 1232", "NB6 2KL", "1933-01-08"),
    "s2": _person("Drusilla Pennyfeather", "321 654 9870", "NB1 1ZZ", "1947-12-25"),
    "paused": _person("Barnabas Quenchworthy", "654 321 0983", "NB8 6MN", "1929-06-06"),
}
MESSAGE = {"provider": "Hollyhock Lodge", "contact": "Ms Tabitha Marchbanks", "phone": "07700 900999",
           "note": "Can start on Monday; Mr Wobblethorpe prefers mornings"}
CONCERN = "Bruises seen by the neighbour at Gallowglass Terrace"
# every personal value the live database holds: none may reach a scratch database
PERSONAL = [w for p in PEOPLE.values() for w in (*p["name"].split(), p["nhs_number"], p["nhs_number"].replace(" ", ""),
                                                  p["postcode"], p["date_of_birth"])] + [
    "Gallowglass", "07700 900733", "Hollyhock", "Tabitha", "Marchbanks", "07700 900999", "prefers mornings",
    "Bruises", "St Swithin", "Blotchley"]


def state(db: Path) -> tuple[str, dict[str, int]]:
    """The database file's SHA-256 and every table's row count."""
    con = sqlite3.connect(db)
    try:
        tables = [r[0] for r in con.execute("select name from sqlite_master where type='table'")]
        counts = {t: con.execute(f'select count(*) from "{t}"').fetchone()[0] for t in tables}
    finally:
        con.close()
    return hashlib.sha256(db.read_bytes()).hexdigest(), counts


def build(url: str) -> dict[str, Any]:
    """The live database (see the module's text). Returns the cases' and instances' live ids by name."""
    live = Engine(url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    try:
        live.init(simulated_start=START)
        live.deploy(FILES)
        case: dict[str, int] = {}
        inst: dict[str, int] = {}

        def start(key: str, process: str, data: dict[str, Any]) -> None:
            person = PEOPLE[key]
            case[key] = live.create_case(person["name"], {"person": dict(person)}, actor="social-worker")
            res = live.start(process, case_id=case[key], actor="social-worker", data=data)
            inst[key] = res.instance_id

        def reply(key: str) -> None:
            out = live.deliver_message("provider_reply", case_id=case[key], actor="provider-hub",
                                       data={**MESSAGE, "nhs_number": PEOPLE[key]["nhs_number"]})
            assert out.status == "kept"

        for key in ("reply", "expired", "closed"):
            start(key, "await_reply", {"person": dict(PEOPLE[key])})
        reply("expired")
        start("failed", "fragile", {"person": dict(PEOPLE["failed"]), "why": "Charge for Araminta's respite"})
        live.advance_clock(to=START + timedelta(days=9))
        reply("reply")
        reply("closed")
        live.close_case(case["closed"], reason="no_longer_needed", actor="social-worker")
        for key in ("s1", "s2", "paused"):
            start(key, "safeguarding", {"person": dict(PEOPLE[key]), "concern": CONCERN, "urgent": False,
                                        "raised_by": "Police (police)", "contact_date": "2026-03-11"})
        live.suspend_instance(inst["paused"], reason="Admitted to St Swithin ward at Blotchley General",
                              actor="social-worker", details={"hospital": "Blotchley General"})
        live.advance_clock(to=NOW)
        return {"case": case, "instance": inst}
    finally:
        live.db.dispose()
