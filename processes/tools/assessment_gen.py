"""Generate the assessment-to-review diagrams and their forms.

    .venv/bin/python processes/tools/assessment_gen.py            # write the files
    .venv/bin/python processes/tools/assessment_gen.py --check    # exit 1 if a file differs or a drawing
                                                                  # has a flow through a shape or a label
                                                                  # on another element

writes processes/{needs_assessment,carers_assessment,personal_budget,support_plan,review,
direct_payment_review}.bpmn (Camunda dialect, with diagram interchange laid out left to right
in lanes, so they open in Camunda Modeler / bpmn-js) and the JSON Schemas of their forms in
forms/. The .bpmn and .schema.json files are what gets committed and deployed; this script
only saves drawing coordinates by hand. Edit a diagram here, re-run, and review the diff.

Outcome codes, wellbeing areas and RAS domains are read from handlers.eligibility and
processes/config/ras.json, so the forms ask exactly what the handlers accept. The carer's
optional Client Level Data fields (NHS number, date of birth, gender, ethnicity, accommodation
and employment status) reuse the contact form's person field definitions (forms/contact.schema.json,
checked against handlers.cld.PERSON_CODE_LISTS).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from handlers.cld import (  # noqa: E402
    DELIVERY_BY_DP_ARRANGEMENT,
    DELIVERY_BY_MONEY_MANAGEMENT,
    PERSON_CODE_LISTS,
    UNPLANNED_REVIEW_REASONS,
)
from handlers.eligibility import (  # noqa: E402
    ADULT_OUTCOMES,
    ADULT_WAYS,
    CARER_OUTCOMES,
    CARER_WAYS,
    WELLBEING_AREAS,
)

PROCESSES = ROOT / "processes"
FORMS = ROOT / "forms"
CARER_SUPPORT_LEVELS = list(json.loads((PROCESSES / "config" / "ras.json").read_text(encoding="utf-8"))
                            ["carer_support_allocation"]["levels"])

# ---------------------------------------------------------------- layout constants
COL_W = 160  # distance between columns
X0 = 230  # x of column 0's left edge
ROW_H = 130  # distance between rows in a lane
LANE_PAD = 75  # centre of row 0 below a lane's top
POOL_X = 150
LANE_X = 180  # pool label band is 30 wide
SIZES = {"task": (100, 80), "event": (36, 36), "gateway": (50, 50)}

SW = ("lane_social_work", "Social Work and OT")
TM = ("lane_team_manager", "Team Manager")
FIN = ("lane_finance", "Finance")


class Node:
    def __init__(self, kind: str, tag: str, id: str, name: str, lane: str | None, col: float, row: int,
                 attrs: dict[str, str] | None = None, body: str = "") -> None:
        self.kind, self.tag, self.id, self.name, self.lane = kind, tag, id, name, lane
        self.col, self.row, self.attrs, self.body = col, row, attrs or {}, body
        self.incoming: list[str] = []
        self.outgoing: list[str] = []
        self.attached: Node | None = None
        self.bounds: tuple[float, float, float, float] = (0, 0, 0, 0)
        #: where an event's or gateway's name is drawn: below, above, right, left, or (dx, dy) of its
        #: top-left corner from the element's centre
        self.label_at: str | tuple[float, float] = "below"

    @property
    def cx(self) -> float:
        return self.bounds[0] + self.bounds[2] / 2

    @property
    def cy(self) -> float:
        return self.bounds[1] + self.bounds[3] / 2

    def label_box(self) -> tuple[float, float, float, float] | None:
        """The external label's bounds (events and gateways); tasks carry their name inside."""
        if self.kind not in ("event", "gateway") or not self.name:
            return None
        w, h = _label_size(self.name, 90)
        x, y, bw, bh = self.bounds
        at = self.label_at
        if isinstance(at, tuple):
            return (self.cx + at[0], self.cy + at[1], w, h)
        if at == "below":
            return (self.cx - w / 2, y + bh + 5, w, h)
        if at == "above":
            return (self.cx - w / 2, y - 5 - h, w, h)
        if at == "right":
            return (x + bw + 5, self.cy - h / 2 if self.attached is None else y + bh - 6, w, h)
        if at == "left":
            return (x - 5 - w, self.cy - h / 2, w, h)
        raise ValueError(f"{self.id}: unknown label position {at!r}")


def _label_size(text: str, max_w: float) -> tuple[float, float]:
    """A generous estimate of an 11px label's box: about 6px a character, wrapped at max_w."""
    width = 6.0 * len(text) + 6
    if width <= max_w:
        return (max(width, 24), 15)
    lines = -(-width // (max_w - 6))
    return (max_w, 14 * lines + 1)


class Flow:
    def __init__(self, id: str, src: str, tgt: str, name: str | None, cond: str | None,
                 via: list[tuple[float, float]] | None, label_at: tuple[float, float] | None) -> None:
        self.id, self.src, self.tgt, self.name, self.cond = id, src, tgt, name, cond
        #: explicit bend points as (column, y offset from the source lane's row 0) — see Diagram.point
        self.via = via
        self.label_at = label_at
        self.points: list[tuple[float, float]] = []
        self.label: tuple[float, float, float, float] | None = None


class Diagram:
    def __init__(self, pid: str, name: str, lanes: list[tuple[str, str]], doc: str = "") -> None:
        self.pid, self.name, self.lanes, self.doc = pid, name, lanes, doc
        self.nodes: dict[str, Node] = {}
        self.flows: list[Flow] = []
        self.defaults: dict[str, str] = {}
        self.lane_box: dict[str, tuple[float, float, float]] = {}

    # ------------------------------------------------------------ elements
    def _add(self, node: Node) -> Node:
        assert node.id not in self.nodes, node.id
        self.nodes[node.id] = node
        return node

    def start(self, id: str, name: str, lane: tuple[str, str], col: float, row: int = 0) -> Node:
        return self._add(Node("event", "startEvent", id, name, lane[0], col, row))

    def end(self, id: str, name: str, lane: tuple[str, str], col: float, row: int = 0) -> Node:
        return self._add(Node("event", "endEvent", id, name, lane[0], col, row))

    def user(self, id: str, name: str, lane: tuple[str, str], col: float, form: str, groups: str,
             row: int = 0, doc: str = "") -> Node:
        body = f"<bpmn:documentation>{escape(doc)}</bpmn:documentation>" if doc else ""
        return self._add(Node("task", "userTask", id, name, lane[0], col, row,
                              {"camunda:formKey": form, "camunda:candidateGroups": groups}, body))

    def service(self, id: str, name: str, lane: tuple[str, str], col: float, topic: str, result: str | None,
                params: dict[str, str] | None = None, row: int = 0) -> Node:
        attrs = {"camunda:type": "external", "camunda:topic": topic}
        if result:
            attrs["camunda:resultVariable"] = result
        body = ""
        if params:
            inner = "".join(f'<camunda:inputParameter name="{k}">{escape(v)}</camunda:inputParameter>'
                            for k, v in params.items())
            body = ("<bpmn:extensionElements><camunda:inputOutput>"
                    f"{inner}</camunda:inputOutput></bpmn:extensionElements>")
        return self._add(Node("task", "serviceTask", id, name, lane[0], col, row, attrs, body))

    def script(self, id: str, name: str, lane: tuple[str, str], col: float, script: str, row: int = 0) -> Node:
        body = f"<bpmn:script>{escape(script.strip())}</bpmn:script>"
        return self._add(Node("task", "scriptTask", id, name, lane[0], col, row, {"scriptFormat": "python"}, body))

    def gateway(self, id: str, name: str, lane: tuple[str, str], col: float, row: int = 0,
                label_at: str | tuple[float, float] = "below") -> Node:
        node = self._add(Node("gateway", "exclusiveGateway", id, name, lane[0], col, row))
        node.label_at = label_at
        return node

    def timer(self, id: str, name: str, lane: tuple[str, str], col: float, kind: str, expr: str,
              row: int = 0, label_at: str | tuple[float, float] = "below") -> Node:
        node = self._add(Node("event", "intermediateCatchEvent", id, name, lane[0], col, row,
                              body=_timer_def(id, kind, expr)))
        node.label_at = label_at
        return node

    def boundary(self, id: str, name: str, attached_to: str, kind: str, expr: str,
                 interrupting: bool = False) -> Node:
        host = self.nodes[attached_to]
        node = self._add(Node("event", "boundaryEvent", id, name, host.lane, host.col, host.row,
                              {"attachedToRef": attached_to, "cancelActivity": "true" if interrupting else "false"},
                              _timer_def(id, kind, expr)))
        node.attached = host
        node.label_at = "right"
        return node

    def flow(self, id: str, src: str, tgt: str, name: str | None = None, cond: str | None = None,
             default: bool = False, via: list[tuple[float, float]] | None = None,
             label_at: tuple[float, float] | None = None) -> None:
        """A sequence flow. `via`: bend points as (column, y) where y is an offset in pixels from the
        centre of the source lane's row 0 (so (3, -62) is near the top of that lane above column 3).
        `label_at`: the name's top-left corner relative to the flow's first point."""
        self.flows.append(Flow(id, src, tgt, name, cond, via, label_at))
        self.nodes[src].outgoing.append(id)
        self.nodes[tgt].incoming.append(id)
        if default:
            self.defaults[src] = id

    # ------------------------------------------------------------ layout
    def _layout(self) -> None:
        rows = {lid: 1 for lid, _ in self.lanes}
        for n in self.nodes.values():
            rows[n.lane] = max(rows[n.lane], n.row + 1)
        y = 80.0
        for lid, _ in self.lanes:
            h = LANE_PAD * 2 + (rows[lid] - 1) * ROW_H
            self.lane_box[lid] = (y, h, 0)
            y += h
        for n in self.nodes.values():
            if n.attached is not None:
                continue
            w, h = SIZES[n.kind]
            cx = X0 + n.col * COL_W + 50
            cy = self.lane_box[n.lane][0] + LANE_PAD + n.row * ROW_H
            n.bounds = (cx - w / 2, cy - h / 2, w, h)
        for n in self.nodes.values():
            if n.attached is not None:
                hx, hy, hw, hh = n.attached.bounds
                siblings = [m for m in self.nodes.values() if m.attached is n.attached]
                i = siblings.index(n)
                n.bounds = (hx + hw - 28 - i * 40, hy + hh - 18, 36, 36)
        for f in self.flows:
            src, tgt = self.nodes[f.src], self.nodes[f.tgt]
            if f.via:
                base = self.lane_box[src.lane][0] + LANE_PAD
                pts = [(X0 + c * COL_W + 50, base + dy) for c, dy in f.via]
                f.points = [_port(src, pts[0]), *pts, _port(tgt, pts[-1])]
            else:
                f.points = self._waypoints(src, tgt)
            if f.name:
                f.label = _flow_label(f)

    def _waypoints(self, src: Node, tgt: Node) -> list[tuple[float, float]]:
        sx, sy, sw, sh = src.bounds
        tx, ty, tw, th = tgt.bounds
        if abs(tgt.cx - src.cx) < 1:  # straight up or down
            if tgt.cy > src.cy:
                return [(src.cx, sy + sh), (tgt.cx, ty)]
            return [(src.cx, sy), (tgt.cx, ty + th)]
        if tgt.cx < src.cx:  # a loop back: leave below, come back under the target
            low = max(sy + sh, ty + th) + 30
            if src.attached is None and tgt.cy < src.cy - 1:  # target above: go over the top instead
                high = min(sy, ty) - 30
                return [(src.cx, sy), (src.cx, high), (tgt.cx, high), (tgt.cx, ty)]
            return [(src.cx, sy + sh), (src.cx, low), (tgt.cx, low), (tgt.cx, ty + th)]
        if src.attached is not None:  # boundary event: down, then across (or straight into the top)
            if abs(tgt.cx - src.cx) < tw / 2:
                return [(src.cx, sy + sh), (src.cx, ty)]
            return [(src.cx, sy + sh), (src.cx, tgt.cy), (tx, tgt.cy)]
        if abs(src.cy - tgt.cy) < 1:
            return [(sx + sw, src.cy), (tx, tgt.cy)]
        if src.kind == "gateway":  # leave from the top or bottom corner, then across
            y0 = sy + sh if tgt.cy > src.cy else sy
            return [(src.cx, y0), (src.cx, tgt.cy), (tx, tgt.cy)]
        if tgt.kind == "gateway":  # come in at the gateway's bottom or top corner
            y1 = ty + th if src.cy > tgt.cy else ty
            return [(sx + sw, src.cy), (tgt.cx, src.cy), (tgt.cx, y1)]
        mid = (sx + sw + tx) / 2
        return [(sx + sw, src.cy), (mid, src.cy), (mid, tgt.cy), (tx, tgt.cy)]

    # ------------------------------------------------------------ checking the drawing
    def problems(self) -> list[str]:
        """Where the drawing is hard to read: a flow through a shape that is not its own end, a label
        on a shape, a flow or another label, an element or label outside its lane."""
        if not self.lane_box:
            self._layout()
        found: list[str] = []
        shapes = {n.id: n.bounds for n in self.nodes.values()}
        labels: dict[str, tuple[float, float, float, float]] = {}
        for n in self.nodes.values():
            box = n.label_box()
            if box:
                labels[f"label of {n.id}"] = box
        for f in self.flows:
            if f.label:
                labels[f"label of {f.id}"] = f.label
        segments = [(f.id, a, b) for f in self.flows for a, b in zip(f.points, f.points[1:], strict=False)]
        for f in self.flows:
            ends = {f.src, f.tgt}
            src = self.nodes[f.src]
            if src.attached is not None:
                ends.add(src.attached.id)
            for a, b in zip(f.points, f.points[1:], strict=False):
                if a[0] != b[0] and a[1] != b[1]:
                    found.append(f"{f.id}: a diagonal segment {a} -> {b}")
                for sid, box in shapes.items():
                    if sid not in ends and _segment_hits(a, b, box):
                        found.append(f"{f.id} crosses {sid}")
        for name, box in labels.items():
            for sid, sbox in shapes.items():
                if _overlap(box, sbox):
                    found.append(f"{name} overlaps {sid}")
            for fid, a, b in segments:
                if _segment_hits(a, b, box, margin=-4):  # at least 4px clear of every line
                    found.append(f"{name} overlaps flow {fid}")
        names = list(labels)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                if _overlap(labels[a], labels[b]):
                    found.append(f"{a} overlaps {b}")
        # everything inside its lane (labels of elements inside their element's lane)
        for n in self.nodes.values():
            top, h, _ = self.lane_box[n.lane]
            for what, box in (("", n.bounds), ("label of ", n.label_box())):
                if box and not (top <= box[1] and box[1] + box[3] <= top + h and box[0] >= LANE_X + 30):
                    found.append(f"{what}{n.id} is not inside its lane")
        return found

    # ------------------------------------------------------------ XML
    def xml(self) -> str:
        self._layout()
        lane_box = self.lane_box
        right = max(n.bounds[0] + n.bounds[2] for n in self.nodes.values()) + 80
        for box in [n.label_box() for n in self.nodes.values()] + [f.label for f in self.flows]:
            if box:
                right = max(right, box[0] + box[2] + 20)
        out = [
            '<?xml version="1.0" encoding="UTF-8"?>',
            "<!-- Generated by processes/tools/assessment_gen.py: edit there and re-run. -->",
            '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"',
            '                  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI"',
            '                  xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"',
            '                  xmlns:di="http://www.omg.org/spec/DD/20100524/DI"',
            '                  xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"',
            '                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"',
            f'                  id="{self.pid}_definitions" targetNamespace="http://carepath.example/processes"',
            '                  exporter="carepath assessment_gen" exporterVersion="1">',
            f'  <bpmn:collaboration id="{self.pid}_collaboration">',
            f'    <bpmn:participant id="{self.pid}_pool" name={quoteattr(self.name)} processRef="{self.pid}" />',
            "  </bpmn:collaboration>",
            f'  <bpmn:process id="{self.pid}" name={quoteattr(self.name)} isExecutable="true">',
        ]
        if self.doc:
            out.append(f"    <bpmn:documentation>{escape(self.doc)}</bpmn:documentation>")
        out.append(f'    <bpmn:laneSet id="{self.pid}_lanes">')
        for lid, lname in self.lanes:
            out.append(f"      <bpmn:lane id={quoteattr(lid)} name={quoteattr(lname)}>")
            for n in self.nodes.values():
                if n.lane == lid:
                    out.append(f"        <bpmn:flowNodeRef>{n.id}</bpmn:flowNodeRef>")
            out.append("      </bpmn:lane>")
        out.append("    </bpmn:laneSet>")
        for n in self.nodes.values():
            attrs = {"id": n.id, "name": n.name, **n.attrs}
            if n.id in self.defaults:
                attrs["default"] = self.defaults[n.id]
            a = " ".join(f"{k}={quoteattr(v)}" for k, v in attrs.items())
            inner = "".join(f"<bpmn:incoming>{f}</bpmn:incoming>" for f in n.incoming)
            inner += "".join(f"<bpmn:outgoing>{f}</bpmn:outgoing>" for f in n.outgoing)
            body = n.body
            # BPMN order: documentation, extensionElements, incoming/outgoing, then definitions/script
            if body.startswith("<bpmn:documentation>") or body.startswith("<bpmn:extensionElements>"):
                content = body + inner
            else:
                content = inner + body
            out.append(f"    <bpmn:{n.tag} {a}>{content}</bpmn:{n.tag}>")
        for f in self.flows:
            a = f'id="{f.id}" sourceRef="{f.src}" targetRef="{f.tgt}"' + (f" name={quoteattr(f.name)}" if f.name
                                                                        else "")
            if f.cond:
                out.append(f'    <bpmn:sequenceFlow {a}><bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
                           f"{escape(f.cond)}</bpmn:conditionExpression></bpmn:sequenceFlow>")
            else:
                out.append(f"    <bpmn:sequenceFlow {a} />")
        out.append("  </bpmn:process>")
        # ---- diagram interchange
        top = min(b[0] for b in lane_box.values())
        bottom = max(b[0] + b[1] for b in lane_box.values())
        out.append(f'  <bpmndi:BPMNDiagram id="{self.pid}_diagram">')
        out.append(f'    <bpmndi:BPMNPlane id="{self.pid}_plane" bpmnElement="{self.pid}_collaboration">')
        out.append(_shape(f"{self.pid}_pool", (POOL_X, top, right - POOL_X, bottom - top), horizontal=True))
        for lid, _ in self.lanes:
            y, h, _ = lane_box[lid]
            out.append(_shape(lid, (LANE_X, y, right - LANE_X, h), horizontal=True))
        for n in self.nodes.values():
            extra = ' isMarkerVisible="true"' if n.kind == "gateway" else ""
            out.append(_shape(n.id, n.bounds, extra=extra, label=n.label_box()))
        for f in self.flows:
            wps = "".join(f'<di:waypoint x="{x:g}" y="{y:g}" />' for x, y in f.points)
            lab = ""
            if f.label:
                lx, ly, lw, lh = f.label
                lab = f'<bpmndi:BPMNLabel><dc:Bounds x="{lx:g}" y="{ly:g}" width="{lw:g}" height="{lh:g}" />' \
                      "</bpmndi:BPMNLabel>"
            out.append(f'      <bpmndi:BPMNEdge id="{f.id}_di" bpmnElement="{f.id}">{wps}{lab}</bpmndi:BPMNEdge>')
        out.append("    </bpmndi:BPMNPlane>")
        out.append("  </bpmndi:BPMNDiagram>")
        out.append("</bpmn:definitions>")
        return "\n".join(out) + "\n"


def _port(node: Node, toward: tuple[float, float]) -> tuple[float, float]:
    """Where a flow leaves or enters `node` on its way to or from `toward` (a point level with or
    straight above/below the node's centre)."""
    x, y, w, h = node.bounds
    if abs(toward[0] - node.cx) < 1:
        return (node.cx, y + h if toward[1] > node.cy else y)
    if abs(toward[1] - node.cy) < 1:
        return (x + w if toward[0] > node.cx else x, node.cy)
    raise ValueError(f"{node.id}: a bend point {toward} is neither level with nor above/below the element")


def _flow_label(f: Flow) -> tuple[float, float, float, float]:
    w, h = _label_size(f.name or "", 110)
    (x0, y0), (x1, y1) = f.points[0], f.points[1]
    if f.label_at is not None:
        return (x0 + f.label_at[0], y0 + f.label_at[1], w, h)
    if y0 == y1:  # across: above the line, just after the start
        return (x0 + 6, y0 - h - 5, w, h) if x1 > x0 else (x0 - 6 - w, y0 - h - 5, w, h)
    return (x0 + 5, y0 + 5, w, h) if y1 > y0 else (x0 + 5, y0 - 5 - h, w, h)


def _overlap(a: tuple[float, float, float, float], b: tuple[float, float, float, float]) -> bool:
    return a[0] < b[0] + b[2] and b[0] < a[0] + a[2] and a[1] < b[1] + b[3] and b[1] < a[1] + a[3]


def _segment_hits(a: tuple[float, float], b: tuple[float, float], box: tuple[float, float, float, float],
                  margin: float = 1) -> bool:
    """Does the axis-parallel segment a-b pass through the box (shrunk by `margin` on each side)?"""
    x, y, w, h = box
    x0, x1 = sorted((a[0], b[0]))
    y0, y1 = sorted((a[1], b[1]))
    return x0 < x + w - margin and x1 > x + margin and y0 < y + h - margin and y1 > y + margin


def _timer_def(id: str, kind: str, expr: str) -> str:
    tag = {"duration": "timeDuration", "date": "timeDate", "cycle": "timeCycle"}[kind]
    return (f'<bpmn:timerEventDefinition id="{id}_def"><bpmn:{tag} xsi:type="bpmn:tFormalExpression">'
            f"{escape(expr)}</bpmn:{tag}></bpmn:timerEventDefinition>")


def _shape(element: str, b: tuple[float, float, float, float], *, horizontal: bool = False, extra: str = "",
           label: tuple[float, float, float, float] | None = None) -> str:
    x, y, w, h = b
    hz = ' isHorizontal="true"' if horizontal else ""
    lab = ""
    if label:  # external labels of events and gateways
        lx, ly, lw, lh = label
        lab = (f'<bpmndi:BPMNLabel><dc:Bounds x="{lx:g}" y="{ly:g}" width="{lw:g}" height="{lh:g}" />'
               "</bpmndi:BPMNLabel>")
    return (f'      <bpmndi:BPMNShape id="{element}_di" bpmnElement="{element}"{hz}{extra}>'
            f'<dc:Bounds x="{x:g}" y="{y:g}" width="{w:g}" height="{h:g}" />{lab}</bpmndi:BPMNShape>')


# ================================================================ the diagrams

LOAD_SETTINGS = dict(topic="local_settings", result="settings")


def needs_assessment() -> Diagram:
    d = Diagram("needs_assessment", "Needs assessment (Care Act s.9)", [SW, TM],
                "Assess an adult's needs against reg 2 of the Eligibility Criteria Regulations 2015, write "
                "the decision with reasons, then start a carer's assessment (s.10) when a carer is present "
                "and the personal budget when the needs are eligible. Start data: person {name, address}, "
                "contact_date (YYYY-MM-DD; today when absent). The local target (assessed within "
                "assessment_target_days of contact, timescales.json) is escalated to the team manager, "
                "not enforced as a stop.")
    d.start("contact", "Assessment requested", SW, 0)
    d.service("load_settings", "Load local timescales", SW, 1, **LOAD_SETTINGS)
    d.script("assessment_deadline", "Work out assessment target date", SW, 2, """
try:
    contact_date = contact_date[:10]
except NameError:  # started without a contact date (e.g. after reablement): count from today
    contact_date = now().date().isoformat()
target = date.fromisoformat(contact_date) + timedelta(days=settings["assessment_target_days"])
assessment_due = target.isoformat() + "T17:00:00Z"
target = None
""")
    d.user("assess_needs", "Assess needs", SW, 3, "needs_assessment", "social_work",
           doc="Record each of the ten outcomes, whether needs arise from an impairment or illness, "
               "the wellbeing judgement with reasons, and whether a carer is present.")
    d.boundary("assessment_overdue_timer", "Assessment target passed", "assess_needs", "date", "assessment_due")
    d.user("assessment_overdue", "Assessment overdue", TM, 4, "assessment_overdue", "team_manager")
    d.end("overdue_handled", "Escalation dealt with", TM, 5)
    d.service("decide_eligibility", "Decide eligibility", SW, 4, "adult_eligibility", "eligibility", {
        "needs_from_impairment": "needs_from_impairment",
        "outcomes": "outcomes",
        "wellbeing_impact": "wellbeing_impact",
    })
    d.service("write_eligibility_letter", "Write eligibility letter", SW, 5, "eligibility_letter",
              "eligibility_letter", {"person": "person", "decision": "eligibility"})
    d.gateway("eligible_gw", "Eligible?", SW, 6, label_at="above")
    d.end("not_eligible", "Not eligible: letter with reasons", SW, 6, row=1)
    d.gateway("carer_gw", "Carer present?", SW, 7, label_at="above")
    d.service("start_carers_assessment", "Start carer's assessment", SW, 8, "start_process",
              "carers_assessment_started", {
        "process_id": '"carers_assessment"',
        "data": '{"person": carer, "cared_for": person["name"], "contact_date": contact_date}',
    }, row=1)
    d.service("start_personal_budget", "Start personal budget", SW, 9, "start_process", "personal_budget_started", {
        "process_id": '"personal_budget"',
        "data": '{"person": person, "carer_present": carer_present, '
                '"eligible_outcomes": eligibility["conditions"]["b"]["outcomes_unable"], '
                '"assessed_at": eligibility["decided_at"]}',
    })
    d.end("eligible_end", "Budget under way", SW, 10)
    d.flow("f_start", "contact", "load_settings")
    d.flow("f_settings", "load_settings", "assessment_deadline")
    d.flow("f_deadline", "assessment_deadline", "assess_needs")
    d.flow("f_overdue", "assessment_overdue_timer", "assessment_overdue")
    d.flow("f_overdue_done", "assessment_overdue", "overdue_handled")
    d.flow("f_assessed", "assess_needs", "decide_eligibility")
    d.flow("f_decided", "decide_eligibility", "write_eligibility_letter")
    d.flow("f_letter", "write_eligibility_letter", "eligible_gw")
    d.flow("f_not_eligible", "eligible_gw", "not_eligible", "no", default=True)
    d.flow("f_eligible", "eligible_gw", "carer_gw", "yes", 'eligibility["eligible"]')
    d.flow("f_carer", "carer_gw", "start_carers_assessment", "yes", "carer_present")
    d.flow("f_no_carer", "carer_gw", "start_personal_budget", "no", default=True)
    d.flow("f_carer_started", "start_carers_assessment", "start_personal_budget", via=[(9, ROW_H)])
    d.flow("f_budget_started", "start_personal_budget", "eligible_end")
    return d


def carers_assessment() -> Diagram:
    d = Diagram("carers_assessment", "Carer's assessment (Care Act s.10)", [SW],
                "Assess a carer's needs against reg 3, keep the decision and the level of support the carer "
                "needs on the case (the personal budget reads it for the carer support allocation) and "
                "write the decision with reasons. Start data: person (the carer: name, relationship, "
                "address; optionally the carer's Client Level Data fields), cared_for (name).")
    d.start("carer_start", "Carer identified", SW, 0)
    d.user("assess_carer", "Assess carer's needs", SW, 1, "carers_assessment", "social_work",
           doc="Record the reg 3 conditions, the wellbeing judgement with reasons and the level of support "
               "the carer needs (it sets the carer support allocation in the personal budget).")
    d.service("decide_carer_eligibility", "Decide carer's eligibility", SW, 2, "carer_eligibility", "eligibility", {
        "needs_from_caring": "needs_from_caring",
        "health_deteriorating_or_at_risk": "health_deteriorating_or_at_risk",
        "outcomes": "outcomes",
        "wellbeing_impact": "wellbeing_impact",
    })
    d.service("keep_carer_decision", "Keep the decision on the case", SW, 3, "update_case", "carer_kept", {
        "data": '{"carer_assessment": {"carer": person["name"], "eligible": eligibility["eligible"], '
                '"support_level": support_level, "decided_at": eligibility["decided_at"]}}',
    })
    d.service("write_carer_letter", "Write carer's eligibility letter", SW, 4, "eligibility_letter",
              "eligibility_letter", {"person": "person", "decision": "eligibility"})
    d.end("carer_end", "Carer told the decision", SW, 5)
    d.flow("f_c1", "carer_start", "assess_carer")
    d.flow("f_c2", "assess_carer", "decide_carer_eligibility")
    d.flow("f_c3", "decide_carer_eligibility", "keep_carer_decision")
    d.flow("f_c5", "keep_carer_decision", "write_carer_letter")
    d.flow("f_c4", "write_carer_letter", "carer_end")
    return d


BUDGET_INPUTS_SCRIPT = """
try:
    level = carer_support_level
except NameError:  # the worker recorded no carer support needs on the scoring form
    level = None
carer = case().get("carer_assessment") or {}
if level:
    carer_support = {"level": level, "source": "worker"}
elif carer.get("eligible") and carer.get("support_level"):
    carer_support = {"level": carer["support_level"], "source": "carers_assessment"}
else:
    carer_support = None
try:
    impact_assessment_needed = bool(impact_assessment_needed)
except NameError:
    impact_assessment_needed = False
uplifts = None
level = None
carer = None
"""


def personal_budget() -> Diagram:
    d = Diagram("personal_budget", "Personal budget (RAS)", [SW, TM, FIN],
                "Score eligible needs with the Resource Allocation System (processes/config/ras.json), add "
                "the carer support allocation (from an eligible carer's assessment kept on the case, or the "
                "level the worker records) and, through the impact assessment, costed uplifts for needs the "
                "RAS does not capture; budgets above approval_threshold (after uplifts) are approved by a "
                "team manager; then the budget letter and the support plan. Start data: person, "
                "carer_present.")
    d.start("budget_start", "Needs eligible", SW, 0)
    d.user("score_needs", "Score needs (RAS)", SW, 1, "ras_scoring", "social_work")
    d.script("budget_inputs", "Find the carer support allocation", FIN, 2, BUDGET_INPUTS_SCRIPT)
    d.service("calculate_budget", "Calculate personal budget", FIN, 3, "personal_budget", "budget",
              {"needs": "needs", "carer_support": "carer_support", "uplifts": "uplifts"})
    d.gateway("impact_gw", "Costs the RAS does not capture?", FIN, 4)
    d.user("impact_assessment", "Impact assessment: cost the uplifts", SW, 5, "impact_assessment", "social_work",
           doc="Record each need or cost the RAS does not capture with its annual amount and the reason; "
               "the budget is recalculated with them.")
    d.service("recalculate_budget", "Recalculate with the uplifts", FIN, 6, "personal_budget", "budget",
              {"needs": "needs", "carer_support": "carer_support", "uplifts": "uplifts"}, row=1)
    d.gateway("approval_gw", "Needs approval?", FIN, 7, label_at=(-100, 28))
    d.user("approve_budget", "Approve budget", TM, 8, "budget_approval", "team_manager")
    d.gateway("approved_gw", "Approved?", TM, 9, label_at="right")
    d.service("write_budget_letter", "Write budget letter", FIN, 10, "budget_letter", "budget_letter",
              {"person": "person", "budget": "budget",
               # only the approval path defines `approved`; the letter is reached there only once approved
               "approved": 'approved if budget["needs_approval"] else None'})
    d.service("start_support_plan", "Start support plan", SW, 11, "start_process", "support_plan_started", {
        "process_id": '"support_plan"',
        "data": '{"person": person, "budget": {"final_amount": budget["final_amount"], '
                '"weekly_equivalent": budget["weekly_equivalent"], "total_points": budget["total_points"], '
                '"calculated_at": budget["calculated_at"]}}',
    })
    d.end("budget_end", "Plan under way", SW, 12)
    d.flow("f_b1", "budget_start", "score_needs")
    d.flow("f_b2", "score_needs", "budget_inputs")
    d.flow("f_b2b", "budget_inputs", "calculate_budget")
    d.flow("f_b3", "calculate_budget", "impact_gw")
    d.flow("f_impact", "impact_gw", "impact_assessment", "yes: impact assessment", "impact_assessment_needed")
    d.flow("f_no_impact", "impact_gw", "approval_gw", "no", default=True)
    d.flow("f_b_uplifts", "impact_assessment", "recalculate_budget")
    d.flow("f_b_recalculated", "recalculate_budget", "approval_gw")
    d.flow("f_needs_approval", "approval_gw", "approve_budget", "above threshold", 'budget["needs_approval"]')
    d.flow("f_no_approval", "approval_gw", "write_budget_letter", "within threshold", default=True)
    d.flow("f_b4", "approve_budget", "approved_gw")
    d.flow("f_approved", "approved_gw", "write_budget_letter", "approved", "approved", via=[(9, 45), (10, 45)],
           label_at=(8, 26))
    d.flow("f_rejected", "approved_gw", "score_needs", "not approved: score again", default=True,
           via=[(9, -2 * LANE_PAD - 50), (1, -2 * LANE_PAD - 50)])
    d.flow("f_b5", "write_budget_letter", "start_support_plan")
    d.flow("f_b6", "start_support_plan", "budget_end")
    return d


# Whole days, weeks, months or years after a date, months counted on the calendar (31 January + 1 month
# is 28 or 29 February), as the engine counts duration timers. Used by the plan and review scripts.
ADD_PERIOD = '''
def add_period(start, period, setting):
    text = str(period)
    if len(text) < 3 or text[0] != "P" or not text[1:-1].isdigit() or text[-1] not in "DWMY":
        raise ValueError("%s must be whole days, weeks, months or years (e.g. P42D, P6W, P12M, P1Y), got %r"
                         % (setting, period))
    n = int(text[1:-1])
    if text[-1] == "D":
        return start + timedelta(days=n)
    if text[-1] == "W":
        return start + timedelta(days=7 * n)
    months = start.month - 1 + (12 * n if text[-1] == "Y" else n)
    year = start.year + months // 12
    month = months % 12 + 1
    following = date(year + 1, 1, 1) if month == 12 else date(year, month + 1, 1)
    return start.replace(year=year, month=month, day=min(start.day, (following - timedelta(days=1)).day))
'''

PLAN_SCRIPT = ADD_PERIOD + """
signed_off_at = now()
first_review_date = add_period(signed_off_at, settings["first_review_after_sign_off"],
                               "first_review_after_sign_off").date().isoformat()
plan = {
    "coordinating_worker": coordinating_worker,
    "outcomes": outcomes,
    "money_management": money_management,
    "may_change_without_contacting": may_change_without_contacting,
    "review_frequency_months": review_frequency_months,
    "personal_budget": {"final_amount": budget["final_amount"], "weekly_amount": budget["weekly_equivalent"]},
    "review": {"first_review": first_review_date, "frequency_months": review_frequency_months},
    "signed_off_at": signed_off_at.isoformat(),
}
signed_off_at = None
"""


def support_plan() -> Diagram:
    d = Diagram("support_plan", "Support plan", [SW, TM],
                "One plan per person with a named co-ordinating worker: how each outcome is met, how the "
                "money is managed, what the person may change without contacting the council and how "
                "often it is reviewed. Sign-off keeps the plan on the case (case data current_plan, "
                "current_budget_amount: requested reviews read it), starts the review cycle and, for a "
                "direct payment, the direct payment review cycle. Start data: person, budget.")
    d.start("plan_start", "Budget agreed", SW, 0)
    d.service("plan_settings", "Load local timescales", SW, 1, **LOAD_SETTINGS)
    d.user("write_plan", "Write support plan", SW, 2, "support_plan", "social_work")
    d.user("sign_off_plan", "Sign off plan", TM, 3, "plan_sign_off", "team_manager")
    d.gateway("signed_off_gw", "Signed off?", TM, 4, label_at="right")
    d.script("assemble_plan", "Put the plan together", SW, 5, PLAN_SCRIPT)
    d.service("keep_plan", "Keep the plan on the case", SW, 6, "update_case", "plan_kept", {
        "data": '{"current_plan": {"signed_off_at": plan["signed_off_at"], "person": person, "plan": plan, '
                '"budget_amount": budget["final_amount"]}, "current_budget_amount": budget["final_amount"]}',
    })
    d.service("write_plan_letter", "Write support plan letter", SW, 7, "support_plan_letter", "plan_letter",
              {"person": "person", "plan": "plan"})
    d.service("start_review", "Start review cycle", SW, 8, "start_process", "review_started", {
        "process_id": '"review"',
        "data": '{"first": True, "review_reason": "Planned", "person": person, "plan": plan, '
                '"budget_amount": budget["final_amount"], "review_frequency_months": review_frequency_months}',
    })
    d.gateway("dp_gw", "Direct payment?", SW, 9, label_at="above")
    d.service("start_dp_review", "Start direct payment reviews", SW, 10, "start_process", "dp_review_started", {
        "process_id": '"direct_payment_review"',
        "data": '{"first": True, "dp_review_trigger": "scheduled", "person": person, '
                '"budget_amount": budget["final_amount"], "plan_signed_off_at": plan["signed_off_at"]}',
    }, row=1)
    d.end("plan_end", "Plan in place", SW, 11)
    d.end("plan_dp_end", "Plan in place, direct payment", SW, 11, row=1)
    d.flow("f_p1", "plan_start", "plan_settings")
    d.flow("f_p2", "plan_settings", "write_plan")
    d.flow("f_p3", "write_plan", "sign_off_plan")
    d.flow("f_p4", "sign_off_plan", "signed_off_gw")
    d.flow("f_signed", "signed_off_gw", "assemble_plan", "signed off", "signed_off")
    d.flow("f_not_signed", "signed_off_gw", "write_plan", "changes needed", default=True,
           via=[(4, 55), (2, 55)], label_at=(-105, 8))
    d.flow("f_p5", "assemble_plan", "keep_plan")
    d.flow("f_p5b", "keep_plan", "write_plan_letter")
    d.flow("f_p6", "write_plan_letter", "start_review")
    d.flow("f_p7", "start_review", "dp_gw")
    d.flow("f_dp", "dp_gw", "start_dp_review", "direct payment", 'money_management == "direct_payment"')
    d.flow("f_no_dp", "dp_gw", "plan_end", "other", default=True)
    d.flow("f_p8", "start_dp_review", "plan_dp_end")
    return d


REVIEW_REASONS = UNPLANNED_REVIEW_REASONS  # the CLD code list
REQUESTED_BY = ("person", "carer", "provider", "worker", "other")

REVIEW_START_SCRIPT = ADD_PERIOD + f"""
UNPLANNED = {list(REVIEW_REASONS)!r}
REQUESTED_BY = {list(REQUESTED_BY)!r}
try:
    review_reason
except NameError:
    raise ValueError("review start data: review_reason is required: 'Planned' or one of " + ", ".join(UNPLANNED))
if review_reason != "Planned" and review_reason not in UNPLANNED:
    raise ValueError("review start data: review_reason must be 'Planned' or one of " + ", ".join(UNPLANNED)
                     + ", got %r" % (review_reason,))
unplanned = review_reason != "Planned"
limit = settings["max_review_interval"]
if len(limit) > 2 and limit[0] == "P" and limit[1:-1].isdigit() and limit[-1] in "MY":
    max_months = int(limit[1:-1]) * (12 if limit[-1] == "Y" else 1)
else:
    raise ValueError("max_review_interval must be whole months or years, e.g. P12M, got %r" % (limit,))
if unplanned:
    try:
        review_requested_by
    except NameError:
        review_requested_by = None
    if review_requested_by not in REQUESTED_BY:
        raise ValueError("review start data: review_requested_by must be one of " + ", ".join(REQUESTED_BY)
                         + " for an unplanned review, got %r" % (review_requested_by,))
    try:
        review_request_note
    except NameError:
        review_request_note = None
    if not isinstance(review_request_note, str) or not review_request_note.strip():
        raise ValueError("review start data: review_request_note must say what was asked for and why")
    current = case().get("current_plan")
    if not current:
        raise ValueError("this case has no signed-off support plan to review")
    person = current["person"]
    plan = current["plan"]
    budget_amount = case().get("current_budget_amount") or current["budget_amount"]
    review_frequency_months = plan["review_frequency_months"]
    first = False
    full_review = False
    review_overdue_at = add_period(now(), settings["unplanned_review_within"], "unplanned_review_within").isoformat()
    current = None
else:
    if first:
        signed = datetime.fromisoformat(plan["signed_off_at"])
        due = add_period(signed, settings["first_review_after_sign_off"], "first_review_after_sign_off")
        latest = add_period(signed, settings["first_review_latest"], "first_review_latest")
        if latest <= due:
            raise ValueError("first_review_latest (%s) must be later than first_review_after_sign_off (%s)"
                             % (settings["first_review_latest"], settings["first_review_after_sign_off"]))
        review_overdue_at = latest.isoformat()
        signed = None
        latest = None
    else:
        due = add_period(now(), "P%dM" % min(review_frequency_months, max_months), "the review frequency")
        review_overdue_at = add_period(due, settings["review_overdue_grace"], "review_overdue_grace").isoformat()
    review_due_at = due.isoformat()
    cycle_started_at = now().isoformat()
    due = None
proposed_new_amount = None
what_changed = ""
"""

REVIEW_CYCLE_SCRIPT = """
current = case().get("current_plan") or {}
plan_current = current.get("signed_off_at") in (None, plan["signed_off_at"])
last_full = case().get("last_full_review_at")
reviewed_since = plan_current and bool(last_full) and last_full > cycle_started_at
budget_amount = case().get("current_budget_amount") or budget_amount
current = None
"""

REVIEW_RESCHEDULE_SCRIPT = ADD_PERIOD + """
due = add_period(datetime.fromisoformat(last_full), "P%dM" % min(review_frequency_months, max_months),
                 "the review frequency")
review_due_at = due.isoformat()
review_overdue_at = add_period(due, settings["review_overdue_grace"], "review_overdue_grace").isoformat()
cycle_started_at = now().isoformat()
first = False
due = None
"""


def review() -> Diagram:
    d = Diagram("review", "Review of the support plan (Care Act s.27)", [SW, TM],
                "One review. Planned (the cycle): the first at first_review_after_sign_off after sign-off, "
                "escalated at first_review_latest (the 6-8 week light-touch review); later ones at the plan's "
                "review frequency, never more than max_review_interval, escalated after review_overdue_grace. "
                "When the review falls due, a newer signed-off plan ends this cycle and a full unplanned "
                "review since it started moves it on. Unplanned (requested): started on the case with "
                "review_reason (one of the CLD unplanned reasons), review_requested_by and "
                "review_request_note; the plan is read from the case; escalated after "
                "unplanned_review_within; it does not start another review. Changed needs lead to a "
                "reassessment; a budget cut without a recorded change is refused. Start data (planned): "
                "first, review_reason 'Planned', person, plan, budget_amount, review_frequency_months.")
    d.start("review_start", "Review cycle or request", SW, 0)
    d.service("review_settings", "Load local timescales", SW, 1, **LOAD_SETTINGS)
    d.script("review_when", "Check the request, work out the dates", SW, 2, REVIEW_START_SCRIPT)
    d.gateway("planned_gw", "Planned?", SW, 3)
    d.timer("wait_for_review", "Review due", SW, 4, "date", "review_due_at", label_at="above")
    d.script("check_cycle", "Check the plan and the last full review", SW, 5, REVIEW_CYCLE_SCRIPT)
    d.gateway("plan_current_gw", "Plan still current?", SW, 6, label_at="above")
    d.gateway("reviewed_since_gw", "Full review since?", SW, 7, label_at="above")
    d.script("reschedule_review", "Count the next review from the last full review", SW, 7,
             REVIEW_RESCHEDULE_SCRIPT, row=1)
    d.end("review_superseded", "Superseded by a newer plan", SW, 6, row=1)
    d.user("review_plan", "Review support plan", SW, 8, "review", "social_work")
    d.boundary("review_overdue_timer", "Review overdue", "review_plan", "date", "review_overdue_at")
    d.user("review_overdue", "Review overdue", TM, 9, "review_overdue", "team_manager")
    d.end("review_overdue_handled", "Escalation dealt with", TM, 10)
    d.gateway("needs_changed_gw", "Needs changed?", SW, 9, label_at="above")
    d.service("start_reassessment", "Start reassessment", SW, 9, "start_process", "reassessment_started", {
        "process_id": '"needs_assessment"',
        "data": '{"person": person, "contact_date": now().date().isoformat(), "reassessment": True, '
                '"reason": what_changed, "previous_budget_amount": budget_amount, "review_reason": review_reason}',
    }, row=3)
    d.end("reassessment_end", "Reassessment under way", SW, 10, row=3)
    d.gateway("amount_gw", "New amount proposed?", SW, 10, label_at="above")
    d.service("check_change", "Check budget change", SW, 11, "check_budget_change", "budget_check", {
        "previous_amount": "budget_amount",
        "new_amount": "proposed_new_amount",
        "change_in_needs_recorded": "needs_changed",
        "reason": "what_changed",
    }, row=1)
    d.gateway("allowed_gw", "Allowed?", SW, 12, row=1, label_at="above")
    d.script("record_new_amount", "Record new amount", SW, 13, 'budget_amount = budget_check["new_amount"]', row=1)
    d.user("reduction_refused", "Reduction refused: reassess or keep the budget", SW, 13,
           "reduction_refused", "social_work", row=2)
    d.gateway("refused_choice_gw", "Record a change?", SW, 14, row=2, label_at="right")
    d.service("record_review", "Keep the review on the case", SW, 14, "update_case", "review_kept", {
        "data": '{"current_budget_amount": budget_amount, "last_review": {"at": now().isoformat(), '
                '"reason": review_reason, "full": (not unplanned) or bool(full_review)}, '
                '"last_full_review_at": now().isoformat() if (not unplanned) or full_review '
                'else case().get("last_full_review_at")}',
    })
    d.gateway("next_gw", "Planned?", SW, 15, label_at="above")
    d.service("start_next_review", "Start next review", SW, 16, "start_process", "next_review_started", {
        "process_id": '"review"',
        "data": '{"first": False, "review_reason": "Planned", "person": person, "plan": plan, '
                '"budget_amount": budget_amount, "review_frequency_months": review_frequency_months}',
    })
    d.end("review_end", "Next review scheduled", SW, 17)
    d.end("requested_review_end", "Requested review done", SW, 15, row=1)
    d.flow("f_r1", "review_start", "review_settings")
    d.flow("f_r2", "review_settings", "review_when")
    d.flow("f_r3", "review_when", "planned_gw")
    d.flow("f_r_planned", "planned_gw", "wait_for_review", "planned", "not unplanned")
    d.flow("f_r_requested", "planned_gw", "review_plan", "requested (unplanned)", default=True,
           via=[(3, -66), (8, -66)], label_at=(8, -35))
    d.flow("f_r4", "wait_for_review", "check_cycle")
    d.flow("f_r4b", "check_cycle", "plan_current_gw")
    d.flow("f_r_current", "plan_current_gw", "reviewed_since_gw", "yes", "plan_current")
    d.flow("f_r_superseded", "plan_current_gw", "review_superseded", "no", default=True)
    d.flow("f_r_due", "reviewed_since_gw", "review_plan", "no", default=True)
    d.flow("f_r_moved", "reviewed_since_gw", "reschedule_review", "yes", "reviewed_since")
    d.flow("f_r_wait_again", "reschedule_review", "wait_for_review", via=[(7, 190), (4, 190)])
    d.flow("f_r_overdue", "review_overdue_timer", "review_overdue")
    d.flow("f_r_overdue_done", "review_overdue", "review_overdue_handled")
    d.flow("f_r5", "review_plan", "needs_changed_gw")
    d.flow("f_changed", "needs_changed_gw", "start_reassessment", "needs changed", "needs_changed")
    d.flow("f_unchanged", "needs_changed_gw", "amount_gw", "no", default=True)
    d.flow("f_r6", "start_reassessment", "reassessment_end")
    d.flow("f_amount", "amount_gw", "check_change", "new amount", "proposed_new_amount is not None")
    d.flow("f_no_amount", "amount_gw", "record_review", "budget unchanged", default=True)
    d.flow("f_r7", "check_change", "allowed_gw")
    d.flow("f_allowed", "allowed_gw", "record_new_amount", "allowed", 'budget_check["allowed"]')
    d.flow("f_refused", "allowed_gw", "reduction_refused", "refused", default=True)
    d.flow("f_r8", "record_new_amount", "record_review")
    d.flow("f_r9", "reduction_refused", "refused_choice_gw")
    d.flow("f_record_change", "refused_choice_gw", "start_reassessment", "record a change: reassess",
           'decision == "record_change"', via=[(14, 3 * ROW_H + 60), (9, 3 * ROW_H + 60)], label_at=(5, 8))
    d.flow("f_keep", "refused_choice_gw", "record_review", "keep the budget", default=True)
    d.flow("f_r_kept", "record_review", "next_gw")
    d.flow("f_r_next", "next_gw", "start_next_review", "planned", "not unplanned")
    d.flow("f_r_requested_done", "next_gw", "requested_review_end", "requested", default=True)
    d.flow("f_r10", "start_next_review", "review_end")
    return d


DP_START_SCRIPT = """
TRIGGERS = ["scheduled", "breach", "capacity"]
try:
    dp_review_trigger
except NameError:
    raise ValueError("direct_payment_review start data: dp_review_trigger is required: one of " + ", ".join(TRIGGERS))
if dp_review_trigger not in TRIGGERS:
    raise ValueError("direct_payment_review start data: dp_review_trigger must be one of " + ", ".join(TRIGGERS)
                     + ", got %r" % (dp_review_trigger,))
scheduled = dp_review_trigger == "scheduled"
current = case().get("current_plan") or {}
ended = case().get("direct_payment_ended_at")
if scheduled:
    dp_wait = settings["direct_payment_first_review"] if first else settings["direct_payment_review_interval"]
    dp_overdue_after = settings["direct_payment_review_overdue_grace"]
    try:
        plan_signed_off_at
    except NameError:
        plan_signed_off_at = current.get("signed_off_at")
else:
    try:
        dp_review_note
    except NameError:
        dp_review_note = None
    if not isinstance(dp_review_note, str) or not dp_review_note.strip():
        raise ValueError("direct_payment_review start data: dp_review_note must say what happened (the suspected "
                         "breach or the change in capacity)")
    if not current or current["plan"]["money_management"] != "direct_payment" or (
            ended and ended >= current["signed_off_at"]):
        raise ValueError("this case has no direct payment in place to review")
    person = current["person"]
    budget_amount = case().get("current_budget_amount") or current["budget_amount"]
    plan_signed_off_at = current["signed_off_at"]
    first = False
    dp_overdue_after = settings["direct_payment_unplanned_review_within"]
current = None
ended = None
"""

DP_IN_PLACE_SCRIPT = """
current = case().get("current_plan") or {}
ended = case().get("direct_payment_ended_at")
dp_in_place = current.get("signed_off_at") in (None, plan_signed_off_at) and not (
    ended and plan_signed_off_at and ended >= plan_signed_off_at)
current = None
ended = None
"""

DP_CHANGES = tuple(DELIVERY_BY_DP_ARRANGEMENT)  # each change has a CLD delivery mechanism


def direct_payment_review() -> Diagram:
    d = Diagram("direct_payment_review", "Direct payment review (Direct Payments Regulations 2014, reg 7)",
                [SW, FIN, TM],
                "Scheduled (dp_review_trigger 'scheduled', started by the support plan and by each scheduled "
                "review): first within direct_payment_first_review of the plan, then at intervals of "
                "direct_payment_review_interval; ends without a task when the direct payment is no longer in "
                "place. Unplanned (dp_review_trigger 'breach' or 'capacity', with dp_review_note, started on "
                "the case): at once, reading the direct payment from the case; it does not move the scheduled "
                "reviews. A review not done in time is escalated to the team manager. A change of arrangement "
                "(nominated person, managed account, end) is arranged by social work and kept on the case.")
    d.start("dp_start", "Review scheduled or triggered", FIN, 0)
    d.service("dp_settings", "Load local timescales", FIN, 1, **LOAD_SETTINGS)
    d.script("dp_when", "Check the trigger", FIN, 2, DP_START_SCRIPT)
    d.gateway("dp_trigger_gw", "Scheduled?", FIN, 3)
    d.timer("wait_for_dp_review", "Direct payment review due", FIN, 4, "duration", "dp_wait")
    d.script("dp_check_in_place", "Check the direct payment is still in place", FIN, 5, DP_IN_PLACE_SCRIPT)
    d.gateway("dp_in_place_gw", "In place?", FIN, 6, label_at="above")
    d.end("dp_no_longer", "No direct payment to review", FIN, 6, row=1)
    d.user("review_direct_payment", "Review direct payment", FIN, 7, "direct_payment_review", "finance",
           doc="Is the money used to meet the needs in the plan, are records kept, is there a breach of the "
               "agreement (misuse, unexplained surplus) and can the person (or their representative) still "
               "manage it? Record the outcome.")
    d.boundary("dp_review_overdue_timer", "Review overdue", "review_direct_payment", "duration",
               "dp_overdue_after")
    d.user("dp_review_overdue", "Direct payment review overdue", TM, 8, "direct_payment_review_overdue",
           "team_manager")
    d.end("dp_overdue_handled", "Escalation dealt with", TM, 9)
    d.gateway("dp_outcome_gw", "Change how the money is managed?", FIN, 8, label_at=(0, 30))
    d.user("arrange_change", "Arrange the new arrangement", SW, 9, "direct_payment_change", "social_work",
           doc="Nominated person, managed account, or council-arranged support instead of the direct "
               "payment: record what was arranged and from when.")
    d.service("record_arrangement", "Keep the arrangement on the case", SW, 10, "update_case", "arrangement_kept", {
        "data": '{"direct_payment_arrangement": {"outcome": outcome, "at": now().isoformat(), '
                '"trigger": dp_review_trigger}, "direct_payment_ended_at": now().isoformat() '
                'if outcome != "nominated_person" else case().get("direct_payment_ended_at")}',
    })
    d.gateway("dp_continues_gw", "Direct payment continues?", SW, 11, label_at="above")
    d.end("dp_stopped", "Direct payment ended", SW, 12)
    d.gateway("dp_next_gw", "Scheduled?", FIN, 11, label_at=(10, -62))
    d.service("start_next_dp_review", "Start next direct payment review", FIN, 12, "start_process",
              "next_dp_review_started", {
                  "process_id": '"direct_payment_review"',
                  "data": '{"first": False, "dp_review_trigger": "scheduled", "person": person, '
                          '"budget_amount": budget_amount, "plan_signed_off_at": plan_signed_off_at}',
              })
    d.end("dp_end", "Next review scheduled", FIN, 13)
    d.end("dp_unplanned_end", "Direct payment continues", FIN, 11, row=1)
    d.flow("f_d1", "dp_start", "dp_settings")
    d.flow("f_d2", "dp_settings", "dp_when")
    d.flow("f_d2b", "dp_when", "dp_trigger_gw")
    d.flow("f_d_scheduled", "dp_trigger_gw", "wait_for_dp_review", "scheduled", "scheduled")
    d.flow("f_d_triggered", "dp_trigger_gw", "review_direct_payment", "breach or capacity", default=True,
           via=[(3, -66), (7, -66)], label_at=(8, -35))
    d.flow("f_d3", "wait_for_dp_review", "dp_check_in_place")
    d.flow("f_d3b", "dp_check_in_place", "dp_in_place_gw")
    d.flow("f_d_in_place", "dp_in_place_gw", "review_direct_payment", "yes", "dp_in_place")
    d.flow("f_d_gone", "dp_in_place_gw", "dp_no_longer", "no", default=True)
    d.flow("f_d_overdue", "dp_review_overdue_timer", "dp_review_overdue")
    d.flow("f_d_overdue_done", "dp_review_overdue", "dp_overdue_handled")
    d.flow("f_d4", "review_direct_payment", "dp_outcome_gw")
    d.flow("f_d_change", "dp_outcome_gw", "arrange_change", "yes", f"outcome in {list(DP_CHANGES)!r}")
    d.flow("f_continue", "dp_outcome_gw", "dp_next_gw", "no: continue", default=True)
    d.flow("f_d5", "arrange_change", "record_arrangement")
    d.flow("f_d6", "record_arrangement", "dp_continues_gw")
    d.flow("f_d_nominated", "dp_continues_gw", "dp_next_gw", "nominated person", 'outcome == "nominated_person"')
    d.flow("f_stop", "dp_continues_gw", "dp_stopped", "no", default=True)
    d.flow("f_d_next", "dp_next_gw", "start_next_dp_review", "yes", "scheduled")
    d.flow("f_d_unplanned_done", "dp_next_gw", "dp_unplanned_end", "no", default=True)
    d.flow("f_d7", "start_next_dp_review", "dp_end")
    return d


DIAGRAMS = [needs_assessment, carers_assessment, personal_budget, support_plan, review, direct_payment_review]


# ================================================================ the forms

def _schema(id: str, title: str, description: str, properties: dict, required: list[str], **extra) -> dict:
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": f"https://carepath.example/forms/{id}.schema.json",
        "title": title,
        "description": description,
        "type": "object",
        "properties": properties,
        "required": required,
        **extra,
    }


def _outcomes(outcomes: dict[str, str], ways: dict[str, str], who: str) -> dict:
    record = {
        "type": "object",
        "properties": {
            "unable": {"type": "boolean", "title": f"Is {who} unable to achieve this?"},
            "ways": {
                "type": "array",
                "title": "In what way unable",
                "items": {"type": "string", "enum": list(ways), "description": "; ".join(
                    f"{k}: {v}" for k, v in ways.items())},
                "uniqueItems": True,
            },
            "reason": {"type": "string", "title": "Reasons (these go into the decision letter)"},
        },
        "required": ["unable", "ways", "reason"],
        "additionalProperties": False,
        "if": {"properties": {"unable": {"const": True}}},
        "then": {"properties": {"ways": {"minItems": 1}, "reason": {"minLength": 1}}},
        "else": {"properties": {"ways": {"maxItems": 0}}},
    }
    return {
        "type": "object",
        "title": "The outcomes in the regulations",
        "description": "Every outcome must be considered. 'Unable' means one or more of the ways listed.",
        "properties": {code: {**record, "title": label[:1].upper() + label[1:]} for code, label in outcomes.items()},
        "required": list(outcomes),
        "additionalProperties": False,
    }


WELLBEING = {
    "type": "object",
    "title": "Impact on wellbeing (professional judgement)",
    "properties": {
        "significant": {"type": "boolean",
                        "title": "Is there, or is there likely to be, a significant impact on wellbeing?"},
        "reason": {"type": "string", "minLength": 1, "title": "Reasons for this judgement"},
        "areas": {"type": "array", "title": "Areas of wellbeing affected (Care Act s.1(2))",
                  "items": {"type": "string", "enum": list(WELLBEING_AREAS)}, "uniqueItems": True},
    },
    "required": ["significant", "reason", "areas"],
    "additionalProperties": False,
    "if": {"properties": {"significant": {"const": True}}},
    "then": {"properties": {"areas": {"minItems": 1}}},
}


def _ras_needs() -> dict:
    ras = json.loads((PROCESSES / "config" / "ras.json").read_text(encoding="utf-8"))
    props = {}
    for code, dom in ras["domains"].items():
        props[code] = {
            "type": "object",
            "title": dom["label"],
            "properties": {
                "level": {"type": "string", "title": "Level of need", "enum": list(dom["points"])},
                "met_by_carer": {"type": "boolean",
                                 "title": "Is part of this need met by a carer who is willing and able to help?"},
                "carer_note": {"type": "string", "title": "What the carer does (optional)"},
            },
            "required": ["level", "met_by_carer"],
            "additionalProperties": False,
        }
    return {"type": "object", "title": "Needs by domain", "properties": props, "required": list(props),
            "additionalProperties": False}


TEXT = {"type": "string", "minLength": 1}

# the carer's Client Level Data fields (optional): the definitions of the contact form's person fields, so
# the carer is asked the same codes with the same wording (cld.PERSON_CODE_LISTS), with the carer's title
CARER_CLD_FIELDS = {
    "nhs_number": ("Carer's NHS number", "10 digits, no spaces. Optional."),
    "date_of_birth": ("Carer's date of birth", "Optional."),
    "gender": ("Carer's gender", "How the carer describes their gender. Optional: leave out if you have not "
                                 "asked; choose 'Not stated' if they would rather not say."),
    "ethnicity": ("Carer's ethnicity", "The carer's own description of their ethnic group. Optional: choose "
                                       "'Not stated' if they would rather not say."),
    "accommodation_status": ("Where the carer lives", "The carer's own accommodation. Optional."),
    "employment_status": ("Carer's work", "Whether the carer has paid work. Optional."),
}


def _carer_cld_fields() -> dict:
    contact = FORMS / "contact.schema.json"
    person = json.loads(contact.read_text(encoding="utf-8"))["properties"]["person"]["properties"]
    fields = {}
    for name, (title, description) in CARER_CLD_FIELDS.items():
        if name not in person:
            raise ValueError(f"{contact.relative_to(ROOT)}: person has no {name!r} field for the carer to reuse")
        prop = {k: v for k, v in person[name].items() if k not in ("title", "description")}
        codes = PERSON_CODE_LISTS.get(name)
        if codes is not None and tuple(prop.get("enum", ())) != codes:
            raise ValueError(f"{contact.relative_to(ROOT)}: person/{name} enum differs from "
                             f"handlers.cld.PERSON_CODE_LISTS[{name!r}]")
        if name == "date_of_birth":  # the form library does not check "format": a date it cannot read is refused
            prop.setdefault("pattern", "^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
        fields[name] = {"title": title, "description": description, **prop}
    return fields


def forms() -> dict[str, dict]:
    person_carer = {
        "type": "object",
        "title": "The carer",
        "description": "The carer's details go on the carer's assessment and the carer's Client Level Data row; "
                       "only the name and relationship are required.",
        "properties": {
            "name": {**TEXT, "title": "Carer's name"},
            "relationship": {**TEXT, "title": "Relationship to the person"},
            "address": {"title": "Carer's address", "oneOf": [{"type": "string"},
                                                               {"type": "array", "items": {"type": "string"}}]},
            "salutation": {"type": "string", "title": "How to address them in letters"},
            **_carer_cld_fields(),
        },
        "required": ["name", "relationship"],
    }
    return {
        "needs_assessment": _schema(
            "needs_assessment", "Needs assessment",
            "Care Act s.9 assessment against the Eligibility Criteria Regulations 2015, reg 2. Decide "
            "without regard to care a carer already gives.",
            {
                "needs_from_impairment": {"type": "boolean",
                                          "title": "Do the needs arise from a physical or mental impairment "
                                                   "or illness?"},
                "outcomes": _outcomes(ADULT_OUTCOMES, ADULT_WAYS, "the person"),
                "wellbeing_impact": WELLBEING,
                "carer_present": {"type": "boolean", "title": "Does someone care for the person?"},
                "carer": person_carer,
                "notes": {"type": "string", "title": "Other notes"},
            },
            ["needs_from_impairment", "outcomes", "wellbeing_impact", "carer_present"],
            **{"if": {"properties": {"carer_present": {"const": True}}}, "then": {"required": ["carer"]}},
        ),
        "assessment_overdue": _schema(
            "assessment_overdue", "Assessment overdue",
            "The assessment was not completed within the local target after contact. Record what you "
            "have done about it.",
            {"action_taken": {**TEXT, "title": "What has been done"},
             "reallocated_to": {"type": "string", "title": "Worker now responsible (if changed)"}},
            ["action_taken"],
        ),
        "carers_assessment": _schema(
            "carers_assessment", "Carer's assessment",
            "Care Act s.10 assessment against the Eligibility Criteria Regulations 2015, reg 3.",
            {
                "needs_from_caring": {"type": "boolean",
                                      "title": "Do the carer's needs arise from providing necessary care?"},
                "health_deteriorating_or_at_risk": {
                    "type": "boolean",
                    "title": "Is the carer's physical or mental health deteriorating or at risk of deteriorating?"},
                "outcomes": _outcomes(CARER_OUTCOMES, CARER_WAYS, "the carer"),
                "wellbeing_impact": WELLBEING,
                "support_level": {"type": "string", "enum": CARER_SUPPORT_LEVELS,
                                  "title": "Level of support the carer needs",
                                  "description": "Sets the carer support allocation added to the cared-for "
                                                 "person's personal budget when the carer is eligible "
                                                 "(processes/config/ras.json)."},
                "notes": {"type": "string", "title": "Other notes"},
            },
            ["needs_from_caring", "health_deteriorating_or_at_risk", "outcomes", "wellbeing_impact",
             "support_level"],
        ),
        "ras_scoring": _schema(
            "ras_scoring", "Score needs (Resource Allocation System)",
            "Score every needs domain. Mark a need as met by a carer only when the carer is willing and able "
            "to keep helping; the letter explains how that affected the budget.",
            {"needs": _ras_needs(),
             "carer_support_level": {
                 "type": "string", "enum": CARER_SUPPORT_LEVELS, "title": "Carer support needs (optional)",
                 "description": "Leave empty to use the level from an eligible carer's assessment on the case. "
                                "A level recorded here is used instead, e.g. when the carer has not been "
                                "assessed yet."},
             "impact_assessment_needed": {
                 "type": "boolean",
                 "title": "Are there needs or costs the RAS does not capture (impact assessment)?"}},
            ["needs"],
        ),
        "impact_assessment": _schema(
            "impact_assessment", "Impact assessment: uplifts",
            "Cost each need the indicative budget cannot meet. Every uplift needs an annual amount and the "
            "reason; they are added to the budget, shown in the letter, and count towards the approval "
            "threshold.",
            {"uplifts": {"type": "array", "minItems": 1, "title": "Uplifts",
                         "items": {"type": "object", "properties": {
                             "reason": {**TEXT, "title": "Need or cost the RAS does not capture"},
                             "amount": {"type": "number", "exclusiveMinimum": 0,
                                        "title": "Extra amount a year (pounds)"},
                         }, "required": ["reason", "amount"], "additionalProperties": False}},
             "notes": {"type": "string", "title": "Notes"}},
            ["uplifts"],
        ),
        "budget_approval": _schema(
            "budget_approval", "Approve personal budget",
            "The budget is above the approval threshold. This is a check, not a cap.",
            {"approved": {"type": "boolean", "title": "Do you approve this budget?"},
             "comments": {"type": "string", "title": "Comments (say why if not approved)"}},
            ["approved"],
            **{"if": {"properties": {"approved": {"const": False}}},
               "then": {"properties": {"comments": {"minLength": 1}}, "required": ["comments"]}},
        ),
        "support_plan": _schema(
            "support_plan", "Support plan",
            "One plan per person, with a named co-ordinating worker.",
            {
                "outcomes": {
                    "type": "array", "title": "Outcomes and how they will be met", "minItems": 1,
                    "items": {"type": "object", "properties": {
                        "label": {**TEXT, "title": "Outcome"},
                        "how_met": {**TEXT, "title": "How it will be met"},
                        "provided_by": {"type": "string", "title": "Who provides it"},
                        "weekly_cost": {"type": "number", "minimum": 0, "title": "Weekly cost (pounds)"},
                    }, "required": ["label", "how_met"], "additionalProperties": False},
                },
                "money_management": {"type": "string", "title": "How the money is managed",
                                     "enum": list(DELIVERY_BY_MONEY_MANAGEMENT)},
                "may_change_without_contacting": {
                    "type": "array", "title": "What the person may change without contacting the council",
                    "items": {**TEXT}},
                "coordinating_worker": {"type": "object", "title": "Co-ordinating worker", "properties": {
                    "name": {**TEXT, "title": "Name"}, "role": {**TEXT, "title": "Role"},
                    "phone": {"type": "string", "title": "Telephone"}, "email": {"type": "string", "title": "Email"},
                }, "required": ["name", "role"], "additionalProperties": False},
                "review_frequency_months": {"type": "integer", "minimum": 1, "maximum": 12,
                                            "title": "How often the plan is reviewed (months, at most 12)"},
                "contributors": {"type": "array", "title": "Who helped write the plan", "items": {"type": "string"}},
            },
            ["outcomes", "money_management", "may_change_without_contacting", "coordinating_worker",
             "review_frequency_months"],
        ),
        "plan_sign_off": _schema(
            "plan_sign_off", "Sign off support plan",
            "Check the plan meets the eligible needs legally, effectively and affordably.",
            {"signed_off": {"type": "boolean", "title": "Sign off this plan?"},
             "comments": {"type": "string", "title": "Comments (say what must change if not signed off)"}},
            ["signed_off"],
            **{"if": {"properties": {"signed_off": {"const": False}}},
               "then": {"properties": {"comments": {"minLength": 1}}, "required": ["comments"]}},
        ),
        "review": _schema(
            "review", "Review support plan",
            "Care Act s.27 review. A reduction in the budget needs a recorded change in needs or circumstances.",
            {"plan_working": {"type": "boolean", "title": "Is the plan meeting the person's needs?"},
             "needs_changed": {"type": "boolean", "title": "Have the person's needs or circumstances changed?"},
             "what_changed": {"type": "string", "title": "What changed"},
             "proposed_new_amount": {"type": "number", "minimum": 0,
                                     "title": "Proposed new annual budget in pounds (optional)"},
             "full_review": {"type": "boolean",
                             "title": "Requested reviews: was this a full review of the plan?",
                             "description": "A full review moves the next planned review on: it is then due "
                                            "at the plan's review frequency from today. Planned reviews are "
                                            "always full reviews."},
             "notes": {"type": "string", "title": "Notes"}},
            ["needs_changed"],
            **{"if": {"properties": {"needs_changed": {"const": True}}},
               "then": {"properties": {"what_changed": {"minLength": 1}}, "required": ["what_changed"]}},
        ),
        "review_overdue": _schema(
            "review_overdue", "Review overdue",
            "A support plan review has not been done on time. Record what you have done about it.",
            {"action_taken": {**TEXT, "title": "What has been done"},
             "reallocated_to": {"type": "string", "title": "Worker now responsible (if changed)"}},
            ["action_taken"],
        ),
        "reduction_refused": _schema(
            "reduction_refused", "Reduction refused",
            "A review cannot cut a budget without a recorded change in needs or circumstances. Either keep "
            "the budget, or record the change and reassess the needs (which recalculates the budget).",
            {"decision": {"type": "string", "title": "What happens now",
                          "enum": ["keep_budget", "record_change"]},
             "what_changed": {"type": "string", "title": "The change in needs or circumstances"}},
            ["decision"],
            **{"if": {"properties": {"decision": {"const": "record_change"}}},
               "then": {"properties": {"what_changed": {"minLength": 1}}, "required": ["what_changed"]}},
        ),
        "direct_payment_review": _schema(
            "direct_payment_review", "Direct payment review",
            "Direct Payments Regulations 2014, reg 7: is the direct payment being used to meet the needs "
            "in the plan, is there a breach of the agreement, and can the person (or their representative) "
            "still manage it? Record the outcome.",
            {"used_to_meet_needs": {"type": "boolean",
                                    "title": "Is the money being used to meet the needs in the plan?"},
             "records_kept": {"type": "boolean", "title": "Are records and receipts kept?"},
             "balance": {"type": "number", "title": "Balance in the account (pounds)"},
             "breach": {"type": "array", "title": "Breaches of the direct payment agreement found",
                        "items": {"type": "string", "enum": ["misuse", "unexplained_surplus", "not_meeting_needs",
                                                             "records_not_kept", "other"]},
                        "uniqueItems": True},
             "surplus_to_recover": {"type": "number", "minimum": 0,
                                    "title": "Unexplained surplus to recover (pounds)"},
             "able_to_manage": {"type": "boolean",
                                "title": "Can the person (or their representative) still manage the payment?"},
             "concerns": {"type": "string", "title": "Concerns"},
             "outcome": {"type": "string", "title": "Outcome",
                         "enum": ["continue", "continue_with_conditions", *DP_CHANGES],
                         "description": "continue; continue_with_conditions (extra monitoring or support); "
                                        "nominated_person (paid to a nominated or authorised person); "
                                        "managed_account (a provider holds the money); end_direct_payment "
                                        "(the council arranges the support instead)"},
             "outcome_reason": {"type": "string", "title": "Reasons for the outcome"}},
            ["used_to_meet_needs", "records_kept", "outcome"],
            **{"if": {"properties": {"outcome": {"const": "continue"}}},
               "else": {"properties": {"outcome_reason": {"minLength": 1}}, "required": ["outcome_reason"]}},
        ),
        "direct_payment_review_overdue": _schema(
            "direct_payment_review_overdue", "Direct payment review overdue",
            "A direct payment review has not been done on time. Record what you have done about it.",
            {"action_taken": {**TEXT, "title": "What has been done"},
             "reallocated_to": {"type": "string", "title": "Officer now responsible (if changed)"}},
            ["action_taken"],
        ),
        "direct_payment_change": _schema(
            "direct_payment_change", "New arrangement for the money",
            "After a direct payment review: a nominated (or authorised) person, a managed account, or "
            "council-arranged support instead of the direct payment.",
            {"effective_from": {**TEXT, "title": "From (YYYY-MM-DD)", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"},
             "nominated_person": {"type": "object", "title": "Nominated or authorised person", "properties": {
                 "name": {**TEXT, "title": "Name"}, "relationship": {**TEXT, "title": "Relationship"},
             }, "required": ["name", "relationship"], "additionalProperties": False},
             "provider": {"type": "string", "title": "Managed account provider"},
             "what_was_arranged": {**TEXT, "title": "What was arranged"}},
            ["effective_from", "what_was_arranged"],
        ),
    }


def outputs() -> dict[Path, str]:
    """Every file this script writes, with its text."""
    files = {PROCESSES / f"{d.pid}.bpmn": d.xml() for d in (make() for make in DIAGRAMS)}
    for name, schema in forms().items():
        files[FORMS / f"{name}.schema.json"] = json.dumps(schema, indent=2, ensure_ascii=False) + "\n"
    return files


def layout_problems() -> dict[str, list[str]]:
    """Drawing problems per diagram (see Diagram.problems); empty when every diagram reads cleanly."""
    found = {}
    for make in DIAGRAMS:
        d = make()
        d.xml()
        if d.problems():
            found[d.pid] = d.problems()
    return found


def main(argv: list[str]) -> int:
    check = "--check" in argv
    status = 0
    for pid, problems in layout_problems().items():
        for p in problems:
            print(f"layout: {pid}: {p}")
        status = 1
    for path, text in outputs().items():
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                print(f"differs from the generator: {path.relative_to(ROOT)}")
                status = 1
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return status


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
