"""The operating model in processes/ deploys as one bundle with the real handlers and forms,
exactly as `make run` deploys it."""

from __future__ import annotations

from pathlib import Path

from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent


def test_every_diagram_in_processes_deploys_together(db_url):
    eng = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init()
    refs = eng.deploy([ROOT / "processes"])
    assert {r.process_id for r in refs} >= {
        "front_door", "reablement", "hospital_follow_up", "needs_assessment", "carers_assessment",
        "personal_budget", "support_plan", "review", "direct_payment_review"}
    assert all(r.created for r in refs)
    assert not any(r.created for r in eng.deploy([ROOT / "processes"]))  # identical: no new versions
    eng.db.dispose()
