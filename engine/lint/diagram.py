"""What the lint rules read: a BPMN file's flow nodes, flows and lanes joined to their drawing.

`read_diagram` takes a tree parsed by the hardened intake (`engine.xmlsafe.parse_xml`) and
never fails on odd input: an element without a shape, a shape without bounds, numbers that
are not numbers, several pools, subprocesses drawn on their own plane (as bpmn-js does for
collapsed ones) or no diagram interchange at all each just leave less to check.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field

from lxml import etree

from .geometry import Box, Grid, Point, flow_label, segment_box, shape_label

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"

EVENTS = frozenset({"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"})
GATEWAYS = frozenset({"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway",
                      "complexGateway"})
SUBPROCESSES = frozenset({"subProcess", "transaction", "adHocSubProcess"})
ACTIVITIES = frozenset({"task", "userTask", "serviceTask", "scriptTask", "businessRuleTask", "sendTask",
                        "receiveTask", "manualTask", "callActivity"}) | SUBPROCESSES
FLOW_NODES = EVENTS | GATEWAYS | ACTIVITIES
CONTAINERS = frozenset({"process"}) | SUBPROCESSES


@dataclass
class Shape:
    plane: int  # which BPMNPlane it is drawn on (a collapsed subprocess's inside has its own)
    bounds: Box
    label: Box | None  # BPMNLabel bounds, when the file has them
    expanded: bool | None  # isExpanded, for subprocesses
    horizontal: bool | None  # isHorizontal, for lanes and pools


@dataclass
class Node:
    """A flow node: an event, gateway, task, call activity or subprocess."""

    id: str
    tag: str
    name: str
    line: int | None
    parent: str | None  # the process or subprocess it sits in
    process: str | None  # the process it belongs to, however deeply nested
    attached_to: str | None = None  # a boundary event's host
    shape: Shape | None = None
    # a start event's start form as the diagram names it (`camunda:formKey="…"`), which carepath does not show
    start_form: str | None = None
    # a non-interrupting boundary event's timer cycle as written (`R/P1D`), which fires again and again
    repeating_timer: str | None = None

    @property
    def external_label(self) -> bool:
        """Events and gateways have their name drawn outside the shape; activities inside it."""
        return self.tag in EVENTS or self.tag in GATEWAYS

    def label(self) -> Box | None:
        """Where its name is drawn outside the shape, if it is: the file's label bounds or bpmn-js's spot."""
        if not self.name or not self.external_label or self.shape is None:
            return None
        return self.shape.label or shape_label(self.shape.bounds, self.name)

    def describe(self) -> str:
        return f"{self.id} ('{self.name}')" if self.name else self.id


@dataclass
class Flow:
    """A sequence flow, with its edge's waypoints when drawn."""

    id: str
    name: str
    line: int | None
    source: str
    target: str
    parent: str | None
    process: str | None
    plane: int | None = None
    points: list[Point] = field(default_factory=list)
    label_bounds: Box | None = None
    drawn: bool = False

    def segments(self) -> Iterator[tuple[Point, Point]]:
        yield from zip(self.points, self.points[1:], strict=False)

    def label(self) -> Box | None:
        if not self.name or not self.drawn:
            return None
        return self.label_bounds or flow_label(self.points, self.name)

    def describe(self) -> str:
        return f"{self.id} ('{self.name}')" if self.name else self.id


@dataclass
class Lane:
    id: str
    name: str
    line: int | None
    owner: str | None  # the process or subprocess whose lane set holds it
    refs: list[str]
    nested: bool  # has lanes inside it
    shape: Shape | None = None

    def describe(self) -> str:
        return f"'{self.name}' ({self.id})" if self.name else self.id


@dataclass
class Diagram:
    file: str
    nodes: dict[str, Node] = field(default_factory=dict)
    flows: dict[str, Flow] = field(default_factory=dict)
    lanes: list[Lane] = field(default_factory=list)
    processes: dict[str, int | None] = field(default_factory=dict)  # process id -> line
    has_di: bool = False
    lines: dict[str, int | None] = field(default_factory=dict)  # any element id -> its line
    _grids: dict[tuple[str, int], Grid] = field(default_factory=dict, repr=False)

    def ancestors(self, element_id: str) -> set[str]:
        """The subprocesses (and process) an element sits inside, innermost first."""
        seen: set[str] = set()
        parent = self.nodes[element_id].parent if element_id in self.nodes else None
        if element_id in self.flows:
            parent = self.flows[element_id].parent
        while parent and parent not in seen:
            seen.add(parent)
            parent = self.nodes[parent].parent if parent in self.nodes else None
        return seen

    def drawn_nodes(self) -> list[Node]:
        return [n for n in self.nodes.values() if n.shape is not None]

    def drawn_flows(self) -> list[Flow]:
        return [f for f in self.flows.values() if f.drawn]

    def shapes_near(self, plane: int, box: Box) -> list[Node]:
        """Drawn flow nodes on `plane` that may overlap `box` (a superset, in document order)."""
        grid = self._grids.get(("shapes", plane))
        if grid is None:
            grid = self._grids[("shapes", plane)] = Grid()
            for node in self.drawn_nodes():
                if node.shape is not None and node.shape.plane == plane:
                    grid.add(node.shape.bounds, node)
        return grid.near(box)  # type: ignore[return-value]

    def segments_near(self, plane: int, box: Box) -> list[tuple[Flow, Point, Point]]:
        """Segments of drawn flows on `plane` that may meet `box` (a superset, in document order)."""
        grid = self._grids.get(("segments", plane))
        if grid is None:
            grid = self._grids[("segments", plane)] = Grid()
            for flow in self.drawn_flows():
                if flow.plane == plane:
                    for a, b in flow.segments():
                        grid.add(segment_box(a, b), (flow, a, b))
        return grid.near(box)  # type: ignore[return-value]


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname if isinstance(el.tag, str) else ""


def _number(value: str | None) -> float | None:
    try:
        n = float(value) if value is not None else None
    except ValueError:
        return None
    return n if n is not None and math.isfinite(n) else None


def _bounds(el: etree._Element | None) -> Box | None:
    if el is None:
        return None
    vals = [_number(el.get(k)) for k in ("x", "y", "width", "height")]
    if any(v is None for v in vals):
        return None
    x, y, w, h = vals
    assert x is not None and y is not None and w is not None and h is not None
    return (x, y, w, h) if w >= 0 and h >= 0 else None


def _flag(value: str | None) -> bool | None:
    return None if value is None else value.strip().lower() == "true"


def read_diagram(tree: etree._ElementTree, file: str) -> Diagram:
    """Join a BPMN file's semantics to its diagram interchange (see the module docstring)."""
    root = tree.getroot()
    d = Diagram(file)
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        if (eid := el.get("id")) and eid not in d.lines:
            d.lines[eid] = el.sourceline
    for process in root.iter(f"{{{BPMN}}}process"):
        pid = process.get("id") or ""
        d.processes[pid] = process.sourceline
        _read_container(process, pid, d)
    _read_di(root, d)
    return d


def _read_container(container: etree._Element, pid: str, d: Diagram) -> None:
    cid = container.get("id")
    for el in container:
        tag = _local(el)
        if el.tag is None or not isinstance(el.tag, str) or etree.QName(el).namespace != BPMN:
            continue
        eid = el.get("id")
        if not eid:
            continue
        if tag in FLOW_NODES:
            d.nodes.setdefault(eid, Node(eid, tag, (el.get("name") or "").strip(), el.sourceline, cid, pid,
                                         attached_to=el.get("attachedToRef") if tag == "boundaryEvent" else None,
                                         start_form=_start_form(el) if tag == "startEvent" else None,
                                         repeating_timer=_repeating_timer(el) if tag == "boundaryEvent" else None))
            if tag in SUBPROCESSES:
                _read_container(el, pid, d)
        elif tag == "sequenceFlow":
            d.flows.setdefault(eid, Flow(eid, (el.get("name") or "").strip(), el.sourceline,
                                         el.get("sourceRef") or "", el.get("targetRef") or "", cid, pid))
        elif tag == "laneSet":
            _read_lanes(el, pid if container.tag == f"{{{BPMN}}}process" else cid, d)


CAMUNDA = "http://camunda.org/schema/1.0/bpmn"
ZEEBE = "http://camunda.org/schema/zeebe/1.0"


def _repeating_timer(event: etree._Element) -> str | None:
    """The timeCycle of a non-interrupting boundary timer, as written; None for any other boundary event."""
    if (event.get("cancelActivity") or "true").strip() != "false":
        return None
    for cycle in event.iterfind(f"{{{BPMN}}}timerEventDefinition/{{{BPMN}}}timeCycle"):
        return " ".join((cycle.text or "").split()) or None
    return None


def _start_form(start: etree._Element) -> str | None:
    """The form a start event names the Camunda 7 way (`camunda:formKey`, `camunda:formRef`) or the Camunda 8 way
    (`zeebe:formDefinition`), as written; None when it names none."""
    for attribute in ("formKey", "formRef"):
        value = (start.get(f"{{{CAMUNDA}}}{attribute}") or "").strip()
        if value:
            return f'camunda:{attribute}="{value}"'
    for definition in start.iterfind(f"{{{BPMN}}}extensionElements/{{{ZEEBE}}}formDefinition"):
        for attribute in ("formKey", "formId", "externalReference"):
            value = (definition.get(attribute) or "").strip()
            if value:
                return f'zeebe:formDefinition {attribute}="{value}"'
        return "zeebe:formDefinition"
    return None


def _read_lanes(lane_set: etree._Element, owner: str | None, d: Diagram) -> None:
    for lane in lane_set.findall(f"{{{BPMN}}}lane"):
        children = lane.findall(f"{{{BPMN}}}childLaneSet")
        nested = any(c.find(f"{{{BPMN}}}lane") is not None for c in children)
        refs = [(r.text or "").strip() for r in lane.findall(f"{{{BPMN}}}flowNodeRef")]
        d.lanes.append(Lane(lane.get("id") or "", (lane.get("name") or "").strip(), lane.sourceline, owner,
                            [r for r in refs if r], nested))
        for child in children:
            _read_lanes(child, owner, d)


def _read_di(root: etree._Element, d: Diagram) -> None:
    lanes = {lane.id: lane for lane in d.lanes}
    planes = [p for diagram in root.iter(f"{{{BPMNDI}}}BPMNDiagram")
              for p in diagram.findall(f"{{{BPMNDI}}}BPMNPlane")]
    d.has_di = bool(planes)
    for index, plane in enumerate(planes):
        for el in plane:
            ref = el.get("bpmnElement")
            if not ref:
                continue
            tag = _local(el)
            label = _bounds(el.find(f"{{{BPMNDI}}}BPMNLabel/{{{DC}}}Bounds"))
            if tag == "BPMNShape":
                bounds = _bounds(el.find(f"{{{DC}}}Bounds"))
                if bounds is None:
                    continue
                shape = Shape(index, bounds, label, _flag(el.get("isExpanded")), _flag(el.get("isHorizontal")))
                if ref in d.nodes and d.nodes[ref].shape is None:
                    d.nodes[ref].shape = shape
                elif ref in lanes and lanes[ref].shape is None:
                    lanes[ref].shape = shape
            elif tag == "BPMNEdge" and ref in d.flows and not d.flows[ref].drawn:
                points = []
                for wp in el.findall(f"{{{DI}}}waypoint"):
                    x, y = _number(wp.get("x")), _number(wp.get("y"))
                    if x is not None and y is not None:
                        points.append((x, y))
                flow = d.flows[ref]
                flow.plane, flow.points, flow.label_bounds, flow.drawn = index, points, label, len(points) >= 2
