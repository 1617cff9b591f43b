"""Generate the assessment-to-review diagrams and their forms.

    .venv/bin/python processes/tools/assessment_gen.py

writes processes/{needs_assessment,carers_assessment,personal_budget,support_plan,review,
direct_payment_review}.bpmn (Camunda dialect, with diagram interchange laid out left to right
in lanes, so they open in Camunda Modeler / bpmn-js) and the JSON Schemas of their forms in
forms/. The .bpmn and .schema.json files are what gets committed and deployed; this script
only saves drawing coordinates by hand. Edit a diagram here, re-run, and review the diff.

Outcome codes, wellbeing areas and RAS domains are read from handlers.eligibility and
processes/config/ras.json, so the forms ask exactly what the handlers accept.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from handlers.eligibility import (  # noqa: E402
    ADULT_OUTCOMES,
    ADULT_WAYS,
    CARER_OUTCOMES,
    CARER_WAYS,
    WELLBEING_AREAS,
)

PROCESSES = ROOT / "processes"
FORMS = ROOT / "forms"

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

    @property
    def cx(self) -> float:
        return self.bounds[0] + self.bounds[2] / 2

    @property
    def cy(self) -> float:
        return self.bounds[1] + self.bounds[3] / 2


class Diagram:
    def __init__(self, pid: str, name: str, lanes: list[tuple[str, str]], doc: str = "") -> None:
        self.pid, self.name, self.lanes, self.doc = pid, name, lanes, doc
        self.nodes: dict[str, Node] = {}
        self.flows: list[tuple[str, str, str, str | None, str | None]] = []
        self.defaults: dict[str, str] = {}

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

    def gateway(self, id: str, name: str, lane: tuple[str, str], col: float, row: int = 0) -> Node:
        return self._add(Node("gateway", "exclusiveGateway", id, name, lane[0], col, row))

    def timer(self, id: str, name: str, lane: tuple[str, str], col: float, kind: str, expr: str,
              row: int = 0) -> Node:
        return self._add(Node("event", "intermediateCatchEvent", id, name, lane[0], col, row,
                              body=_timer_def(id, kind, expr)))

    def boundary(self, id: str, name: str, attached_to: str, kind: str, expr: str,
                 interrupting: bool = False) -> Node:
        host = self.nodes[attached_to]
        node = self._add(Node("event", "boundaryEvent", id, name, host.lane, host.col, host.row,
                              {"attachedToRef": attached_to, "cancelActivity": "true" if interrupting else "false"},
                              _timer_def(id, kind, expr)))
        node.attached = host
        return node

    def flow(self, id: str, src: str, tgt: str, name: str | None = None, cond: str | None = None,
             default: bool = False) -> None:
        self.flows.append((id, src, tgt, name, cond))
        self.nodes[src].outgoing.append(id)
        self.nodes[tgt].incoming.append(id)
        if default:
            self.defaults[src] = id

    # ------------------------------------------------------------ layout
    def _layout(self) -> dict[str, tuple[float, float, float]]:
        rows = {lid: 1 for lid, _ in self.lanes}
        for n in self.nodes.values():
            rows[n.lane] = max(rows[n.lane], n.row + 1)
        lane_box: dict[str, tuple[float, float, float]] = {}
        y = 80.0
        for lid, _ in self.lanes:
            h = LANE_PAD * 2 + (rows[lid] - 1) * ROW_H
            lane_box[lid] = (y, h, 0)
            y += h
        for n in self.nodes.values():
            if n.attached is not None:
                continue
            w, h = SIZES[n.kind]
            cx = X0 + n.col * COL_W + 50
            cy = lane_box[n.lane][0] + LANE_PAD + n.row * ROW_H
            n.bounds = (cx - w / 2, cy - h / 2, w, h)
        for n in self.nodes.values():
            if n.attached is not None:
                hx, hy, hw, hh = n.attached.bounds
                siblings = [m for m in self.nodes.values() if m.attached is n.attached]
                i = siblings.index(n)
                n.bounds = (hx + hw - 28 - i * 40, hy + hh - 18, 36, 36)
        return lane_box

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

    # ------------------------------------------------------------ XML
    def xml(self) -> str:
        lane_box = self._layout()
        right = max(n.bounds[0] + n.bounds[2] for n in self.nodes.values()) + 80
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
        for fid, src, tgt, name, cond in self.flows:
            a = f'id="{fid}" sourceRef="{src}" targetRef="{tgt}"' + (f" name={quoteattr(name)}" if name else "")
            if cond:
                out.append(f'    <bpmn:sequenceFlow {a}><bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
                           f"{escape(cond)}</bpmn:conditionExpression></bpmn:sequenceFlow>")
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
            out.append(_shape(n.id, n.bounds, extra=extra, label=n.name, kind=n.kind))
        for fid, src, tgt, _name, _cond in self.flows:
            pts = self._waypoints(self.nodes[src], self.nodes[tgt])
            wps = "".join(f'<di:waypoint x="{x:g}" y="{y:g}" />' for x, y in pts)
            out.append(f'      <bpmndi:BPMNEdge id="{fid}_di" bpmnElement="{fid}">{wps}</bpmndi:BPMNEdge>')
        out.append("    </bpmndi:BPMNPlane>")
        out.append("  </bpmndi:BPMNDiagram>")
        out.append("</bpmn:definitions>")
        return "\n".join(out) + "\n"


def _timer_def(id: str, kind: str, expr: str) -> str:
    tag = {"duration": "timeDuration", "date": "timeDate", "cycle": "timeCycle"}[kind]
    return (f'<bpmn:timerEventDefinition id="{id}_def"><bpmn:{tag} xsi:type="bpmn:tFormalExpression">'
            f"{escape(expr)}</bpmn:{tag}></bpmn:timerEventDefinition>")


def _shape(element: str, b: tuple[float, float, float, float], *, horizontal: bool = False, extra: str = "",
           label: str | None = None, kind: str = "task") -> str:
    x, y, w, h = b
    hz = ' isHorizontal="true"' if horizontal else ""
    lab = ""
    if label and kind in ("event", "gateway"):  # external labels under events and gateways
        lab = (f'<bpmndi:BPMNLabel><dc:Bounds x="{x + w / 2 - 45:g}" y="{y + h + 5:g}" width="90" height="27" />'
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
    d.gateway("eligible_gw", "Eligible?", SW, 6)
    d.end("not_eligible", "Not eligible: letter with reasons", SW, 6, row=1)
    d.gateway("carer_gw", "Carer present?", SW, 7)
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
    d.flow("f_carer_started", "start_carers_assessment", "start_personal_budget")
    d.flow("f_budget_started", "start_personal_budget", "eligible_end")
    return d


def carers_assessment() -> Diagram:
    d = Diagram("carers_assessment", "Carer's assessment (Care Act s.10)", [SW],
                "Assess a carer's needs against reg 3 and write the decision with reasons. Start data: "
                "person (the carer: name, relationship, address), cared_for (name).")
    d.start("carer_start", "Carer identified", SW, 0)
    d.user("assess_carer", "Assess carer's needs", SW, 1, "carers_assessment", "social_work")
    d.service("decide_carer_eligibility", "Decide carer's eligibility", SW, 2, "carer_eligibility", "eligibility", {
        "needs_from_caring": "needs_from_caring",
        "health_deteriorating_or_at_risk": "health_deteriorating_or_at_risk",
        "outcomes": "outcomes",
        "wellbeing_impact": "wellbeing_impact",
    })
    d.service("write_carer_letter", "Write carer's eligibility letter", SW, 3, "eligibility_letter",
              "eligibility_letter", {"person": "person", "decision": "eligibility"})
    d.end("carer_end", "Carer told the decision", SW, 4)
    d.flow("f_c1", "carer_start", "assess_carer")
    d.flow("f_c2", "assess_carer", "decide_carer_eligibility")
    d.flow("f_c3", "decide_carer_eligibility", "write_carer_letter")
    d.flow("f_c4", "write_carer_letter", "carer_end")
    return d


def personal_budget() -> Diagram:
    d = Diagram("personal_budget", "Personal budget (RAS)", [SW, TM, FIN],
                "Score eligible needs with the Resource Allocation System (processes/config/ras.json), "
                "have budgets above its approval_threshold approved by a team manager, write the budget "
                "letter, then start the support plan. Start data: person, carer_present.")
    d.start("budget_start", "Needs eligible", SW, 0)
    d.user("score_needs", "Score needs (RAS)", SW, 1, "ras_scoring", "social_work")
    d.service("calculate_budget", "Calculate personal budget", FIN, 2, "personal_budget", "budget",
              {"needs": "needs"})
    d.gateway("approval_gw", "Needs approval?", FIN, 3)
    d.user("approve_budget", "Approve budget", TM, 4, "budget_approval", "team_manager")
    d.gateway("approved_gw", "Approved?", TM, 5)
    d.service("write_budget_letter", "Write budget letter", FIN, 6, "budget_letter", "budget_letter",
              {"person": "person", "budget": "budget",
               # only the approval path defines `approved`; the letter is reached there only once approved
               "approved": 'approved if budget["needs_approval"] else None'})
    d.service("start_support_plan", "Start support plan", SW, 7, "start_process", "support_plan_started", {
        "process_id": '"support_plan"',
        "data": '{"person": person, "budget": {"final_amount": budget["final_amount"], '
                '"weekly_equivalent": budget["weekly_equivalent"], "total_points": budget["total_points"], '
                '"calculated_at": budget["calculated_at"]}}',
    })
    d.end("budget_end", "Plan under way", SW, 8)
    d.flow("f_b1", "budget_start", "score_needs")
    d.flow("f_b2", "score_needs", "calculate_budget")
    d.flow("f_b3", "calculate_budget", "approval_gw")
    d.flow("f_needs_approval", "approval_gw", "approve_budget", "above threshold", 'budget["needs_approval"]')
    d.flow("f_no_approval", "approval_gw", "write_budget_letter", "within threshold", default=True)
    d.flow("f_b4", "approve_budget", "approved_gw")
    d.flow("f_approved", "approved_gw", "write_budget_letter", "approved", "approved")
    d.flow("f_rejected", "approved_gw", "score_needs", "not approved: score again", default=True)
    d.flow("f_b5", "write_budget_letter", "start_support_plan")
    d.flow("f_b6", "start_support_plan", "budget_end")
    return d


PLAN_SCRIPT = """
wait = settings["first_review_after_sign_off"]
if wait.startswith("P") and wait.endswith("D"):
    first_review_days = int(wait[1:-1])
elif wait.startswith("P") and wait.endswith("W"):
    first_review_days = 7 * int(wait[1:-1])
else:
    raise ValueError("first_review_after_sign_off must be whole days or weeks, e.g. P42D")
first_review_date = (now() + timedelta(days=first_review_days)).date().isoformat()
plan = {
    "coordinating_worker": coordinating_worker,
    "outcomes": outcomes,
    "money_management": money_management,
    "may_change_without_contacting": may_change_without_contacting,
    "review_frequency_months": review_frequency_months,
    "personal_budget": {"final_amount": budget["final_amount"], "weekly_amount": budget["weekly_equivalent"]},
    "review": {"first_review": first_review_date, "frequency_months": review_frequency_months},
    "signed_off_at": now().isoformat(),
}
"""


def support_plan() -> Diagram:
    d = Diagram("support_plan", "Support plan", [SW, TM],
                "One plan per person with a named co-ordinating worker: how each outcome is met, how the "
                "money is managed, what the person may change without contacting the council and how "
                "often it is reviewed. Sign-off starts the review cycle (and the direct payment review "
                "cycle for a direct payment). Start data: person, budget.")
    d.start("plan_start", "Budget agreed", SW, 0)
    d.service("plan_settings", "Load local timescales", SW, 1, **LOAD_SETTINGS)
    d.user("write_plan", "Write support plan", SW, 2, "support_plan", "social_work")
    d.user("sign_off_plan", "Sign off plan", TM, 3, "plan_sign_off", "team_manager")
    d.gateway("signed_off_gw", "Signed off?", TM, 4)
    d.script("assemble_plan", "Put the plan together", SW, 5, PLAN_SCRIPT)
    d.service("write_plan_letter", "Write support plan letter", SW, 6, "support_plan_letter", "plan_letter",
              {"person": "person", "plan": "plan"})
    d.service("start_review", "Start review cycle", SW, 7, "start_process", "review_started", {
        "process_id": '"review"',
        "data": '{"first": True, "person": person, "plan": plan, "budget_amount": budget["final_amount"], '
                '"review_frequency_months": review_frequency_months}',
    })
    d.gateway("dp_gw", "Direct payment?", SW, 8)
    d.service("start_dp_review", "Start direct payment reviews", SW, 9, "start_process", "dp_review_started", {
        "process_id": '"direct_payment_review"',
        "data": '{"first": True, "person": person, "budget_amount": budget["final_amount"]}',
    }, row=1)
    d.end("plan_end", "Plan in place", SW, 10)
    d.end("plan_dp_end", "Plan in place, direct payment", SW, 10, row=1)
    d.flow("f_p1", "plan_start", "plan_settings")
    d.flow("f_p2", "plan_settings", "write_plan")
    d.flow("f_p3", "write_plan", "sign_off_plan")
    d.flow("f_p4", "sign_off_plan", "signed_off_gw")
    d.flow("f_signed", "signed_off_gw", "assemble_plan", "signed off", "signed_off")
    d.flow("f_not_signed", "signed_off_gw", "write_plan", "changes needed", default=True)
    d.flow("f_p5", "assemble_plan", "write_plan_letter")
    d.flow("f_p6", "write_plan_letter", "start_review")
    d.flow("f_p7", "start_review", "dp_gw")
    d.flow("f_dp", "dp_gw", "start_dp_review", "direct payment", 'money_management == "direct_payment"')
    d.flow("f_no_dp", "dp_gw", "plan_end", "other", default=True)
    d.flow("f_p8", "start_dp_review", "plan_dp_end")
    return d


REVIEW_WAIT_SCRIPT = """
limit = settings["max_review_interval"]
if limit.startswith("P") and limit.endswith("M"):
    max_months = int(limit[1:-1])
elif limit.startswith("P") and limit.endswith("Y"):
    max_months = 12 * int(limit[1:-1])
else:
    raise ValueError("max_review_interval must be whole months or years, e.g. P12M")
review_wait = settings["first_review_after_sign_off"] if first else "P%dM" % min(review_frequency_months, max_months)
proposed_new_amount = None
what_changed = ""
"""


def review() -> Diagram:
    d = Diagram("review", "Review of the support plan (Care Act s.27)", [SW, TM],
                "One review: the first at first_review_after_sign_off after sign-off (light-touch review at "
                "6-8 weeks), later ones at the plan's review frequency, never more than max_review_interval. "
                "An undone review is escalated after review_overdue_grace. Changed needs lead to a "
                "reassessment; a budget cut without a recorded change is refused. Each review starts the next. "
                "Start data: first, person, plan, budget_amount, review_frequency_months.")
    d.start("review_start", "Review cycle", SW, 0)
    d.service("review_settings", "Load local timescales", SW, 1, **LOAD_SETTINGS)
    d.script("review_when", "Work out when the review is due", SW, 2, REVIEW_WAIT_SCRIPT)
    d.timer("wait_for_review", "Review due", SW, 3, "duration", "review_wait")
    d.user("review_plan", "Review support plan", SW, 4, "review", "social_work")
    d.boundary("review_overdue_timer", "Review overdue", "review_plan", "duration",
               'settings["review_overdue_grace"]')
    d.user("review_overdue", "Review overdue", TM, 5, "review_overdue", "team_manager")
    d.end("review_overdue_handled", "Escalation dealt with", TM, 6)
    d.gateway("needs_changed_gw", "Needs changed?", SW, 5)
    d.service("start_reassessment", "Start reassessment", SW, 6, "start_process", "reassessment_started", {
        "process_id": '"needs_assessment"',
        "data": '{"person": person, "contact_date": now().date().isoformat(), "reassessment": True, '
                '"reason": what_changed, "previous_budget_amount": budget_amount}',
    }, row=3)
    d.end("reassessment_end", "Reassessment under way", SW, 8, row=3)
    d.gateway("amount_gw", "New amount proposed?", SW, 6)
    d.service("check_change", "Check budget change", SW, 7, "check_budget_change", "budget_check", {
        "previous_amount": "budget_amount",
        "new_amount": "proposed_new_amount",
        "change_in_needs_recorded": "needs_changed",
        "reason": "what_changed",
    }, row=1)
    d.gateway("allowed_gw", "Allowed?", SW, 8, row=1)
    d.script("record_new_amount", "Record new amount", SW, 10, 'budget_amount = budget_check["new_amount"]', row=1)
    d.user("reduction_refused", "Reduction refused: record a change or keep the budget", SW, 9,
           "reduction_refused", "social_work", row=2)
    d.gateway("refused_choice_gw", "Record a change?", SW, 10, row=2)
    d.service("start_next_review", "Start next review", SW, 11, "start_process", "next_review_started", {
        "process_id": '"review"',
        "data": '{"first": False, "person": person, "plan": plan, "budget_amount": budget_amount, '
                '"review_frequency_months": review_frequency_months}',
    })
    d.end("review_end", "Next review scheduled", SW, 12)
    d.flow("f_r1", "review_start", "review_settings")
    d.flow("f_r2", "review_settings", "review_when")
    d.flow("f_r3", "review_when", "wait_for_review")
    d.flow("f_r4", "wait_for_review", "review_plan")
    d.flow("f_r_overdue", "review_overdue_timer", "review_overdue")
    d.flow("f_r_overdue_done", "review_overdue", "review_overdue_handled")
    d.flow("f_r5", "review_plan", "needs_changed_gw")
    d.flow("f_changed", "needs_changed_gw", "start_reassessment", "needs changed", "needs_changed")
    d.flow("f_unchanged", "needs_changed_gw", "amount_gw", "no change", default=True)
    d.flow("f_r6", "start_reassessment", "reassessment_end")
    d.flow("f_amount", "amount_gw", "check_change", "new amount proposed", "proposed_new_amount is not None")
    d.flow("f_no_amount", "amount_gw", "start_next_review", "budget unchanged", default=True)
    d.flow("f_r7", "check_change", "allowed_gw")
    d.flow("f_allowed", "allowed_gw", "record_new_amount", "allowed", 'budget_check["allowed"]')
    d.flow("f_refused", "allowed_gw", "reduction_refused", "refused", default=True)
    d.flow("f_r8", "record_new_amount", "start_next_review")
    d.flow("f_r9", "reduction_refused", "refused_choice_gw")
    d.flow("f_record_change", "refused_choice_gw", "start_reassessment", "record a change: reassess",
           'decision == "record_change"')
    d.flow("f_keep", "refused_choice_gw", "start_next_review", "keep the budget", default=True)
    d.flow("f_r10", "start_next_review", "review_end")
    return d


def direct_payment_review() -> Diagram:
    d = Diagram("direct_payment_review", "Direct payment review (Direct Payments Regulations 2014, reg 7)",
                [FIN], "First review within direct_payment_first_review of the plan, then at intervals of "
                "direct_payment_review_interval (timescales.json). Each review starts the next. Start data: "
                "first, person, budget_amount.")
    d.start("dp_start", "Direct payment agreed", FIN, 0)
    d.service("dp_settings", "Load local timescales", FIN, 1, **LOAD_SETTINGS)
    d.timer("wait_for_dp_review", "Direct payment review due", FIN, 2, "duration",
            'settings["direct_payment_first_review"] if first else settings["direct_payment_review_interval"]')
    d.user("review_direct_payment", "Review direct payment", FIN, 3, "direct_payment_review", "finance")
    d.gateway("dp_continue_gw", "Continue direct payment?", FIN, 4)
    d.service("start_next_dp_review", "Start next direct payment review", FIN, 5, "start_process",
              "next_dp_review_started", {
                  "process_id": '"direct_payment_review"',
                  "data": '{"first": False, "person": person, "budget_amount": budget_amount}',
              })
    d.end("dp_end", "Next review scheduled", FIN, 6)
    d.end("dp_stopped", "Direct payment ended", FIN, 5, row=1)
    d.flow("f_d1", "dp_start", "dp_settings")
    d.flow("f_d2", "dp_settings", "wait_for_dp_review")
    d.flow("f_d3", "wait_for_dp_review", "review_direct_payment")
    d.flow("f_d4", "review_direct_payment", "dp_continue_gw")
    d.flow("f_continue", "dp_continue_gw", "start_next_dp_review", "yes", "continue_direct_payment")
    d.flow("f_stop", "dp_continue_gw", "dp_stopped", "no", default=True)
    d.flow("f_d5", "start_next_dp_review", "dp_end")
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


def forms() -> dict[str, dict]:
    person_carer = {
        "type": "object",
        "title": "The carer",
        "properties": {
            "name": {**TEXT, "title": "Carer's name"},
            "relationship": {**TEXT, "title": "Relationship to the person"},
            "address": {"title": "Carer's address", "oneOf": [{"type": "string"},
                                                               {"type": "array", "items": {"type": "string"}}]},
            "salutation": {"type": "string", "title": "How to address them in letters"},
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
                "notes": {"type": "string", "title": "Other notes"},
            },
            ["needs_from_caring", "health_deteriorating_or_at_risk", "outcomes", "wellbeing_impact"],
        ),
        "ras_scoring": _schema(
            "ras_scoring", "Score needs (Resource Allocation System)",
            "Score every needs domain. Mark a need as met by a carer only when the carer is willing and able "
            "to keep helping; the letter explains how that affected the budget.",
            {"needs": _ras_needs()}, ["needs"],
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
                                     "enum": ["direct_payment", "managed_account", "council_managed"]},
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
            "in the plan, and is the person (or their representative) managing it?",
            {"used_to_meet_needs": {"type": "boolean",
                                    "title": "Is the money being used to meet the needs in the plan?"},
             "records_kept": {"type": "boolean", "title": "Are records and receipts kept?"},
             "balance": {"type": "number", "title": "Balance in the account (pounds)"},
             "concerns": {"type": "string", "title": "Concerns"},
             "continue_direct_payment": {"type": "boolean", "title": "Should the direct payment continue?"}},
            ["used_to_meet_needs", "records_kept", "continue_direct_payment"],
        ),
    }


def main() -> None:
    for make in DIAGRAMS:
        d = make()
        (PROCESSES / f"{d.pid}.bpmn").write_text(d.xml(), encoding="utf-8")
        print(f"wrote processes/{d.pid}.bpmn")
    for name, schema in forms().items():
        (FORMS / f"{name}.schema.json").write_text(json.dumps(schema, indent=2, ensure_ascii=False) + "\n",
                                                  encoding="utf-8")
        print(f"wrote forms/{name}.schema.json")


if __name__ == "__main__":
    main()
