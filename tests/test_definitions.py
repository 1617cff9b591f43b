"""Deploying diagrams: versions, every problem at once, hostile files — and nothing stored is
lost or altered by a bad deployment."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.cli import main
from engine.errors import DefinitionError
from engine.schema import definition_files, deployments, events, process_versions
from tests.conftest import DIAGRAMS

BOMB = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol2;</bpmn:definitions>"""

XXE = b"""<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"><bpmn:process id="p">&x;</bpmn:process>
</bpmn:definitions>"""


def _counts(eng) -> tuple[int, ...]:
    with eng.db.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                     for t in (definition_files, deployments, process_versions, events))


def test_hostile_xml_is_refused_and_nothing_stored_changes(make_engine):
    eng = make_engine("three_tasks.bpmn")
    running = eng.start("three_tasks")
    before = _counts(eng)
    huge = b"<a>" + b" " * (6 * 1024 * 1024) + b"</a>"
    for name, data in (("bomb.bpmn", BOMB), ("xxe.bpmn", XXE), ("huge.bpmn", huge)):
        with pytest.raises(DefinitionError) as err:  # reported with the bundle's other problems
            eng.deploy(files={name: data, "three_tasks.bpmn": (DIAGRAMS / "three_tasks.bpmn").read_bytes()})
        [problem] = err.value.problems
        assert problem.file == name
        assert "refused" in problem.message or "limit" in problem.message
        assert "root:" not in str(err.value)
    assert _counts(eng) == before
    eng.complete_task(running.ready_tasks[0]["id"], {})  # the running case is untouched


def test_a_broken_bundle_reports_every_problem_and_deploys_nothing(make_engine):
    eng = make_engine()
    good = (DIAGRAMS / "three_tasks.bpmn").read_bytes()
    broken = (DIAGRAMS / "budget.bpmn").read_bytes().replace(b'camunda:topic="calculate_budget"',
                                                              b'camunda:topic="no_such_handler"')
    broken = broken.replace(b'budget["amount"] &gt; 20000', b"__import__('os').system('id')")
    malformed = b"<bpmn:definitions xmlns:bpmn='http://www.omg.org/spec/BPMN/20100524/MODEL'>\n<oops>\n"
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files={"three_tasks.bpmn": good, "budget.bpmn": broken, "malformed.bpmn": malformed})
    problems = err.value.problems
    by_file = {(p.file, p.element_id) for p in problems}
    assert ("budget.bpmn", "calculate") in by_file  # unknown handler
    assert ("budget.bpmn", "f_yes") in by_file  # refused condition
    assert any(p.file == "malformed.bpmn" and p.line for p in problems)
    assert all(p.line for p in problems if p.file == "budget.bpmn")
    assert _counts(eng) == (0, 0, 0, 0)  # not even the good file's process


def test_cli_deploy_prints_each_problem_with_file_element_and_line(make_engine, tmp_path, capsys):
    eng = make_engine()
    bad = (DIAGRAMS / "three_tasks.bpmn").read_text().replace('camunda:formKey="screening" ', "")
    (tmp_path / "three_tasks.bpmn").write_text(bad)
    assert main(["deploy", str(tmp_path), "--db", eng.db.url]) == 1
    err = capsys.readouterr().err
    assert "three_tasks.bpmn:10 [screen]" in err and "names no form" in err
    assert main(["deploy", str(tmp_path / "missing.bpmn"), "--db", eng.db.url]) == 1
    assert "no such file or folder" in capsys.readouterr().err


def test_deploying_a_folder_versions_only_what_changed(make_engine, tmp_path):
    eng = make_engine()
    for name in ("budget.bpmn", "annual_review.bpmn"):
        (tmp_path / name).write_bytes((DIAGRAMS / name).read_bytes())
    first = {r.process_id: (r.version, r.created) for r in eng.deploy([tmp_path])}
    assert first == {"budget": (1, True), "annual_review": (1, True)}
    (tmp_path / "budget.bpmn").write_text((DIAGRAMS / "budget.bpmn").read_text().replace("20000", "25000"))
    second = {r.process_id: (r.version, r.created) for r in eng.deploy([tmp_path])}
    assert second == {"budget": (2, True), "annual_review": (1, False)}
    deployed = [e for e in _system_events(eng) if e.type == "definitions.deployed"]
    assert len(deployed) == 2


def _system_events(eng):
    with eng.db.engine.connect() as conn:
        return conn.execute(select(events).where(events.c.chain == "system").order_by(events.c.seq)).all()
