"""A deployed BPMN diagram drawn as SVG on the server, with the path a case took marked on it.

The evidence pack's PDF (api/evidence.py) is rendered by WeasyPrint, which runs no JavaScript, so
bpmn-js cannot draw it. This module draws what the file's diagram interchange (DI) says — pools,
lanes, tasks, events, gateways, sequence flows and their labels — from the reader the lint rules
use (`engine.lint.diagram.read_diagram`), with names wrapped as bpmn-js wraps them
(`engine.lint.text.layout`).

Marks (each with a non-colour cue as well as a colour, so they survive black-and-white printing):
* done (completed elements): green, a thick outline and a tick in the corner;
* flows taken: green and three times as thick;
* current (where the case stands): blue, a dashed ring around the shape.
Every marked group carries `data-state` and a `<title>` saying so (read by screen readers and tests).

The SVG is built with lxml, so every name from a diagram is escaped as text, never markup.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

from lxml import etree

from engine.lint.diagram import (
    ACTIVITIES,
    BPMN,
    BPMNDI,
    DC,
    EVENTS,
    GATEWAYS,
    SUBPROCESSES,
    Diagram,
    Node,
    read_diagram,
)
from engine.lint.text import LABEL_FONT, LINE_HEIGHT, TASK_FONT, layout
from engine.xmlsafe import parse_xml

SVG = "http://www.w3.org/2000/svg"
FONT = "Arial, 'Liberation Sans', Helvetica, sans-serif"
INK = "#0b0c0c"
DONE = "#00703c"  # GOV.UK green
DONE_FILL = "#cce2d8"
CURRENT = "#1d70b8"  # GOV.UK blue
CURRENT_FILL = "#d2e2f1"
MARGIN = 20


@dataclass
class Marks:
    """What to mark: element ids completed, sequence flow ids taken, element ids where the case stands."""

    done: frozenset[str] = frozenset()
    flows: frozenset[str] = frozenset()
    current: frozenset[str] = frozenset()

    @classmethod
    def of(cls, done: Iterable[str] = (), flows: Iterable[str] = (), current: Iterable[str] = ()) -> Marks:
        return cls(frozenset(done), frozenset(flows), frozenset(current))


def render_svg(xml: bytes, marks: Marks | None = None, *, file: str = "diagram.bpmn", title: str = "",
               prefix: str = "d") -> str:
    """The diagram in `xml` (a BPMN file) as an SVG document, with `marks` drawn on it. `prefix` starts the
    ids inside it (its arrowheads), so that several drawings can share one HTML page."""
    tree = parse_xml(xml, file)
    diagram = read_diagram(tree, file)
    return _Drawing(tree, diagram, marks or Marks(), prefix).svg(title)


def names(xml: bytes, *, file: str = "diagram.bpmn") -> dict[str, str]:
    """Each flow node's and sequence flow's name (its id when it has none), for sentences beside a drawing."""
    d = read_diagram(parse_xml(xml, file), file)
    return {**{k: n.name or k for k, n in d.nodes.items()}, **{k: f.name or k for k, f in d.flows.items()}}


# ---------------------------------------------------------------------- drawing
def _fmt(n: float) -> str:
    return f"{n:.1f}".rstrip("0").rstrip(".")


class _Drawing:
    def __init__(self, tree: etree._ElementTree, diagram: Diagram, marks: Marks, prefix: str) -> None:
        self.tree, self.d, self.marks, self.prefix = tree, diagram, marks, prefix
        root = tree.getroot()
        self.definitions = {el.get("id"): [etree.QName(c).localname for c in el
                                           if isinstance(c.tag, str) and c.tag.endswith("EventDefinition")]
                            for el in root.iter() if isinstance(el.tag, str) and el.get("id")}
        self.interrupting = {el.get("id"): el.get("cancelActivity", "true") != "false"
                             for el in root.iter(f"{{{BPMN}}}boundaryEvent")}
        names = {p.get("id"): (p.get("name") or "").strip() for p in root.iter(f"{{{BPMN}}}participant")}
        self.pools: list[tuple[str, tuple[float, float, float, float]]] = []
        first_plane = next(root.iter(f"{{{BPMNDI}}}BPMNPlane"), None)
        for shape in (first_plane.iter(f"{{{BPMNDI}}}BPMNShape") if first_plane is not None else []):
            ref = shape.get("bpmnElement")
            b = shape.find(f"{{{DC}}}Bounds")
            if ref in names and b is not None:
                try:
                    box = tuple(float(b.get(k) or "") for k in ("x", "y", "width", "height"))
                except ValueError:
                    continue
                if all(math.isfinite(v) for v in box):
                    self.pools.append((names[ref], box))  # type: ignore[arg-type]

    # only the first plane is drawn: a collapsed subprocess's inside is its own plane, not on the page
    def _nodes(self) -> list[Node]:
        return [n for n in self.d.drawn_nodes() if n.shape is not None and n.shape.plane == 0]

    def _extent(self) -> tuple[float, float, float, float]:
        xs: list[float] = []
        ys: list[float] = []

        def add(box: tuple[float, float, float, float] | None) -> None:
            if box is not None:
                xs.extend((box[0], box[0] + box[2]))
                ys.extend((box[1], box[1] + box[3]))

        for _, box in self.pools:
            add(box)
        for lane in self.d.lanes:
            if lane.shape is not None and lane.shape.plane == 0:
                add(lane.shape.bounds)
        for n in self._nodes():
            add(n.shape.bounds if n.shape else None)
            add(n.label())
        for f in self.d.drawn_flows():
            if f.plane == 0:
                xs.extend(p[0] for p in f.points)
                ys.extend(p[1] for p in f.points)
                add(f.label())
        if not xs:
            return 0, 0, 200, 60
        return min(xs) - MARGIN, min(ys) - MARGIN, max(xs) - min(xs) + 2 * MARGIN, max(ys) - min(ys) + 2 * MARGIN

    def svg(self, title: str) -> str:
        x, y, w, h = self._extent()
        root = etree.Element(f"{{{SVG}}}svg", nsmap={None: SVG})
        root.set("viewBox", " ".join(_fmt(v) for v in (x, y, w, h)))
        root.set("width", _fmt(w))
        root.set("height", _fmt(h))
        root.set("role", "img")
        root.set("class", "app-diagram-svg")
        root.set("font-family", FONT)
        etree.SubElement(root, f"{{{SVG}}}title").text = title or "Process diagram"
        defs = etree.SubElement(root, f"{{{SVG}}}defs")
        for name, colour in (("arrow", INK), ("arrow-done", DONE)):
            m = etree.SubElement(defs, f"{{{SVG}}}marker", id=f"{self.prefix}-{name}", viewBox="0 0 10 10",
                                 refX="10", refY="5",
                                 markerWidth="7" if name == "arrow" else "4",
                                 markerHeight="7" if name == "arrow" else "4",
                                 orient="auto", markerUnits="strokeWidth")
            etree.SubElement(m, f"{{{SVG}}}path", d="M 0 0 L 10 5 L 0 10 z", fill=colour)
        if not self.d.has_di:
            _text(root, x + 10, y + 30, "This diagram has no drawing in its file.", 12)
        for name, box in self.pools:
            self._band(root, name, box, "pool")
        for lane in self.d.lanes:
            if lane.shape is not None and lane.shape.plane == 0:
                self._band(root, lane.name, lane.shape.bounds, "lane")
        nodes = self._nodes()
        for n in nodes:  # expanded subprocesses first: what is inside them is drawn over them
            if n.tag in SUBPROCESSES and n.shape is not None and n.shape.expanded is not False:
                self._node(root, n)
        for f in self.d.drawn_flows():
            if f.plane == 0:
                self._flow(root, f)
        for n in nodes:
            if not (n.tag in SUBPROCESSES and n.shape is not None and n.shape.expanded is not False):
                self._node(root, n)
        return etree.tostring(root, encoding="unicode")

    # ------------------------------------------------------------------ pieces
    def _band(self, parent: etree._Element, name: str, box: tuple[float, float, float, float], kind: str) -> None:
        x, y, w, h = box
        g = etree.SubElement(parent, f"{{{SVG}}}g", {"class": kind})
        etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(x), y=_fmt(y), width=_fmt(w), height=_fmt(h),
                         fill="none", stroke=INK, **{"stroke-width": "1.5"})
        if kind == "pool":
            etree.SubElement(g, f"{{{SVG}}}line", x1=_fmt(x + 30), y1=_fmt(y), x2=_fmt(x + 30), y2=_fmt(y + h),
                             stroke=INK, **{"stroke-width": "1.5"})
        if name:
            band = 30
            cx, cy = x + band / 2, y + h / 2
            lines = layout(name, max(h - 10, 20), TASK_FONT)
            t = _lines(g, cx, cy, [s for s, _ in lines], TASK_FONT)
            t.set("transform", f"rotate(-90 {_fmt(cx)} {_fmt(cy)})")

    def _state(self, element_id: str) -> str | None:
        if element_id in self.marks.current:
            return "current"
        if element_id in self.marks.done:
            return "done"
        return None

    def _node(self, parent: etree._Element, n: Node) -> None:
        assert n.shape is not None
        x, y, w, h = n.shape.bounds
        state = self._state(n.id)
        stroke = {"done": DONE, "current": CURRENT}.get(state or "", INK)
        fill = {"done": DONE_FILL, "current": CURRENT_FILL}.get(state or "", "#ffffff")
        g = etree.SubElement(parent, f"{{{SVG}}}g", {"class": f"element {n.tag}", "data-element-id": n.id})
        if state:
            g.set("data-state", state)
        label = n.name or n.id
        words = {"done": "done", "current": "where the case stands"}
        etree.SubElement(g, f"{{{SVG}}}title").text = f"{label} ({words[state]})" if state else label
        sw = 4.0 if state else (1.5 if n.tag != "endEvent" else 4.0)
        if state and n.tag == "endEvent":
            sw = 6.0
        common = {"stroke": stroke, "fill": fill, "stroke-width": _fmt(sw)}
        if n.tag in EVENTS:
            cx, cy, r = x + w / 2, y + h / 2, min(w, h) / 2
            circle = etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(cx), cy=_fmt(cy), r=_fmt(r), **common)
            if n.tag == "boundaryEvent" and not self.interrupting.get(n.id, True):
                circle.set("stroke-dasharray", "4 2")
            if n.tag in ("intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent"):
                etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(cx), cy=_fmt(cy), r=_fmt(max(r - 3, 1)),
                                 fill="none", stroke=stroke, **{"stroke-width": "1.5"})
            self._event_marker(g, n, cx, cy, r, stroke)
        elif n.tag in GATEWAYS:
            cx, cy = x + w / 2, y + h / 2
            pts = [(cx, y), (x + w, cy), (cx, y + h), (x, cy)]
            etree.SubElement(g, f"{{{SVG}}}polygon", points=" ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in pts),
                             **common)
            self._gateway_marker(g, n.tag, cx, cy, min(w, h), stroke)
        else:
            etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(x), y=_fmt(y), width=_fmt(w), height=_fmt(h), rx="10",
                             ry="10", **common)
            if n.tag == "callActivity":
                etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(x + 3), y=_fmt(y + 3), width=_fmt(max(w - 6, 1)),
                                 height=_fmt(max(h - 6, 1)), rx="8", ry="8", fill="none", stroke=stroke,
                                 **{"stroke-width": "1"})
            if n.tag in SUBPROCESSES and n.shape.expanded is not False:
                if n.name:
                    _text(g, x + 10, y + 18, n.name, TASK_FONT, anchor="start")
            else:
                if n.name:
                    lines = [s for s, _ in layout(n.name, max(w - 14, 10), TASK_FONT)]
                    _lines(g, x + w / 2, y + h / 2, lines, TASK_FONT)
                _task_marker(g, n.tag, x, y, w, h, stroke)
        if state == "done":
            _tick(g, x + w, y)
        elif state == "current":
            pad = 5
            ring = {"fill": "none", "stroke": CURRENT, "stroke-width": "2", "stroke-dasharray": "6 3"}
            if n.tag in EVENTS:
                etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(x + w / 2), cy=_fmt(y + h / 2),
                                 r=_fmt(min(w, h) / 2 + pad), **ring)
            else:
                etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(x - pad), y=_fmt(y - pad), width=_fmt(w + 2 * pad),
                                 height=_fmt(h + 2 * pad), rx="12", ry="12", **ring)
        box = n.label()
        if box is not None and n.tag not in ACTIVITIES:
            lx, ly, lw, _ = box
            lines = [s for s, _ in layout(n.name, 90, LABEL_FONT)]
            _lines(g, lx + lw / 2, ly + len(lines) * LABEL_FONT * LINE_HEIGHT / 2, lines, LABEL_FONT)

    def _event_marker(self, g: etree._Element, n: Node, cx: float, cy: float, r: float, stroke: str) -> None:
        kinds = self.definitions.get(n.id) or []
        if "timerEventDefinition" in kinds:  # a clock face: circle, hour ticks, two hands
            rr = r * 0.55
            etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(cx), cy=_fmt(cy), r=_fmt(rr), fill="#ffffff",
                             stroke=stroke, **{"stroke-width": "1.5", "class": "timer"})
            for i in range(12):
                a = i * math.pi / 6
                etree.SubElement(g, f"{{{SVG}}}line", x1=_fmt(cx + rr * 0.8 * math.cos(a)),
                                 y1=_fmt(cy + rr * 0.8 * math.sin(a)), x2=_fmt(cx + rr * math.cos(a)),
                                 y2=_fmt(cy + rr * math.sin(a)), stroke=stroke, **{"stroke-width": "1"})
            etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(cx)} {_fmt(cy - rr * 0.7)} L {_fmt(cx)} {_fmt(cy)} "
                             f"L {_fmt(cx + rr * 0.5)} {_fmt(cy)}", fill="none", stroke=stroke,
                             **{"stroke-width": "1.5"})
        elif "errorEventDefinition" in kinds:
            s = r * 0.5
            etree.SubElement(g, f"{{{SVG}}}path", fill="none", stroke=stroke, **{"stroke-width": "1.5"},
                             d=f"M {_fmt(cx - s)} {_fmt(cy + s)} L {_fmt(cx - s / 3)} {_fmt(cy - s)} "
                               f"L {_fmt(cx + s / 3)} {_fmt(cy + s / 3)} L {_fmt(cx + s)} {_fmt(cy - s)}")
        elif "messageEventDefinition" in kinds:
            s = r * 0.5
            etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(cx - s), y=_fmt(cy - s * 0.7), width=_fmt(2 * s),
                             height=_fmt(1.4 * s), fill="none", stroke=stroke, **{"stroke-width": "1.5"})
            etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(cx - s)} {_fmt(cy - s * 0.7)} L {_fmt(cx)} {_fmt(cy)} "
                             f"L {_fmt(cx + s)} {_fmt(cy - s * 0.7)}", fill="none", stroke=stroke,
                             **{"stroke-width": "1.5"})

    @staticmethod
    def _gateway_marker(g: etree._Element, tag: str, cx: float, cy: float, size: float, stroke: str) -> None:
        s = size * 0.22
        attrs = {"stroke": stroke, "stroke-width": "4", "stroke-linecap": "round", "fill": "none"}
        if tag == "exclusiveGateway":
            etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(cx - s)} {_fmt(cy - s)} L {_fmt(cx + s)} "
                             f"{_fmt(cy + s)} M {_fmt(cx + s)} {_fmt(cy - s)} L {_fmt(cx - s)} {_fmt(cy + s)}",
                             **attrs)
        elif tag == "parallelGateway":
            etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(cx)} {_fmt(cy - s * 1.3)} L {_fmt(cx)} "
                             f"{_fmt(cy + s * 1.3)} M {_fmt(cx - s * 1.3)} {_fmt(cy)} L {_fmt(cx + s * 1.3)} "
                             f"{_fmt(cy)}", **attrs)
        elif tag == "inclusiveGateway":
            etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(cx), cy=_fmt(cy), r=_fmt(s * 1.2), **attrs)
        elif tag == "eventBasedGateway":
            etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(cx), cy=_fmt(cy), r=_fmt(s * 1.2), stroke=stroke,
                             fill="none", **{"stroke-width": "1.5"})

    def _flow(self, parent: etree._Element, f) -> None:  # noqa: ANN001 - engine.lint.diagram.Flow
        taken = f.id in self.marks.flows
        g = etree.SubElement(parent, f"{{{SVG}}}g", {"class": "flow", "data-element-id": f.id})
        if taken:
            g.set("data-state", "taken")
        name = f.name or f.id
        etree.SubElement(g, f"{{{SVG}}}title").text = f"{name} (taken)" if taken else name
        etree.SubElement(g, f"{{{SVG}}}polyline", points=" ".join(f"{_fmt(a)},{_fmt(b)}" for a, b in f.points),
                         fill="none", stroke=DONE if taken else INK,
                         **{"stroke-width": "4.5" if taken else "1.5", "stroke-linejoin": "round",
                            "marker-end": f"url(#{self.prefix}-arrow{'-done' if taken else ''})"})
        box = f.label()
        if box is not None:
            lx, ly, lw, _ = box
            lines = [s for s, _ in layout(f.name, 90, LABEL_FONT)]
            t = _lines(g, lx + lw / 2, ly + len(lines) * LABEL_FONT * LINE_HEIGHT / 2, lines, LABEL_FONT)
            if taken:
                t.set("font-weight", "bold")


def _task_marker(g: etree._Element, tag: str, x: float, y: float, w: float, h: float, stroke: str) -> None:
    """The small sign of what kind of task it is, top left as in bpmn-js (a collapsed subprocess: + at the
    bottom), so a reader can tell a person's task from an automatic step."""
    thin = {"fill": "none", "stroke": stroke, "stroke-width": "1", "class": f"marker-{tag}"}
    ox, oy = x + 8, y + 6
    if tag == "userTask":  # a head and shoulders
        etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(ox + 6), cy=_fmt(oy + 4), r="3.5", **thin)
        etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(ox)} {_fmt(oy + 15)} Q {_fmt(ox)} {_fmt(oy + 8)} "
                         f"{_fmt(ox + 6)} {_fmt(oy + 8)} Q {_fmt(ox + 12)} {_fmt(oy + 8)} {_fmt(ox + 12)} "
                         f"{_fmt(oy + 15)} Z", **thin)
    elif tag == "serviceTask":  # a cog: a ring with eight teeth
        cx, cy = ox + 6, oy + 7
        etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(cx), cy=_fmt(cy), r="4.5", **thin)
        etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(cx), cy=_fmt(cy), r="1.8", **thin)
        teeth = " ".join(f"M {_fmt(cx + 4.5 * math.cos(a))} {_fmt(cy + 4.5 * math.sin(a))} "
                         f"L {_fmt(cx + 6.5 * math.cos(a))} {_fmt(cy + 6.5 * math.sin(a))}"
                         for a in (i * math.pi / 4 for i in range(8)))
        etree.SubElement(g, f"{{{SVG}}}path", d=teeth, **{**thin, "stroke-width": "2"})
    elif tag == "businessRuleTask":  # a table with a header row and a column
        etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(ox), y=_fmt(oy + 1), width="14", height="11", **thin)
        etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(ox)} {_fmt(oy + 4.5)} L {_fmt(ox + 14)} {_fmt(oy + 4.5)} "
                         f"M {_fmt(ox + 4.5)} {_fmt(oy + 4.5)} L {_fmt(ox + 4.5)} {_fmt(oy + 12)}", **thin)
    elif tag == "scriptTask":  # a page with lines of script
        etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(ox), y=_fmt(oy), width="11", height="14", **thin)
        etree.SubElement(g, f"{{{SVG}}}path", d=" ".join(f"M {_fmt(ox + 2)} {_fmt(oy + k)} L {_fmt(ox + 9)} "
                                                      f"{_fmt(oy + k)}" for k in (4, 7, 10)), **thin)
    elif tag in ("sendTask", "receiveTask"):  # an envelope, filled when it is sent
        fill = stroke if tag == "sendTask" else "none"
        etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(ox), y=_fmt(oy + 2), width="15", height="10",
                         **{**thin, "fill": fill})
        etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(ox)} {_fmt(oy + 2)} L {_fmt(ox + 7.5)} {_fmt(oy + 8)} "
                         f"L {_fmt(ox + 15)} {_fmt(oy + 2)}", **{**thin, "stroke": "#ffffff" if fill != "none"
                                                                 else stroke})
    elif tag in SUBPROCESSES or tag == "callActivity":  # collapsed: a boxed + at the bottom
        bx, by = x + w / 2 - 7, y + h - 16
        etree.SubElement(g, f"{{{SVG}}}rect", x=_fmt(bx), y=_fmt(by), width="14", height="14", **thin)
        etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(bx + 3)} {_fmt(by + 7)} L {_fmt(bx + 11)} {_fmt(by + 7)} "
                         f"M {_fmt(bx + 7)} {_fmt(by + 3)} L {_fmt(bx + 7)} {_fmt(by + 11)}", **thin)


def _text(parent: etree._Element, x: float, y: float, text: str, size: float, anchor: str = "middle"
          ) -> etree._Element:
    t = etree.SubElement(parent, f"{{{SVG}}}text", x=_fmt(x), y=_fmt(y), fill=INK,
                         **{"font-size": _fmt(size), "text-anchor": anchor})
    t.text = text
    return t


def _lines(parent: etree._Element, cx: float, cy: float, lines: list[str], size: float) -> etree._Element:
    """Lines of text centred on (cx, cy), one <tspan> each."""
    step = size * LINE_HEIGHT
    top = cy - step * len(lines) / 2 + size * 0.9
    t = etree.SubElement(parent, f"{{{SVG}}}text", fill=INK, **{"font-size": _fmt(size), "text-anchor": "middle"})
    for i, line in enumerate(lines):
        span = etree.SubElement(t, f"{{{SVG}}}tspan", x=_fmt(cx), y=_fmt(top + i * step))
        span.text = line
    return t


def _tick(g: etree._Element, right: float, top: float) -> None:
    """A white tick in a green disc on the shape's top-right corner: 'done' without relying on colour."""
    etree.SubElement(g, f"{{{SVG}}}circle", cx=_fmt(right), cy=_fmt(top), r="9", fill=DONE, stroke="#ffffff",
                     **{"stroke-width": "1.5", "class": "tick"})
    etree.SubElement(g, f"{{{SVG}}}path", d=f"M {_fmt(right - 4.5)} {_fmt(top)} L {_fmt(right - 1)} "
                     f"{_fmt(top + 3.5)} L {_fmt(right + 4.5)} {_fmt(top - 3.5)}", fill="none", stroke="#ffffff",
                     **{"stroke-width": "2.2", "stroke-linecap": "round", "stroke-linejoin": "round"})
