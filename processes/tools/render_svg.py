"""Render a BPMN file's diagram (its diagram interchange) as an SVG picture.

    .venv/bin/python processes/tools/render_svg.py processes/*.bpmn --out docs/diagrams/

writes one SVG per file (``docs/diagrams/front_door.svg`` for ``processes/front_door.bpmn``).
Only lxml and the standard library are used. The picture follows the positions saved by the
modeller (``bpmndi:BPMNShape`` / ``dc:Bounds``, ``bpmndi:BPMNEdge`` / ``di:waypoint``,
``bpmndi:BPMNLabel``); nothing is laid out here. A file without diagram interchange, or whose
diagram leaves out elements of the process, is refused with an error naming the file.

Notation (a subset of BPMN 2.0, enough for carepath's diagrams):

* pools and lanes: bands with their name written up the left-hand side;
* tasks: rounded rectangles with the name wrapped inside and the kind in the top-left corner
  (a person marker and "User" for user tasks, "Service", "Script", "Rule" for business rule
  tasks, ...); call activities have a thick border; sub-processes are drawn as a large box;
* events: circles - start thin, end thick, intermediate and boundary double; a clock for
  timers, an envelope for messages; dashed for non-interrupting boundary events;
* gateways: diamonds - X exclusive, + parallel, O inclusive;
* sequence flows: lines with an arrowhead and their name (at the saved label position, else the
  middle of the line); a default flow has a slash at its start.
"""

from __future__ import annotations

import argparse
import math
import sys
from dataclasses import dataclass
from pathlib import Path

from lxml import etree

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
DC = "http://www.omg.org/spec/DD/20100524/DC"
DI = "http://www.omg.org/spec/DD/20100524/DI"
SVG = "http://www.w3.org/2000/svg"

FONT = "Helvetica, Arial, sans-serif"
TASK_FONT = 11
LABEL_FONT = 10
CHAR_W = 0.56  # average character width as a share of the font size (sans-serif)
PAD = 20

TASKS = {
    "task": None, "userTask": "User", "serviceTask": "Service", "scriptTask": "Script",
    "businessRuleTask": "Rule", "sendTask": "Send", "receiveTask": "Receive", "manualTask": "Manual",
    "callActivity": "Call",
}
SUBPROCESSES = {"subProcess", "transaction", "adHocSubProcess"}
EVENTS = {"startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}
GATEWAYS = {"exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway"}
FLOW_NODES = set(TASKS) | SUBPROCESSES | EVENTS | GATEWAYS

LANE_FILLS = ("#f7f9fc", "#eef3f9")


class RenderError(Exception):
    """The file cannot be drawn (no diagram interchange, missing shapes, not BPMN)."""


@dataclass
class Box:
    x: float
    y: float
    w: float
    h: float

    @property
    def cx(self) -> float:
        return self.x + self.w / 2

    @property
    def cy(self) -> float:
        return self.y + self.h / 2


def _local(el: etree._Element) -> str:
    return etree.QName(el).localname


def _bounds(el: etree._Element | None) -> Box | None:
    if el is None:
        return None
    b = el.find(f"{{{DC}}}Bounds")
    if b is None:
        return None
    try:
        return Box(float(b.get("x", 0)), float(b.get("y", 0)), float(b.get("width", 0)), float(b.get("height", 0)))
    except ValueError:
        return None


def wrap(text: str, width: float, size: float) -> list[str]:
    """Split text into lines that fit `width` pixels; words are never broken."""
    per_line = max(4, int(width / (size * CHAR_W)))
    lines: list[str] = []
    for paragraph in text.splitlines() or [""]:
        line = ""
        for word in paragraph.split():
            if line and len(line) + 1 + len(word) > per_line:
                lines.append(line)
                line = word
            else:
                line = f"{line} {word}" if line else word
        if line:
            lines.append(line)
    return lines


class Renderer:
    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.tree = etree.parse(str(self.path), etree.XMLParser(resolve_entities=False, no_network=True))
        except (etree.XMLSyntaxError, OSError) as exc:
            raise RenderError(f"{self.path}: cannot read the file: {exc}") from exc
        root = self.tree.getroot()
        if root.tag != f"{{{BPMN}}}definitions":
            raise RenderError(f"{self.path}: not a BPMN 2.0 file (root element {root.tag!r})")
        self.root = root
        self.elements: dict[str, etree._Element] = {}
        for el in root.iter():
            if isinstance(el.tag, str) and el.tag.startswith(f"{{{BPMN}}}") and el.get("id"):
                self.elements.setdefault(el.get("id"), el)
        plane = root.find(f"{{{BPMNDI}}}BPMNDiagram/{{{BPMNDI}}}BPMNPlane")
        if plane is None or (plane.find(f"{{{BPMNDI}}}BPMNShape") is None
                             and plane.find(f"{{{BPMNDI}}}BPMNEdge") is None):
            raise RenderError(
                f"{self.path}: no diagram interchange (bpmndi:BPMNDiagram with shapes and edges); "
                "open and save it in a modeller (Camunda Modeler, bpmn-js) so that it has a layout")
        self.plane = plane
        self.shapes: dict[str, tuple[Box, etree._Element]] = {}
        self.edges: dict[str, etree._Element] = {}
        for di in plane:
            if not isinstance(di.tag, str):
                continue
            ref = di.get("bpmnElement")
            if di.tag == f"{{{BPMNDI}}}BPMNShape":
                box = _bounds(di)
                if ref and box is not None:
                    self.shapes[ref] = (box, di)
            elif di.tag == f"{{{BPMNDI}}}BPMNEdge" and ref:
                self.edges[ref] = di
        self._check_complete()
        self.defaults = {el.get("default") for el in self.elements.values() if el.get("default")}

    # -- checks -------------------------------------------------------------------------
    def _drawn_processes(self) -> list[etree._Element]:
        """Processes shown on the plane: the plane's process, or the collaboration's pools."""
        ref = self.plane.get("bpmnElement")
        target = self.elements.get(ref) if ref else None
        if target is not None and _local(target) == "process":
            return [target]
        processes = []
        for part in self.root.iter(f"{{{BPMN}}}participant"):
            proc = self.elements.get(part.get("processRef") or "")
            if proc is not None and part.get("id") in self.shapes:
                processes.append(proc)
        return processes or list(self.root.findall(f"{{{BPMN}}}process"))

    def _check_complete(self) -> None:
        missing = []
        for proc in self._drawn_processes():
            for el in proc.iter():
                if not isinstance(el.tag, str) or not el.tag.startswith(f"{{{BPMN}}}"):
                    continue
                kind = _local(el)
                if kind in FLOW_NODES and el.get("id") not in self.shapes:
                    if self._inside_collapsed(el):
                        continue
                    missing.append(el.get("id"))
                elif kind == "sequenceFlow" and el.get("id") not in self.edges and not self._inside_collapsed(el):
                    missing.append(el.get("id"))
        if missing:
            raise RenderError(f"{self.path}: the diagram interchange has no shape or edge for "
                              f"{', '.join(repr(m) for m in missing)}; re-save the diagram in a modeller")

    def _inside_collapsed(self, el: etree._Element) -> bool:
        parent = el.getparent()
        while parent is not None and _local(parent) != "process":
            if _local(parent) in SUBPROCESSES:
                shape = self.shapes.get(parent.get("id"))
                if shape is None or shape[1].get("isExpanded") == "false":
                    return True
            parent = parent.getparent()
        return False

    # -- drawing helpers ------------------------------------------------------------------
    def _sub(self, parent: etree._Element, tag: str, **attrs) -> etree._Element:
        el = etree.SubElement(parent, f"{{{SVG}}}{tag}")
        for key, value in attrs.items():
            if value is None:
                continue
            if isinstance(value, float):
                value = f"{value:.1f}".rstrip("0").rstrip(".")
            el.set(key.rstrip("_").replace("_", "-"), str(value))
        return el

    def _text(self, parent, lines: list[str], cx: float, top: float, size: float, *, anchor="middle",
              weight=None, fill="#1a1a1a", cls="label") -> etree._Element | None:
        if not lines:
            return None
        line_h = size * 1.2
        t = self._sub(parent, "text", x=cx, y=top + size, font_size=size, text_anchor=anchor,
                      font_weight=weight, fill=fill, class_=cls)
        for i, line in enumerate(lines):
            span = self._sub(t, "tspan", x=cx, dy=(0 if i == 0 else line_h))
            span.text = line
        return t

    def _centered_text(self, parent, text: str, box: Box, size: float, **kw) -> None:
        lines = wrap(text, box.w - 8, size)
        block = len(lines) * size * 1.2
        self._text(parent, lines, box.cx, box.cy - block / 2 - size * 0.1, size, **kw)

    def _outside_label(self, parent, name: str | None, di: etree._Element, box: Box) -> None:
        if not name:
            return
        label = _bounds(di.find(f"{{{BPMNDI}}}BPMNLabel"))
        if label is None:
            label = Box(box.cx - 50, box.y + box.h + 4, 100, 27)
        lines = wrap(name, max(label.w, 90), LABEL_FONT)
        self._text(parent, lines, label.cx, label.y - 1, LABEL_FONT)
        self._extend(label.x, label.y, label.w, len(lines) * LABEL_FONT * 1.2 + 4)

    def _extend(self, x: float, y: float, w: float = 0, h: float = 0) -> None:
        self.min_x, self.min_y = min(self.min_x, x), min(self.min_y, y)
        self.max_x, self.max_y = max(self.max_x, x + w), max(self.max_y, y + h)

    # -- shapes ---------------------------------------------------------------------------
    def _pool_or_lane(self, parent, el, box: Box, di, index: int) -> None:
        kind = _local(el)
        horizontal = di.get("isHorizontal", "true") != "false"
        fill = "#ffffff" if kind == "participant" else LANE_FILLS[index % 2]
        g = self._sub(parent, "g", class_=kind, id=f"{kind}-{el.get('id')}")
        self._sub(g, "title").text = el.get("name") or el.get("id")
        self._sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, fill=fill, stroke="#555",
                  stroke_width=1.5 if kind == "participant" else 1)
        name = el.get("name") or ""
        if horizontal:
            self._sub(g, "line", x1=box.x + 30, y1=box.y, x2=box.x + 30, y2=box.y + box.h, stroke="#555")
            lines = wrap(name, box.h - 10, 12)
            cx, cy = box.x + 15, box.cy
            block = len(lines) * 12 * 1.2
            # rotated a quarter turn: lines stack left to right across the 30 px strip
            t = self._text(g, lines, 0, -block / 2 - 1.5, 12, weight="bold", cls=f"{kind}-name")
            if t is not None:
                t.set("transform", f"translate({cx:.1f},{cy:.1f}) rotate(-90)")
        else:
            self._sub(g, "line", x1=box.x, y1=box.y + 30, x2=box.x + box.w, y2=box.y + 30, stroke="#555")
            self._text(g, wrap(name, box.w - 10, 12), box.cx, box.y + 6, 12, weight="bold", cls=f"{kind}-name")

    def _task(self, parent, el, box: Box, di) -> None:
        kind = _local(el)
        g = self._sub(parent, "g", class_=f"task {kind}", id=f"task-{el.get('id')}")
        self._sub(g, "title").text = el.get("name") or el.get("id")
        self._sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, rx=10, ry=10, fill="#ffffff",
                  stroke="#1a1a1a", stroke_width=4 if kind == "callActivity" else 1.5)
        marker = TASKS.get(kind)
        if kind == "userTask":
            px, py = box.x + 10, box.y + 8
            self._sub(g, "circle", cx=px, cy=py + 3, r=3, fill="none", stroke="#1a1a1a", stroke_width=1.2)
            self._sub(g, "path", d=f"M{px - 5:.1f},{py + 13:.1f} q0,-6 5,-6 q5,0 5,6 z", fill="none",
                      stroke="#1a1a1a", stroke_width=1.2)
            self._text(g, [marker], box.x + 18, box.y + 2, 8, anchor="start", fill="#555", cls="task-kind")
        elif kind == "serviceTask":
            gx, gy = box.x + 10, box.y + 10
            for a in range(0, 360, 45):
                r = math.radians(a)
                self._sub(g, "line", x1=gx + 3 * math.cos(r), y1=gy + 3 * math.sin(r), x2=gx + 6 * math.cos(r),
                          y2=gy + 6 * math.sin(r), stroke="#1a1a1a", stroke_width=2)
            self._sub(g, "circle", cx=gx, cy=gy, r=3.5, fill="#ffffff", stroke="#1a1a1a", stroke_width=1.2)
            self._text(g, [marker], box.x + 19, box.y + 2, 8, anchor="start", fill="#555", cls="task-kind")
        elif marker:
            self._text(g, [marker], box.x + 6, box.y + 2, 8, anchor="start", fill="#555", cls="task-kind")
        if kind == "businessRuleTask":
            self._sub(g, "rect", x=box.x + box.w - 20, y=box.y + 5, width=14, height=10, fill="none",
                      stroke="#1a1a1a", stroke_width=1)
            self._sub(g, "line", x1=box.x + box.w - 20, y1=box.y + 8, x2=box.x + box.w - 6, y2=box.y + 8,
                      stroke="#1a1a1a", stroke_width=1)
        self._centered_text(g, el.get("name") or "", Box(box.x, box.y + 6, box.w, box.h - 6), TASK_FONT,
                            cls="task-name")

    def _subprocess(self, parent, el, box: Box, di) -> None:
        g = self._sub(parent, "g", class_=f"task {_local(el)}", id=f"task-{el.get('id')}")
        self._sub(g, "title").text = el.get("name") or el.get("id")
        collapsed = di.get("isExpanded") == "false"
        dashed = "4 3" if el.get("triggeredByEvent") == "true" else None
        self._sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, rx=10, ry=10,
                  fill="#ffffff" if collapsed else "none", stroke="#1a1a1a", stroke_width=1.5,
                  stroke_dasharray=dashed)
        if collapsed:
            self._centered_text(g, el.get("name") or "", box, TASK_FONT, cls="task-name")
            self._sub(g, "rect", x=box.cx - 7, y=box.y + box.h - 16, width=14, height=14, fill="none",
                      stroke="#1a1a1a")
            self._sub(g, "path", d=f"M{box.cx - 4:.1f},{box.y + box.h - 9:.1f} h8 M{box.cx:.1f},"
                      f"{box.y + box.h - 13:.1f} v8", stroke="#1a1a1a")
        else:
            self._text(g, wrap(el.get("name") or "", box.w - 12, TASK_FONT), box.x + 8, box.y + 4, TASK_FONT,
                       anchor="start", cls="task-name")

    def _event(self, parent, el, box: Box, di) -> None:
        kind = _local(el)
        g = self._sub(parent, "g", class_=f"event {kind}", id=f"event-{el.get('id')}")
        self._sub(g, "title").text = el.get("name") or el.get("id")
        cx, cy, r = box.cx, box.cy, min(box.w, box.h) / 2
        non_interrupting = (kind == "boundaryEvent" and el.get("cancelActivity") == "false") or \
                           (kind == "startEvent" and el.get("isInterrupting") == "false")
        dash = "4 2.5" if non_interrupting else None
        width = {"startEvent": 1.5, "endEvent": 4}.get(kind, 1.5)
        self._sub(g, "circle", cx=cx, cy=cy, r=r if kind != "endEvent" else r - 1.5, fill="#ffffff",
                  stroke="#1a1a1a", stroke_width=width, stroke_dasharray=dash)
        if kind in {"intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"}:
            self._sub(g, "circle", cx=cx, cy=cy, r=r - 3, fill="none", stroke="#1a1a1a", stroke_width=1.2,
                      stroke_dasharray=dash)
        definitions = [_local(c) for c in el if isinstance(c.tag, str) and _local(c).endswith("EventDefinition")]
        for definition in definitions[:1]:
            self._event_glyph(g, definition, cx, cy, r, filled=kind in {"endEvent", "intermediateThrowEvent"})
        self._outside_label(parent, el.get("name"), di, box)

    def _event_glyph(self, g, definition: str, cx: float, cy: float, r: float, filled: bool) -> None:
        ink = "#1a1a1a"
        fill = ink if filled else "none"
        if definition == "timerEventDefinition":
            cr = r * 0.6
            self._sub(g, "circle", cx=cx, cy=cy, r=cr, fill="#ffffff", stroke=ink, stroke_width=1.5)
            for hour in range(12):
                a = math.radians(hour * 30)
                self._sub(g, "line", x1=cx + cr * 0.75 * math.cos(a), y1=cy + cr * 0.75 * math.sin(a),
                          x2=cx + cr * math.cos(a), y2=cy + cr * math.sin(a), stroke=ink, stroke_width=0.8)
            self._sub(g, "path", d=f"M{cx:.1f},{cy:.1f} L{cx:.1f},{cy - cr * 0.7:.1f} M{cx:.1f},{cy:.1f} "
                                   f"L{cx + cr * 0.5:.1f},{cy + cr * 0.15:.1f}",
                      stroke=ink, stroke_width=1.5, fill="none", class_="clock")
        elif definition == "messageEventDefinition":
            w, h = r * 0.9, r * 0.6
            self._sub(g, "rect", x=cx - w / 2, y=cy - h / 2, width=w, height=h, fill=fill, stroke=ink)
            self._sub(g, "path", d=f"M{cx - w / 2:.1f},{cy - h / 2:.1f} L{cx:.1f},{cy:.1f} "
                                   f"L{cx + w / 2:.1f},{cy - h / 2:.1f}", fill="none",
                      stroke="#ffffff" if filled else ink)
        elif definition == "terminateEventDefinition":
            self._sub(g, "circle", cx=cx, cy=cy, r=r * 0.55, fill=ink)
        elif definition == "signalEventDefinition":
            s = r * 0.55
            self._sub(g, "path", d=f"M{cx:.1f},{cy - s:.1f} L{cx + s:.1f},{cy + s * 0.7:.1f} "
                                   f"L{cx - s:.1f},{cy + s * 0.7:.1f} Z", fill=fill, stroke=ink)
        elif definition == "errorEventDefinition":
            s = r * 0.5
            self._sub(g, "path", d=f"M{cx - s:.1f},{cy + s:.1f} L{cx - s * 0.4:.1f},{cy - s:.1f} "
                                   f"L{cx + s * 0.2:.1f},{cy + s * 0.2:.1f} L{cx + s:.1f},{cy - s:.1f} "
                                   f"L{cx + s * 0.4:.1f},{cy + s:.1f} L{cx - s * 0.2:.1f},{cy - s * 0.2:.1f} Z",
                      fill=fill, stroke=ink)
        elif definition == "escalationEventDefinition":
            s = r * 0.55
            self._sub(g, "path", d=f"M{cx:.1f},{cy - s:.1f} L{cx + s * 0.7:.1f},{cy + s:.1f} "
                                   f"L{cx:.1f},{cy + s * 0.3:.1f} L{cx - s * 0.7:.1f},{cy + s:.1f} Z",
                      fill=fill, stroke=ink)
        elif definition == "conditionalEventDefinition":
            s = r * 0.5
            self._sub(g, "rect", x=cx - s * 0.8, y=cy - s, width=s * 1.6, height=s * 2, fill="none", stroke=ink)
            for k in (-0.5, 0, 0.5):
                self._sub(g, "line", x1=cx - s * 0.5, y1=cy + s * k, x2=cx + s * 0.5, y2=cy + s * k, stroke=ink)

    def _gateway(self, parent, el, box: Box, di) -> None:
        kind = _local(el)
        g = self._sub(parent, "g", class_=f"gateway {kind}", id=f"gateway-{el.get('id')}")
        self._sub(g, "title").text = el.get("name") or el.get("id")
        cx, cy, hw, hh = box.cx, box.cy, box.w / 2, box.h / 2
        self._sub(g, "polygon", points=f"{cx:.1f},{box.y:.1f} {box.x + box.w:.1f},{cy:.1f} {cx:.1f},"
                                       f"{box.y + box.h:.1f} {box.x:.1f},{cy:.1f}",
                  fill="#ffffff", stroke="#1a1a1a", stroke_width=1.5)
        s = min(hw, hh) * 0.4
        ink = dict(stroke="#1a1a1a", stroke_width=3.5, stroke_linecap="round")
        if kind == "exclusiveGateway":
            self._sub(g, "path", d=f"M{cx - s:.1f},{cy - s:.1f} L{cx + s:.1f},{cy + s:.1f} M{cx + s:.1f},"
                                   f"{cy - s:.1f} L{cx - s:.1f},{cy + s:.1f}", class_="marker-x", **ink)
        elif kind == "parallelGateway":
            s *= 1.25
            self._sub(g, "path", d=f"M{cx - s:.1f},{cy:.1f} L{cx + s:.1f},{cy:.1f} M{cx:.1f},{cy - s:.1f} "
                                   f"L{cx:.1f},{cy + s:.1f}", **ink)
        elif kind == "inclusiveGateway":
            self._sub(g, "circle", cx=cx, cy=cy, r=s * 1.2, fill="none", stroke="#1a1a1a", stroke_width=2.5)
        elif kind == "eventBasedGateway":
            self._sub(g, "circle", cx=cx, cy=cy, r=s * 1.3, fill="none", stroke="#1a1a1a")
            self._sub(g, "circle", cx=cx, cy=cy, r=s * 1.1, fill="none", stroke="#1a1a1a")
        elif kind == "complexGateway":
            self._sub(g, "path", d=f"M{cx - s:.1f},{cy:.1f} L{cx + s:.1f},{cy:.1f} M{cx:.1f},{cy - s:.1f} "
                                   f"L{cx:.1f},{cy + s:.1f} M{cx - s * 0.7:.1f},{cy - s * 0.7:.1f} "
                                   f"L{cx + s * 0.7:.1f},{cy + s * 0.7:.1f} M{cx + s * 0.7:.1f},"
                                   f"{cy - s * 0.7:.1f} L{cx - s * 0.7:.1f},{cy + s * 0.7:.1f}", **ink)
        self._outside_label(parent, el.get("name"), di, box)

    def _other(self, parent, el, box: Box, di) -> None:
        kind = _local(el)
        g = self._sub(parent, "g", class_=kind, id=f"{kind}-{el.get('id')}")
        if kind == "textAnnotation":
            self._sub(g, "path", d=f"M{box.x + 12:.1f},{box.y:.1f} h-12 v{box.h:.1f} h12", fill="none",
                      stroke="#555")
            text_el = el.find(f"{{{BPMN}}}text")
            text = text_el.text if text_el is not None and text_el.text else ""
            self._text(g, wrap(text, box.w - 8, LABEL_FONT), box.x + 5, box.y + 2, LABEL_FONT, anchor="start")
            return
        if kind in {"dataObjectReference", "dataStoreReference"}:
            self._sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, fill="#ffffff", stroke="#1a1a1a",
                      rx=0 if kind == "dataObjectReference" else 6)
            self._outside_label(parent, el.get("name"), di, box)
            return
        self._sub(g, "rect", x=box.x, y=box.y, width=box.w, height=box.h, fill="none", stroke="#999",
                  stroke_dasharray="3 3")
        if el.get("name"):
            self._centered_text(g, el.get("name"), box, LABEL_FONT)

    # -- edges ----------------------------------------------------------------------------
    def _edge(self, parent, el, di) -> None:
        kind = _local(el)
        points = []
        for wp in di.findall(f"{{{DI}}}waypoint"):
            try:
                points.append((float(wp.get("x")), float(wp.get("y"))))
            except (TypeError, ValueError):
                continue
        if len(points) < 2:
            return
        for x, y in points:
            self._extend(x, y)
        g = self._sub(parent, "g", class_=f"flow {kind}", id=f"flow-{el.get('id')}")
        self._sub(g, "title").text = el.get("name") or el.get("id")
        style: dict = dict(fill="none", stroke="#1a1a1a", stroke_width=1.5, stroke_linejoin="round")
        if kind == "sequenceFlow":
            style["marker_end"] = "url(#arrow)"
        elif kind == "messageFlow":
            style.update(stroke_dasharray="6 4", marker_end="url(#open-arrow)", marker_start="url(#circle)")
        else:  # association and anything else: dotted, no arrow
            style.update(stroke_dasharray="2 3", stroke_width=1)
        self._sub(g, "polyline", points=" ".join(f"{x:.1f},{y:.1f}" for x, y in points), **style)
        (x0, y0), (x1, y1) = points[0], points[1]
        seg = math.hypot(x1 - x0, y1 - y0) or 1
        ux, uy = (x1 - x0) / seg, (y1 - y0) / seg
        if kind == "sequenceFlow" and el.get("id") in self.defaults:
            mx, my = x0 + ux * 10, y0 + uy * 10
            px, py = -uy, ux
            self._sub(g, "line", x1=mx - 5 * px - 3 * ux, y1=my - 5 * py - 3 * uy, x2=mx + 5 * px + 3 * ux,
                      y2=my + 5 * py + 3 * uy, stroke="#1a1a1a", stroke_width=1.5, class_="default-marker")
        elif kind == "sequenceFlow" and el.find(f"{{{BPMN}}}conditionExpression") is not None:
            source = self.elements.get(el.get("sourceRef") or "")
            if source is not None and _local(source) not in GATEWAYS:
                px, py = -uy, ux
                d = (f"M{x0:.1f},{y0:.1f} L{x0 + ux * 7 + px * 4:.1f},{y0 + uy * 7 + py * 4:.1f} "
                     f"L{x0 + ux * 14:.1f},{y0 + uy * 14:.1f} L{x0 + ux * 7 - px * 4:.1f},"
                     f"{y0 + uy * 7 - py * 4:.1f} Z")
                self._sub(g, "path", d=d, fill="#ffffff", stroke="#1a1a1a")
        name = el.get("name")
        if not name:
            return
        label = _bounds(di.find(f"{{{BPMNDI}}}BPMNLabel"))
        if label is not None:
            lines = wrap(name, max(label.w, 80), LABEL_FONT)
            self._text(g, lines, label.cx, label.y - 1, LABEL_FONT, cls="flow-name")
            self._extend(label.x, label.y, label.w, len(lines) * LABEL_FONT * 1.2 + 4)
        else:
            mx, my = _midpoint(points)
            lines = wrap(name, 110, LABEL_FONT)
            self._text(g, lines, mx + 4, my - len(lines) * LABEL_FONT * 1.2 - 3, LABEL_FONT, anchor="start",
                       cls="flow-name")
            self._extend(mx, my - len(lines) * LABEL_FONT * 1.2 - 3, 115, len(lines) * LABEL_FONT * 1.2)

    # -- document -------------------------------------------------------------------------
    def render(self) -> bytes:
        self.min_x = self.min_y = math.inf
        self.max_x = self.max_y = -math.inf
        svg = etree.Element(f"{{{SVG}}}svg", nsmap={None: SVG})
        svg.set("version", "1.1")
        title_text = self._title()
        self._sub(svg, "title").text = title_text
        defs = self._sub(svg, "defs")
        m = self._sub(defs, "marker", id="arrow", viewBox="0 0 10 10", refX=10, refY=5, markerWidth=8,
                      markerHeight=8, orient="auto", markerUnits="userSpaceOnUse")
        self._sub(m, "path", d="M0,0 L10,5 L0,10 Z", fill="#1a1a1a")
        m = self._sub(defs, "marker", id="open-arrow", viewBox="0 0 10 10", refX=10, refY=5, markerWidth=9,
                      markerHeight=9, orient="auto", markerUnits="userSpaceOnUse")
        self._sub(m, "path", d="M0,0 L10,5 L0,10 Z", fill="#ffffff", stroke="#1a1a1a")
        m = self._sub(defs, "marker", id="circle", viewBox="0 0 10 10", refX=5, refY=5, markerWidth=7,
                      markerHeight=7, markerUnits="userSpaceOnUse")
        self._sub(m, "circle", cx=5, cy=5, r=4, fill="#ffffff", stroke="#1a1a1a")
        background = self._sub(svg, "rect", fill="#ffffff")
        body = self._sub(svg, "g", font_family=FONT)
        layers = {name: self._sub(body, "g", class_=f"layer-{name}") for name in
                  ("pools", "lanes", "containers", "flows", "nodes", "boundary")}
        pools = lanes = 0
        for ref, (box, di) in self.shapes.items():
            el = self.elements.get(ref)
            if el is None:
                continue
            kind = _local(el)
            self._extend(box.x, box.y, box.w, box.h)
            if kind == "participant":
                self._pool_or_lane(layers["pools"], el, box, di, pools)
                pools += 1
            elif kind == "lane":
                self._pool_or_lane(layers["lanes"], el, box, di, lanes)
                lanes += 1
            elif kind in TASKS:
                self._task(layers["nodes"], el, box, di)
            elif kind in SUBPROCESSES:
                target = layers["nodes"] if di.get("isExpanded") == "false" else layers["containers"]
                self._subprocess(target, el, box, di)
            elif kind in EVENTS:
                self._event(layers["boundary" if kind == "boundaryEvent" else "nodes"], el, box, di)
            elif kind in GATEWAYS:
                self._gateway(layers["nodes"], el, box, di)
            else:
                self._other(layers["nodes"], el, box, di)
        for ref, di in self.edges.items():
            el = self.elements.get(ref)
            if el is not None:
                self._edge(layers["flows"], el, di)
        if self.min_x is math.inf:
            raise RenderError(f"{self.path}: the diagram interchange draws nothing")
        x, y = self.min_x - PAD, self.min_y - PAD
        w, h = self.max_x - self.min_x + 2 * PAD, self.max_y - self.min_y + 2 * PAD
        for key, value in (("x", x), ("y", y), ("width", w), ("height", h)):
            background.set(key, f"{value:.0f}")
        svg.set("viewBox", f"{x:.0f} {y:.0f} {w:.0f} {h:.0f}")
        svg.set("width", f"{w:.0f}")
        svg.set("height", f"{h:.0f}")
        return etree.tostring(svg, xml_declaration=True, encoding="UTF-8", pretty_print=True)

    def _title(self) -> str:
        names = [p.get("name") or p.get("id") for p in self._drawn_processes()]
        return f"{', '.join(n for n in names if n)} ({self.path.name})"


def _midpoint(points: list[tuple[float, float]]) -> tuple[float, float]:
    lengths = [math.hypot(b[0] - a[0], b[1] - a[1]) for a, b in zip(points, points[1:], strict=False)]
    half = sum(lengths) / 2
    for (a, b), length in zip(zip(points, points[1:], strict=False), lengths, strict=True):
        if half <= length and length:
            t = half / length
            return a[0] + (b[0] - a[0]) * t, a[1] + (b[1] - a[1]) * t
        half -= length
    return points[-1]


def render(path: str | Path) -> bytes:
    """The SVG (UTF-8 bytes) of one BPMN file; RenderError when it cannot be drawn."""
    return Renderer(Path(path)).render()


def render_to(path: str | Path, out_dir: str | Path) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / (Path(path).stem + ".svg")
    data = render(path)
    tmp = target.with_suffix(".svg.tmp")
    tmp.write_bytes(data)
    tmp.replace(target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Render BPMN diagrams (with diagram interchange) as SVG.")
    parser.add_argument("files", nargs="+", help="BPMN files")
    parser.add_argument("--out", default="docs/diagrams", help="output folder (default docs/diagrams)")
    args = parser.parse_args(argv)
    failed = 0
    for name in args.files:
        try:
            print(render_to(name, args.out))
        except RenderError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
