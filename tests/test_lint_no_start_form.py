"""A start form (camunda:formKey / camunda:formRef / zeebe:formDefinition on a start event) is not shown by carepath,
which has no start forms: it is a warning of the lint rule no-start-form, printed by `carepath deploy` with file,
element and line, blocking only `deploy --strict`; the diagram still deploys and runs (docs/diagram-attributes.md,
"Start forms"). Before, camunda:formKey on a start event was accepted without a word and zeebe:formDefinition
refused as an unsupported extension."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.bpmn import parse_bundle
from engine.cli import main
from engine.errors import DefinitionError
from engine.forms import FormLibrary
from engine.lint import lint_files
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from tests.conftest import START

CONFORMANCE = Path(__file__).parent / "conformance" / "files"
LOAN = CONFORMANCE / "camunda-loanApproval.bpmn"

OPEN = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
        'id="defs">\n<bpmn:process id="p" isExecutable="true">\n')


def diagram(start: str) -> bytes:
    return (OPEN + start + '\n<bpmn:endEvent id="e"/>\n<bpmn:sequenceFlow id="f" sourceRef="s" targetRef="e"/>\n'
            "</bpmn:process>\n</bpmn:definitions>\n").encode()


def start_form_warnings(files: dict[str, bytes]) -> list:
    return [p for p in lint_files(files) if p.rule == "no-start-form"]


@pytest.mark.parametrize(("start", "named"), [
    ('<bpmn:startEvent id="s" name="Referral in" camunda:formKey="embedded:app:start-form.html"/>',
     'camunda:formKey="embedded:app:start-form.html"'),
    ('<bpmn:startEvent id="s" name="Referral in" camunda:formRef="startForm"/>', 'camunda:formRef="startForm"'),
    ('<bpmn:startEvent id="s" name="Referral in"><bpmn:extensionElements>'
     '<zeebe:formDefinition formId="start-form"/></bpmn:extensionElements></bpmn:startEvent>',
     'zeebe:formDefinition formId="start-form"'),
])
def test_a_start_form_is_a_warning_naming_it_and_the_diagram_deploys(start: str, named: str) -> None:
    files = {"start.bpmn": diagram(start)}
    [warning] = start_form_warnings(files)
    assert (warning.file, warning.element_id, warning.line, warning.severity) == ("start.bpmn", "s", 4, "warning")
    assert warning.message == (
        f"start event s ('Referral in') names a start form ({named}), which carepath does not show: carepath has no "
        "start forms, the start's data comes from whoever starts the process (the API, `carepath start --data`, "
        "another process); remove it, or ask for the data in a user task after the start")
    parse_bundle(files)  # not a deploy problem (zeebe:formDefinition on a start event was one)


def test_a_start_event_without_a_form_and_a_user_task_form_are_not_warned_of() -> None:
    files = {"start.bpmn": diagram('<bpmn:startEvent id="s"/>')}
    assert start_form_warnings(files) == []
    assert start_form_warnings({LOAN.name: LOAN.read_bytes().replace(b'camunda:formKey="embedded:app:start-form.html"',
                                                                    b"")}) == []


def test_the_conformance_file_with_a_start_form_is_warned_of_and_still_deploys(tmp_path) -> None:
    [warning] = start_form_warnings({LOAN.name: LOAN.read_bytes()})
    assert (warning.element_id, warning.line) == ("StartEvent_1", 4)
    assert warning.message.startswith("start event StartEvent_1 ('Loan Request Received') names a start form "
                                      '(camunda:formKey="embedded:app:start-form.html")')
    # as the conformance suite's engine: no teams, no form library
    eng = Engine(f"sqlite:///{tmp_path / 'start.db'}", registry=HandlerRegistry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    with pytest.raises(DefinitionError) as caught:  # --strict refuses while the warning remains
        eng.deploy(files={LOAN.name: LOAN.read_bytes()}, strict=True)
    assert [p.rule for p in caught.value.problems] == ["no-start-form"], caught.value.problems
    [ref] = eng.deploy(files={LOAN.name: LOAN.read_bytes()})
    assert ref.process_id == "embeddedFormsQuickstart" and ref.created
    eng.db.dispose()


def test_carepath_deploy_prints_the_warning_with_file_element_and_line_and_deploys(tmp_path, capsys) -> None:
    path = tmp_path / "start.bpmn"
    path.write_bytes(diagram('<bpmn:startEvent id="s" name="In" camunda:formKey="start.form"/>'))
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert main(["init", "--db", url]) == 0
    capsys.readouterr()
    assert main(["deploy", str(path), "--db", url]) == 0
    out, err = capsys.readouterr()
    assert "p version 1" in out
    [warning] = [line for line in err.splitlines() if line.endswith("(warning: no-start-form)")]
    assert warning == ("warning: start.bpmn:4 [s]: start event s ('In') names a start form "
                       "(camunda:formKey=\"start.form\"), "
                   "which carepath does not show: carepath has no start forms, the start's data comes from whoever "
                   "starts the process (the API, `carepath start --data`, another process); remove it, or ask for the "
                   "data in a user task after the start (warning: no-start-form)")
