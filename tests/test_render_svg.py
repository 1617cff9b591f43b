"""processes/tools/render_svg.py draws every process diagram as well-formed SVG."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import pytest
from lxml import etree

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = sorted((ROOT / "processes").glob("*.bpmn"))
BPMN = "{http://www.omg.org/spec/BPMN/20100524/MODEL}"
SVG = "{http://www.w3.org/2000/svg}"
TASK_TAGS = ("task", "userTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask", "receiveTask",
             "manualTask", "callActivity", "subProcess")

_spec = importlib.util.spec_from_file_location("render_svg", ROOT / "processes" / "tools" / "render_svg.py")
render_svg = importlib.util.module_from_spec(_spec)
sys.modules.setdefault("render_svg", render_svg)
_spec.loader.exec_module(render_svg)


def _norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def _texts(svg: etree._Element) -> set[str]:
    """Every <text> of the picture, its wrapped lines joined again."""
    return {_norm(" ".join(t.itertext())) for t in svg.iter(f"{SVG}text")}


def _names(path: Path, tags) -> list[str]:
    tree = etree.parse(str(path))
    return [_norm(el.get("name")) for tag in tags for el in tree.iter(f"{BPMN}{tag}") if el.get("name")]


def test_there_are_diagrams_to_render():
    assert PROCESSES, "no processes/*.bpmn found"


@pytest.mark.parametrize("path", PROCESSES, ids=lambda p: p.stem)
def test_renders_well_formed_svg_with_every_task_and_lane(path):
    data = render_svg.render(path)
    svg = etree.fromstring(data)  # raises if not well-formed
    assert svg.tag == f"{SVG}svg"
    assert svg.get("viewBox")
    texts = _texts(svg)
    tasks = _names(path, TASK_TAGS)
    lanes = _names(path, ("lane",))
    assert tasks, f"{path.name} has no named tasks"
    missing = [name for name in tasks + lanes if name not in texts]
    assert not missing, f"{path.name}: not drawn: {missing}"
    # one arrow per sequence flow, one diamond per gateway
    flows = list(etree.parse(str(path)).iter(f"{BPMN}sequenceFlow"))
    arrows = [p for p in svg.iter(f"{SVG}polyline") if p.get("marker-end") == "url(#arrow)"]
    assert len(arrows) == len(flows)


@pytest.mark.parametrize("path", PROCESSES, ids=lambda p: p.stem)
def test_timers_have_a_clock_and_non_interrupting_ones_are_dashed(path):
    tree = etree.parse(str(path))
    svg = etree.fromstring(render_svg.render(path))
    timers = [el for el in tree.iter() if isinstance(el.tag, str)
              and el.find(f"{BPMN}timerEventDefinition") is not None]
    clocks = [p for p in svg.iter(f"{SVG}path") if p.get("class") == "clock"]
    assert len(clocks) == len(timers)
    for timer in timers:
        group = svg.find(f".//{SVG}g[@id='event-{timer.get('id')}']")
        assert group is not None, timer.get("id")
        dashed = any(c.get("stroke-dasharray") for c in group.iter(f"{SVG}circle"))
        assert dashed == (timer.get("cancelActivity") == "false"), timer.get("id")


def test_command_line_writes_one_svg_per_file(tmp_path):
    assert render_svg.main([str(p) for p in PROCESSES] + ["--out", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.svg")) == sorted(p.stem + ".svg" for p in PROCESSES)


DIAGRAM = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
    xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
    xmlns:di="http://www.omg.org/spec/DD/20100524/DI" id="defs" targetNamespace="http://example.org">
  <bpmn:process id="p" name="Tiny" isExecutable="true">
    <bpmn:laneSet id="ls"><bpmn:lane id="l" name="Carers &amp; &lt;family&gt;">
      <bpmn:flowNodeRef>s</bpmn:flowNodeRef><bpmn:flowNodeRef>t</bpmn:flowNodeRef>
      <bpmn:flowNodeRef>e</bpmn:flowNodeRef></bpmn:lane></bpmn:laneSet>
    <bpmn:startEvent id="s" name="Start"><bpmn:outgoing>f1</bpmn:outgoing></bpmn:startEvent>
    <bpmn:userTask id="t" name="Check &quot;A &lt; B&quot; &amp; call back"><bpmn:incoming>f1</bpmn:incoming>
      <bpmn:outgoing>f2</bpmn:outgoing></bpmn:userTask>
    <bpmn:endEvent id="e" name="Done"><bpmn:incoming>f2</bpmn:incoming></bpmn:endEvent>
    <bpmn:sequenceFlow id="f1" sourceRef="s" targetRef="t" />
    <bpmn:sequenceFlow id="f2" name="a &lt; b" sourceRef="t" targetRef="e" />
  </bpmn:process>
  @@DI@@
</bpmn:definitions>
"""

DI_XML = """<bpmndi:BPMNDiagram id="d"><bpmndi:BPMNPlane id="pl" bpmnElement="p">
    <bpmndi:BPMNShape id="l_di" bpmnElement="l" isHorizontal="true"><dc:Bounds x="0" y="0" width="500" height="200" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="s_di" bpmnElement="s"><dc:Bounds x="50" y="82" width="36" height="36" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="t_di" bpmnElement="t"><dc:Bounds x="150" y="60" width="100" height="80" /></bpmndi:BPMNShape>
    <bpmndi:BPMNShape id="e_di" bpmnElement="e"><dc:Bounds x="350" y="82" width="36" height="36" /></bpmndi:BPMNShape>
    <bpmndi:BPMNEdge id="f1_di" bpmnElement="f1"><di:waypoint x="86" y="100" /><di:waypoint x="150" y="100" /></bpmndi:BPMNEdge>
    <bpmndi:BPMNEdge id="f2_di" bpmnElement="f2"><di:waypoint x="250" y="100" /><di:waypoint x="350" y="100" /></bpmndi:BPMNEdge>
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>"""


def test_names_are_escaped(tmp_path):
    path = tmp_path / "tiny.bpmn"
    path.write_text(DIAGRAM.replace("@@DI@@", DI_XML))
    data = render_svg.render(path)
    texts = _texts(etree.fromstring(data))
    assert 'Check "A < B" & call back' in texts
    assert "Carers & <family>" in texts
    assert "a < b" in texts  # flow label without BPMNLabel: drawn at the midpoint
    assert b"<family>" not in data


def test_diagram_without_di_is_refused_naming_the_file(tmp_path):
    path = tmp_path / "no_layout.bpmn"
    path.write_text(DIAGRAM.replace("@@DI@@", ""))
    with pytest.raises(render_svg.RenderError, match=r"no_layout\.bpmn.*no diagram interchange"):
        render_svg.render(path)
    assert render_svg.main([str(path), "--out", str(tmp_path / "out")]) == 1


def test_diagram_with_missing_shape_is_refused_naming_the_element(tmp_path):
    path = tmp_path / "partial.bpmn"
    di = re.sub(r'<bpmndi:BPMNShape id="t_di".*?</bpmndi:BPMNShape>', "", DI_XML)
    path.write_text(DIAGRAM.replace("@@DI@@", di))
    with pytest.raises(render_svg.RenderError, match=r"partial\.bpmn.*'t'"):
        render_svg.render(path)
