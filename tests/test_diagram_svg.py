"""Diagrams drawn as SVG on the server (api/diagram_svg.py) for the evidence pack's PDF."""

from __future__ import annotations

from pathlib import Path

import pytest
from lxml import etree

from api.diagram_svg import Marks, render_svg
from engine.errors import DefinitionError
from engine.lint.diagram import ACTIVITIES, EVENTS, GATEWAYS, read_diagram
from engine.xmlsafe import parse_xml

ROOT = Path(__file__).resolve().parent.parent
SVG = "{http://www.w3.org/2000/svg}"


def _parse(svg: str) -> etree._Element:
    return etree.fromstring(svg.encode())  # raises on anything not well-formed


def _texts(root: etree._Element) -> list[str]:
    """Each <text> with its lines joined and spaces removed (names are wrapped into a <tspan> per line,
    at spaces or after hyphens)."""
    return [_squash("".join(t.itertext())) for t in root.iter(f"{SVG}text")]


def _squash(text: str) -> str:
    return "".join(text.split())


def _states(root: etree._Element) -> dict[str, str]:
    return {g.get("data-element-id"): g.get("data-state") for g in root.iter(f"{SVG}g") if g.get("data-state")}


@pytest.mark.parametrize("name", sorted(p.name for p in (ROOT / "processes").glob("*.bpmn")))
def test_every_process_draws_well_formed_with_every_name(name):
    xml = (ROOT / "processes" / name).read_bytes()
    root = _parse(render_svg(xml, file=name))
    d = read_diagram(parse_xml(xml, name), name)
    drawn = {g.get("data-element-id") for g in root.iter(f"{SVG}g") if g.get("data-element-id")}
    texts = _texts(root)
    for node in d.drawn_nodes():
        if node.shape.plane != 0:
            continue
        assert node.id in drawn, node.id
        if node.name:
            assert _squash(node.name) in texts, (node.id, node.name)
    for flow in d.drawn_flows():
        if flow.plane == 0:
            assert flow.id in drawn, flow.id
    assert _states(root) == {}  # nothing marked when nothing is given
    x, y, w, h = (float(v) for v in root.get("viewBox").split())
    assert w > 200 and h > 100


def test_it_marks_exactly_the_elements_and_flows_given():
    xml = (ROOT / "processes" / "front_door.bpmn").read_bytes()
    d = read_diagram(parse_xml(xml, "front_door.bpmn"), "front_door.bpmn")
    start = next(n.id for n in d.nodes.values() if n.tag == "startEvent")
    first_flow = next(f for f in d.flows.values() if f.source == start)
    done = {start, "record_contact"}
    root = _parse(render_svg(xml, Marks.of(done=done, flows=[first_flow.id], current=["screen_contact"])))
    assert _states(root) == {start: "done", "record_contact": "done", first_flow.id: "taken",
                             "screen_contact": "current"}
    # the non-colour cues: a tick on each done element, a thicker line on the flow taken, a dashed ring
    groups = {g.get("data-element-id"): g for g in root.iter(f"{SVG}g") if g.get("data-element-id")}
    for el in done:
        assert groups[el].find(f"{SVG}circle[@class='tick']") is not None, el
    assert groups["start_reablement"].find(f"{SVG}circle[@class='tick']") is None
    taken = groups[first_flow.id].find(f"{SVG}polyline")
    other = next(groups[f.id] for f in d.flows.values() if f.id != first_flow.id and f.drawn).find(f"{SVG}polyline")
    assert float(taken.get("stroke-width")) >= 3 * float(other.get("stroke-width"))
    assert any(el.get("stroke-dasharray") for el in groups["screen_contact"])
    assert groups["screen_contact"].find(f"{SVG}title").text == "Screen the contact (where the case stands)"
    assert groups["record_contact"].find(f"{SVG}title").text == "Record the contact (done)"


def test_ids_not_in_the_diagram_mark_nothing():
    xml = (ROOT / "processes" / "reablement.bpmn").read_bytes()
    root = _parse(render_svg(xml, Marks.of(done=["no_such_task"], flows=["no_such_flow"])))
    assert _states(root) == {}


def test_shapes_by_kind_and_the_timer_marker():
    xml = (ROOT / "processes" / "front_door.bpmn").read_bytes()
    d = read_diagram(parse_xml(xml, "f.bpmn"), "f.bpmn")
    root = _parse(render_svg(xml))
    groups = {g.get("data-element-id"): g for g in root.iter(f"{SVG}g") if g.get("data-element-id")}
    for node in d.drawn_nodes():
        g = groups[node.id]
        if node.tag in ACTIVITIES:
            assert g.find(f"{SVG}rect").get("rx") == "10"
        elif node.tag in EVENTS:
            assert g.find(f"{SVG}circle") is not None
        elif node.tag in GATEWAYS:
            assert g.find(f"{SVG}polygon") is not None
    ends = [n for n in d.drawn_nodes() if n.tag == "endEvent"]
    starts = [n for n in d.drawn_nodes() if n.tag == "startEvent"]
    assert float(groups[ends[0].id].find(f"{SVG}circle").get("stroke-width")) > \
        float(groups[starts[0].id].find(f"{SVG}circle").get("stroke-width"))
    timers = [n.id for n in d.drawn_nodes() if n.tag == "intermediateCatchEvent"]
    assert timers and all(groups[t].find(f"{SVG}circle[@class='timer']") is not None for t in timers)
    assert groups["start_reablement"].find(f"{SVG}circle[@class='timer']") is None
    # a person's task and an automatic step look different: each task carries the sign of its kind
    for node in d.drawn_nodes():
        if node.tag in ("userTask", "serviceTask", "businessRuleTask"):
            kinds = {el.get("class") for el in groups[node.id] if (el.get("class") or "").startswith("marker-")}
            assert kinds == {f"marker-{node.tag}"}, node.id
    assert _squash("Adult front door") in _texts(root)  # the pool's name
    assert "Safeguarding" in _texts(root)  # a lane's name


def test_names_are_escaped_text_never_markup():
    xml = (ROOT / "processes" / "front_door.bpmn").read_bytes()
    evil = "Record &lt;script&gt;alert(1)&lt;/script&gt; &amp; &quot;quote&quot; ]]&gt;"
    xml = xml.replace(b'name="Record the contact"', f'name="{evil}"'.encode())
    svg = render_svg(xml, Marks.of(done=["record_contact"]))
    root = _parse(svg)
    assert "<script" not in svg
    assert root.find(f".//{SVG}script") is None
    assert _squash('Record <script>alert(1)</script> & "quote" ]]>') in _texts(root)


def test_a_diagram_without_a_drawing_says_so():
    xml = (ROOT / "processes" / "front_door.bpmn").read_text()
    cut = xml[: xml.index("<bpmndi:BPMNDiagram")] + "</bpmn:definitions>\n"
    root = _parse(render_svg(cut.encode()))
    assert _squash("This diagram has no drawing in its file.") in _texts(root)


def test_a_file_that_is_not_xml_is_refused_clearly():
    with pytest.raises(DefinitionError) as err:
        render_svg(b"<definitions><unclosed>", file="broken.bpmn")
    assert "broken.bpmn" in str(err.value)
