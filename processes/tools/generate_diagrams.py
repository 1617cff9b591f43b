"""Generate the front door, reablement and hospital follow-up diagrams (with layout).

    .venv/bin/python processes/tools/generate_diagrams.py          # writes processes/*.bpmn
    .venv/bin/python processes/tools/generate_diagrams.py --check  # exit 1 if a file differs

Timescales are never written into the diagrams: each process calls `local_settings` first
(processes/config/timescales.json) and its timers read `settings[...]`.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bpmn_layout import Diagram, script, service, timer, user_task  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
PROCESSES = ROOT / "processes"
STUB = ROOT / "tests" / "diagrams_stage1" / "needs_assessment_stub.bpmn"

# Durations in timescales.json are ISO 8601 days or weeks ("P42D", "P6W"); scripts turn them
# into a number of days with this helper (the sandbox has no ISO parser).
DAYS_IN = '''def days_in(period):
    number = int(period[1:-1])
    return number * 7 if period.endswith("W") else number
'''


def front_door() -> Diagram:
    d = Diagram("front_door", "Adult front door", [("lane_front_door", "Front Door", 4),
                                                    ("lane_safeguarding", "Safeguarding", 1)],
                doc="Single point of contact: record the contact once, screen it, and route it to information "
                    "and advice, signposting (with a call back), reablement, a needs assessment without "
                    "reablement, or the safeguarding process (started for the same case, which owns triage "
                    "and its deadlines).")
    fd, sg = "lane_front_door", "lane_safeguarding"
    d.add("startEvent", "contact_received", "Contact received", fd, 0)
    a, e = service("local_settings", "settings")
    d.add("serviceTask", "load_settings", "Load local timescales", fd, 1, attrs=a, ext=e,
          doc="processes/config/timescales.json, kept in `settings` and recorded in the case history.")
    d.add("userTask", "record_contact", "Record the contact", fd, 2, attrs=user_task("contact", "front_door"),
          doc="Who called, why, and the person's details - asked once and passed on to every later process.")
    a, e = service("update_case", None, data='{"person": person}')
    d.add("serviceTask", "keep_person", "Keep the person's details on the case", fd, 3, attrs=a, ext=e,
          doc="The person's details go on the case record once (update_case); every later process of the "
              "case and every letter reads them from there.", w=124)
    d.add("scriptTask", "note_contact", "Note the contact date", fd, 4, attrs={"scriptFormat": "python"},
          body=script('contact_date = now().date().isoformat()\n'
                      'try:\n'
                      '    reablement_appropriate = reablement_appropriate is not False\n'
                      'except NameError:  # not asked: reablement is assumed appropriate\n'
                      '    reablement_appropriate = True\n'),
          doc="contact_date (today), from which a needs assessment's 28-day target counts; "
              "reablement_appropriate is true unless the contact form says otherwise.")
    d.add("businessRuleTask", "screen_contact", "Screen the contact", fd, 5,
          attrs={"camunda:decisionRef": "front_door_screening"},
          doc="Decision table processes/screening.dmn sets screening_route and screening_reason.")
    d.add("exclusiveGateway", "route_gw", "Screening route?", fd, 6, label="above")
    # row 0: information and advice
    d.add("endEvent", "end_information_advice", "Information and advice given", fd, 11.6)
    # row 1: signposting
    a, e = service("search_directory", "directory_search", needs="needs", area='person["area"]')
    d.add("serviceTask", "search_directory", "Search the community directory", fd, 7.6, 1, attrs=a, ext=e)
    a, e = service("record_signposting", "signposting",
                   services='[service["id"] for service in directory_search["matches"]]',
                   person_consents="consents_to_referral",
                   call_back_in_days='settings["signposting_call_back_days"]')
    d.add("serviceTask", "record_signposting", "Record signposting and referrals", fd, 8.6, 1, attrs=a, ext=e)
    d.add("intermediateCatchEvent", "wait_for_call_back", "Call-back day", fd, 9.6, 1,
          body=timer("timeDate", 'signposting["call_back_due"]'),
          doc='settings["signposting_call_back_days"] calendar days after the referral, moved to the next '
              "working day (worked out by record_signposting).")
    d.add("userTask", "signposting_call_back", "Call back: was the signposting right?", fd, 10.6, 1,
          attrs=user_task("signposting_call_back", "front_door"), w=124)
    d.add("endEvent", "end_signposted", "Signposting checked", fd, 11.6, 1)
    # row 2: reablement
    a, e = service("start_process", "reablement_started", process_id='"reablement"',
                   data='{"person": person, "age": person["age"], "reason": reason, '
                        '"from_hospital": from_hospital, '
                        '"discharge_date": discharge_date if from_hospital else None, '
                        '"screening_reason": screening_reason}')
    d.add("serviceTask", "start_reablement", "Start reablement", fd, 7.6, 2, attrs=a, ext=e)
    d.add("endEvent", "end_referred_reablement", "Referred to reablement", fd, 8.6, 2)
    # row 3: needs assessment without reablement
    a, e = service("start_process", "assessment_started", process_id='"needs_assessment"',
                   data='{"person": person, "age": person["age"], "reason": reason, '
                        '"contact_date": contact_date, "screening_reason": screening_reason}')
    d.add("serviceTask", "start_needs_assessment", "Start needs assessment", fd, 7.6, 3, attrs=a, ext=e,
          doc="Reablement is not appropriate (for example a young person moving to adult services, or a "
              "long-term condition reablement will not help): the needs assessment starts at once, its "
              "28-day target counted from the contact date.")
    d.add("endEvent", "end_referred_assessment", "Referred for needs assessment", fd, 8.6, 3)
    # safeguarding lane: the safeguarding process owns triage, its deadline and escalation
    a, e = service("start_process", "safeguarding_started", process_id='"safeguarding"',
                   data='{"person": person, "concern": reason, "urgent": crisis, '
                        '"raised_by": caller["name"] + " (" + caller["relationship"] + ")", '
                        '"contact_date": contact_date, "screening_reason": screening_reason}')
    d.add("serviceTask", "start_safeguarding", "Start safeguarding", sg, 7.6, attrs=a, ext=e,
          doc="Starts the safeguarding process for the same case: the safeguarding team records the concern "
              "and immediate safety, with its triage deadline escalated to the team manager.")
    d.add("endEvent", "end_referred_safeguarding", "Referred to safeguarding", sg, 8.6)

    d.flow("f_start", "contact_received", "load_settings")
    d.flow("f_settings", "load_settings", "record_contact")
    d.flow("f_recorded", "record_contact", "keep_person")
    d.flow("f_kept", "keep_person", "note_contact")
    d.flow("f_noted", "note_contact", "screen_contact")
    d.flow("f_screened", "screen_contact", "route_gw")
    d.flow("f_information", "route_gw", "end_information_advice", "Information and advice only", default=True)
    d.flow("f_signpost", "route_gw", "search_directory", "Signpost to community services",
           'screening_route == "signposting"')
    d.flow("f_searched", "search_directory", "record_signposting")
    d.flow("f_recorded_signposting", "record_signposting", "wait_for_call_back")
    d.flow("f_call_back_due", "wait_for_call_back", "signposting_call_back")
    d.flow("f_called_back", "signposting_call_back", "end_signposted")
    d.flow("f_reablement", "route_gw", "start_reablement", "Likely eligible: reablement",
           'screening_route == "reablement"')
    d.flow("f_reablement_started", "start_reablement", "end_referred_reablement")
    d.flow("f_needs_assessment", "route_gw", "start_needs_assessment", "Needs assessment without reablement",
           'screening_route == "needs_assessment"')
    d.flow("f_assessment_started", "start_needs_assessment", "end_referred_assessment")
    d.flow("f_safeguarding", "route_gw", "start_safeguarding", "Crisis or safeguarding concern",
           'screening_route == "safeguarding"')
    d.flow("f_safeguarding_started", "start_safeguarding", "end_referred_safeguarding")
    return d


def reablement() -> Diagram:
    d = Diagram("reablement", "Reablement (short-term support)",
                [("lane_reablement", "Reablement", 3), ("lane_team_manager", "Team Manager", 2)],
                doc="Up to settings['reablement_length'] (6 weeks) of reablement, free of charge; extended by a team "
                    "manager with a recorded reason, or ended early at the person's best level of independence. "
                    "Start data: person, age, reason, from_hospital, discharge_date, contact_date (YYYY-MM-DD; the "
                    "start date when absent), from which the needs assessment's 28-day target counts.")
    rb, tm = "lane_reablement", "lane_team_manager"
    d.add("startEvent", "reablement_referred", "Referred for reablement", rb, 0)
    d.add("scriptTask", "note_contact_date", "Note the contact date", rb, 1, attrs={"scriptFormat": "python"},
          body=script('try:\n'
                      '    contact_date = contact_date[:10] if contact_date else now().date().isoformat()\n'
                      'except NameError:  # started without one: count from the start of reablement\n'
                      '    contact_date = now().date().isoformat()\n'),
          doc="contact_date from the start data, else today: a needs assessment started later counts its "
              "28-day target from it.")
    a, e = service("local_settings", "settings")
    d.add("serviceTask", "load_settings", "Load local timescales", rb, 2, attrs=a, ext=e)
    d.add("userTask", "plan_reablement", "Plan reablement", rb, 3, attrs=user_task("reablement_plan", "reablement"))
    d.add("scriptTask", "set_reablement_period", "Set the 6-week period", rb, 4, attrs={"scriptFormat": "python"},
          body=script(DAYS_IN + 'extensions = 0\n'
                      'delivery_period = settings["reablement_length"]\n'
                      'reminder_after = "P%dD" % max(days_in(settings["reablement_length"]) - '
                      'days_in(settings["reablement_reminder_before_end"]), 0)\n'),
          doc="delivery_period = settings['reablement_length']; the reminder comes "
              "settings['reablement_reminder_before_end'] before its end.")
    d.add("exclusiveGateway", "delivery_merge", None, rb, 5)
    d.add("userTask", "deliver_reablement", "Deliver reablement", rb, 6,
          attrs=user_task("reablement_delivery", "reablement"),
          doc="Complete when reablement ends: early when the person has reached their best level of "
              "independence, or with the outcome at the end of the period.")
    d.boundary("end_reminder", "Reminder before the end", "deliver_reablement", timer("timeDuration", "reminder_after"),
               cancel=False, slot=1)
    d.boundary("period_ended", "Reablement period reached", "deliver_reablement",
               timer("timeDuration", "delivery_period"), cancel=True, slot=0, label="below-left")
    d.add("userTask", "prepare_for_end", "Prepare for the end of reablement", rb, 7, 1.2,
          attrs=user_task("reablement_end_review", "reablement"))
    d.add("endEvent", "end_prepared", "End prepared", rb, 8, 1.2)
    d.add("userTask", "decide_extend_or_end", "Decide: extend or end", tm, 7,
          attrs=user_task("reablement_extension", "team_manager"))
    d.add("exclusiveGateway", "extend_gw", "Extend?", tm, 8, label="above")
    d.add("scriptTask", "set_extension_period", "Set the extension period", tm, 8, 1, attrs={"scriptFormat": "python"},
          body=script(DAYS_IN + 'extensions = extensions + 1\n'
                      'delivery_period = "P%dD" % extension_days\n'
                      'reminder_after = "P%dD" % max(extension_days - '
                      'days_in(settings["reablement_reminder_before_end"]), 0)\n'))
    d.add("exclusiveGateway", "finished_merge", None, rb, 9)
    d.add("exclusiveGateway", "hospital_gw", "From hospital, aged 65 or over?", rb, 10, label="above")
    a, e = service("start_process", "follow_up_started", process_id='"hospital_follow_up"',
                   data='{"person": person, "age": age, "discharge_date": discharge_date}')
    d.add("serviceTask", "start_hospital_follow_up", "Schedule the 91-day follow-up", rb, 11, 1, attrs=a, ext=e)
    d.add("exclusiveGateway", "hospital_merge", None, rb, 12)
    d.add("exclusiveGateway", "needs_gw", "Needs remain?", rb, 13, label="above")
    a, e = service("start_process", "assessment_started", process_id='"needs_assessment"',
                   data='{"person": person, "age": age, "reason": reason, "reablement_outcome": outcome, '
                        '"reablement_extensions": extensions, "contact_date": contact_date}')
    d.add("serviceTask", "start_needs_assessment", "Start needs assessment", rb, 14, 1, attrs=a, ext=e)
    d.add("endEvent", "end_needs_assessment", "Referred for needs assessment", rb, 15, 1)
    d.add("endEvent", "end_no_further_needs", "Reablement ended: no further needs", rb, 15)

    d.flow("f_start", "reablement_referred", "note_contact_date")
    d.flow("f_contact_date", "note_contact_date", "load_settings")
    d.flow("f_settings", "load_settings", "plan_reablement")
    d.flow("f_planned", "plan_reablement", "set_reablement_period")
    d.flow("f_period_set", "set_reablement_period", "delivery_merge")
    d.flow("f_deliver", "delivery_merge", "deliver_reablement")
    d.flow("f_delivered", "deliver_reablement", "finished_merge")
    d.flow("f_reminder", "end_reminder", "prepare_for_end")
    d.flow("f_prepared", "prepare_for_end", "end_prepared")
    gx = d.nodes["period_ended"].x
    d.flow("f_period_ended", "period_ended", "decide_extend_or_end", via=[(gx, d.row_y(tm, 0))])
    d.flow("f_decided", "decide_extend_or_end", "extend_gw")
    d.flow("f_extend", "extend_gw", "set_extension_period", "Extend", 'decision == "extend"')
    mx = d.nodes["delivery_merge"].x
    d.flow("f_extension_set", "set_extension_period", "delivery_merge",
           via=[(mx, d.row_y(tm, 1))])
    fx = d.nodes["finished_merge"].x
    d.flow("f_end", "extend_gw", "finished_merge", "End reablement", default=True, via=[(fx, d.row_y(tm, 0))])
    d.flow("f_finished", "finished_merge", "hospital_gw")
    d.flow("f_from_hospital", "hospital_gw", "start_hospital_follow_up", "Yes: 91-day follow-up",
           "from_hospital and age >= 65")
    d.flow("f_follow_up_started", "start_hospital_follow_up", "hospital_merge")
    d.flow("f_not_from_hospital", "hospital_gw", "hospital_merge", "No", default=True)
    d.flow("f_to_needs", "hospital_merge", "needs_gw")
    d.flow("f_needs_remain", "needs_gw", "start_needs_assessment", "Needs remain", 'outcome == "needs_remain"')
    d.flow("f_assessment_started", "start_needs_assessment", "end_needs_assessment")
    d.flow("f_no_further_needs", "needs_gw", "end_no_further_needs", "No further needs", default=True)
    return d


def hospital_follow_up() -> Diagram:
    d = Diagram("hospital_follow_up", "91-day hospital discharge follow-up",
                [("lane_reablement", "Reablement", 1)],
                doc="ASCOF 2D: is a person aged 65+ who left hospital into reablement still at home "
                    "settings['hospital_follow_up_after_discharge'] (91 days) after discharge? "
                    "Start data: person, age, discharge_date (YYYY-MM-DD).")
    rb = "lane_reablement"
    d.add("startEvent", "follow_up_scheduled", "Follow-up scheduled", rb, 0)
    a, e = service("local_settings", "settings")
    d.add("serviceTask", "load_settings", "Load local timescales", rb, 1, attrs=a, ext=e)
    d.add("scriptTask", "set_follow_up_date", "Work out the follow-up date", rb, 2, attrs={"scriptFormat": "python"},
          body=script(DAYS_IN + 'follow_up_due = (date.fromisoformat(discharge_date) + '
                      'timedelta(days=days_in(settings["hospital_follow_up_after_discharge"]))).isoformat()\n'),
          doc="discharge_date + settings['hospital_follow_up_after_discharge'].")
    d.add("intermediateCatchEvent", "wait_after_discharge", "91 days after discharge", rb, 3,
          body=timer("timeDate", "follow_up_due"))
    d.add("userTask", "check_still_at_home", "Check the person is still at home", rb, 4,
          attrs=user_task("hospital_follow_up_check", "reablement"))
    d.add("exclusiveGateway", "at_home_gw", "Still at home?", rb, 5, label="above")
    d.add("endEvent", "end_at_home", "Still at home at 91 days", rb, 6)
    d.add("endEvent", "end_not_at_home", "Not at home at 91 days", rb, 6, 0.7)
    d.flow("f_start", "follow_up_scheduled", "load_settings")
    d.flow("f_settings", "load_settings", "set_follow_up_date")
    d.flow("f_date_set", "set_follow_up_date", "wait_after_discharge")
    d.flow("f_due", "wait_after_discharge", "check_still_at_home")
    d.flow("f_checked", "check_still_at_home", "at_home_gw")
    d.flow("f_at_home", "at_home_gw", "end_at_home", "Yes", 'at_home == "yes"')
    d.flow("f_not_at_home", "at_home_gw", "end_not_at_home", "No", default=True)
    return d


def needs_assessment_stub() -> Diagram:
    d = Diagram("needs_assessment", "Needs assessment (test stub)", [("lane_assessment", "Assessment", 1)],
                doc="Stand-in for the real needs assessment process in tests of reablement.")
    la = "lane_assessment"
    d.add("startEvent", "start", "Assessment requested", la, 0)
    d.add("userTask", "assess_needs", "Assess needs", la, 1, attrs=user_task("needs_assessment_stub", "social_work"))
    d.add("endEvent", "end", "Assessed", la, 2)
    d.flow("f1", "start", "assess_needs")
    d.flow("f2", "assess_needs", "end")
    return d


OUTPUTS = {
    PROCESSES / "front_door.bpmn": front_door,
    PROCESSES / "reablement.bpmn": reablement,
    PROCESSES / "hospital_follow_up.bpmn": hospital_follow_up,
    STUB: needs_assessment_stub,
}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    differ = []
    for path, build in OUTPUTS.items():
        text = build().xml()
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                differ.append(str(path))
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    for p in differ:
        print(f"differs from the generator: {p}")
    return 1 if differ else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
