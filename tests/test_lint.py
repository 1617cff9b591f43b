"""engine.lint: the layout rules read any diagram's drawing, flag what makes it hard to read, and
never fail on odd input. Each rule has a good and a bad fixture in tests/fixtures/lint/<rule>/."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import Problem
from engine.lint import RULES, lint_files

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "lint"
PROCESSES = sorted((ROOT / "processes").glob("*.bpmn"))

# what each bad fixture must be flagged for (element ids), by its own rule
EXPECTED = {
    "missing-di": {"undrawn", "f_undrawn"},
    "no-flow-through-shape": {"f_skip"},
    "no-label-overlap": {"start", "wait"},
    "name-fits-box": {"check", "tall"},
    "element-in-lane": {"approve", "stray", "edge"},
    "flow-overlap": {"f_a"},
    "no-diagonal-flow": {"f2"},
    "no-start-form": {"start"},
    "unbounded-cycle": {"chase"},
}


def lint_one(name: str, data: bytes) -> list[Problem]:
    return lint_files({name: data})


def test_every_rule_is_named_described_and_has_good_and_bad_fixtures():
    assert set(RULES) == set(EXPECTED) == {p.name for p in FIXTURES.iterdir() if p.is_dir()}
    for name, rule in RULES.items():
        assert rule.name == name
        assert rule.severity in ("error", "warning")
        assert rule.description.endswith(".") and "\n" not in rule.description
        assert (FIXTURES / name / "good.bpmn").is_file() and (FIXTURES / name / "bad.bpmn").is_file()


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_the_rule_flags_its_bad_fixture_at_the_expected_elements(rule):
    path = FIXTURES / rule / "bad.bpmn"
    found = [p for p in lint_one(path.name, path.read_bytes()) if p.rule == rule]
    assert {p.element_id for p in found} == EXPECTED[rule]
    for p in found:
        assert p.file == "bad.bpmn" and p.severity == RULES[rule].severity == "warning"
        assert p.line is not None and f'id="{p.element_id}"' in path.read_text().splitlines()[p.line - 1]
        assert p.element_id in p.message


@pytest.mark.parametrize("rule", sorted(EXPECTED))
def test_the_good_fixture_passes_every_rule(rule):
    path = FIXTURES / rule / "good.bpmn"
    assert lint_one(path.name, path.read_bytes()) == []


@pytest.mark.parametrize("path", PROCESSES, ids=[p.name for p in PROCESSES])
def test_every_process_diagram_lints_clean_warnings_included(path):
    assert [str(p) for p in lint_one(path.name, path.read_bytes())] == []


def test_lint_files_lints_a_whole_bundle_and_skips_decision_tables():
    files = {p.name: p.read_bytes() for p in (ROOT / "processes").iterdir() if p.is_file()}
    assert any(name.endswith(".dmn") for name in files)
    assert lint_files(files) == []
    bad = (FIXTURES / "no-diagonal-flow" / "bad.bpmn").read_bytes()
    assert [(p.file, p.rule) for p in lint_files({**files, "x/bad.bpmn": bad})] == [("x/bad.bpmn", "no-diagonal-flow")]


# ---------------------------------------------------------------- a real diagram, edited


def _review() -> str:
    return (ROOT / "processes" / "review.bpmn").read_text(encoding="utf-8")


def _bounds(text: str, element: str) -> tuple[float, float, float, float]:
    m = re.search(rf'bpmnElement="{element}"[^>]*><dc:Bounds x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" '
                  rf'height="([\d.]+)"', text)
    assert m, element
    return tuple(float(v) for v in m.groups())  # type: ignore[return-value]


def _move(text: str, element: str, x: float, y: float) -> str:
    return re.sub(rf'(bpmnElement="{element}"[^>]*><dc:Bounds) x="[\d.]+" y="[\d.]+"', rf'\1 x="{x:g}" y="{y:g}"',
                  text, count=1)


def _waypoints(text: str, flow: str) -> list[tuple[float, float]]:
    m = re.search(rf'<bpmndi:BPMNEdge [^>]*bpmnElement="{flow}">(.*?)</bpmndi:BPMNEdge>', text)
    assert m, flow
    return [(float(x), float(y)) for x, y in re.findall(r'<di:waypoint x="([\d.]+)" y="([\d.]+)"', m.group(1))]


def test_a_shape_moved_onto_a_flow_of_a_real_diagram_is_flagged():
    text = _review()
    (ax, ay), (bx, by) = _waypoints(text, "f_r9")[:2]  # reduction_refused -> refused_choice_gw, horizontal
    assert ay == by and bx - ax > 60
    # drop the "Start next review" task on the middle of that flow
    _, _, w, h = _bounds(text, "start_next_review")
    moved = _move(text, "start_next_review", (ax + bx) / 2 - w / 2, ay - h / 2)
    found = lint_one("review.bpmn", moved.encode())
    crossing = [p for p in found if p.rule == "no-flow-through-shape"]
    assert any(p.element_id == "f_r9" and "start_next_review" in p.message for p in crossing), found
    assert all(p.severity == "warning" for p in found)
    assert lint_one("review.bpmn", text.encode()) == []


def test_a_label_dragged_onto_a_shape_and_a_task_dragged_out_of_its_lane_are_flagged():
    text = _review()
    x, y, _, _ = _bounds(text, "start_next_review")
    label = re.search(r'(bpmnElement="refused_choice_gw"[^>]*>.*?<bpmndi:BPMNLabel><dc:Bounds) x="[\d.]+" y="[\d.]+"',
                      text)
    assert label
    edited = text[:label.start()] + label.group(1) + f' x="{x + 5:g}" y="{y + 5:g}"' + text[label.end():]
    edited = _move(edited, "reduction_refused", _bounds(text, "reduction_refused")[0], 2000)
    found = {(p.rule, p.element_id) for p in lint_one("review.bpmn", edited.encode())}
    assert ("no-label-overlap", "refused_choice_gw") in found
    assert ("element-in-lane", "reduction_refused") in found


# ---------------------------------------------------------------- odd input never crashes


DEFS = ('<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
        'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
        'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" id="d" targetNamespace="t">')


def test_a_file_without_any_drawing_gets_one_finding_per_process():
    xml = (DEFS + '<bpmn:process id="p1" isExecutable="true"><bpmn:startEvent id="s" /></bpmn:process>'
           '<bpmn:process id="p2"><bpmn:task id="t" /></bpmn:process><bpmn:process id="empty" />'
           "</bpmn:definitions>")
    found = lint_one("bare.bpmn", xml.encode())
    assert [(p.rule, p.element_id, p.line) for p in found] == [("missing-di", "p1", 1), ("missing-di", "p2", 1)]
    assert "no drawing" in found[0].message


def test_decision_tables_and_other_xml_have_nothing_to_lint():
    dmn = (ROOT / "processes" / "screening.dmn").read_bytes()
    assert lint_one("screening.dmn", dmn) == []
    assert lint_one("other.bpmn", b"<root><child/></root>") == []


def test_a_file_the_intake_refuses_is_one_problem_with_no_rule():
    [malformed] = lint_one("broken.bpmn", b"<bpmn:definitions><oops></bpmn:definitions>")
    assert (malformed.file, malformed.rule, malformed.severity) == ("broken.bpmn", None, "error")
    assert "not well-formed" in malformed.message and malformed.line == 1
    hostile = b'<?xml version="1.0"?>\n<!DOCTYPE x [<!ENTITY a "aaaa">]>\n<x>&a;</x>'
    [refused] = lint_one("hostile.bpmn", hostile)
    assert refused.rule is None and "refused" in refused.message and refused.line == 2


def test_odd_drawings_are_read_without_failing():
    xml = (DEFS +
           '<bpmn:collaboration id="c"><bpmn:participant id="pa" processRef="pa_p" />'
           '<bpmn:participant id="pb" processRef="pb_p" /></bpmn:collaboration>'
           # pool A: an expanded subprocess whose inner flow must not count as crossing it, then a task
           '<bpmn:process id="pa_p"><bpmn:subProcess id="sub"><bpmn:startEvent id="in_s" />'
           '<bpmn:endEvent id="in_e" /><bpmn:sequenceFlow id="in_f" sourceRef="in_s" targetRef="in_e" />'
           '</bpmn:subProcess><bpmn:callActivity id="collapsed" name="Collapsed">'
           '</bpmn:callActivity><bpmn:sequenceFlow id="a_f" sourceRef="sub" targetRef="collapsed" /></bpmn:process>'
           # pool B: a collapsed subprocess drawn on its own plane, a shape with junk bounds, a one-point edge
           '<bpmn:process id="pb_p"><bpmn:subProcess id="inner"><bpmn:task id="deep" name="Deep" /></bpmn:subProcess>'
           '<bpmn:task id="junk" /><bpmn:sequenceFlow id="b_f" sourceRef="inner" targetRef="junk" /></bpmn:process>'
           '<bpmndi:BPMNDiagram id="dg"><bpmndi:BPMNPlane id="pl" bpmnElement="c">'
           '<bpmndi:BPMNShape id="pa_di" bpmnElement="pa" isHorizontal="true"><dc:Bounds x="0" y="0" width="800" '
           'height="300" /></bpmndi:BPMNShape>'
           '<bpmndi:BPMNShape id="sub_di" bpmnElement="sub" isExpanded="true"><dc:Bounds x="50" y="20" width="300" '
           'height="200" /></bpmndi:BPMNShape>'
           '<bpmndi:BPMNShape id="in_s_di" bpmnElement="in_s"><dc:Bounds x="80" y="100" width="36" height="36" />'
           '</bpmndi:BPMNShape><bpmndi:BPMNShape id="in_e_di" bpmnElement="in_e"><dc:Bounds x="280" y="100" '
           'width="36" height="36" /></bpmndi:BPMNShape>'
           '<bpmndi:BPMNEdge id="in_f_di" bpmnElement="in_f"><di:waypoint x="116" y="118" /><di:waypoint x="280" '
           'y="118" /></bpmndi:BPMNEdge>'
           '<bpmndi:BPMNShape id="collapsed_di" bpmnElement="collapsed"><dc:Bounds x="420" y="80" width="100" '
           'height="80" /></bpmndi:BPMNShape>'
           '<bpmndi:BPMNEdge id="a_f_di" bpmnElement="a_f"><di:waypoint x="350" y="120" /><di:waypoint x="420" '
           'y="120" /></bpmndi:BPMNEdge>'
           '<bpmndi:BPMNShape id="inner_di" bpmnElement="inner"><dc:Bounds x="50" y="400" width="100" height="80" />'
           '</bpmndi:BPMNShape>'
           '<bpmndi:BPMNShape id="junk_di" bpmnElement="junk"><dc:Bounds x="wide" y="NaN" width="-1" height="80" />'
           '</bpmndi:BPMNShape>'
           '<bpmndi:BPMNEdge id="b_f_di" bpmnElement="b_f"><di:waypoint x="150" y="440" /></bpmndi:BPMNEdge>'
           '<bpmndi:BPMNEdge id="stray_di" bpmnElement="nothing_here"><di:waypoint x="1" y="1" /></bpmndi:BPMNEdge>'
           '</bpmndi:BPMNPlane></bpmndi:BPMNDiagram>'
           '<bpmndi:BPMNDiagram id="dg2"><bpmndi:BPMNPlane id="pl2" bpmnElement="inner">'
           '<bpmndi:BPMNShape id="deep_di" bpmnElement="deep"><dc:Bounds x="100" y="100" width="100" height="80" />'
           '</bpmndi:BPMNShape></bpmndi:BPMNPlane></bpmndi:BPMNDiagram>'
           "</bpmn:definitions>")
    found = {(p.rule, p.element_id) for p in lint_one("odd.bpmn", xml.encode())}
    # the shape with junk bounds counts as not drawn; the one-point edge is reported; nothing else
    assert found == {("missing-di", "junk"), ("missing-di", "b_f")}


def test_a_problem_names_its_rule_and_severity_in_its_dict():
    path = FIXTURES / "no-diagonal-flow" / "bad.bpmn"
    [p] = lint_one(path.name, path.read_bytes())
    assert p.to_dict() == {"file": "bad.bpmn", "element_id": "f2", "line": p.line, "message": p.message,
                           "rule": "no-diagonal-flow", "severity": "warning"}
    assert Problem("a.bpmn", "broken").to_dict()["severity"] == "error"
    assert str(p).startswith(f"bad.bpmn:{p.line} [f2]: flow f2 from 'Check the referral' to 'Checked'")


def test_a_drawing_with_hundreds_of_findings_lists_two_hundred_a_rule_and_says_there_are_more():
    shapes = "".join(f'<bpmndi:BPMNShape id="t{i}_di" bpmnElement="t{i}"><dc:Bounds x="100" y="100" width="100" '
                     'height="80" /></bpmndi:BPMNShape>' for i in range(300))
    tasks = "".join(f'<bpmn:task id="t{i}" />' for i in range(300))
    flows = "".join(f'<bpmn:sequenceFlow id="f{i}" sourceRef="t{i}" targetRef="t{i + 1}" />' for i in range(250))
    xml = (DEFS + f'<bpmn:process id="p">{tasks}{flows}</bpmn:process><bpmndi:BPMNDiagram id="dg">'
           f'<bpmndi:BPMNPlane id="pl" bpmnElement="p">{shapes}</bpmndi:BPMNPlane></bpmndi:BPMNDiagram>'
           "</bpmn:definitions>")
    found = [p for p in lint_one("pile.bpmn", xml.encode()) if p.rule == "missing-di"]
    assert len(found) == 201 and sum(p.element_id is None for p in found) == 1
    assert any("more findings of missing-di than the 200 listed" in p.message for p in found)


def test_nested_lanes_and_subprocesses_are_judged_by_the_innermost_lane_and_their_own_ends():
    def shape(eid, x, y, w, h, extra=""):
        return (f'<bpmndi:BPMNShape id="{eid}_di" bpmnElement="{eid}"{extra}><dc:Bounds x="{x}" y="{y}" '
                f'width="{w}" height="{h}" /></bpmndi:BPMNShape>')

    def edge(eid, *points):
        wps = "".join(f'<di:waypoint x="{x}" y="{y}" />' for x, y in points)
        return f'<bpmndi:BPMNEdge id="{eid}_di" bpmnElement="{eid}">{wps}</bpmndi:BPMNEdge>'

    xml = (DEFS + '<bpmn:process id="p"><bpmn:laneSet id="ls"><bpmn:lane id="outer" name="Adult social care">'
           '<bpmn:flowNodeRef>a</bpmn:flowNodeRef><bpmn:flowNodeRef>sub</bpmn:flowNodeRef>'
           '<bpmn:flowNodeRef>b</bpmn:flowNodeRef><bpmn:childLaneSet id="cls">'
           '<bpmn:lane id="north" name="North"><bpmn:flowNodeRef>a</bpmn:flowNodeRef>'
           '<bpmn:flowNodeRef>sub</bpmn:flowNodeRef></bpmn:lane>'
           '<bpmn:lane id="south" name="South"><bpmn:flowNodeRef>b</bpmn:flowNodeRef></bpmn:lane>'
           '</bpmn:childLaneSet></bpmn:lane></bpmn:laneSet>'
           '<bpmn:task id="a" name="A" /><bpmn:subProcess id="sub"><bpmn:task id="inner" name="Inner" />'
           '</bpmn:subProcess><bpmn:task id="b" name="B" />'
           '<bpmn:sequenceFlow id="over" sourceRef="a" targetRef="b" /></bpmn:process>'
           '<bpmndi:BPMNDiagram id="dg"><bpmndi:BPMNPlane id="pl" bpmnElement="p">'
           + shape("outer", 100, 0, 900, 400, ' isHorizontal="true"')
           + shape("north", 130, 0, 870, 200, ' isHorizontal="true"')
           + shape("south", 130, 200, 870, 200, ' isHorizontal="true"')
           + shape("a", 200, 60, 100, 80) + shape("sub", 350, 20, 300, 160, ' isExpanded="true"')
           + shape("inner", 450, 60, 100, 80)
           # b is listed in South but drawn in North: inside the outer lane, outside its own
           + shape("b", 700, 60, 100, 80)
           + edge("over", (250, 140), (250, 170), (750, 170), (750, 140))
           + "</bpmndi:BPMNPlane></bpmndi:BPMNDiagram></bpmn:definitions>")
    found = sorted((p.rule, p.element_id) for p in lint_one("nested.bpmn", xml.encode()))
    # 'inner' sits in the subprocess, which no lane lists it by: not a lane finding; the flow from a to b
    # crosses the expanded subprocess it is not inside
    assert found == [("element-in-lane", "b"), ("no-flow-through-shape", "over")]
