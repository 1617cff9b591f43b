"""Deploying runs the lint: warnings are shown and deploy anyway; --strict (strict=True) refuses
while any remain and stores nothing; a rule of severity "error" blocks every deploy."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.cli import main
from engine.errors import DefinitionError
from engine.forms import FormLibrary
from engine.lint import RULES, Finding, Rule
from engine.registry import load_registry
from engine.runtime import Engine
from engine.schema import deployments, process_versions

ROOT = Path(__file__).resolve().parent.parent
DIAGRAM = ROOT / "processes" / "hospital_follow_up.bpmn"
CLEAN = DIAGRAM.read_bytes()
# the "No" flow out of the at-home gateway drawn as one slanting line straight to its end event
SLANTED = CLEAN.replace(
    b'<di:waypoint x="970" y="170" /><di:waypoint x="970" y="236" /><di:waypoint x="1102" y="236" />',
    b'<di:waypoint x="970" y="170" /><di:waypoint x="1102" y="236" />')


def stored(eng: Engine) -> tuple[int, int]:
    with eng.db.engine.connect() as conn:
        return (conn.execute(select(func.count()).select_from(process_versions)).scalar_one(),
                conn.execute(select(func.count()).select_from(deployments)).scalar_one())


@pytest.fixture
def eng(db_url):
    engine = Engine(db_url, registry=load_registry("handlers"), forms=FormLibrary.from_folder(ROOT / "forms"))
    engine.init()
    yield engine
    engine.db.dispose()


def test_the_edited_diagram_has_exactly_one_warning():
    assert SLANTED != CLEAN
    from engine.lint import lint_files

    assert [(p.rule, p.element_id) for p in lint_files({"hospital_follow_up.bpmn": SLANTED})] == [
        ("no-diagonal-flow", "f_not_at_home")]


def test_warnings_do_not_stop_a_deploy(eng):
    [ref] = eng.deploy(files={"hospital_follow_up.bpmn": SLANTED}, actor="owner")
    assert ref.created and stored(eng) == (1, 1)


def test_a_strict_deploy_refuses_while_there_are_warnings_and_stores_nothing(eng):
    with pytest.raises(DefinitionError) as caught:
        eng.deploy(files={"hospital_follow_up.bpmn": SLANTED}, actor="owner", strict=True)
    [problem] = caught.value.problems
    assert (problem.file, problem.element_id, problem.rule, problem.severity) == (
        "hospital_follow_up.bpmn", "f_not_at_home", "no-diagonal-flow", "warning")
    assert problem.line == SLANTED.decode().splitlines().index(
        next(line for line in SLANTED.decode().splitlines() if 'id="f_not_at_home"' in line)) + 1
    assert "(warning: no-diagonal-flow)" in str(caught.value)
    assert stored(eng) == (0, 0)
    [ref] = eng.deploy(files={"hospital_follow_up.bpmn": CLEAN}, actor="owner", strict=True)
    assert ref.created and stored(eng) == (1, 1)


def test_a_strict_deploy_lists_lint_warnings_with_the_other_problems(eng):
    # the settings it reads at start come from a handler that does not exist
    broken = SLANTED.replace(b'name="load:settings" value="local_settings"',
                             b'name="load:settings" value="no_such_handler"')
    assert broken != SLANTED
    with pytest.raises(DefinitionError) as caught:
        eng.deploy(files={"hospital_follow_up.bpmn": broken}, actor="owner", strict=True)
    rules = [p.rule for p in caught.value.problems]
    assert "no-diagonal-flow" in rules and None in rules  # the unknown handler, and the lint warning
    assert stored(eng) == (0, 0)


def test_a_lint_error_blocks_every_deploy(eng, monkeypatch):
    def every_process(diagram):
        for pid in diagram.processes:
            yield Finding(pid, f"process {pid} is refused by a test rule")

    monkeypatch.setitem(RULES, "test-refuse", Rule("test-refuse", "error", "Refuses every process.", every_process))
    with pytest.raises(DefinitionError) as caught:
        eng.deploy(files={"hospital_follow_up.bpmn": CLEAN}, actor="owner")
    assert [(p.rule, p.severity, p.element_id) for p in caught.value.problems] == [
        ("test-refuse", "error", "hospital_follow_up")]
    assert stored(eng) == (0, 0)


def test_a_rule_severity_must_be_error_or_warning():
    with pytest.raises(ValueError, match="severity"):
        Rule("x", "info", "Nothing.", lambda d: [])


# ---------------------------------------------------------------- carepath deploy


@pytest.fixture
def folder(tmp_path):
    path = tmp_path / "edited"
    path.mkdir()
    (path / "hospital_follow_up.bpmn").write_bytes(SLANTED)
    return path


def test_carepath_deploy_prints_warnings_with_file_element_and_line_and_deploys(eng, folder, capsys):
    assert main(["deploy", str(folder), "--db", eng.db.url, "--as", "owner"]) == 0
    out, err = capsys.readouterr()
    [warning] = err.splitlines()
    assert warning.startswith("warning: edited/hospital_follow_up.bpmn:")
    assert ("[f_not_at_home]: flow f_not_at_home ('No') from 'Still at home?' to 'Not at home at follow-up' "
            "has a slanting") in warning
    assert warning.endswith("(warning: no-diagonal-flow)")
    assert "hospital_follow_up version 1" in out
    assert stored(eng) == (1, 1)


def test_carepath_deploy_strict_refuses_and_stores_nothing(eng, folder, capsys):
    assert main(["deploy", str(folder), "--strict", "--db", eng.db.url]) == 1
    out, err = capsys.readouterr()
    assert out == "" and "1 problem(s)" in err and "[f_not_at_home]" in err and "no-diagonal-flow" in err
    assert stored(eng) == (0, 0)
    (folder / "hospital_follow_up.bpmn").write_bytes(CLEAN)
    assert main(["deploy", str(folder), "--strict", "--db", eng.db.url]) == 0
    out, err = capsys.readouterr()
    assert err == "" and "hospital_follow_up version 1" in out
