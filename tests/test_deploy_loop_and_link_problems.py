"""Deploy problems for constructs written another engine's way: a multi-instance collection written the Camunda 7
way (`camunda:collection`/`camunda:elementVariable`) or the Zeebe way (`zeebe:loopCharacteristics`) is named, with
the BPMN to write instead, on every element, nested ones included; link events are refused one problem per event,
saying which sequence flow to draw, without the misleading graph problems they would cause (docs/diagram-attributes.md,
"Multi-instance" and "Not supported")."""

from __future__ import annotations

import pytest

from engine.bpmn import parse_bundle
from engine.errors import DefinitionError, Problem

OPEN = ('<?xml version="1.0" encoding="UTF-8"?>\n'
        '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:camunda="http://camunda.org/schema/1.0/bpmn" xmlns:zeebe="http://camunda.org/schema/zeebe/1.0" '
        'id="defs">\n<bpmn:process id="p" isExecutable="true">\n')
CLOSE = "</bpmn:process>\n</bpmn:definitions>\n"


def problems_of(body: str) -> list[Problem]:
    with pytest.raises(DefinitionError) as caught:
        parse_bundle({"loops.bpmn": (OPEN + body + CLOSE).encode()})
    return caught.value.problems


def line_of(body: str, text: str) -> int:
    return next(i for i, line in enumerate((OPEN + body).splitlines(), 1) if text in line)


def nested(loop_outer: str, loop_inner: str) -> str:
    """start -> outer subprocess (start -> inner subprocess (start -> end) -> end) -> end."""
    return f"""<bpmn:startEvent id="s"/>
<bpmn:subProcess id="outer" name="Outer Loop">
{loop_outer}
<bpmn:startEvent id="os"/>
<bpmn:subProcess id="inner" name="Inner Loop">
{loop_inner}
<bpmn:startEvent id="is"/>
<bpmn:endEvent id="ie"/>
<bpmn:sequenceFlow id="if1" sourceRef="is" targetRef="ie"/>
</bpmn:subProcess>
<bpmn:endEvent id="oe"/>
<bpmn:sequenceFlow id="of1" sourceRef="os" targetRef="inner"/>
<bpmn:sequenceFlow id="of2" sourceRef="inner" targetRef="oe"/>
</bpmn:subProcess>
<bpmn:endEvent id="e"/>
<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="outer"/>
<bpmn:sequenceFlow id="f2" sourceRef="outer" targetRef="e"/>
"""


def zeebe_loop(collection: str, element: str) -> str:
    return (f'<bpmn:multiInstanceLoopCharacteristics><bpmn:extensionElements><zeebe:loopCharacteristics '
            f'inputCollection="{collection}" inputElement="{element}"/></bpmn:extensionElements>'
            "</bpmn:multiInstanceLoopCharacteristics>")


def test_camunda_collection_and_element_variable_are_named_with_the_bpmn_to_write() -> None:
    # before: "'Rate each' is a multi-instance activity that says neither how many (loopCardinality) nor over which
    # collection (loopDataInputRef) to run", naming neither attribute
    body = """<bpmn:startEvent id="s"/>
<bpmn:scriptTask id="x" name="Rate each">
<bpmn:multiInstanceLoopCharacteristics isSequential="true" camunda:collection="stuff" camunda:elementVariable="item" />
<bpmn:script>rating = 1</bpmn:script>
</bpmn:scriptTask>
<bpmn:endEvent id="e"/>
<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="x"/>
<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e"/>
"""
    problems = problems_of(body)
    line = line_of(body, "camunda:collection")
    assert [(p.element_id, p.line) for p in problems] == [("x", line), ("x", line)], problems
    collection, element = sorted(problems, key=lambda p: p.message)
    assert collection.message.startswith("camunda:collection on 'Rate each' (its multiInstanceLoopCharacteristics) "
                                         "is not supported: write <bpmn:loopDataInputRef>stuff</bpmn:loopDataInputRef>"
                                         ' and <bpmn:inputDataItem id="item" name="item"/>')
    assert "with <bpmn:loopDataOutputRef> and <bpmn:outputDataItem> for what each instance gives" in collection.message
    assert element.message.startswith("camunda:elementVariable on 'Rate each'")
    assert 'docs/diagram-attributes.md, "Multi-instance"' in collection.message
    assert not any("says neither how many" in p.message for p in problems)


def test_a_camunda_collection_written_in_juel_is_named_as_an_expression_to_compute_first() -> None:
    body = nested('<bpmn:multiInstanceLoopCharacteristics camunda:collection="${a.b}" camunda:elementVariable="x"/>',
                  '<bpmn:multiInstanceLoopCharacteristics camunda:collection="${things}"/>')
    messages = {p.element_id: p.message for p in problems_of(body) if "camunda:collection" in p.message}
    assert "'${a.b}' is an expression: compute it in a script task" in messages["outer"]
    assert "<bpmn:loopDataInputRef>things</bpmn:loopDataInputRef>" in messages["inner"]


def test_zeebe_loop_characteristics_are_named_on_every_nested_subprocess() -> None:
    # before: only the outer subprocess was reported, as saying "neither how many nor over which collection"
    body = nested(zeebe_loop("=outerItems", "outerItem"), zeebe_loop("=innerItems", "innerItem"))
    problems = problems_of(body)
    assert [(p.element_id, p.line) for p in problems] == [
        ("outer", line_of(body, "outerItems")), ("inner", line_of(body, "innerItems"))], problems
    outer, inner = problems
    assert outer.message == (
        "zeebe:loopCharacteristics on 'Outer Loop' (its multiInstanceLoopCharacteristics) is not supported: write "
        '<bpmn:loopDataInputRef>outerItems</bpmn:loopDataInputRef> and <bpmn:inputDataItem id="outerItem" '
        'name="outerItem"/>, with <bpmn:loopDataOutputRef> and <bpmn:outputDataItem> for what each instance gives '
        'in its multiInstanceLoopCharacteristics (see docs/diagram-attributes.md, '
        '"Multi-instance")')
    assert "<bpmn:loopDataInputRef>innerItems</bpmn:loopDataInputRef>" in inner.message


def test_a_multi_instance_with_neither_cardinality_nor_collection_is_reported_on_every_nested_element() -> None:
    # before: the library stopped at the outer one; the inner one came only once the outer was fixed
    body = nested("<bpmn:multiInstanceLoopCharacteristics/>", "<bpmn:multiInstanceLoopCharacteristics/>")
    problems = problems_of(body)
    assert [p.element_id for p in problems] == ["outer", "inner"], problems
    assert all("says neither how many (loopCardinality) nor over which collection (loopDataInputRef)" in p.message
               for p in problems)


def test_the_bpmn_the_problem_suggests_runs_over_the_collection(make_engine) -> None:
    body = """<bpmn:startEvent id="s"/>
<bpmn:scriptTask id="setup" name="Setup"><bpmn:script>stuff = [3, 4, 5]</bpmn:script></bpmn:scriptTask>
<bpmn:scriptTask id="x" name="Rate each">
<bpmn:multiInstanceLoopCharacteristics isSequential="true">
<bpmn:loopDataInputRef>stuff</bpmn:loopDataInputRef>
<bpmn:loopDataOutputRef>rated</bpmn:loopDataOutputRef>
<bpmn:inputDataItem id="item" name="item"/>
<bpmn:outputDataItem id="rating" name="rating"/>
</bpmn:multiInstanceLoopCharacteristics>
<bpmn:script>rating = item * 2</bpmn:script>
</bpmn:scriptTask>
<bpmn:endEvent id="e"/>
<bpmn:sequenceFlow id="f0" sourceRef="s" targetRef="setup"/>
<bpmn:sequenceFlow id="f1" sourceRef="setup" targetRef="x"/>
<bpmn:sequenceFlow id="f2" sourceRef="x" targetRef="e"/>
"""
    eng = make_engine()
    eng.deploy(files={"loops.bpmn": (OPEN + body + CLOSE).encode()})
    result = eng.start("p")
    [instance] = eng.get_case(result.case_id)["instances"]
    assert instance["status"] == "completed", [i["message"] for i in eng.incidents()]
    assert eng.instance_snapshot(instance["id"])["data"]["rated"] == [6, 8, 10]


LINKED = """<bpmn:startEvent id="s"/>
<bpmn:manualTask id="m1" name="M1"/>
<bpmn:intermediateThrowEvent id="throw" name="To B">
<bpmn:linkEventDefinition id="ld1" name="B"/></bpmn:intermediateThrowEvent>
<bpmn:intermediateCatchEvent id="catch" name="From A">
<bpmn:linkEventDefinition id="ld2" name="B"/></bpmn:intermediateCatchEvent>
<bpmn:manualTask id="m2" name="M2"/>
<bpmn:endEvent id="e"/>
<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="m1"/>
<bpmn:sequenceFlow id="f2" sourceRef="m1" targetRef="throw"/>
<bpmn:sequenceFlow id="f3" sourceRef="catch" targetRef="m2"/>
<bpmn:sequenceFlow id="f4" sourceRef="m2" targetRef="e"/>
"""


def test_a_link_event_pair_is_one_problem_per_event_naming_the_flow_to_draw_and_nothing_else() -> None:
    # before: four graph problems ("'LinkA' has no outgoing sequence flow: end each path with an end event",
    # "'M2' cannot be reached from a start event", ...) whose advice would break the diagram
    problems = problems_of(LINKED)
    assert [(p.element_id, p.line) for p in problems] == [("throw", line_of(LINKED, 'id="throw"')),
                                                          ("catch", line_of(LINKED, 'id="catch"'))], problems
    advice = "link events are not supported: draw the sequence flow from 'M1' to 'M2' directly"
    assert problems[0].message == f"'To B' is a link throw event: {advice}"
    assert problems[1].message == f"'From A' is a link catch event: {advice}"


def test_a_link_in_a_subprocess_with_no_catch_says_what_to_draw_and_real_graph_problems_stay() -> None:
    body = """<bpmn:startEvent id="s"/>
<bpmn:subProcess id="sub" name="Sub">
<bpmn:startEvent id="ss"/>
<bpmn:manualTask id="a" name="A"/>
<bpmn:intermediateThrowEvent id="throw" name="Go">
<bpmn:linkEventDefinition id="ld" name="Nowhere"/></bpmn:intermediateThrowEvent>
<bpmn:manualTask id="lost" name="Lost"/>
<bpmn:endEvent id="se"/>
<bpmn:sequenceFlow id="sf1" sourceRef="ss" targetRef="a"/>
<bpmn:sequenceFlow id="sf2" sourceRef="a" targetRef="throw"/>
<bpmn:sequenceFlow id="sf3" sourceRef="lost" targetRef="se"/>
</bpmn:subProcess>
<bpmn:endEvent id="e"/>
<bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="sub"/>
<bpmn:sequenceFlow id="f2" sourceRef="sub" targetRef="e"/>
"""
    messages = {p.element_id: p.message for p in problems_of(body)}
    assert messages["throw"] == ("'Go' is a link throw event: link events are not supported: draw a sequence flow "
                                 "from 'A' directly to the element after the link")
    assert messages["lost"] == "'Lost' has no incoming sequence flow, so it can never run"
    assert messages["se"] == "'se' cannot be reached from a start event"
    assert set(messages) == {"throw", "lost", "se"}  # nothing about the throw event's missing outgoing flow
