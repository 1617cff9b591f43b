"""Deploy messages say what is wrong: file, element id and line on every problem; the language of an expression
carepath does not evaluate named, with the Python to write; compensation and data stores refused as unsupported;
SpiffWorkflow's own problems in the same list as carepath's; every problem on one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.bpmn import parse_bundle
from engine.errors import DefinitionError, Problem

FIXTURES = Path(__file__).parent / "fixtures" / "messages"


def problems_of(*names: str, **kwargs) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse_bundle({name: (FIXTURES / name).read_bytes() for name in names}, **kwargs)
    return caught.value.problems


def by_element(problems: list[Problem]) -> dict[str, list[Problem]]:
    found: dict[str, list[Problem]] = {}
    for p in problems:
        found.setdefault(p.element_id, []).append(p)
    return found


def test_compensation_is_refused_as_unsupported_not_as_missing_flows() -> None:
    problems = problems_of("compensation.bpmn")
    found = by_element(problems)
    assert set(found) == {"undo_booking", "cancel_room", "compensate"}
    for p in problems:
        assert "carepath does not support compensation" in p.message
        assert "sequence flow" not in p.message  # before: "'cancel_room' has no incoming sequence flow"
    assert [p.line for p in found["undo_booking"]] == [6]
    assert "'Cancel the room' is a compensation handler (isForCompensation)" in found["cancel_room"][0].message
    assert "'Compensate' is a compensation throw event" in found["compensate"][0].message


def test_a_data_store_is_refused_naming_the_store_and_the_task_using_it() -> None:
    problems = problems_of("data_store.bpmn")
    found = by_element(problems)
    assert set(found) == {"read_record", "crm"}
    assert not any("SpiffWorkflow" in p.message or "Element {" in p.message for p in problems)  # the library's text
    [task] = found["read_record"]
    assert (task.file, task.line) == ("data_store.bpmn", 5)
    assert task.message.startswith("'Read the record' reads from data store 'Social care record'")
    assert "carepath does not support data stores" in task.message
    [store] = found["crm"]
    assert store.line == 10 and "is a data store reference" in store.message


@pytest.mark.parametrize(("element", "line", "words"), [
    ("f_juel", 17, "this is a JUEL expression; carepath evaluates Python expressions: write `amount > 5 and not "
                   "urgent`"),
    ("f_feel", 20, "this is a FEEL expression; carepath evaluates Python expressions: write `amount > 5`"),
    ("f_xpath", 23, "this is an XPath expression; carepath evaluates Python expressions"),
    ("every_morning", 10, "this is a cron timer expression; carepath evaluates Python expressions: write an ISO "
                          "8601 repeating interval such as `R/P1D`"),
])
def test_an_expression_in_another_language_is_named_with_the_python_to_write(element, line, words) -> None:
    found = by_element(problems_of("foreign_expressions.bpmn"))
    # every_morning is also a timeCycle on an intermediate catch event: that is a second problem of its own
    [problem] = [p for p in found[element] if "a timeCycle (a repeating timer) is refused here" not in p.message]
    assert problem.line == line and problem.file == "foreign_expressions.bpmn"
    assert words in problem.message
    assert "syntax error" not in problem.message  # before: every one came back as a Python syntax error


def test_names_drawn_on_two_lines_are_shown_on_one() -> None:
    problems = problems_of("foreign_expressions.bpmn") + problems_of("compensation.bpmn")
    assert "'Every morning'" in by_element(problems)["every_morning"][0].message
    for p in problems:
        assert "\n" not in str(p), str(p)


def test_a_multi_line_script_in_a_message_is_printed_on_one_line() -> None:
    problem = Problem("a.bpmn", "the script 'x = 1\ny = (' is refused", "s", 3)
    assert str(problem) == "a.bpmn:3 [s]: the script 'x = 1\\ny = (' is refused"
    error = DefinitionError([problem, Problem("a.bpmn", "name 'A\r\nB'", "t", 4)])
    assert len(error.message.splitlines()) == 3  # the count, then one line a problem


def test_the_libraries_problems_come_in_the_same_list_as_carepaths() -> None:
    # before: SpiffWorkflow's problem (a loop with no condition) was reported only once the form was fixed
    found = by_element(problems_of("library_and_ours.bpmn"))
    assert found["no_form"][0].message == "user task 'A task with no form' names no form"
    [library] = found["repeat"]
    assert library.message.startswith("SpiffWorkflow: A loopMaximum or loopCondition must be specified")
    assert (library.file, library.line) == ("library_and_ours.bpmn", 6)


def test_a_decision_entry_is_shown_as_written_without_the_engines_internal_name() -> None:
    [problem] = problems_of("bad_entry.dmn")
    assert (problem.file, problem.element_id, problem.line) == ("bad_entry.dmn", "UnaryTests_1", 10)
    assert "`>> 5 (` is refused" in problem.message and "rule 1" in problem.message
    assert "dmninput" not in problem.message


BPMN = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="defs">\n{messages}'
        '<bpmn:process id="p" isExecutable="true">\n<bpmn:startEvent id="s"/>\n{element}\n<bpmn:endEvent id="e"/>\n'
        '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x"/>\n'
        '<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e"/>\n</bpmn:process>\n</bpmn:definitions>\n')


@pytest.mark.parametrize(("element", "words"), [
    ('<bpmn:intermediateCatchEvent id="x"><bpmn:messageEventDefinition messageRef="reply"/>'
     '</bpmn:intermediateCatchEvent>',
     "'x' names message 'reply' (messageRef), which is not defined in this file"),
    ('<bpmn:receiveTask id="x" messageRef="reply"/>', "'x' names message 'reply' (messageRef)"),
    ('<bpmn:intermediateThrowEvent id="x"><bpmn:signalEventDefinition signalRef="go"/></bpmn:intermediateThrowEvent>',
     "'x' names signal 'go' (signalRef), which is not defined in this file"),
    ('<bpmn:task id="x"><bpmn:dataOutputAssociation id="o"><bpmn:targetRef>nowhere</bpmn:targetRef>'
     '</bpmn:dataOutputAssociation></bpmn:task>',
     "its dataOutputAssociation targetRef 'nowhere' names nothing in this file"),
])
def test_a_reference_to_nothing_is_named_not_a_library_internal_error(element, words) -> None:
    # before: "SpiffWorkflow: TypeError(...raise_validation_exception() got an unexpected keyword argument...)"
    with pytest.raises(DefinitionError) as caught:
        parse_bundle({"refs.bpmn": BPMN.format(messages="", element=element).encode()})
    [problem] = caught.value.problems
    assert (problem.element_id, problem.line) == ("x", 5)
    assert words in problem.message and "TypeError" not in problem.message


def test_a_defined_message_is_no_problem() -> None:
    element = ('<bpmn:intermediateCatchEvent id="x"><bpmn:messageEventDefinition messageRef="reply"/>'
               '</bpmn:intermediateCatchEvent>')
    parse_bundle({"refs.bpmn": BPMN.format(messages='<bpmn:message id="reply" name="reply"/>\n',
                                           element=element).encode()})


@pytest.mark.parametrize(("prop", "on", "words"), [
    ('<camunda:property name="load:limits" value="limits"/>', "x",
     "start input 'load:limits' is on 'x': a start input is given when the process starts; put it on the process"),
    ('<camunda:property name="default:amount" value="0"/>', "x", "start input 'default:amount' is on 'x'"),
])
def test_a_property_in_the_wrong_place_is_named_not_ignored(prop, on, words) -> None:
    element = f'<bpmn:task id="x"><bpmn:extensionElements><camunda:properties>{prop}</camunda:properties>' \
              '</bpmn:extensionElements></bpmn:task>'
    with pytest.raises(DefinitionError) as caught:
        parse_bundle({"props.bpmn": BPMN.format(messages="", element=element).encode()})
    [problem] = caught.value.problems
    assert problem.element_id == on and words in problem.message


def test_every_problem_names_its_file_element_and_line() -> None:
    names = [p.name for p in sorted(FIXTURES.iterdir())]
    problems = problems_of(*names)
    assert len(problems) >= 12
    for p in problems:
        assert p.file in names and p.element_id and isinstance(p.line, int), str(p)
