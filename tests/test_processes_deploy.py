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


def _front_door_with(old: str, new: str) -> dict[str, bytes]:
    text = (ROOT / "processes" / "front_door.bpmn").read_text(encoding="utf-8")
    assert old in text, old
    return {"front_door.bpmn": text.replace(old, new, 1).encode(),
            "screening.dmn": (ROOT / "processes" / "screening.dmn").read_bytes()}


def test_deploy_refuses_a_user_task_for_a_team_that_does_not_exist_and_a_handler_without_its_parameters(db_url):
    """What the modeller shows as you draw is what deploy (and so a draft's approval) refuses: a user task
    nobody's inbox would ever show, and a service task that does not give its handler what it needs."""
    from engine.errors import DefinitionError

    eng = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    eng.init()
    eng.deploy([ROOT / "processes"])
    files = _front_door_with('camunda:candidateGroups="front_door"', 'camunda:candidateGroups="front_dor"')
    try:
        eng.deploy(files=files)
    except DefinitionError as exc:
        messages = [p.message for p in exc.problems]
    else:
        raise AssertionError("a task for an unknown team was deployed")
    assert any("goes to 'front_dor' (its candidate groups), which is not a team" in m for m in messages), messages
    # the registry knows each handler's required parameters from its signature (update_case: data)
    assert eng.registry.required_parameters()["update_case"] == ("data",)
    assert eng.registry.required_parameters()["search_directory"] == ("needs",)
    needle = '<camunda:inputParameter name="needs">needs'
    files = _front_door_with(needle, '<camunda:inputParameter name="wants">needs')
    try:
        eng.deploy(files=files)
    except DefinitionError as exc:
        messages = [p.message for p in exc.problems]
    else:
        raise AssertionError("a service task without its handler's required parameter was deployed")
    assert any("does not give handler 'search_directory' its required parameter(s): needs" in m for m in messages), \
        messages
    assert not any(r.created for r in eng.deploy(files=_front_door_with(needle, needle)))  # as it was: no change
    eng.db.dispose()
