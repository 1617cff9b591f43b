"""carepath's own conformance suite: public BPMN and DMN files written by other people and tools (the BPMN Model
Interchange Working Group, SpiffWorkflow, Camunda, bpmn-io), each with the outcome carepath gives it.

tests/conformance/manifest.json names, for every file, where it came from (repository, path, commit, licence;
also in tests/conformance/SOURCES.md) and what must happen:

- "runs": deployed with its companions, started with the given data, then driven by the given steps
  (complete a user task with data, checking what the task list shows for it; deliver a message; start another
  process of the case; advance the injected clock), each step as a new process would run it (its workflow restored
  from storage; an entry with "same_process", saying why, runs all in one), it ends with every process instance of
  the case completed and the given values in the data;
- "deploys": a file that holds decisions only is stored on its own (its decision ids come back from deploy);
- "refused": deploy fails; for each expected problem, one names the given element (and line, when given) and
  carries the given message text; every problem names an element and a line, on one line; nothing is stored;
  with "only_these_problems", no other problem is reported (none that would mislead);
- "incident": deploys, runs, and then fails at run time with an incident carrying the given text (a defect
  recorded as it stands, so that a change in it is seen).

Files that need a feature still being built are marked xfail(strict=True) with the feature and the issue item,
so the suite fails loudly the day the feature lands and the mark should go.
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from engine import bpmn
from engine.errors import DefinitionError, ValidationError
from engine.forms import FormLibrary
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import process_versions
from tests.conftest import START

HERE = Path(__file__).parent / "conformance"
FILES = HERE / "files"
MANIFEST: list[dict[str, Any]] = json.loads((HERE / "manifest.json").read_text(encoding="utf-8"))["files"]


def _params() -> list[Any]:
    out = []
    for entry in MANIFEST:
        marks = [pytest.mark.xfail(strict=True, reason=entry["xfail"])] if entry.get("xfail") else []
        out.append(pytest.param(entry, id=entry["file"], marks=marks))
    return out


def _registry(log: list[tuple[str, dict[str, Any]]]) -> HandlerRegistry:
    """Handlers the public diagrams name, recording what they were called with."""
    reg = HandlerRegistry()

    @reg.register("notify")
    def notify(ctx, message="") -> dict[str, Any]:  # type: ignore[no-untyped-def]
        log.append(("notify", {"message": message}))
        return {"notified": True}

    return reg


@pytest.fixture
def engine(tmp_path):
    log: list[tuple[str, dict[str, Any]]] = []
    eng = Engine(f"sqlite:///{tmp_path / 'conformance.db'}", registry=_registry(log), forms=FormLibrary())
    eng.init(simulated_start=START)
    yield eng
    eng.db.dispose()


def _files(entry: dict[str, Any]) -> dict[str, bytes]:
    names = [entry["file"], *entry.get("with", [])]
    return {name: (FILES / name).read_bytes() for name in names}


def _stored_versions(eng: Engine) -> int:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(process_versions)).scalar_one()


def _do(eng: Engine, case_id: int, step: dict[str, Any]) -> None:
    if "complete" in step:
        listed = eng.list_tasks(case_id=case_id)
        ready = [t for t in listed if t["element_id"] == step["complete"]]
        assert ready, f"no ready task {step['complete']!r}; ready: {[t['element_id'] for t in listed]}"
        for key, value in step.get("task", {}).items():  # what the task list shows (assignee, form, team...)
            assert ready[0][key] == value, (key, ready[0][key])
        eng.complete_task(ready[0]["id"], step.get("data", {}), actor="conformance")
    elif "advance_seconds" in step:
        eng.advance_clock(timedelta(seconds=step["advance_seconds"]))
    elif "start" in step:  # another process of the same case (its thrown messages reach the first, say)
        eng.start(step["start"], case_id=case_id, data=step.get("data", {}), actor="conformance")
    elif "message" in step:
        eng.deliver_message(step["message"], case_id=case_id, data=step.get("data", {}),  # type: ignore[attr-defined]
                            correlation=step.get("correlation"))
    else:
        raise AssertionError(f"unknown step {step}")


def _as_a_new_process(engine: Engine) -> Engine:
    """The same database opened as a new process would open it (the command line, another worker, a restarted
    server): no spec built yet, no workflow kept in memory, so every step restores its workflow from storage and
    runs on specs built afresh. A step that worked only because an earlier one left something in memory (a
    multi-instance activity's instances merged through a signal connected in memory: findings 13 item 1) fails."""
    bpmn._BUILT_SPECS.clear()
    return Engine(engine.db, registry=engine.registry, forms=engine.forms)


@pytest.mark.parametrize("entry", _params())
def test_conformance(engine: Engine, entry: dict[str, Any]) -> None:
    check(engine, entry)


def check(engine: Engine, entry: dict[str, Any]) -> None:
    """Deploy (and run) one manifest entry; fail unless carepath gives the expected outcome."""
    files = _files(entry)
    if entry["expect"] == "refused":
        with pytest.raises(DefinitionError) as caught:
            engine.deploy(files=files)
        problems = caught.value.problems
        for want in entry["problems"]:
            matching = [p for p in problems if p.element_id == want["element"] and want["message"] in p.message
                        and want.get("line", p.line) == p.line]
            assert matching, f"no problem on {want['element']!r} saying {want['message']!r} in:\n" + "\n".join(
                str(p) for p in problems)
        assert all("\n" not in str(p) for p in problems)  # every problem on one line
        if entry.get("only_these_problems"):
            assert len(problems) == len(entry["problems"]), "other problems too:\n" + "\n".join(map(str, problems))
        unplaced = [str(p) for p in problems if not p.element_id or not isinstance(p.line, int)]
        assert not unplaced, "problems without an element or a line:\n" + "\n".join(unplaced)
        assert _stored_versions(engine) == 0  # nothing stored
        return
    refs = engine.deploy(files=files)
    if entry["expect"] == "deploys":
        assert set(entry["decisions"]) <= {r.process_id for r in refs}
        return
    assert entry["expect"] in ("runs", "incident")
    if "start_message" in entry:
        result = engine.deliver_message(entry["start_message"], data=entry.get("data", {}))  # type: ignore[attr-defined]
        case_id = result.case_id
    else:
        case_id = engine.start(entry["process"], data=entry.get("data", {})).case_id
    reopen = _as_a_new_process if "same_process" not in entry else (lambda eng: eng)
    for step in entry.get("steps", []):
        engine = reopen(engine)
        _do(engine, case_id, step)
    engine = reopen(engine)
    if entry["expect"] == "incident":  # deploys, then fails at run time: an incident naming what failed
        assert [i["message"] for i in engine.incidents() if entry["message"] in i["message"]], engine.incidents()
        assert engine.get_case(case_id)["instances"][0]["status"] == "error"
        return
    instances = engine.get_case(case_id)["instances"]
    assert instances and all(i["status"] == "completed" for i in instances), instances
    assert engine.incidents() == []
    data = engine.instance_snapshot(instances[0]["id"])["data"]
    for key, value in entry.get("expect_data", {}).items():
        assert data.get(key) == value, (key, data)


# --- the suite itself: every file recorded, small, licensed; expectations that can fail --------------------

LICENCES = {"LGPL-3.0-or-later", "CC-BY-3.0", "Apache-2.0", "MIT"}


def test_every_file_is_in_the_manifest_with_its_source_and_licence() -> None:
    listed = {e["file"] for e in MANIFEST} | {w for e in MANIFEST for w in e.get("with", [])}
    assert listed == {p.name for p in FILES.iterdir()}
    sources = (HERE / "SOURCES.md").read_text(encoding="utf-8")
    for entry in MANIFEST:
        for name, source in [(entry["file"], entry["source"]), *entry.get("with_sources", {}).items()]:
            assert source["licence"] in LICENCES and len(source["commit"]) == 40 and source["repo"] and source["path"]
            assert f"`{name}`" in sources and source["commit"][:12] in sources
            assert (FILES / name).stat().st_size <= 200_000


def test_every_expectation_says_what_must_happen() -> None:
    for entry in MANIFEST:
        assert entry["expect"] in {"runs", "deploys", "refused", "incident"}, entry["file"]
        if entry["expect"] == "refused":
            assert entry["problems"] and all(p["element"] and p["message"] for p in entry["problems"]), entry["file"]
        if entry.get("xfail"):
            assert "issue 13 item" in entry["xfail"], entry["file"]


def _entry(name: str) -> dict[str, Any]:
    return json.loads(json.dumps(next(e for e in MANIFEST if e["file"] == name)))


def test_a_triggered_event_subprocess_goes_on_in_a_new_process(engine: Engine) -> None:
    """A signal starts the event subprocess; its task is done in a new process, on specs built afresh. SpiffWorkflow
    connects a triggered event subprocess into the spec when it starts it (BpmnStartTask.trigger_wf) and carepath
    keeps no spec, so that step failed ("No input task connected") and the case went into error; the restore now
    connects it (engine/bpmn.py `connect_triggered`). A case started afterwards still begins at its start event."""
    entry = _entry("spiff-event-subprocess.bpmn")
    assert "same_process" not in entry  # the conformance run restores it between its steps as well
    check(engine, entry)
    engine = _as_a_new_process(engine)
    case_id = engine.start("main").case_id
    assert [t["element_id"] for t in engine.list_tasks(case_id=case_id)] == ["set_data"]
    engine.complete_task(engine.list_tasks(case_id=case_id)[0]["id"], {}, actor="conformance")
    engine = _as_a_new_process(engine)
    assert [t["element_id"] for t in engine.list_tasks(case_id=case_id)] == ["task"]
    engine.complete_task(engine.list_tasks(case_id=case_id)[0]["id"], {}, actor="conformance")
    assert [i["status"] for i in engine.get_case(case_id)["instances"]] == ["completed"]
    assert engine.incidents() == []


def test_every_entry_run_in_one_process_says_why() -> None:
    assert all(isinstance(e.get("same_process", "why"), str) and e.get("same_process", "why")
               for e in MANIFEST)


def test_a_refusal_with_another_message_fails(engine: Engine) -> None:
    entry = _entry("spiff-data_store.bpmn")
    entry["problems"][0]["message"] = "carepath supports data stores"
    with pytest.raises(AssertionError, match="no problem on 'Activity_09dnr20'"):
        check(engine, entry)


def test_a_refusal_with_more_problems_than_listed_fails_when_only_those_are_expected(engine: Engine) -> None:
    entry = _entry("zeebe-LinkEventTest.testValidEventLink.bpmn")
    entry["problems"] = entry["problems"][:1]
    with pytest.raises(AssertionError, match="other problems too"):
        check(engine, entry)


def test_a_refusal_on_another_element_fails(engine: Engine) -> None:
    entry = _entry("spiff-data_store.bpmn")
    entry["problems"][0]["element"] = "Activity_1skgyn9x"
    with pytest.raises(AssertionError):
        check(engine, entry)


def test_a_run_left_waiting_fails(engine: Engine) -> None:
    entry = _entry("spiff-ParallelOrder.bpmn")
    entry["steps"] = entry["steps"][:-1]  # one branch never completed: the join waits
    with pytest.raises(AssertionError, match="waiting"):
        check(engine, entry)


def test_a_task_shown_otherwise_fails(engine: Engine) -> None:
    entry = _entry("camunda-invoiceApproval.bpmn")
    entry["steps"][0]["task"]["assignee"] = "someone else"
    with pytest.raises(AssertionError, match="assignee"):
        check(engine, entry)


def test_a_run_with_other_data_fails(engine: Engine) -> None:
    entry = _entry("spiff-ScriptTest.bpmn")
    entry["expect_data"]["sample"] = ["a", "b"]
    with pytest.raises(AssertionError, match="sample"):
        check(engine, entry)


def test_a_file_that_deploys_is_not_taken_as_refused(engine: Engine) -> None:
    entry = _entry("spiff-no-tasks.bpmn")
    entry.update(expect="refused", problems=[{"element": "no_tasks", "message": "no executable process"}])
    with pytest.raises(pytest.fail.Exception):
        check(engine, entry)


def test_a_multi_instance_task_done_without_its_output_item_is_refused_and_nothing_is_saved(engine: Engine) -> None:
    """SpiffWorkflow collects each instance's output item when the instance completes; one completed without it
    used to fail inside the step and leave the case in error (an incident). It is a completion to refuse: the
    task stays waiting, nothing is recorded, and done again with the item the activity goes on."""
    engine.deploy(files=_files({"file": "spiff-sequential_multiinstance_cardinality.bpmn"}))
    case_id = engine.start("main").case_id
    [task] = engine.list_tasks(case_id=case_id)
    recorded = len(engine.history(case_id))
    with pytest.raises(ValidationError, match=r"'Any Task' \(any_task\) runs once per item .* 'output_item'") as caught:
        engine.complete_task(task["id"], {"note": "done"}, actor="conformance")
    assert caught.value.errors == [{"field": "output_item", "message": "'output_item' is required"}]
    assert engine.incidents() == [] and len(engine.history(case_id)) == recorded
    assert engine.get_case(case_id)["instances"][0]["status"] == "waiting"
    assert [t["id"] for t in engine.list_tasks(case_id=case_id)] == [task["id"]]
    engine.complete_task(task["id"], {"output_item": "first"}, actor="conformance")
    [second] = engine.list_tasks(case_id=case_id)
    assert second["id"] != task["id"] and second["element_id"] == "any_task"  # the next instance is waiting
