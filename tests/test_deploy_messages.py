"""Deploy messages say what is wrong: file, element id and line on every problem; the language of an expression
carepath does not evaluate named, with the Python to write; compensation and data stores refused as unsupported;
SpiffWorkflow's own problems in the same list as carepath's; every problem on one line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from lxml import etree
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from sqlalchemy import func, select

from engine.bpmn import parse_bundle
from engine.errors import DefinitionError, Problem
from engine.forms import FormLibrary
from engine.library_problems import index, library_problem
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import process_versions
from tests.conftest import START

FIXTURES = Path(__file__).parent / "fixtures" / "messages"
CONFORMANCE_FILES = Path(__file__).parent / "conformance" / "files"
CONFORMANCE = json.loads((Path(__file__).parent / "conformance" / "manifest.json").read_text(encoding="utf-8"))["files"]


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
    # before: "SpiffWorkflow: A loopMaximum or loopCondition must be specified for Loop Tasks"
    assert library.message.startswith("'Repeat' is a loop with neither a loopCondition nor a loopMaximum")
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



# --- every problem placed and in carepath's words, whatever the file ------------------------------------------

#: what the workflow library's own text looks like: its class names, its sentences, Python's reprs
LIBRARY_TEXT = re.compile(r"ValidationException|WorkflowException|SpiffWorkflow|Error parsing|has no implementation|"
                          r"identifier is missing|\w+(Error|Exception)\(|object at 0x|\{http://|'None'")


def _definitions(body: str, definitions: str = "", executable: str = "true") -> bytes:
    """A one-process file: line 1 the XML declaration, line 2 <definitions>, then `definitions` (one element a
    line), then the process (line 3), start event s (4), task t (5), end event e (6), flows f1 and f2 (7, 8), then
    `body` (one element a line, from line 9) — each a line further down for each line of `definitions`."""
    return ('<?xml version="1.0" encoding="UTF-8"?>\n'
            '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" id="defs">\n'
            f'{definitions}<bpmn:process id="p" isExecutable="{executable}">\n'
            '<bpmn:startEvent id="s"/>\n<bpmn:task id="t"/>\n<bpmn:endEvent id="e"/>\n'
            '<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t"/>\n'
            '<bpmn:sequenceFlow id="f2" sourceRef="t" targetRef="e"/>\n'
            f'{body}</bpmn:process>\n</bpmn:definitions>\n').encode()


STORE = '<bpmn:dataStore id="crm_store" name="Social care record"/>\n'  # line 3
STORE_REFERENCE = '<bpmn:dataStoreReference id="crm" name="Record" dataStoreRef="crm_store"/>\n'  # line 10 after STORE


def _with_task(task: str, definitions: str = "") -> bytes:
    """`task` (one line) in place of task t, on line 5 (plus the lines of `definitions`)."""
    return _definitions("", definitions).replace(b'<bpmn:task id="t"/>', task.encode())


def _deploy_problems(tmp_path: Path, files: dict[str, bytes]) -> list[Problem]:
    """Deploy through the engine, as `carepath deploy` does; the problems, and nothing stored."""
    eng = Engine(f"sqlite:///{tmp_path / 'deploy.db'}", registry=HandlerRegistry(), forms=FormLibrary())
    eng.init(simulated_start=START)
    try:
        with pytest.raises(DefinitionError) as caught:
            eng.deploy(files=files)
        with eng.db.engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(process_versions)).scalar_one() == 0
        return caught.value.problems
    finally:
        eng.db.dispose()


def _assert_placed_and_plain(problems: list[Problem]) -> None:
    for p in problems:
        assert p.element_id and isinstance(p.line, int), f"not placed: {p}"
        assert not LIBRARY_TEXT.search(p.message), f"the library's text: {p}"
        assert "\n" not in str(p)


BROKEN = [
    # data stores: before, every one of these was "SpiffWorkflow: Data Store with name ... has no implementation"
    # with no element and no line
    ("data store used by an executable process", {"a.bpmn": _definitions(STORE_REFERENCE, STORE)},
     "crm_store", 3, "'Social care record' is a data store (dataStore): carepath does not support data stores"),
    ("data store in a non-executable process", {"a.bpmn": _definitions(STORE_REFERENCE, STORE, "false")},
     "crm_store", 3, "carepath does not support data stores"),
    ("data store declared, used by no process", {"a.bpmn": _definitions("", STORE)},
     "crm_store", 3, "is a data store (dataStore): carepath does not support data stores"),
    ("data store with no name", {"a.bpmn": _definitions("", '<bpmn:dataStore id="ds"/>\n')},
     "ds", 3, "'ds' is a data store (dataStore): carepath does not support data stores"),
    ("data store reference in an executable process", {"a.bpmn": _definitions(STORE_REFERENCE, STORE)},
     "crm", 10, "'Record' is a data store reference: carepath does not support data stores"),
    ("message with no id", {"a.bpmn": _definitions("", '<bpmn:message name="reply"/>\n')},
     "defs", 3, "message 'reply' has no id"),
    # SpiffWorkflow's own checks, in carepath's words
    ("loop with no condition", {"a.bpmn": _with_task(
        '<bpmn:task id="t" name="Chase"><bpmn:standardLoopCharacteristics/></bpmn:task>')},
     "t", 5, "'Chase' is a loop with neither a loopCondition nor a loopMaximum"),
    ("multi-instance with no cardinality", {"a.bpmn": _with_task(
        '<bpmn:task id="t" name="Visit"><bpmn:multiInstanceLoopCharacteristics/></bpmn:task>')},
     "t", 5, "'Visit' is a multi-instance activity that says neither how many (loopCardinality) nor over which "
             "collection (loopDataInputRef) to run"),
    ("conditional event with no condition", {"a.bpmn": _with_task(
        '<bpmn:intermediateCatchEvent id="t" name="Ready"><bpmn:conditionalEventDefinition/>'
        '</bpmn:intermediateCatchEvent>')},
     "t", 5, "'Ready' is a conditional event with no condition"),
    ("event subprocess with no start event", {"a.bpmn": _definitions(
        '<bpmn:subProcess id="esp" name="On hold" triggeredByEvent="true"></bpmn:subProcess>\n')},
     "esp", 9, "'On hold' must have exactly one start event; it has 0"),
    # what the library skips without a word
    ("unknown element", {"a.bpmn": _definitions('<bpmn:taks id="typo"/>\n')},
     "typo", 9, "<taks> is not a BPMN 2.0 element"),
    ("unknown element inside a task", {"a.bpmn": _with_task('<bpmn:task id="t"><bpmn:note>x</bpmn:note></bpmn:task>')},
     "t", 5, "<note> inside 't' is not a BPMN 2.0 element"),
    ("lane naming no element", {"a.bpmn": _definitions(
        '<bpmn:laneSet id="ls"><bpmn:lane id="l" name="Duty team"><bpmn:flowNodeRef>ghost</bpmn:flowNodeRef>'
        '</bpmn:lane></bpmn:laneSet>\n')},
     "l", 9, "'Duty team' lists flow element 'ghost' (flowNodeRef), which is not in this file"),
    ("data object reference naming nothing", {"a.bpmn": _definitions(
        '<bpmn:dataObjectReference id="dor" dataObjectRef="nothing"/>\n')},
     "dor", 9, "data object reference 'dor' names data object 'nothing' (dataObjectRef), which is not in this file"),
    ("participant naming no process", {"a.bpmn": _definitions(
        "", '<bpmn:collaboration id="c"><bpmn:participant id="pp" name="Council" processRef="ghost"/>'
            '</bpmn:collaboration>\n')},
     "pp", 3, "participant 'Council' names process 'ghost' (processRef), which is not in this file"),
    # broken in the ways a hand edit breaks a file
    ("sequence flow with no sourceRef", {"a.bpmn": _definitions("").replace(b'sourceRef="s" ', b"")},
     "f1", 7, "sequence flow 'f1' has no sourceRef"),
    ("id used twice", {"a.bpmn": _definitions('<bpmn:task id="t"/>\n')},
     "t", 9, "id 't' is used twice in this file (first on line 5)"),
    ("flow to an element that is not there", {"a.bpmn": _definitions("").replace(b'targetRef="e"', b'targetRef="x"')},
     "f2", 8, "sequence flow 'f2' targetRef 'x' names no element of this process or subprocess"),
    ("boundary event attached to nothing", {"a.bpmn": _definitions(
        '<bpmn:boundaryEvent id="b" name="Late"><bpmn:timerEventDefinition><bpmn:timeDuration>"PT1H"'
        '</bpmn:timeDuration></bpmn:timerEventDefinition></bpmn:boundaryEvent>\n')},
     "b", 9, "boundary event 'Late' is attached to nothing (it has no attachedToRef)"),
    ("a document that is not BPMN", {"a.bpmn": b'<?xml version="1.0"?>\n<html id="page"><body/></html>\n'},
     "page", 2, "not a BPMN or DMN document (its root element is html)"),
    ("a file with no process", {"a.bpmn": b'<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/'
                                          b'MODEL" id="defs"/>\n'},
     "defs", 1, "no process in this file"),
    ]


@pytest.mark.parametrize(("case", "files", "element", "line", "words"), BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_file_gets_placed_problems_in_carepaths_words(tmp_path, case, files, element, line, words) -> None:
    problems = _deploy_problems(tmp_path, files)
    matching = [p for p in problems if p.element_id == element and p.line == line and words in p.message]
    assert matching, f"{case}: no problem on {element} line {line} saying {words!r} in:\n" + "\n".join(
        map(str, problems))
    _assert_placed_and_plain(problems)


@pytest.mark.parametrize("entry", [e for e in CONFORMANCE if e["expect"] == "refused"], ids=lambda e: e["file"])
def test_every_refused_public_file_gets_placed_problems_in_carepaths_words(tmp_path, entry) -> None:
    # before: modeler-complex.bpmn, miwg-C.1.1.bpmn and spiff-data_store.bpmn had a problem with no element and no
    # line ("SpiffWorkflow: Data Store with name HR-Tool has no implementation")
    files = {name: (CONFORMANCE_FILES / name).read_bytes() for name in [entry["file"], *entry.get("with", [])]}
    _assert_placed_and_plain(_deploy_problems(tmp_path, files))


def test_a_data_store_in_a_file_with_nothing_executable_is_named_with_the_files_other_problem(tmp_path) -> None:
    problems = _deploy_problems(tmp_path, {"a.bpmn": _definitions(STORE_REFERENCE, STORE, "false")})
    assert [(p.element_id, p.line) for p in problems] == [("crm_store", 3), ("p", 4)]
    assert "no executable process in this file" in problems[1].message


@pytest.mark.parametrize(("text", "shown"), [
    ("KeyError('form')", "it looked for 'form' and found nothing of that name"),
    ('AttributeError("\'NoneType\' object has no attribute \'get\'")', "'NoneType' object has no attribute 'get'"),
    ("A sentence carepath does not know", "A sentence carepath does not know"),
])
def test_a_library_failure_carepath_has_no_words_for_is_shown_without_pythons_dress(text, shown) -> None:
    tree = etree.ElementTree(etree.fromstring(_with_task('<bpmn:task id="t" name="Visit"/>')))
    node = tree.getroot().find(".//{http://www.omg.org/spec/BPMN/20100524/MODEL}task")
    problem = library_problem(ValidationException(text, node=node, file_name="a.bpmn"), "a.bpmn",
                              index({"a.bpmn": tree}))
    assert (problem.file, problem.element_id, problem.line) == ("a.bpmn", "t", 5)
    assert problem.message == f"the workflow library refused 'Visit': {shown}"


def test_a_library_problem_naming_no_element_is_placed_on_the_files_definitions() -> None:
    tree = etree.ElementTree(etree.fromstring(_definitions("")))
    problem = library_problem(ValidationException("Correlation is missing correlation property retrieval "
                                                  "expressions: c1"), "a.bpmn", index({"a.bpmn": tree}))
    assert (problem.element_id, problem.line) == ("defs", 2)
    assert problem.message == ("the workflow library refused this file: Correlation is missing correlation property "
                               "retrieval expressions: c1")


def test_a_task_reading_a_process_data_input_is_told_so_by_id_not_with_a_library_object(tmp_path: Path) -> None:
    """MIWG C.6.0 (findings 13, item 4): the sourceRef is a dataInput of the process's ioSpecification; the problem
    showed an lxml repr ('<Element {…}sourceRef at 0x7f…>') and said it was no data input."""
    io = ('<bpmn:ioSpecification id="io"><bpmn:dataInput id="request" name="Request"/>'
          '<bpmn:inputSet id="ins"><bpmn:dataInputRefs>request</bpmn:dataInputRefs></bpmn:inputSet>'
          '<bpmn:outputSet id="outs"/></bpmn:ioSpecification>\n')
    task = ('<bpmn:task id="t" name="Make offer"><bpmn:ioSpecification id="tio"><bpmn:dataInput id="t_in"/>'
            '<bpmn:inputSet id="tins"><bpmn:dataInputRefs>t_in</bpmn:dataInputRefs></bpmn:inputSet>'
            '<bpmn:outputSet id="touts"/></bpmn:ioSpecification><bpmn:dataInputAssociation id="a">'
            '<bpmn:sourceRef>request</bpmn:sourceRef><bpmn:targetRef>t_in</bpmn:targetRef>'
            '</bpmn:dataInputAssociation></bpmn:task>')
    body = _definitions("").replace(b'<bpmn:startEvent id="s"/>', (io + '<bpmn:startEvent id="s"/>').encode())
    problems = _deploy_problems(tmp_path, {"offer.bpmn": body.replace(b'<bpmn:task id="t"/>', task.encode())})
    [p] = [p for p in problems if p.element_id == "t"]
    assert "dataInputAssociation sourceRef 'request' is a data input of the process" in p.message, p
    assert "Element" not in str(p) and "0x" not in str(p)


def test_camunda_expression_on_a_message_event_definition_is_refused_naming_it(tmp_path: Path) -> None:
    """SpiffWorkflow's camunda/MessageBoundary.bpmn (findings 13, item 6): the payload expression was dropped."""
    messages = '<bpmn:message id="m" name="stop"/>\n'
    task = ('<bpmn:intermediateThrowEvent id="t" name="Send stop">'
            '<bpmn:messageEventDefinition id="d" messageRef="m" camunda:expression="&#34;Interrupt!&#34;"/>'
            '</bpmn:intermediateThrowEvent>')
    body = _with_task(task, messages).replace(b'xmlns:bpmn=', b'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" '
                                              b'xmlns:bpmn=')
    [p] = _deploy_problems(tmp_path, {"stop.bpmn": body})
    assert (p.element_id, p.line) == ("t", 6), p
    assert "camunda:expression on the messageEventDefinition of 'Send stop'" in p.message
    assert "spiffworkflow:messagePayload" in p.message
