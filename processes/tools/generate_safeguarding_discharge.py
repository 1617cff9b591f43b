"""Generate the safeguarding and hospital discharge diagrams (with layout and lanes).

    .venv/bin/python processes/tools/generate_safeguarding_discharge.py          # writes the files
    .venv/bin/python processes/tools/generate_safeguarding_discharge.py --check  # exit 1 if a file differs

Writes processes/safeguarding.bpmn, processes/hospital_discharge.bpmn and the decision table
processes/discharge_pathway.dmn. Timescales are never written into the diagrams: each process
calls `local_settings` first (processes/config/timescales.json) and every deadline is worked
out from `settings[...]` - working-day deadlines by the `deadline` handler (England and Wales
bank holidays, 17:00 UK time), so the deadline a case used is in its history.

Every deadline is an *escalating* SLA, not a hard stop: a non-interrupting boundary timer at the
deadline raises an "Escalate: ... overdue" task for the team manager and the stage task stays open.
"""

from __future__ import annotations

import sys
from pathlib import Path
from xml.sax.saxutils import escape

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bpmn_layout import Diagram, script, service, timer, user_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
ESCALATION_FORM = "sla_escalation"
# Durations in timescales.json are ISO 8601 days or weeks ("P28D", "P6W"); scripts turn them
# into a number of days with this helper (the sandbox has no ISO parser).
DAYS_IN = '''def days_in(period):
    number = int(period[1:-1])
    return number * 7 if period.endswith("W") else number
'''
# The plan review deadline: `safeguarding_plan_review_working_days` working days after the review falls due.
PLAN_REVIEW_DUE = ('working_day_deadline(now().isoformat(), '
                   'settings["safeguarding_plan_review_working_days"])')


def _sla(d: Diagram, host: str, stage: str, key: str, due: str, tm_lane: str, col: float, *,
         kind: str = "timeDate", doc: str) -> None:
    """A non-interrupting deadline on `host` raising "Escalate: <stage> overdue" for the team manager."""
    d.boundary(f"{key}_overdue", f"{stage[0].upper()}{stage[1:]} deadline", host, timer(kind, due),
               cancel=False, slot=1, doc=doc)
    d.add("userTask", f"escalate_{key}", f"Escalate: {stage} overdue", tm_lane, col + 0.7,
          attrs=user_task(ESCALATION_FORM, "team_manager"), w=124,
          doc=f"The {stage} deadline has passed; the {stage} task stays open with its team. Record what "
              "the team manager has done about it.")
    d.add("endEvent", f"end_escalated_{key}", "Escalation dealt with", tm_lane, col + 0.7, 1)
    hx = d.nodes[f"{key}_overdue"].x
    d.flow(f"f_{key}_overdue", f"{key}_overdue", f"escalate_{key}", via=[(hx, d.row_y(tm_lane, 0))])
    ex = d.nodes[f"escalate_{key}"].x
    d.flow(f"f_{key}_escalated", f"escalate_{key}", f"end_escalated_{key}", via=[(ex, d.row_y(tm_lane, 0.5))])


def _deadline_task(d: Diagram, id: str, name: str, lane: str, col: float, result: str, days: str, doc: str) -> None:
    a, e = service("deadline", result, working_days=days)
    d.add("serviceTask", id, name, lane, col, attrs=a, ext=e, doc=doc)


# ---------------------------------------------------------------- safeguarding

def safeguarding() -> Diagram:
    d = Diagram("safeguarding", "Adult safeguarding (Care Act s.42)",
                [("lane_safeguarding", "Safeguarding", 3), ("lane_team_manager", "Team Manager", 2)],
                doc="Concern received and immediate safety -> triage -> decision (s.42 enquiry / other enquiry / "
                    "no further action with advice) -> strategy discussion -> enquiry -> outcome and safeguarding "
                    "plan -> plan review -> closure -> a letter to the adult or their representative when it is "
                    "safe to send one. Making Safeguarding Personal: the adult's desired outcomes "
                    "are asked at the start and the outcomes achieved and risk recorded at the end. Can start at "
                    "any point in a case (it runs beside any other process of the case). Start data: person "
                    "(optional: else the case record's person), raised_by, concern, urgent, contact_date (all "
                    "optional). Deadlines (timescales.json) escalate to the team manager and never close a stage.")
    sg, tm = "lane_safeguarding", "lane_team_manager"
    d.add("startEvent", "concern_received", "Safeguarding concern received", sg, 0)
    a, e = service("local_settings", "settings")
    d.add("serviceTask", "load_settings", "Load local timescales", sg, 1, attrs=a, ext=e)
    d.add("scriptTask", "note_concern", "Note the concern date", sg, 2, attrs={"scriptFormat": "python"},
          body=script('try:\n'
                      '    concern_date = contact_date[:10] if contact_date else now().date().isoformat()\n'
                      'except NameError:  # started here, not from the front door\n'
                      '    concern_date = now().date().isoformat()\n'
                      'try:\n'
                      '    person = person or case().get("person") or {}\n'
                      'except NameError:  # no person in the start data: the case record\'s\n'
                      '    person = case().get("person") or {}\n'
                      'alleged_source_of_harm = None\n'),
          doc="concern_date: the front door's contact date, else today. The adult's details: the start data's "
              "person, else the case record's. The alleged source of harm is asked with the concern.")
    _deadline_task(d, "set_triage_deadline", "Set the triage deadline", sg, 3, "triage_due",
                   'settings["safeguarding_triage_working_days"]',
                   'settings["safeguarding_triage_working_days"] working days after the concern, 17:00 UK time.')
    d.add("userTask", "record_concern", "Record the concern and immediate safety", sg, 4,
          attrs=user_task("safeguarding_concern", "safeguarding"),
          doc="What happened, the immediate risk and what was done to make the adult safe now, and what the "
              "adult wants to happen (Making Safeguarding Personal).", w=124)
    _sla(d, "record_concern", "triage", "triage", 'triage_due["due"]', tm, 4,
         doc="Concern looked at and the adult made safe by the triage deadline.")
    _deadline_task(d, "set_decision_deadline", "Set the decision deadline", sg, 5, "decision_due",
                   'settings["safeguarding_decision_working_days"]',
                   'settings["safeguarding_decision_working_days"] working days after triage, 17:00 UK time.')
    d.add("userTask", "triage_decision", "Decide: enquiry or no further action", sg, 6,
          attrs=user_task("safeguarding_triage_decision", "safeguarding"), w=124)
    _sla(d, "triage_decision", "decision", "decision", 'decision_due["due"]', tm, 6,
         doc="Decision by the next working day after triage.")
    d.add("exclusiveGateway", "decision_gw", "Decision?", sg, 7, label="above-left")
    _deadline_task(d, "set_strategy_deadline", "Set the strategy deadline", sg, 8, "strategy_due",
                   'settings["safeguarding_strategy_urgent_working_days"] if urgent '
                   'else settings["safeguarding_strategy_working_days"]',
                   "5 working days after the decision, 1 when urgent (timescales.json).")
    d.add("userTask", "strategy_discussion", "Hold the strategy discussion", sg, 9,
          attrs=user_task("safeguarding_strategy", "safeguarding"))
    _sla(d, "strategy_discussion", "strategy discussion", "strategy", 'strategy_due["due"]', tm, 9,
         doc="strategy_due: worked out by set_strategy_deadline.")
    d.add("userTask", "enquiry", "Make the enquiry", sg, 10, attrs=user_task("safeguarding_enquiry", "safeguarding"),
          doc="s.42 enquiry (or other enquiry), led by the worker agreed at the strategy discussion.")
    _sla(d, "enquiry", "enquiry", "enquiry", 'settings["safeguarding_enquiry"]', tm, 10, kind="timeDuration",
         doc='settings["safeguarding_enquiry"] (about 4 weeks) after the strategy discussion.')
    d.add("userTask", "record_outcome", "Record the outcome and safeguarding plan", sg, 11,
          attrs=user_task("safeguarding_outcome", "safeguarding"),
          doc="Were the adult's desired outcomes fully, partially or not achieved; was the risk removed, "
              "reduced or does it remain; the safeguarding plan.", w=124)
    d.add("exclusiveGateway", "plan_gw", "Safeguarding plan to review?", sg, 12, label="above")
    d.add("exclusiveGateway", "review_merge", None, sg, 13, 1)
    d.add("intermediateCatchEvent", "wait_plan_review", "Plan review due", sg, 14, 1,
          body=timer("timeDuration", 'settings["safeguarding_plan_review"]'),
          doc='settings["safeguarding_plan_review"] (6 weeks) after the outcome or the last review.')
    d.add("userTask", "review_plan", "Review the safeguarding plan", sg, 15, 1,
          attrs=user_task("safeguarding_plan_review", "safeguarding"))
    _sla(d, "review_plan", "plan review", "plan_review", PLAN_REVIEW_DUE, tm, 15,
         doc="The review is held within settings['safeguarding_plan_review_working_days'] working days of "
             "falling due, 17:00 UK time.")
    d.add("exclusiveGateway", "review_gw", "Close?", sg, 16, 1, label="below-right")
    d.add("exclusiveGateway", "close_merge", None, sg, 17)
    d.add("scriptTask", "close_safeguarding", "Close the safeguarding case", sg, 18,
          attrs={"scriptFormat": "python"},
          body=script('closed_at = now().isoformat()\n'
                      'letter_to = recipient_name = recipient_address = recipient_relationship = None\n'
                      'try:\n'
                      '    safeguarding_plan = safeguarding_plan\n'
                      'except NameError:  # no plan was recorded\n'
                      '    safeguarding_plan = None\n'),
          doc="closed_at; clears the letter's addressee so the worker chooses it afresh.")
    d.add("userTask", "decide_letter", "Decide: is it safe to write, and to whom?", sg, 19,
          attrs=user_task("safeguarding_letter", "safeguarding"),
          doc="A letter confirming the concern was looked into goes to the adult or their representative - "
              "never to the person alleged to have caused harm, and not where they could see it. If no letter "
              "is safe or wanted, the reason is recorded.", w=124)
    d.add("exclusiveGateway", "letter_gw", "Safe to send a letter?", sg, 20, label="above")
    a, e = service("safeguarding_letter", "safeguarding_letter", adult="person",
                   recipient='{"role": letter_to, "name": recipient_name, "address": recipient_address, '
                             '"relationship": recipient_relationship}',
                   concern_date="concern_date", decision="decision",
                   advice_given='advice_given if decision == "no_further_action_with_advice" else None',
                   outcome='None if decision == "no_further_action_with_advice" else '
                           '{"outcomes_achieved": outcomes_achieved, "risk_outcome": risk_outcome, '
                           '"safeguarding_plan": safeguarding_plan}',
                   alleged_source="alleged_source_of_harm")
    d.add("serviceTask", "write_letter", "Write to the adult or their representative", sg, 21, attrs=a, ext=e,
          doc="Letter filed on the case: what the council did and the outcome; names nobody as a source of harm.", w=124)
    d.add("endEvent", "end_closed", "Closed: letter sent", sg, 22)
    d.add("endEvent", "end_closed_no_letter", "Closed: no letter, reason recorded", sg, 21, 1)

    d.flow("f_start", "concern_received", "load_settings")
    d.flow("f_settings", "load_settings", "note_concern")
    d.flow("f_noted", "note_concern", "set_triage_deadline")
    d.flow("f_triage_deadline", "set_triage_deadline", "record_concern")
    d.flow("f_recorded", "record_concern", "set_decision_deadline")
    d.flow("f_decision_deadline", "set_decision_deadline", "triage_decision")
    d.flow("f_decided", "triage_decision", "decision_gw")
    d.flow("f_s42", "decision_gw", "set_strategy_deadline", "s.42 enquiry", 'decision == "s42_enquiry"',
           label_at=(d.nodes["decision_gw"].x + 56, d.row_y(sg, 0) - 34))
    d.flow("f_other", "decision_gw", "set_strategy_deadline", "Other enquiry", 'decision == "other_enquiry"',
           via=[(d.nodes["decision_gw"].x, d.row_y(sg, 1)), (d.nodes["set_strategy_deadline"].x, d.row_y(sg, 1))])
    d.flow("f_nfa", "decision_gw", "close_merge", "No further action, with advice",
           'decision == "no_further_action_with_advice"',
           via=[(d.nodes["decision_gw"].x, d.row_y(sg, 2)), (d.nodes["close_merge"].x, d.row_y(sg, 2))])
    d.flow("f_strategy_deadline", "set_strategy_deadline", "strategy_discussion")
    d.flow("f_strategy_held", "strategy_discussion", "enquiry")
    d.flow("f_enquired", "enquiry", "record_outcome")
    d.flow("f_outcome", "record_outcome", "plan_gw")
    d.flow("f_plan", "plan_gw", "review_merge", "Plan in place: review", "plan_review_needed")
    d.flow("f_no_plan", "plan_gw", "close_merge", "No plan needed", default=True)
    d.flow("f_wait_review", "review_merge", "wait_plan_review")
    d.flow("f_review_due", "wait_plan_review", "review_plan")
    d.flow("f_reviewed", "review_plan", "review_gw")
    d.flow("f_continue", "review_gw", "review_merge", "Continue the plan", 'next_step == "continue_plan"',
           via=[(d.nodes["review_gw"].x, d.row_y(sg, 1.75)), (d.nodes["review_merge"].x, d.row_y(sg, 1.75))])
    d.flow("f_close", "review_gw", "close_merge", "Close", default=True)
    d.flow("f_to_close", "close_merge", "close_safeguarding")
    d.flow("f_closed", "close_safeguarding", "decide_letter")
    d.flow("f_letter_decided", "decide_letter", "letter_gw")
    d.flow("f_send", "letter_gw", "write_letter", "Yes", "send_letter")
    d.flow("f_no_letter", "letter_gw", "end_closed_no_letter", "No: reason recorded", default=True)
    d.flow("f_written", "write_letter", "end_closed")
    return d


# ---------------------------------------------------------------- hospital discharge

def hospital_discharge() -> Diagram:
    d = Diagram("hospital_discharge", "Hospital discharge (Discharge to Assess)",
                [("lane_hospital", "Hospital Team", 2), ("lane_reablement", "Reablement", 1),
                 ("lane_team_manager", "Team Manager", 2)],
                doc="A discharge referral from a ward: respond by the next working day (local SLA), decide the "
                    "discharge pathway 0-3 (decision discharge_pathway), record the discharge and the days from "
                    "discharge-ready to discharge, write to the person, then: 0 home with no new support; 1 home "
                    "with reablement; 2 community bed-based recovery, needs assessed after the recovery window; "
                    "3 care home, needs assessed. Long-term needs are assessed after recovery, not on the ward. "
                    "Everything 'since discharge' counts from the recorded discharge date, not from when it was "
                    "recorded. Start data: person {name, age, address}, reason, ward (optional).")
    hs, rb, tm = "lane_hospital", "lane_reablement", "lane_team_manager"
    d.add("startEvent", "referral_received", "Discharge referral received", hs, 0)
    a, e = service("local_settings", "settings")
    d.add("serviceTask", "load_settings", "Load local timescales", hs, 1, attrs=a, ext=e)
    d.add("scriptTask", "note_referral", "Note the referral date", hs, 2, attrs={"scriptFormat": "python"},
          body=script('referral_date = now().date().isoformat()\n'
                      'support_arranged = None\n'
                      'letter_to = None\n'))
    _deadline_task(d, "set_response_deadline", "Set the response deadline", hs, 3, "response_due",
                   'settings["discharge_response_working_days"]',
                   'settings["discharge_response_working_days"] working days after the referral, 17:00 UK time.')
    d.add("userTask", "respond_to_referral", "Respond to discharge referral", hs, 4,
          attrs=user_task("discharge_response", "hospital_team"),
          doc="Contact the ward, talk to the person and their family, and say what support they need to leave "
              "hospital (the inputs of the pathway decision).")
    _sla(d, "respond_to_referral", "discharge response", "response", 'response_due["due"]', tm, 4,
         doc="Respond the same or next working day (local SLA).")
    d.add("businessRuleTask", "decide_pathway", "Decide the discharge pathway", hs, 5,
          attrs={"camunda:decisionRef": "discharge_pathway"},
          doc="processes/discharge_pathway.dmn sets pathway (0-3) and pathway_reason.")
    d.add("userTask", "record_discharge", "Record the discharge", hs, 6,
          attrs=user_task("discharge_record", "hospital_team"),
          doc="The day the person was ready to leave, the day they left (which may be before today: a late "
              "recording), the support arranged, and who the letter goes to.")
    d.add("scriptTask", "count_delay", "Work out the dates from discharge", hs, 7,
          attrs={"scriptFormat": "python"},
          body=script(DAYS_IN + 'days_ready_to_discharge = (date.fromisoformat(discharge_date) - '
                      'date.fromisoformat(discharge_ready_date)).days\n'
                      'recovery_ends = (date.fromisoformat(discharge_date) + '
                      'timedelta(days=days_in(settings["discharge_recovery_window"]))).isoformat()\n'
                      'follow_up_date = (date.fromisoformat(discharge_date) + timedelta(days=days_in('
                      'settings["hospital_follow_up_after_discharge"]))).isoformat() '
                      'if pathway == 1 and person["age"] >= 65 else None\n'
                      'reablement_weeks = days_in(settings["reablement_length"]) // 7\n'),
          doc="From the recorded discharge date (never from the day it was recorded): the days from "
              "discharge-ready to discharge (a measure), the end of the recovery window (pathway 2) and the "
              "91-day follow-up date (pathway 1, aged 65+) for the letter.")
    a, e = service("discharge_letter", "discharge_letter_written", person="person", pathway="pathway",
                   discharge_date="discharge_date", support_arranged="support_arranged",
                   follow_up_date="follow_up_date",
                   assessment_from='recovery_ends if pathway == 2 else (now().date().isoformat() '
                                   'if pathway == 3 else None)',
                   recipient="letter_to",
                   reablement_weeks="reablement_weeks")
    d.add("serviceTask", "write_discharge_letter", "Write to the person about their discharge", hs, 8,
          attrs=a, ext=e, doc="Filed on the case: the pathway, the support arranged and when we will be in touch.", w=124)
    d.add("exclusiveGateway", "pathway_gw", "Pathway?", hs, 9, label="above")
    d.add("endEvent", "end_pathway_0", "Home, no new support", hs, 11)
    a, e = service("start_process", "reablement_started", process_id='"reablement"',
                   data='{"person": person, "age": person["age"], "reason": reason, "from_hospital": True, '
                        '"discharge_date": discharge_date, "contact_date": referral_date, '
                        '"screening_reason": pathway_reason}')
    d.add("serviceTask", "start_reablement", "Start reablement at home", rb, 10.5, attrs=a, ext=e)
    d.add("endEvent", "end_pathway_1", "Home with reablement", rb, 11.5)
    d.add("intermediateCatchEvent", "recovery_window", "Recovery window ends", hs, 10.5, 1,
          body=timer("timeDate", "recovery_ends"),
          doc='The recorded discharge date + settings["discharge_recovery_window"] (about 4 weeks) of '
              "bed-based recovery (worked out by count_delay).")
    d.add("exclusiveGateway", "assessment_merge", None, hs, 11.5, 1)
    a, e = service("start_process", "assessment_started", process_id='"needs_assessment"',
                   data='{"person": person, "age": person["age"], "reason": reason, '
                        '"contact_date": now().date().isoformat(), "discharge_pathway": pathway, '
                        '"discharge_date": discharge_date}')
    d.add("serviceTask", "start_needs_assessment", "Start needs assessment", hs, 12.5, 1, attrs=a, ext=e,
          doc="After recovery (pathway 2) or on moving into the care home (pathway 3); the 28-day target counts "
              "from today.")
    d.add("endEvent", "end_assessment", "Needs assessment started", hs, 13.5, 1)

    d.flow("f_start", "referral_received", "load_settings")
    d.flow("f_settings", "load_settings", "note_referral")
    d.flow("f_noted", "note_referral", "set_response_deadline")
    d.flow("f_response_deadline", "set_response_deadline", "respond_to_referral")
    d.flow("f_responded", "respond_to_referral", "decide_pathway")
    d.flow("f_decided", "decide_pathway", "record_discharge")
    d.flow("f_discharged", "record_discharge", "count_delay")
    d.flow("f_counted", "count_delay", "write_discharge_letter")
    d.flow("f_letter", "write_discharge_letter", "pathway_gw")
    d.flow("f_pathway_0", "pathway_gw", "end_pathway_0", "0: home, no new support", "pathway == 0")
    d.flow("f_pathway_1", "pathway_gw", "start_reablement", "1: home with reablement", "pathway == 1")
    d.flow("f_reablement_started", "start_reablement", "end_pathway_1")
    d.flow("f_pathway_2", "pathway_gw", "recovery_window", "2: bed-based recovery", "pathway == 2")
    d.flow("f_recovered", "recovery_window", "assessment_merge")
    d.flow("f_pathway_3", "pathway_gw", "assessment_merge", "3: care home", "pathway == 3",
           via=[(d.nodes["pathway_gw"].x, d.row_y(hs, 1.5)), (d.nodes["assessment_merge"].x, d.row_y(hs, 1.5))],
           label_at=(d.nodes["pathway_gw"].x + 60, d.row_y(hs, 1.5) - 11))
    d.flow("f_to_assessment", "assessment_merge", "start_needs_assessment")
    d.flow("f_assessment_started", "start_needs_assessment", "end_assessment")
    return d


# ---------------------------------------------------------------- discharge pathway decision

INPUTS = [  # (id, label, expression)
    ("care_home", "Needs a care home?", "needs_care_home"),
    ("bed", "Needs bed-based recovery?", "needs_bed_based_recovery"),
    ("home", "Can go home?", "can_go_home"),
    ("support", "Needs new support at home?", "needs_new_support"),
]
RULES = [  # (id, entries per input, pathway, reason) - no two rules can match the same case
    ("care_home", ["True", "-", "-", "-"], 3, "Pathway 3: a care home; long-term needs assessed there"),
    ("bed_based", ["False", "True", "-", "-"], 2, "Pathway 2: community bed-based recovery, then assessment"),
    ("not_home", ["False", "False", "False", "-"], 2,
     "Pathway 2: cannot go home yet; community bed-based recovery, then assessment"),
    ("home_support", ["False", "False", "True", "True"], 1, "Pathway 1: home with new support (reablement)"),
    ("home", ["False", "False", "True", "False"], 0, "Pathway 0: home with no new support"),
]


def discharge_pathway_dmn() -> str:
    ins = "".join(
        f'      <input id="in_{i}" label="{escape(label)}">\n'
        f'        <inputExpression id="in_{i}_expr" typeRef="boolean"><text>{escape(expr)}</text></inputExpression>\n'
        f"      </input>\n" for i, label, expr in INPUTS)
    rules = []
    for rid, entries, pathway, reason in RULES:
        cells = "".join(f'        <inputEntry id="rule_{rid}_{INPUTS[n][0]}"><text>{escape(v)}</text></inputEntry>\n'
                        for n, v in enumerate(entries))
        rules.append(f'      <rule id="rule_{rid}">\n{cells}'
                     f'        <outputEntry id="rule_{rid}_pathway"><text>{pathway}</text></outputEntry>\n'
                     f'        <outputEntry id="rule_{rid}_reason"><text>{escape(repr(reason))}</text></outputEntry>\n'
                     f"      </rule>\n")
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        "<!-- Generated by processes/tools/generate_safeguarding_discharge.py; may be edited in Camunda Modeler. -->\n"
        '<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" '
        'xmlns:dmndi="https://www.omg.org/spec/DMN/20191111/DMNDI/" xmlns:dc="http://www.omg.org/spec/DMN/20180521/DC/" '
        'id="defs_discharge_pathway" name="Discharge pathway" namespace="http://carepath.local/decisions">\n'
        '  <decision id="discharge_pathway" name="Discharge pathway">\n'
        "    <description>Discharge to Assess pathways: 0 home with no new support; 1 home with new support "
        "including reablement; 2 community bed-based recovery (also when the person cannot go home yet); 3 care "
        "home. A care home need decides first, then bed-based recovery. The rules do not overlap (hit policy "
        "UNIQUE).</description>\n"
        '    <decisionTable id="discharge_pathway_table" hitPolicy="UNIQUE">\n'
        f"{ins}"
        '      <output id="out_pathway" label="Pathway" name="pathway" typeRef="integer" />\n'
        '      <output id="out_reason" label="Why" name="pathway_reason" typeRef="string" />\n'
        f"{''.join(rules)}"
        "    </decisionTable>\n  </decision>\n"
        "  <dmndi:DMNDI>\n    <dmndi:DMNDiagram id=\"dmn_diagram_discharge_pathway\">\n"
        '      <dmndi:DMNShape id="discharge_pathway_di" dmnElementRef="discharge_pathway">\n'
        '        <dc:Bounds height="80" width="180" x="160" y="100" />\n'
        "      </dmndi:DMNShape>\n    </dmndi:DMNDiagram>\n  </dmndi:DMNDI>\n</definitions>\n")


OUTPUTS = {
    PROCESSES / "safeguarding.bpmn": lambda: safeguarding().xml().replace(
        "generate_diagrams.py", "generate_safeguarding_discharge.py", 1),
    PROCESSES / "hospital_discharge.bpmn": lambda: hospital_discharge().xml().replace(
        "generate_diagrams.py", "generate_safeguarding_discharge.py", 1),
    PROCESSES / "discharge_pathway.dmn": discharge_pathway_dmn,
}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    differ = []
    for path, build in OUTPUTS.items():
        text = build()
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                differ.append(str(path))
            continue
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    for p in differ:
        print(f"differs from the generator: {p}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
