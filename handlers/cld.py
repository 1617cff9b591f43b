"""Client Level Data (CLD): the DHSC quarterly return, derived from case histories.

Since April 2023 councils send one row per *event* of four types (Request, Assessment, Service,
Review) with start and end dates, an outcome, and for services the service type and delivery
mechanism (operating model, section 4). Nothing here is stored: the rows are computed from the
hash-chained history (`Engine.history(case_id)`) and the case record (`Engine.get_case`), so the
return is as trustworthy as the audit trail and can be re-derived at any time.

This is a reporting module, not a service-task handler: diagrams do not call it and
`handlers.register` does not register it.

The mapping (data-driven: `PROCESS_MAPPINGS`, one entry per process id)
-----------------------------------------------------------------------

Every process instance of a mapped process gives at most one row (a Service row is split in two at
each change of its delivery mechanism: ``delivery_changes``). A mapping says:

- ``event_type``; ``trigger`` — the history event that makes the instance reportable (none: the
  instance start); ``start`` — the event whose time is the event start (none: the trigger);
  ``end`` — the event whose time is the event end (``instance.completed``; None while open);
- ``outcome_rules`` — (match, outcome) pairs tried in order over the instance's events, the first
  matching event gives the outcome; ``default_outcome`` applies once the event has ended and no
  rule matched; ``open_outcome`` applies while it is open and no rule matched (else None);
- ``service_type``, ``delivery_mechanism`` (a value taken from a form field through a code map),
  ``client_type``;
- ``route_of_access`` (Request rows): a value, or ``{"rules": [(match, value)…], "default": value}``;
- ``review_reason`` (Review rows): taken from a field of the instance's start data, checked against
  the code list (``{"match", "field", "default", "allowed"}``); ``review_type`` follows from it
  (Planned, or Unplanned for any of the unplanned reasons);
- ``person_from_start_data``: the row is about the person in the instance's start data (the carer),
  not the case's person;
- ``delivery_changes`` (Service rows): another process that changes the delivery mechanism of the
  service in effect — ``process_id``, the history event that records the change (``match``) and its
  ``field`` mapped through ``map`` to the new mechanism, the mechanism it ``applies_to``, where the
  change ``date`` is read, and the ``outcome`` of the row it ends (see ``_apply_delivery_changes``).

A *match* is a dict of dotted paths into the history event (``type``, ``data.element_id``,
``data.data.outcome``…) to a value, or to a tuple of allowed values.

============================  ==========  =====================================================
process                       event       outcome
============================  ==========  =====================================================
front_door                    Request     route of access: Discharge from hospital when the
                                          contact form says the person is leaving (or has just
                                          left) hospital; Planned entry (transition) when
                                          reablement is not appropriate because of transition to
                                          adult services; else Community / Other route.
                                          start: instance started; end: instance completed.
                                          The route for the person's needs, in this order:
                                          child urgent_response started (a crisis: rapid
                                          response or urgent assessment today) -> Progress to
                                          Assessment; child reablement started -> Progress to
                                          Reablement/ST-Max; child needs_assessment started ->
                                          Progress to Assessment (after reablement, or at
                                          once when reablement is not appropriate); child
                                          review started (new needs on a case with a plan in
                                          effect) -> Progress to Re-assessment / Unplanned
                                          Review; child equipment started (tier 2) -> Progress
                                          to Support Planning / Services; child safeguarding
                                          started (or, in histories from the earlier diagram,
                                          its own safeguarding triage task) -> NFA – Other (the
                                          concern is reported in the Safeguarding Adults
                                          Collection, not CLD); new needs passed to the team
                                          working an open reablement, assessment, budget or
                                          plan (task inform_reablement or inform_social_work
                                          ready) -> NFA – Other (that work has its own rows);
                                          then child carers_assessment
                                          started (a carer asking for support for themselves)
                                          -> Progress to Assessment; signposting recorded ->
                                          NFA – Information & Advice / Signposting only; ended
                                          with none of these (information and advice route) ->
                                          the same I&A outcome.
hospital_discharge            Request     route of access: Discharge from hospital. start: the
                                          referral (instance started); end: record_discharge
                                          completed (the day the discharge is recorded; the
                                          pathway-2 recovery window after it is not part of the
                                          request). The pathway (discharge_pathway.dmn) is read
                                          from the route taken in the same step: recovery_window
                                          timer set (pathway 2, community bed-based recovery) ->
                                          Progress to Reablement/ST-Max; child reablement
                                          started (pathway 1) -> Progress to Reablement/ST-Max;
                                          child needs_assessment started (pathway 3, care home)
                                          -> Progress to Assessment; none of these once
                                          discharged (pathway 0, home with no new support) ->
                                          NFA – Information & Advice / Signposting only. No
                                          outcome before the discharge is recorded.
reablement                    Service     Short Term Support: ST-Max (component Reablement), CASSR
                                          Commissioned support. start: plan_reablement completed (else instance start);
                                          end: instance completed. Outcome from the reablement
                                          outcome (deliver_reablement, or the team manager's
                                          "end" decision): best_independence_reached -> Service
                                          ended as planned; needs_remain -> Progress to
                                          Assessment; support_declined -> NFA – Support
                                          declined; admitted_to_hospital -> Admitted to hospital.
needs_assessment              Assessment  start: instance started; end: instance completed.
                                          adult_eligibility eligible -> Progress to Support
                                          Planning / Services; not eligible -> NFA – No services
                                          offered: other reason.
carers_assessment             Assessment  as above with carer_eligibility; end: the eligibility
                                          decision (information and advice or the support plan
                                          that follow are not the assessment). The row is the
                                          CARER's: client type Carer, person fields from the
                                          carer in the start data, local person id the carer's
                                          own (``local_person_id``/``case_reference`` in the
                                          start data) or else ``<case reference>-C<n>`` (one
                                          number per carer name in the case);
                                          cared_for_person_id = the case reference. A carer who
                                          is the case's own person (by name: a carer who
                                          contacted us about themselves): the local person id
                                          is the case reference (person fields from the start
                                          data, then the case record) and cared_for_person_id is
                                          the start data's cared_for_person_id or empty; the
                                          front door Request that started it is client type
                                          Carer too.
carers_support_plan           Service     the carer's: as carers_assessment (same local person
                                          id). Only once sign_off_carer_plan is completed with
                                          signed_off true; start: sign-off. Service type from the
                                          plan's support_type: direct_to_carer -> Carer Support:
                                          Direct to Carer; involving_cared_for -> Carer Support:
                                          Support involving the person cared-for. Delivery
                                          mechanism from money_management (as support_plan).
                                          Open: Provision of service; a review (review_carer_plan)
                                          with next_step reassess -> Progress to Re-assessment /
                                          Unplanned Review, end -> Service ended as planned.
                                          Unit cost: the carer's budget a week
                                          (carer_personal_budget), Weekly, 1 planned unit; empty
                                          when it is paid from the cared-for person's budget.
support_plan                  Service     only once sign_off_plan is completed with signed_off
                                          true. Long Term Support: Community (a plan with
                                          care_home_move: Nursing Care or Residential Care by
                                          care_home_nursing; unanswered: none, a problem in the
                                          return); start: sign-off; delivery mechanism from the
                                          plan's money_management: direct_payment -> Direct
                                          Payment; managed_account and council_managed -> CASSR
                                          Managed Personal Budget (the budget is managed for the
                                          person). The service stays open (outcome
                                          Provision of service) until a later signed-off plan for
                                          the same case supersedes it (end = that sign-off,
                                          outcome Provision of service: support continues under
                                          the new plan). Unit cost: the plan's cost a week
                                          (cost_support_plan before sign-off), cost frequency
                                          Weekly, 1 planned unit a week; empty for plans signed
                                          off before plans were costed; the plan's costed
                                          services are kept as service_lines (one row each in
                                          the return, each with the Service_Component of its
                                          "Type of service", SPEC_SERVICE_COMPONENT; none for a
                                          care home plan; unanswered or "other": a problem).
                                          A direct_payment_review
                                          that changes the arrangement (arrange_change keeps
                                          direct_payment_arrangement on the case) ends the Direct
                                          Payment row on the change date (arrange_change's
                                          effective_from; else the day it was recorded) with
                                          outcome Provision of service, and a new row, same
                                          service type, starts that day: managed_account -> CASSR
                                          Managed Personal Budget; end_direct_payment -> CASSR
                                          Managed Personal Budget; nominated_person /
                                          authorised_person -> still a Direct Payment, no new
                                          row. The change applies to the
                                          plan signed off before it was recorded; a date before
                                          that service started, or not a date, is a
                                          CldDataError; a date on or after a later plan's
                                          sign-off is left to that plan.
(carers_support_plan)         Review      one row per carer's review done (review_carer_plan
                                          completed; it repeats in one instance): the carer's
                                          (as the Service row), Planned; start: the review task
                                          ready; end: completed. next_step continue -> No change
                                          in package; reassess -> Progress to Re-assessment /
                                          Unplanned Review; end -> NFA – Support ended: other
                                          reason.
review                        Review      only once review_plan is completed. Review reason from
                                          the start data's review_reason: Planned (scheduled
                                          cycle; also when absent, as in histories written
                                          before unplanned reviews) or Hospital / Carer related /
                                          Safeguarding concern / Provider Failure / Change in
                                          Commissioning arrangements / Other Reason (review
                                          type Unplanned); any other value is a CldDataError.
                                          start: the review task became ready; end: instance
                                          completed. child needs_assessment started (needs
                                          changed, or a refused reduction with a recorded
                                          change) -> Progress to Re-assessment / Unplanned
                                          Review; an increase a team manager did not approve
                                          (approve_budget_change) -> No change in package; an
                                          allowed budget increase/reduction -> Progress to
                                          Support Planning / Services; otherwise -> No change in
                                          package.
transition                    Request     route of access: Planned entry (transition). start:
                                          the referral from children's services; end: the
                                          decision to assess now or not at all (a decision to
                                          think again later keeps it open). child
                                          needs_assessment started -> Progress to Assessment;
                                          not assessed (written reasons and advice, s.58(5)) ->
                                          NFA – Information & Advice / Signposting only.
urgent_response               Service     only once the reablement team's rapid response visit
                                          is recorded (rapid_response completed): Short Term
                                          Support: Other Short Term, CASSR Commissioned support;
                                          start: the visit recorded; end: instance completed (the
                                          letter, same step). Outcome from the visit's onward
                                          route: reablement -> Progress to Reablement/ST-Max;
                                          needs_assessment -> Progress to Assessment; close ->
                                          Service ended as planned. An urgent assessment by a
                                          social worker has no row of its own (the request that
                                          led to it and the needs assessment it starts have).
equipment                     Service     only once delivery and installation are recorded
                                          (record_delivery completed): Short Term Support:
                                          Ongoing Low Level (equipment, telecare, minor
                                          adaptations), CASSR Commissioned support; start: the
                                          delivery recorded; open (Provision of service) until
                                          the case is closed. No row when nothing was delivered
                                          (the process ended before).
============================  ==========  =====================================================

The return to the specification (field names, order, Release 2 codes, which events a period holds,
what is withheld, problems) is the last section of this module; docs/cld.md explains it.

Not mapped (no CLD row): safeguarding (reported in the Safeguarding Adults Collection, not CLD; a
contact that raises a concern still has its front door Request row), personal_budget (part of
support planning), direct_payment_review (financial monitoring, not a Care Act s.27 review; no row
of its own, but a change of arrangement changes the support_plan Service rows, above),
hospital_follow_up (ASCOF 2D measure, not an event for the person).

Person fields (``person_fields``) come from the case record (``cases.data``, top level or under
``person`` — the front door's record_contact keeps the contact form's person there), then from
the person recorded on a form or passed to a service user's process (latest first); a field never
recorded is None. Birth month/year come from ``date_of_birth``. Gender, ethnicity, primary support
reason, accommodation status and employment status are asked (optionally) on the contact form, in
the code lists below (``PERSON_CODE_LISTS``); a recorded value outside its list is a CldDataError
naming the case and the field. A carer's row takes the carer's own fields (see carers_assessment):
the needs assessment form's carer section asks (optionally) the carer's NHS number, date of birth,
gender, ethnicity, accommodation status and employment status, in the contact form's code lists,
and the diagram passes them to the carer's assessment as its start data's person.
"""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date
from pathlib import Path
from typing import Any, Iterable

from . import working_days
from .people import person_of

# ---------------------------------------------------------------- code lists (operating model, section 4)

EVENT_TYPES = ("Request", "Assessment", "Service", "Review")
REQUEST, ASSESSMENT, SERVICE, REVIEW = EVENT_TYPES

PROGRESS_TO_REABLEMENT = "Progress to Reablement/ST-Max"
PROGRESS_TO_ASSESSMENT = "Progress to Assessment"
ADMITTED_TO_HOSPITAL = "Admitted to hospital"
PROGRESS_TO_REASSESSMENT = "Progress to Re-assessment / Unplanned Review"
PROGRESS_TO_SUPPORT_PLANNING = "Progress to Support Planning / Services"
PROGRESS_TO_END_OF_LIFE = "Progress to End of Life Care"
NO_CHANGE_IN_PACKAGE = "No change in package"
SERVICE_ENDED_AS_PLANNED = "Service ended as planned"
PROGRESS_TO_FINANCIAL_ASSESSMENT = "Progress to financial assessment"
PROVISION_OF_SERVICE = "Provision of service"
NFA_MOVED = "NFA – Moved to another LA"
NFA_NHS_FUNDED = "NFA – 100% NHS funded care"
NFA_SELF_FUNDED = "NFA – Self-funded client (inc. 12wk disregard)"
NFA_SUPPORT_DECLINED = "NFA – Support declined"
NFA_INFORMATION_ADVICE = "NFA – Information & Advice / Signposting only"
NFA_DECEASED = "NFA – Deceased"
NFA_NO_SERVICES = "NFA – No services offered: other reason"
NFA_SUPPORT_ENDED = "NFA – Support ended: other reason"
NFA_OTHER = "NFA – Other"

EVENT_OUTCOMES = (
    PROGRESS_TO_REABLEMENT, PROGRESS_TO_ASSESSMENT, ADMITTED_TO_HOSPITAL, PROGRESS_TO_REASSESSMENT,
    PROGRESS_TO_SUPPORT_PLANNING, PROGRESS_TO_END_OF_LIFE, NO_CHANGE_IN_PACKAGE, SERVICE_ENDED_AS_PLANNED,
    PROGRESS_TO_FINANCIAL_ASSESSMENT, PROVISION_OF_SERVICE, NFA_MOVED, NFA_NHS_FUNDED, NFA_SELF_FUNDED,
    NFA_SUPPORT_DECLINED, NFA_INFORMATION_ADVICE, NFA_DECEASED, NFA_NO_SERVICES, NFA_SUPPORT_ENDED, NFA_OTHER,
)

ST_MAX = "Short Term Support: ST-Max"
ST_ONGOING_LOW_LEVEL = "Short Term Support: Ongoing Low Level"
ST_OTHER = "Short Term Support: Other Short Term"
LT_NURSING = "Long Term Support: Nursing Care"
LT_RESIDENTIAL = "Long Term Support: Residential Care"
LT_COMMUNITY = "Long Term Support: Community"
LT_PRISON = "Long Term Support: Prison"
CARER_DIRECT = "Carer Support: Direct to Carer"
CARER_VIA_CARED_FOR = "Carer Support: Support involving the person cared-for"

SERVICE_TYPES = (ST_MAX, ST_ONGOING_LOW_LEVEL, ST_OTHER, LT_NURSING, LT_RESIDENTIAL, LT_COMMUNITY, LT_PRISON,
                 CARER_DIRECT, CARER_VIA_CARED_FOR)

DIRECT_PAYMENT = "Direct Payment"
CASSR_MANAGED_PERSONAL_BUDGET = "CASSR Managed Personal Budget"
CASSR_COMMISSIONED_SUPPORT = "CASSR Commissioned support"
DELIVERY_MECHANISMS = (DIRECT_PAYMENT, CASSR_MANAGED_PERSONAL_BUDGET, CASSR_COMMISSIONED_SUPPORT)

PLANNED_REVIEW = "Planned"
UNPLANNED_REVIEW_REASONS = ("Hospital", "Carer related", "Safeguarding concern", "Provider Failure",
                            "Change in Commissioning arrangements", "Other Reason")
REVIEW_REASONS = (PLANNED_REVIEW, *UNPLANNED_REVIEW_REASONS)
UNPLANNED_REVIEW = "Unplanned"

CLIENT_TYPES = ("Service User", "Carer")
SERVICE_USER, CARER = CLIENT_TYPES

# person fields (CLD specification wording; the form asks for them with a caseworker's title)
GENDERS = ("Female", "Male", "Other", "Not known", "Not stated")
ETHNICITIES = (  # the NHS ethnic category (ONS 2001 census groups) used in CLD
    "White: British", "White: Irish", "White: Any other White background",
    "Mixed: White and Black Caribbean", "Mixed: White and Black African", "Mixed: White and Asian",
    "Mixed: Any other mixed background",
    "Asian or Asian British: Indian", "Asian or Asian British: Pakistani", "Asian or Asian British: Bangladeshi",
    "Asian or Asian British: Any other Asian background",
    "Black or Black British: Caribbean", "Black or Black British: African",
    "Black or Black British: Any other Black background",
    "Other ethnic groups: Chinese", "Other ethnic groups: Any other ethnic group",
    "Not stated", "Not known",
)
PRIMARY_SUPPORT_REASONS = (
    "Physical Support: Access & mobility only", "Physical Support: Personal care support",
    "Sensory Support: Support for visual impairment", "Sensory Support: Support for hearing impairment",
    "Sensory Support: Support for dual impairment", "Support with Memory & Cognition",
    "Learning Disability Support", "Mental Health Support", "Social Support: Substance misuse support",
    "Social Support: Asylum seeker support", "Social Support: Support for Social Isolation/Other",
    "Not known",
)
ACCOMMODATION_STATUSES = (
    "Owner occupier or shared ownership scheme",
    "Tenant (including local authority, arm's length management organisations, registered social landlord, "
    "housing association)",
    "Tenant - private landlord",
    "Settled mainstream housing with family / friends (including flat-sharing)",
    "Supported accommodation / supported lodgings / supported group home",
    "Shared Lives scheme",
    "Approved premises for offenders released from prison or under probation supervision",
    "Sheltered housing / extra care housing / other sheltered housing",
    "Mobile accommodation for Gypsy / Roma and Traveller communities",
    "Rough sleeper / squatting",
    "Night shelter / emergency hostel / direct access hostel",
    "Refuge",
    "Placed in temporary accommodation by the council (including homelessness resettlement)",
    "Staying with family / friends as a short-term guest",
    "Acute / long-term healthcare residential facility or hospital",
    "Registered care home",
    "Registered nursing home",
    "Prison / Young offenders institution / detention centre",
    "Other temporary accommodation",
    "Not known",
)
EMPLOYMENT_STATUSES = (
    "Paid: Less than 16 hours a week", "Paid: 16 or more hours a week", "Paid: Hours per week unknown",
    "Not in paid employment (seeking work)", "Not in paid employment (not actively seeking work / retired)",
    "Not in paid employment (voluntary work only)", "Not known",
)
# the coded person fields and their code lists (a value outside its list is a CldDataError)
PERSON_CODE_LISTS = {
    "gender": GENDERS,
    "ethnicity": ETHNICITIES,
    "primary_support_reason": PRIMARY_SUPPORT_REASONS,
    "accommodation_status": ACCOMMODATION_STATUSES,
    "employment_status": EMPLOYMENT_STATUSES,
}

# route of access of a Request event (the CLD specification's list; the domain brief does not list it)
ROUTE_DISCHARGE = "Discharge from hospital"
ROUTE_DIVERSION = "Diversion from hospital services"
ROUTE_COMMUNITY = "Community / Other route"
ROUTE_TRANSITION = "Planned entry (transition)"
ROUTE_SELF_FUNDER = "Self-funder with depleted funds"
ROUTES_OF_ACCESS = (ROUTE_DISCHARGE, ROUTE_DIVERSION, ROUTE_COMMUNITY, ROUTE_TRANSITION, ROUTE_SELF_FUNDER)

# the support plan form's money_management -> CLD delivery mechanism
DELIVERY_BY_MONEY_MANAGEMENT = {
    "direct_payment": DIRECT_PAYMENT,
    "managed_account": CASSR_MANAGED_PERSONAL_BUDGET,
    # the council arranges the services within the person's personal budget: a council-managed personal budget
    # (CLD "CASSR managed personal budget", self-directed support for ASCOF 3D), not support commissioned outside
    # a personal budget (reablement, equipment, urgent response)
    "council_managed": CASSR_MANAGED_PERSONAL_BUDGET,
}

# a direct payment review's change of arrangement (direct_payment_review: the outcome kept on the case as
# direct_payment_arrangement) -> the CLD delivery mechanism from the change. A nominated (or authorised)
# person still receives a direct payment: no change of mechanism.
DELIVERY_BY_DP_ARRANGEMENT = {
    "nominated_person": DIRECT_PAYMENT,
    "authorised_person": DIRECT_PAYMENT,  # s.32: for a person who lacks capacity
    "managed_account": CASSR_MANAGED_PERSONAL_BUDGET,  # as the support plan's managed_account
    "end_direct_payment": CASSR_MANAGED_PERSONAL_BUDGET,  # the council arranges the support within the budget
}

# the carer's support plan form's support_type -> CLD service type (Care Act s.20(7): support for a carer may be
# given to the person cared for, e.g. replacement care so the carer has a break)
CARER_SERVICE_BY_SUPPORT_TYPE = {
    "direct_to_carer": CARER_DIRECT,
    "involving_cared_for": CARER_VIA_CARED_FOR,
}

# the reablement forms' outcome -> CLD event outcome of the ST-Max service
REABLEMENT_OUTCOMES = {
    "best_independence_reached": SERVICE_ENDED_AS_PLANNED,
    "needs_remain": PROGRESS_TO_ASSESSMENT,
    "support_declined": NFA_SUPPORT_DECLINED,
    "admitted_to_hospital": ADMITTED_TO_HOSPITAL,
}

# a case closed or a process ended early (engine/lifecycle.py: case.closed, instance.cancelled) with one of
# these reasons (api/case_actions.py CLOSE_REASONS): the open CLD events end that day with this outcome
CLOSURE_OUTCOMES = {
    "died": NFA_DECEASED,
    "moved_away": NFA_MOVED,
    "declined": NFA_SUPPORT_DECLINED,
    "nhs_funded": NFA_NHS_FUNDED,
    "no_longer_needed": NFA_SUPPORT_ENDED,
}

_REABLEMENT_END_TASKS = ("deliver_reablement", "decide_extend_or_end")

# ---------------------------------------------------------------- the mapping, one entry per process id

PROCESS_MAPPINGS: dict[str, dict[str, Any]] = {
    "front_door": {
        "event_type": REQUEST,
        # a contact about someone leaving hospital is a discharge request; a young person moving from
        # children's services is a planned entry (transition); every other contact is a community route
        "route_of_access": {
            "rules": [
                ({"type": "task.completed", "data.element_id": "record_contact", "data.data.from_hospital": True},
                 ROUTE_DISCHARGE),
                ({"type": "task.completed", "data.element_id": "record_contact",
                  "data.data.reablement_not_appropriate_because": "transition_to_adult_services"},
                 ROUTE_TRANSITION),
            ],
            "default": ROUTE_COMMUNITY,
        },
        # the route for the person's needs first (urgent response, reablement, assessment, review, equipment,
        # safeguarding); a carer's assessment for a carer asking for support counts only when the person's own
        # route is signposting or information and advice (a carer contacting on their own)
        "outcome_rules": [
            ({"type": "instance.child_started", "data.process_id": "urgent_response"}, PROGRESS_TO_ASSESSMENT),
            ({"type": "instance.child_started", "data.process_id": "reablement"}, PROGRESS_TO_REABLEMENT),
            ({"type": "instance.child_started", "data.process_id": "needs_assessment"}, PROGRESS_TO_ASSESSMENT),
            ({"type": "instance.child_started", "data.process_id": "review"}, PROGRESS_TO_REASSESSMENT),
            ({"type": "instance.child_started", "data.process_id": "equipment"}, PROGRESS_TO_SUPPORT_PLANNING),
            ({"type": "instance.child_started", "data.process_id": "safeguarding"}, NFA_OTHER),
            ({"type": "task.ready", "data.element_id": "triage_safeguarding"}, NFA_OTHER),
            # new needs while reablement, an assessment, a budget or a plan is open: passed to its team, not a
            # new sequel (the open work is reported on its own rows)
            ({"type": "task.ready", "data.element_id": ("inform_reablement", "inform_social_work")}, NFA_OTHER),
            ({"type": "instance.child_started", "data.process_id": "carers_assessment"}, PROGRESS_TO_ASSESSMENT),
            ({"type": "handler.called", "data.handler": "record_signposting"}, NFA_INFORMATION_ADVICE),
        ],
        "default_outcome": NFA_INFORMATION_ADVICE,
    },
    "reablement": {
        "event_type": SERVICE,
        "start": {"type": "task.completed", "data.element_id": "plan_reablement"},
        "service_type": ST_MAX,
        "service_component": "Reablement",  # CLD Release 2 Service_Component: ASCOF 2D counts these services
        "delivery_mechanism": CASSR_COMMISSIONED_SUPPORT,
        "outcome_rules": [
            ({"type": "task.completed", "data.element_id": _REABLEMENT_END_TASKS, "data.data.outcome": code},
             outcome) for code, outcome in REABLEMENT_OUTCOMES.items()
        ],
        "default_outcome": SERVICE_ENDED_AS_PLANNED,
    },
    "needs_assessment": {
        "event_type": ASSESSMENT,
        # a Care Act s.9 assessment decides eligibility (s.13): a long term assessment in CLD
        "assessment_type": "Long term assessment",
        "read": {"eligible": ({"type": "handler.called", "data.handler": "adult_eligibility"}, "data.output.eligible")},
        "outcome_rules": [
            ({"type": "handler.called", "data.handler": "adult_eligibility", "data.output.eligible": True},
             PROGRESS_TO_SUPPORT_PLANNING),
            ({"type": "handler.called", "data.handler": "adult_eligibility", "data.output.eligible": False},
             NFA_NO_SERVICES),
        ],
        "default_outcome": NFA_OTHER,
    },
    "carers_assessment": {
        "event_type": ASSESSMENT,
        "assessment_type": "Long term assessment",  # a s.10 carer's assessment decides eligibility (s.13)
        "read": {"eligible": ({"type": "handler.called", "data.handler": "carer_eligibility"}, "data.output.eligible"),
                 "hours_caring_per_week": ({"type": "task.completed"}, "data.data.hours_caring_per_week")},
        "client_type": CARER,
        # the row is about the carer (the start data's person), not the case's person: see _carer_person
        "person_from_start_data": True,
        # the assessment ends when eligibility is decided; what follows (information and advice, or the
        # carer's support plan) is not part of the assessment event
        "end": {"type": "handler.called", "data.handler": "carer_eligibility"},
        "outcome_rules": [
            ({"type": "handler.called", "data.handler": "carer_eligibility", "data.output.eligible": True},
             PROGRESS_TO_SUPPORT_PLANNING),
            ({"type": "handler.called", "data.handler": "carer_eligibility", "data.output.eligible": False},
             NFA_NO_SERVICES),
        ],
        "default_outcome": NFA_OTHER,
    },
    "carers_support_plan": {
        "event_type": SERVICE,
        "client_type": CARER,
        "person_from_start_data": True,
        "trigger": {"type": "task.completed", "data.element_id": "sign_off_carer_plan", "data.data.signed_off": True},
        "service_type": {"match": {"type": "task.completed", "data.element_id": "plan_carer_support"},
                         "field": "data.data.support_type", "map": CARER_SERVICE_BY_SUPPORT_TYPE},
        "delivery_mechanism": {"match": {"type": "task.completed", "data.element_id": "plan_carer_support"},
                               "field": "data.data.money_management", "map": DELIVERY_BY_MONEY_MANAGEMENT},
        "outcome_rules": [
            ({"type": "task.completed", "data.element_id": "review_carer_plan", "data.data.next_step": "reassess"},
             PROGRESS_TO_REASSESSMENT),
            ({"type": "task.completed", "data.element_id": "review_carer_plan", "data.data.next_step": "end"},
             SERVICE_ENDED_AS_PLANNED),
        ],
        "open_outcome": PROVISION_OF_SERVICE,
        "default_outcome": SERVICE_ENDED_AS_PLANNED,
        # the carer's budget a week as the service's cost (carer_personal_budget, before the plan)
        "cost": {"match": {"type": "handler.called", "data.handler": "carer_personal_budget"},
                 "field": "data.output.weekly_amount",
                 # paid from the cared-for person's budget: their Service row carries that money, not this one
                 "unless": {"match": {"type": "case.updated", "data.element_id": "assemble_carer_plan"},
                            "field": "data.data.carer_support_plan.budget.funded_by",
                            "value": "cared_for_personal_budget"}},
    },
    "support_plan": {
        "event_type": SERVICE,
        "trigger": {"type": "task.completed", "data.element_id": "sign_off_plan", "data.data.signed_off": True},
        "end": None,  # open until superseded by the next signed-off plan
        "superseded_by_next": True,
        "service_type": LT_COMMUNITY,
        # a plan that moves the person into a care home is long-term residential or nursing care, by the plan's
        # answer to "will the care home provide nursing care?" (care_home_nursing); unanswered: not coded
        "care_home": {"move": ({"type": "task.completed", "data.element_id": "write_plan"}, "data.data.care_home_move"),
                      "nursing": ({"type": "task.completed", "data.element_id": "write_plan"},
                                  "data.data.care_home_nursing")},
        "delivery_mechanism": {"match": {"type": "task.completed", "data.element_id": "write_plan"},
                               "field": "data.data.money_management", "map": DELIVERY_BY_MONEY_MANAGEMENT},
        "outcome_rules": [],
        "open_outcome": PROVISION_OF_SERVICE,
        "default_outcome": PROVISION_OF_SERVICE,
        # the plan's cost a week as the service's cost (handlers.budget cost_support_plan, before sign-off); plans
        # signed off before plans were costed leave the cost cells empty
        "cost": {"match": {"type": "handler.called", "data.handler": "cost_support_plan"},
                 "field": "data.output.weekly_cost",
                 # the costed plan, service by service (unit cost, planned units a week, how each is paid for):
                 # one CLD service line each in the return
                 "lines": "data.output.services",
                 "contribution": "data.output.contribution"},
        # a direct payment review that changes how the money is managed ends the service row and starts a
        # new one (same service type) with the new mechanism from the date the change takes effect
        "delivery_changes": {
            "process_id": "direct_payment_review",
            # kept on the case as arrange_change completes (its case outputs); histories of versions before
            # those drew a step for it: record_arrangement
            "match": {"type": "case.updated", "data.element_id": ("arrange_change", "record_arrangement")},
            "field": "data.data.direct_payment_arrangement.outcome",
            "map": DELIVERY_BY_DP_ARRANGEMENT,
            "applies_to": DIRECT_PAYMENT,  # only a direct payment can be changed by its review
            "date": {"match": {"type": "task.completed", "data.element_id": "arrange_change"},
                     "field": "data.data.effective_from"},
            "outcome": PROVISION_OF_SERVICE,  # the old row: support continues under the new mechanism
        },
    },
    "review": {
        "event_type": REVIEW,
        "trigger": {"type": "task.completed", "data.element_id": "review_plan"},
        "start": {"type": "task.ready", "data.element_id": "review_plan"},
        # the reason the review was started with (instance start data); histories written before unplanned
        # reviews existed carry none: those were all scheduled reviews
        "review_reason": {"match": {"type": "instance.started"}, "field": "data.data.review_reason",
                          "default": PLANNED_REVIEW, "allowed": REVIEW_REASONS},
        # recorded on the review form: who took part (Method_of_Review) and the outcomes achieved
        # (Review_Outcomes_Achieved), coded at the output (SPEC_METHOD_OF_REVIEW, SPEC_OUTCOMES_ACHIEVED); how it
        # was done (face to face, phone...) is kept for the measures and has no CLD field
        "read": {"review_method": ({"type": "task.completed", "data.element_id": "review_plan"},
                                   "data.data.review_method"),
                 "review_participants": ({"type": "task.completed", "data.element_id": "review_plan"},
                                         "data.data.review_participants"),
                 "outcomes_achieved": ({"type": "task.completed", "data.element_id": "review_plan"},
                                       "data.data.outcomes_achieved")},
        "outcome_rules": [
            ({"type": "instance.child_started", "data.process_id": "needs_assessment"}, PROGRESS_TO_REASSESSMENT),
            # an increase above the approval threshold that the team manager did not approve changes nothing
            ({"type": "task.completed", "data.element_id": "approve_budget_change", "data.data.approved": False},
             NO_CHANGE_IN_PACKAGE),
            ({"type": "handler.called", "data.handler": "check_budget_change", "data.output.allowed": True,
              "data.output.direction": ("increase", "reduction")}, PROGRESS_TO_SUPPORT_PLANNING),
        ],
        "default_outcome": NO_CHANGE_IN_PACKAGE,
    },
    "urgent_response": {
        "event_type": SERVICE,
        "trigger": {"type": "task.completed", "data.element_id": "rapid_response"},
        "service_type": ST_OTHER,
        "delivery_mechanism": CASSR_COMMISSIONED_SUPPORT,
        "outcome_rules": [
            ({"type": "task.completed", "data.element_id": "rapid_response", "data.data.onward": onward}, outcome)
            for onward, outcome in (("reablement", PROGRESS_TO_REABLEMENT),
                                    ("needs_assessment", PROGRESS_TO_ASSESSMENT),
                                    ("close", SERVICE_ENDED_AS_PLANNED))
        ],
        "default_outcome": SERVICE_ENDED_AS_PLANNED,
    },
    "equipment": {
        "event_type": SERVICE,
        # equipment, telecare and minor adaptations stay in the person's home: an open service until closure
        "trigger": {"type": "task.completed", "data.element_id": "record_delivery"},
        "end": None,
        "service_type": ST_ONGOING_LOW_LEVEL,
        "service_component": "Equipment",
        "delivery_mechanism": CASSR_COMMISSIONED_SUPPORT,
        "outcome_rules": [],
        "open_outcome": PROVISION_OF_SERVICE,
        "default_outcome": PROVISION_OF_SERVICE,
    },
    "hospital_discharge": {
        "event_type": REQUEST,
        "route_of_access": ROUTE_DISCHARGE,
        # the request is dealt with when the discharge is recorded; the bed-based recovery window that
        # follows on pathway 2 belongs to the next event, not to the request
        "end": {"type": "task.completed", "data.element_id": "record_discharge"},
        # the pathway decision (discharge_pathway.dmn) is not in the history by itself: the route the
        # pathway gateway took is, in the same step as the discharge
        "outcome_rules": [
            # pathway 2: community bed-based recovery (short-term support to maximise independence)
            ({"type": "timer.set", "data.element_id": "recovery_window"}, PROGRESS_TO_REABLEMENT),
            # pathway 1: home with reablement
            ({"type": "instance.child_started", "data.process_id": "reablement"}, PROGRESS_TO_REABLEMENT),
            # pathway 3: a care home, long-term needs assessed there at once
            ({"type": "instance.child_started", "data.process_id": "needs_assessment"}, PROGRESS_TO_ASSESSMENT),
        ],
        # pathway 0: home with no new support; the hospital team's answer to the referral was advice
        "default_outcome": NFA_INFORMATION_ADVICE,
    },
    "transition": {
        "event_type": REQUEST,
        # a referral from children's services (processes/transition.bpmn): a planned entry; the request is
        # dealt with when social work decides to assess now or not at all ("later" keeps it open)
        "route_of_access": ROUTE_TRANSITION,
        "end": {"type": "handler.called", "data.handler": "transition_decision", "data.output.assess": ("now", "no")},
        "outcome_rules": [
            ({"type": "instance.child_started", "data.process_id": "needs_assessment"}, PROGRESS_TO_ASSESSMENT),
            # not assessed: written reasons with information and advice (Care Act 2014 s.58(5))
            ({"type": "handler.called", "data.handler": "transition_decision", "data.output.assess": "no"},
             NFA_INFORMATION_ADVICE),
        ],
        "default_outcome": NFA_INFORMATION_ADVICE,
    },
}

_END_OF_INSTANCE = {"type": "instance.completed"}

# ---------------------------------------------------------------- person fields

# processes whose start data describes someone else (the carer), not the case's person
_OTHER_PERSON_PROCESSES = {pid for pid, m in PROCESS_MAPPINGS.items() if m.get("person_from_start_data")}


# ---------------------------------------------------------------- matching history events


class CldDataError(ValueError):
    """A case history holds a value the return cannot report (not in its CLD code list)."""


_PARTS: dict[str, tuple[str, ...]] = {}  # "data.data.outcome" -> its parts, split once (the paths are the mappings')


def _get(obj: Any, path: str) -> Any:
    parts = _PARTS.get(path)
    if parts is None:
        parts = _PARTS.setdefault(path, tuple(path.split(".")))
    for part in parts:
        if not isinstance(obj, dict) or part not in obj:
            return _MISSING
        obj = obj[part]
    return obj


_MISSING = object()


def _matches(event: dict, match: dict[str, Any]) -> bool:
    kind = match.get("type")
    if kind.__class__ is str and event.get("type") != kind:  # most events fail here: no path to walk
        return False
    for path, wanted in match.items():
        value = _get(event, path)
        if value is _MISSING:
            return False
        if isinstance(wanted, tuple):
            if value not in wanted:
                return False
        elif isinstance(wanted, bool) or isinstance(value, bool):
            if value is not wanted:
                return False
        elif value != wanted:
            return False
    return True


def _first(events: Iterable[dict], match: dict[str, Any] | None) -> dict | None:
    if match is None:
        return None
    kind = match.get("type")
    if kind.__class__ is str:  # the event's type first, without a call: most events are of another type
        return next((e for e in events if e["type"] == kind and _matches(e, match)), None)
    return next((e for e in events if _matches(e, match)), None)


def _last(events: Iterable[dict], match: dict[str, Any]) -> dict | None:
    found = None
    kind = match.get("type")
    if kind.__class__ is str:
        for e in events:
            if e["type"] == kind and _matches(e, match):
                found = e
        return found
    for e in events:
        if _matches(e, match):
            found = e
    return found


def _day(at: str | None) -> str | None:
    """The UK day of a history instant (23:30 UTC in summer is already the next day in England)."""
    return working_days.as_local_date(at).isoformat() if at else None


# ---------------------------------------------------------------- deriving rows


def derive_cld_events(case: dict, events: list[dict]) -> list[dict]:
    """CLD event rows for one case, in order of their start, from its history (Engine.history)."""
    by_instance: dict[int, list[dict]] = {}
    process_of: dict[int, str] = {}
    for e in events:
        iid = e.get("instance_id")
        if iid is None:
            continue
        by_instance.setdefault(iid, []).append(e)
        if e["type"] == "instance.started":
            process_of[iid] = e["data"].get("process_id")
    for inst in case.get("instances", []) if case else []:
        process_of.setdefault(inst["id"], inst["process_id"])

    closures = [e for e in events if e["type"] == "case.closed"]
    rows: list[dict] = []
    for iid in sorted(by_instance):
        process_id = process_of.get(iid)
        mapping = PROCESS_MAPPINGS.get(process_id or "")
        if mapping is None:
            continue
        try:
            row = _derive_one(process_id, iid, by_instance[iid], mapping)
        except CldDataError as exc:
            raise CldDataError(f"case {(case or {}).get('reference') or '?'}: {exc}") from None
        if row is not None:
            rows.append(row)

    # a long-term service stays open until a later one of the same process supersedes it
    for i, row in enumerate(rows):
        mapping = PROCESS_MAPPINGS[row["process_id"]]
        if not mapping.get("superseded_by_next") or row["event_end"] is not None:
            continue
        nxt = next((r for r in rows[i + 1:] if r["process_id"] == row["process_id"]), None)
        if nxt is not None:
            row["event_end"] = nxt["event_start"]
            row["event_end_at"] = nxt["event_start_at"]
            row["outcome"] = row["outcome"] or mapping.get("default_outcome")
            row["source_event_seq"] = sorted({*row["source_event_seq"], nxt["_trigger_seq"]})
    try:
        _apply_delivery_changes(rows, by_instance, process_of)
    except CldDataError as exc:
        raise CldDataError(f"case {(case or {}).get('reference') or '?'}: {exc}") from None
    try:
        rows += _carer_reviews(by_instance, process_of)
    except CldDataError as exc:
        raise CldDataError(f"case {(case or {}).get('reference') or '?'}: {exc}") from None
    _end_at_closure(rows, closures)
    carer_ids: dict[str, str] = {}
    # a contact from a carer about their own needs (the front door started a carer's assessment with
    # carer_self_contact) when the case's person is that carer: the request is the carer's, client type Carer.
    # A carer who calls about themselves and the person they care for, on that person's case, leaves the
    # request the cared-for person's (their own assessment row is the carer's).
    case_person = " ".join(str(person_of((case or {}).get("data")).get("name") or "").split())
    carer_requests = {e["data"].get("parent_instance_id") for e in events if e["type"] == "instance.started"
                      and e["data"].get("process_id") == "carers_assessment"
                      and _get(e, "data.data.carer_self_contact") is True
                      and " ".join(str(_get(e, "data.data.person.name")).split()).casefold() == case_person.casefold()}
    for row in rows:
        row.pop("_trigger_seq", None)
        if PROCESS_MAPPINGS[row["process_id"]].get("person_from_start_data"):
            row.update(_carer_person(case, by_instance[row["instance_id"]], row["instance_id"], carer_ids))
        elif row["event_type"] == REQUEST and row["instance_id"] in carer_requests:
            row["client_type"] = CARER
    _carers_at_closure(rows, closures, (case or {}).get("reference") or "?")
    rows.sort(key=lambda r: (r["event_start_at"] or "", r["instance_id"]))
    return rows


# a carer's review (carers_support_plan: review_carer_plan's next_step) -> the CLD outcome of its Review row
CARER_REVIEW_OUTCOMES = {
    "continue": NO_CHANGE_IN_PACKAGE,
    "reassess": PROGRESS_TO_REASSESSMENT,
    "end": NFA_SUPPORT_ENDED,
}


#: the carer's review form's "Did the person cared for take part in the review?" -> who took part, in the words of
#: the review form's review_participants (the service user is the person cared for, the carer the client)
CARER_REVIEW_PARTICIPANTS = {True: "person_and_carer", False: "carer"}


def _carer_reviews(by_instance: dict[int, list[dict]], process_of: dict[int, str]) -> list[dict]:
    """One Review row per carer's review done (carers_support_plan's review_carer_plan, which repeats within one
    instance): planned, from the review task becoming ready to its completion, the carer's (person fields from
    the plan's start data, as its Service row)."""
    rows = []
    for iid, evs in by_instance.items():
        if process_of.get(iid) != "carers_support_plan":
            continue
        ready = None
        for e in evs:
            if e["type"] == "task.ready" and _get(e, "data.element_id") == "review_carer_plan":
                ready = e
            elif e["type"] == "task.completed" and _get(e, "data.element_id") == "review_carer_plan":
                step = _get(e, "data.data.next_step")
                if step not in CARER_REVIEW_OUTCOMES:
                    raise CldDataError(f"carers_support_plan instance {iid}: next_step {step!r} (history event "
                                       f"{e['seq']}) is not one of {', '.join(CARER_REVIEW_OUTCOMES)}")
                start = ready or e
                rows.append({
                    "event_type": REVIEW, "event_start": _day(start["at"]), "event_end": _day(e["at"]),
                    "outcome": CARER_REVIEW_OUTCOMES[step], "route_of_access": None, "service_type": None,
                    "outcomes_achieved": _get(e, "data.data.outcomes_achieved")
                    if _get(e, "data.data.outcomes_achieved") is not _MISSING else None,
                    # the carer's review form asks whether the person cared for took part (older reviews: None)
                    "review_participants": CARER_REVIEW_PARTICIPANTS.get(_get(e, "data.data.cared_for_took_part")),
                    "delivery_mechanism": None, "review_reason": PLANNED_REVIEW, "review_type": PLANNED_REVIEW,
                    "client_type": CARER, "cared_for_person_id": None, "process_id": "carers_support_plan",
                    "instance_id": iid, "source_event_seq": sorted({start["seq"], e["seq"]}),
                    "event_start_at": start["at"], "event_end_at": e["at"], "_trigger_seq": e["seq"]})
                ready = None
    return rows


def _closure_outcome(event: dict) -> str:
    reason = event["data"].get("reason")
    if reason not in CLOSURE_OUTCOMES:
        raise CldDataError(f"{event['type']} (history event {event['seq']}) has the reason {reason!r}, which has "
                           f"no CLD outcome: one of {', '.join(CLOSURE_OUTCOMES)}")
    return CLOSURE_OUTCOMES[reason]


def _closure_day(event: dict, start_day: str | None) -> str | None:
    """The day an event ended by a closure (``case.closed``, ``instance.cancelled``) ends: the day the closure was
    recorded, or, for a death recorded later, the date of death given with it (support ends when the person dies;
    a row running on past the Date_of_Death it carries disagrees with the history) — never before the event's
    own start (an event started after the death is the data-quality report's ``out_of_order``)."""
    day = _day(event["at"])
    died = _get(event, "data.details.date_of_death")
    if event["data"].get("reason") == "died" and isinstance(died, str) and len(died) == 10 and day and died < day:
        return max(died, start_day or died)
    return day


def _carers_at_closure(rows: list[dict], closures: list[dict], reference: str) -> None:
    """A closure's reason is about the case's person. A carer's row on the cared-for person's case (its cared-for
    person id is this case) that the closure ended is about someone else: the cared-for person's death, move, NHS
    care or decline ends the carer's support for another reason — NFA – Support ended: other reason (an
    assessment or request not finished: NFA – Other) — never NFA – Deceased for a carer who is alive. (A
    carer's own process ended on its own, with a reason about the carer, keeps that reason's outcome.)"""
    closed_at = {c["at"] for c in closures}
    about_the_person = set(CLOSURE_OUTCOMES.values())
    for row in rows:
        if (row["client_type"] == CARER and row.get("cared_for_person_id") == reference
                and row["event_end_at"] in closed_at and row["outcome"] in about_the_person):
            row["outcome"] = NFA_SUPPORT_ENDED if row["event_type"] == SERVICE else NFA_OTHER


def _end_at_closure(rows: list[dict], closures: list[dict]) -> None:
    """An event still open when the case was closed (a long-term service) ends that day (or on the date of death
    recorded with it), with its outcome."""
    for row in rows:
        if row["event_end"] is not None:
            continue
        closed = next((c for c in closures if c["at"] >= row["event_start_at"]), None)
        if closed is not None:
            row.update(event_end=_closure_day(closed, row["event_start"]), event_end_at=closed["at"],
                       outcome=_closure_outcome(closed))
            row["source_event_seq"] = sorted({*row["source_event_seq"], closed["seq"]})


def _derive_one(process_id: str, iid: int, evs: list[dict], mapping: dict[str, Any]) -> dict | None:
    started = _first(evs, {"type": "instance.started"})
    trigger_match = mapping.get("trigger")
    trigger = _first(evs, trigger_match) if trigger_match else started
    if trigger is None:
        return None
    start = _first(evs, mapping.get("start")) or trigger
    end_match = mapping.get("end", _END_OF_INSTANCE)
    end = _first(evs, end_match) if end_match else None
    used = [start, trigger, end]

    outcome = None
    for match, value in mapping.get("outcome_rules", []):
        hit = _first(evs, match)
        if hit is not None:
            outcome = value
            used.append(hit)
            break
    cancelled = _first(evs, {"type": "instance.cancelled"})
    if cancelled is not None and end is None:  # ended early (case closed, process ended): the reason decides
        end = cancelled
        outcome = _closure_outcome(cancelled)
        used.append(cancelled)
    ended = _first(evs, {"type": "instance.ended"})
    if ended is not None and end is None:  # a paused process ended on resume (engine/suspension.py)
        end = ended
        outcome = REABLEMENT_OUTCOMES.get(_get(ended, "data.outcome")) if process_id == "reablement" else None
        used.append(ended)
    if outcome is None:
        outcome = mapping.get("default_outcome") if end is not None else mapping.get("open_outcome")

    route = mapping.get("route_of_access")
    if isinstance(route, dict):
        hit, value = next(((h, v) for h, v in ((_first(evs, m), v) for m, v in route["rules"]) if h is not None),
                          (None, route["default"]))
        route = value
        used.append(hit)

    reason = mapping.get("review_reason")
    if isinstance(reason, dict):
        source = _first(evs, reason["match"])
        value = _get(source, reason["field"]) if source is not None else _MISSING
        if value is _MISSING or value in (None, ""):
            reason = reason["default"]
        elif value in reason["allowed"]:
            reason = value
            used.append(source)
        else:
            raise CldDataError(f"{process_id} instance {iid}: {reason['field'].rsplit('.', 1)[-1]} {value!r} "
                               f"(history event {source['seq']}) is not in the CLD code list: "
                               f"{', '.join(reason['allowed'])}")

    coded = {}
    for key in ("delivery_mechanism", "service_type"):  # a fixed value, or read from a form through a code map
        spec = mapping.get(key)
        if isinstance(spec, dict):
            source = _last([e for e in evs if e["seq"] <= trigger["seq"]], spec["match"])
            value = _get(source, spec["field"]) if source is not None else _MISSING
            spec = spec["map"].get(value) if value is not _MISSING else None
            if source is not None:
                used.append(source)
        coded[key] = spec
    delivery = coded["delivery_mechanism"]

    extra: dict[str, Any] = {"service_component": mapping.get("service_component"),
                             "assessment_type": mapping.get("assessment_type")}
    for key, (match, path) in mapping.get("read", {}).items():  # recorded values kept on the row as they are
        values = [_get(e, path) for e in evs if _matches(e, match)]
        extra[key] = next((v for v in reversed(values) if v is not _MISSING), None)
    home = mapping.get("care_home")
    if home:
        before = [e for e in evs if e["seq"] <= trigger["seq"]]
        answers = []
        for match, path in (home["move"], home["nursing"]):
            source = _last(before, match)
            value = _get(source, path) if source is not None else _MISSING
            answers.append(None if value is _MISSING else value)
        move, nursing = answers
        if move is True:
            extra["care_home"] = True
            coded["service_type"] = LT_NURSING if nursing is True else LT_RESIDENTIAL if nursing is False else None

    cost = {}
    if mapping.get("cost"):  # a Service row's cost: the plan's cost a week as one weekly unit
        source = _last([e for e in evs if e["seq"] <= trigger["seq"]], mapping["cost"]["match"])
        weekly = _get(source, mapping["cost"]["field"]) if source is not None else _MISSING
        unless = mapping["cost"].get("unless")
        other = _last(evs, unless["match"]) if unless else None
        if other is not None and _get(other, unless["field"]) == unless["value"]:
            weekly = _MISSING
        if weekly is not _MISSING and weekly is not None:
            cost = {"unit_cost": weekly, "cost_frequency": "Weekly", "planned_units_per_week": "1"}
            used.append(source)
        else:
            cost = {"unit_cost": None, "cost_frequency": None, "planned_units_per_week": None}
        lines = _get(source, mapping["cost"]["lines"]) if source is not None and "lines" in mapping["cost"] else None
        costed = isinstance(lines, list) and cost["unit_cost"]
        cost["service_lines"] = [dict(line) for line in lines] if costed else None
        paid = (_get(source, mapping["cost"]["contribution"])
                if source is not None and "contribution" in mapping["cost"] else None)
        cost["contribution"] = paid if isinstance(paid, dict) else None

    return {
        "event_type": mapping["event_type"],
        "event_start": _day(start["at"]),
        "event_end": (_closure_day(end, _day(start["at"])) if end is cancelled else _day(end["at"])) if end else None,
        "outcome": outcome,
        "route_of_access": route,
        "service_type": coded["service_type"],
        "delivery_mechanism": delivery,
        **extra,
        **cost,
        "review_reason": reason,
        "review_type": (None if reason is None else PLANNED_REVIEW if reason == PLANNED_REVIEW else UNPLANNED_REVIEW),
        "client_type": mapping.get("client_type", SERVICE_USER),
        "cared_for_person_id": None,
        "process_id": process_id,
        "instance_id": iid,
        "source_event_seq": sorted({e["seq"] for e in used if e is not None}),
        "event_start_at": start["at"],
        "event_end_at": end["at"] if end else None,
        "_trigger_seq": trigger["seq"],
    }


def _apply_delivery_changes(rows: list[dict], by_instance: dict[int, list[dict]], process_of: dict[int, str]) -> None:
    """Split service rows where a later process changed their delivery mechanism (``delivery_changes``).

    A change applies to the service in effect when it was recorded: the latest row of the mapped process
    whose trigger (the sign-off) came before it in the history, or the segment of it a previous change
    started. The old segment ends on the change date with the spec's outcome; a new row, the same in all
    else, starts that day with the new mechanism and keeps the old row's end (the next plan's sign-off,
    or open). A change to the mechanism already in place, or to a service not delivered by
    ``applies_to``, changes nothing; one that would take effect only once a later plan had superseded
    the service is left to that plan.
    """
    for process_id, mapping in PROCESS_MAPPINGS.items():
        spec = mapping.get("delivery_changes")
        if not spec:
            continue
        changes = sorted(((e, evs) for iid, evs in by_instance.items() if process_of.get(iid) == spec["process_id"]
                          for e in evs if _matches(e, spec["match"])), key=lambda c: c[0]["seq"])
        current: dict[int, dict] = {}  # trigger seq of a service row -> its latest segment
        for event, evs in changes:
            where = f"{spec['process_id']} instance {event['instance_id']}"
            value = _get(event, spec["field"])
            if not isinstance(value, str) or value not in spec["map"]:
                shown = None if value is _MISSING else value
                raise CldDataError(f"{where}: {spec['field'].split('.', 2)[-1]} {shown!r} (history event "
                                   f"{event['seq']}) is not a known change: {', '.join(spec['map'])}")
            mechanism = spec["map"][value]
            services = [r for r in rows if r["process_id"] == process_id and r["_trigger_seq"] < event["seq"]]
            if not services:
                continue
            service = max(services, key=lambda r: r["_trigger_seq"])
            segment = current.get(service["_trigger_seq"], service)
            if segment["delivery_mechanism"] != spec["applies_to"] or segment["delivery_mechanism"] == mechanism:
                continue
            on, at, used = _change_date(spec, event, evs, where)
            if on < segment["event_start"]:
                raise CldDataError(f"{where}: {spec['date']['field'].rsplit('.', 1)[-1]} {on} (history event "
                                   f"{used['seq']}) is before the service it changes started "
                                   f"({segment['event_start']})")
            if segment["event_end"] is not None and on >= segment["event_end"]:
                continue
            new = {**segment, "event_start": on, "event_start_at": at, "delivery_mechanism": mechanism,
                   "delivery_changed": True, "source_event_seq": sorted({event["seq"], used["seq"]})}
            segment.update(event_end=on, event_end_at=at, outcome=spec["outcome"],
                           source_event_seq=sorted({*segment["source_event_seq"], event["seq"], used["seq"]}))
            rows.append(new)
            current[service["_trigger_seq"]] = new


def _change_date(spec: dict, event: dict, evs: list[dict], where: str) -> tuple[str, str, dict]:
    """The day a change takes effect (the form's date, else the day it was recorded), its sort key, its event."""
    source = _last([e for e in evs if e["seq"] <= event["seq"]], spec["date"]["match"])
    value = _get(source, spec["date"]["field"]) if source is not None else _MISSING
    if value is _MISSING or value in (None, ""):
        return _day(event["at"]), event["at"], event
    try:
        on = date.fromisoformat(value).isoformat() if isinstance(value, str) and len(value) == 10 else None
    except ValueError:
        on = None
    if on is None:
        raise CldDataError(f"{where}: {spec['date']['field'].rsplit('.', 1)[-1]} {value!r} (history event "
                           f"{source['seq']}) is not a date (YYYY-MM-DD)")
    return on, f"{on}T00:00:00.000000+00:00", source


# ---------------------------------------------------------------- person fields


def person_fields(case: dict, events: list[dict]) -> dict[str, Any]:
    """What the return asks about the case's person, from the case record then the recorded forms."""
    sources: list[dict] = []
    data = (case or {}).get("data") or {}
    sources += [data, data.get("person") or {}]
    other = {e["instance_id"] for e in events
             if e["type"] == "instance.started" and e["data"].get("process_id") in _OTHER_PERSON_PROCESSES}
    for e in reversed(events):  # the latest recording first
        if e.get("instance_id") in other:
            continue
        if e["type"] == "task.completed" and isinstance(_get(e, "data.data.person"), dict):
            sources.append(e["data"]["data"]["person"])
        elif e["type"] == "instance.started" and isinstance(_get(e, "data.data.person"), dict):
            sources.append(e["data"]["data"]["person"])
    reference = (case or {}).get("reference")
    return _person(sources, reference, f"case {reference or '?'}")


def _carer_person(case: dict, evs: list[dict], iid: int, carer_ids: dict[str, str]) -> dict[str, Any]:
    """The carer's own person fields for a carer's assessment row (CLD: one row per person and event).

    The carer is identified by their own local person id when the start data gives one (a carer with a
    case of their own: ``local_person_id`` or ``case_reference``); otherwise by the cared-for person's
    case reference with a carer number, ``CASE-000001-C1``, the same for every assessment of the same
    carer (by name) in that case. The cared-for person's id goes in ``cared_for_person_id``.
    """
    reference = (case or {}).get("reference") or "?"
    started = _first(evs, {"type": "instance.started"})
    carer = _get(started, "data.data.person") if started is not None else _MISSING
    carer = carer if isinstance(carer, dict) else {}
    process_id = _get(started, "data.process_id") if started is not None else "carers_assessment"
    data = (case or {}).get("data") or {}
    if _same_name(carer.get("name"), (data.get("person") or {}).get("name") or data.get("name")):
        # the carer is the case's own person (a carer who contacted us about themselves): the case is the
        # carer's, and the person cared for may not be known to us (a cared_for_person_id in the start data is
        # used when it is). A carer who called about themselves on the cared-for person's case is numbered below.
        own_id = carer.get("local_person_id") or carer.get("case_reference") or reference
        cared_for_id = _get(started, "data.data.cared_for_person_id")
        record = ((case or {}).get("data") or {}) if own_id == reference else {}
        fields = _person([carer, record, record.get("person") or {}], own_id,
                         f"case {reference}: {process_id} instance {iid} (the carer)")
        return {**fields, "client_type": CARER,
                "cared_for_person_id": cared_for_id if isinstance(cared_for_id, str) and cared_for_id else None}
    own_id = carer.get("local_person_id") or carer.get("case_reference")
    if not own_id:
        name = " ".join(str(carer.get("name") or "").split()).casefold() or f"#instance {iid}"
        own_id = carer_ids.setdefault(name, f"{reference}-C{len(carer_ids) + 1}")
    fields = _person([carer], own_id, f"case {reference}: {process_id} instance {iid} (the carer)")
    return {**fields, "client_type": CARER, "cared_for_person_id": reference}


def _same_name(a: Any, b: Any) -> bool:
    return bool(a) and " ".join(str(a).split()).casefold() == " ".join(str(b or "").split()).casefold()


def _person(sources: list[dict], local_person_id: Any, where: str) -> dict[str, Any]:
    def pick(*keys: str) -> Any:
        for src in sources:
            for key in keys:
                if src.get(key) not in (None, ""):
                    return src[key]
        return None

    dob = pick("date_of_birth", "birth_date")
    birth_month = birth_year = None
    if isinstance(dob, str) and len(dob) >= 7:
        try:
            birth_year, birth_month = int(dob[:4]), int(dob[5:7])
        except ValueError:
            pass
    birth_month = birth_month or pick("birth_month")
    birth_year = birth_year or pick("birth_year")
    coded = {}
    for field, allowed in PERSON_CODE_LISTS.items():
        value = pick(field)
        if value is not None and value not in allowed:
            raise CldDataError(f"{where}: {field} {value!r} is not in the CLD code list: {', '.join(allowed)}")
        coded[field] = value
    return {
        "local_person_id": local_person_id,
        "nhs_number": pick("nhs_number"),
        "birth_month": birth_month,
        "birth_year": birth_year,
        **coded,
        "has_unpaid_carer": pick("has_unpaid_carer"),
        "date_of_birth": dob if isinstance(dob, str) and len(dob) == 10 else None,
        "date_of_death": pick("date_of_death"),
        "postcode": pick("postcode"),
        "gp_practice_code": pick("gp_practice_code"),
    }


# ---------------------------------------------------------------- the return, to the specification
#
# Everything above works in carepath's own row keys (event_type, outcome, service_type…, Release 1 wording); the
# return is written here, at the output only: every field by the specification's name and in its order
# (handlers/cld_spec/fields.json), every coded value translated to the specification's list
# (handlers/cld_spec/code_lists.json) by the SPEC_* tables below. A value that has no translation, or whose
# translation is not in the recorded list, is never guessed: the cell is left empty and the row is listed in
# the return's `problems`. docs/cld.md says which release each field and list follows and where it comes from.

SPEC_DIR = Path(__file__).resolve().parent / "cld_spec"


def _spec_file(name: str) -> dict[str, Any]:
    return json.loads((SPEC_DIR / name).read_text(encoding="utf-8"))


SPEC_FIELDS: list[dict[str, Any]] = _spec_file("fields.json")["fields"]
#: the specification's field names, in the order of the return's columns
CLD_FIELDS: list[str] = [f["name"] for f in SPEC_FIELDS]
FIELD_SPEC: dict[str, dict[str, Any]] = {f["name"]: f for f in SPEC_FIELDS}
#: the specification's code lists, as recorded (an empty tuple: the list is not in any stored source)
CODE_LISTS: dict[str, tuple[str, ...]] = {name: tuple(entry["values"])
                                          for name, entry in _spec_file("code_lists.json")["lists"].items()}

#: carepath's event outcome (Release 1 wording) -> the Release 2 Event_Outcome. Two Release 1 outcomes became
#: one Release 2 outcome where Release 2 merged them (assessment and re-assessment; no change in package and an
#: ongoing service). PROGRESS_TO_END_OF_LIFE and PROGRESS_TO_FINANCIAL_ASSESSMENT have no Release 2 outcome
#: (DHSC: "Release 1 specification only: Not mapped"); carepath produces neither.
SPEC_EVENT_OUTCOME = {
    PROGRESS_TO_REABLEMENT: "Progress to reablement/ST-Max",
    PROGRESS_TO_ASSESSMENT: "Progress to assessment, review or reassessment",
    PROGRESS_TO_REASSESSMENT: "Progress to assessment, review or reassessment",
    ADMITTED_TO_HOSPITAL: "Admitted to hospital",
    PROGRESS_TO_SUPPORT_PLANNING: "Progress to support planning or services",
    NO_CHANGE_IN_PACKAGE: "Continuation of support or services",
    PROVISION_OF_SERVICE: "Continuation of support or services",
    SERVICE_ENDED_AS_PLANNED: "NFA: Support ended as planned",
    NFA_MOVED: "NFA: Responsibility moved to another local authority",
    NFA_NHS_FUNDED: "NFA: Referral to NHS services or NHS funded social care",
    NFA_SELF_FUNDED: "NFA: Self-funded client or under 12wk disregard",
    NFA_SUPPORT_DECLINED: "NFA: Support declined",
    NFA_INFORMATION_ADVICE: "NFA: Information and advice or signposting",
    NFA_DECEASED: "NFA: Deceased",
    NFA_NO_SERVICES: "NFA: No services offered for other reason",
    NFA_SUPPORT_ENDED: "NFA: Support ended for other reason",
    NFA_OTHER: "NFA: Other",
}
SPEC_SERVICE_TYPE = {
    ST_MAX: "Short term support: ST-Max",
    ST_ONGOING_LOW_LEVEL: "Short term support: Ongoing low level",
    ST_OTHER: "Short term support: Other short term",
    LT_NURSING: "Long term support: Nursing care",
    LT_RESIDENTIAL: "Long term support: Residential care",
    LT_COMMUNITY: "Long term support: Community",
    LT_PRISON: "Long term support: Prison",
    CARER_DIRECT: "Unpaid carer support: Direct to unpaid carer",
    CARER_VIA_CARED_FOR: "Unpaid carer support: Support involving the person cared-for",
}
SPEC_DELIVERY = {
    DIRECT_PAYMENT: "Direct payment",
    CASSR_MANAGED_PERSONAL_BUDGET: "CASSR managed personal budget",
    CASSR_COMMISSIONED_SUPPORT: "CASSR commissioned support",
}
#: a costed plan's service line: how it is paid for (handlers/budget.py DELIVERY) -> Delivery_Mechanism. A
#: council-commissioned line of a support plan is arranged by the council within the person's personal budget.
SPEC_LINE_DELIVERY = {
    "direct_payment": "Direct payment",
    "managed_account": "CASSR managed personal budget",
    "council_commissioned": "CASSR managed personal budget",
}
#: a support plan service's "Type of service" (forms/support_plan.schema.json outcomes[].service_component, kept on the
#: costed plan's service line by handlers/budget.py) -> Service_Component (Release 2, as DHSC's ASCOF code spells it).
#: Not offered: Reablement (its own process), Direct payment (DHSC's ASCOF 3D reads it as a delivery mechanism: the
#: line's "How it is paid for" gives Delivery_Mechanism). "other" (none of these) has no code: a problem, never a guess.
SPEC_SERVICE_COMPONENT = {
    "home_support": "Home support or domiciliary care",
    "supported_living": "Community supported living",
    "extra_care_housing": "Extra care housing",
    "shared_lives": "Shared Lives",
    "equipment": "Equipment",
    "short_term_residential": "Short term residential care",
    "short_term_nursing": "Short term nursing care",
}
SERVICE_COMPONENT_QUESTION = "Type of service"
SPEC_CLIENT_TYPE = {SERVICE_USER: "Service user", CARER: "Unpaid carer"}
#: the contact form's ethnic categories (ONS 2001 groups, Release 1) -> Release 2 (ONS 2021 groups): the same
#: category under its 2021 heading; Chinese moved to the Asian group in 2021; NHS "Not stated" is a person who
#: was asked and declined to say (Refused), "Not known" one whose ethnicity was not recorded
SPEC_ETHNICITY = {
    "White: British": "White: English, Welsh, Scottish, Northern Irish or British",
    "White: Irish": "White: Irish",
    "White: Any other White background": "White: Any other White background",
    "Mixed: White and Black Caribbean": "Mixed or multiple ethnic groups: White and Black Caribbean",
    "Mixed: White and Black African": "Mixed or multiple ethnic groups: White and Black African",
    "Mixed: White and Asian": "Mixed or multiple ethnic groups: White and Asian",
    "Mixed: Any other mixed background":
        "Mixed or multiple ethnic groups: Any other Mixed or multiple ethnic background",
    "Asian or Asian British: Indian": "Asian or Asian British: Indian",
    "Asian or Asian British: Pakistani": "Asian or Asian British: Pakistani",
    "Asian or Asian British: Bangladeshi": "Asian or Asian British: Bangladeshi",
    "Asian or Asian British: Any other Asian background": "Asian or Asian British: Any other Asian background",
    "Black or Black British: Caribbean": "Black, Black British, Caribbean or African: Caribbean",
    "Black or Black British: African": "Black, Black British, Caribbean or African: African",
    "Black or Black British: Any other Black background":
        "Black, Black British, Caribbean or African: Any other Black, Black British or Caribbean background",
    "Other ethnic groups: Chinese": "Asian or Asian British: Chinese",
    "Other ethnic groups: Any other ethnic group": "Other ethnic group: Any other ethnic group",
    "Not stated": "No data: Refused",
    "Not known": "No data: Undeclared or not known",
}
SPEC_ACCOMMODATION = dict(zip(ACCOMMODATION_STATUSES[:-1], (
    "Owner occupier or shared ownership scheme",
    "Tenant: Local authority or other social housing provider",
    "Tenant: Private landlord",
    "Settled mainstream housing with family or friends",
    "Supported accommodation, supported lodgings or supported group home",
    "Shared Lives scheme",
    "Approved premises for offenders released from prison or under probation supervision",
    "Sheltered housing, extra care housing or other sheltered housing",
    "Mobile accommodation for Gypsy, Roma and Traveller communities",
    "Rough sleeper or squatting",
    "Night shelter, emergency hostel or direct access hostel",
    "Refuge",
    "Placed in temporary accommodation by the council (inc. homelessness resettlement)",
    "Staying with family or friends as a short term guest",
    "Acute hospital or long term healthcare residential facility",
    "Registered care home",
    "Registered nursing home",
    "Prison, young offenders institution or detention centre",
    "Other temporary accommodation",
), strict=True))
SPEC_EMPLOYMENT = {
    "Paid: Less than 16 hours a week": "Paid: Less than 16 hours a week",
    "Paid: 16 or more hours a week": "Paid: 16 or more hours a week",
    "Paid: Hours per week unknown": "Paid: Hours per week unknown",
    "Not in paid employment (seeking work)": "Not in paid employment: Seeking work",
    "Not in paid employment (not actively seeking work / retired)":
        "Not in paid employment: Not actively seeking work or retired",
    "Not in paid employment (voluntary work only)": "Not in paid employment: Voluntary work only",
}
SPEC_GENDER = {"Female": "Female", "Male": "Male", "Not known": "Unknown"}
#: a carer's rows (Client_Type Unpaid carer) carry this reason whatever the carer's own (NHS England CLD guidance
#: release 1: "should be recorded for any carer-related events")
CARER_PRIMARY_SUPPORT_REASON = "Social Support: Support to Carer"
#: the contact form's primary support reasons (Release 1 wording, which DHSC maps to Release 2) as they are;
#: "Not known" is the guidance's "Unknown" (PSR not yet determined)
SPEC_PRIMARY_SUPPORT_REASON = {**{r: r for r in PRIMARY_SUPPORT_REASONS if r != "Not known"},
                               "Not known": "Unknown",
                               CARER_PRIMARY_SUPPORT_REASON: CARER_PRIMARY_SUPPORT_REASON}
SPEC_YES_NO = {True: "Yes", False: "No"}
#: who took part in the review (review form's review_participants; a carer's review's cared_for_took_part, via
#: CARER_REVIEW_PARTICIPANTS) -> Method_of_Review (Release 1 list, NHS England CLD guidance February 2023)
SPEC_METHOD_OF_REVIEW = {"person": "Service user only", "person_and_carer": "Service user and carer",
                         "carer": "Carer only"}
#: the review forms' outcomes achieved (review: fully/partly/not; carer's review: fully/partly/not_achieved) ->
#: Review_Outcomes_Achieved (Release 1 list, NHS England CLD guidance February 2023)
SPEC_OUTCOMES_ACHIEVED = {"fully": "Fully Met", "partly": "Partially Met", "not": "Not Met",
                          "not_achieved": "Not Met"}
#: Release 1 lists written as they are (DHSC maps them to Release 2): the value must be in the recorded list
_AS_RECORDED = None

#: spec field -> (carepath row key, translation table or _AS_RECORDED). Person fields are the case's.
CODED_FIELDS: dict[str, tuple[str, Any]] = {
    "Gender": ("gender", SPEC_GENDER),
    "Ethnicity": ("ethnicity", SPEC_ETHNICITY),
    "Client_Type": ("client_type", SPEC_CLIENT_TYPE),
    "Primary_Support_Reason": ("primary_support_reason", SPEC_PRIMARY_SUPPORT_REASON),
    "Accommodation_Status": ("accommodation_status", SPEC_ACCOMMODATION),
    "Employment_Status": ("employment_status", SPEC_EMPLOYMENT),
    "Has_Unpaid_Carer": ("has_unpaid_carer", SPEC_YES_NO),
    "Event_Type": ("event_type", _AS_RECORDED),
    "Event_Outcome": ("outcome", SPEC_EVENT_OUTCOME),
    "Request_Route_of_Access": ("route_of_access", _AS_RECORDED),
    "Assessment_Type": ("assessment_type", _AS_RECORDED),
    "Service_Type": ("service_type", SPEC_SERVICE_TYPE),
    "Service_Component": ("service_component", _AS_RECORDED),
    "Delivery_Mechanism": ("delivery_mechanism", SPEC_DELIVERY),
    "Review_Reason": ("review_reason", _AS_RECORDED),
    "Review_Outcomes_Achieved": ("outcomes_achieved", SPEC_OUTCOMES_ACHIEVED),
    "Method_of_Review": ("review_participants", SPEC_METHOD_OF_REVIEW),
}
#: asked on every form that closes the event, but optional there (and not asked before the question existed):
#: unanswered, the cell is empty and the row is a problem saying which question to answer
ASKED_FIELDS: dict[str, tuple[str, str]] = {
    "Method_of_Review": ("Review", "answer 'Was the review with the person, their unpaid carer, or both?' on "
                                   "the review (a carer's review: 'Did the person cared for take part in the "
                                   "review?')"),
    "Review_Outcomes_Achieved": ("Review", "answer 'Have the outcomes in the plan been achieved?' on the review "
                                           "(a carer's review: 'Have the plan's outcomes been achieved?')"),
}
#: recorded by the processes, but their specification lists are not in any stored source: left empty (a gap of
#: the whole return, docs/cld.md, never a row's problem)
NOT_CODED_FIELDS = {
    "Eligible_Needs_Identified": "eligible",
    "Total_Hrs_Caring_per_week": "hours_caring_per_week",
}

COUNCIL_CONFIG = Path(__file__).resolve().parent.parent / "processes" / "config" / "council.json"


class CldReturn(list):
    """The return's rows (dicts keyed by CLD_FIELDS, in order), with what was left out and what could not be coded.

    ``withheld``: events of the period not in the return (requests, assessments and reviews still open at the end
    of the period: only services may be open), each with why. ``problems``: cells left empty because the value
    could not be coded, each with the case reference, event, field, value and why.
    """

    def __init__(self, rows: Iterable[dict] = (), *, period_start: date, period_end: date, la_code: Any,
                 withheld: list[dict] | None = None, problems: list[dict] | None = None):
        super().__init__(rows)
        self.period_start, self.period_end, self.la_code = period_start, period_end, la_code
        self.withheld: list[dict] = withheld or []
        self.problems: list[dict] = problems or []


def la_code_setting(path: Path = COUNCIL_CONFIG) -> str | None:
    """The council's LA code for the return (council.json ``la_code``), or None when it is not set."""
    from . import settings

    value = settings.load(path).get("la_code")
    return str(value).strip() if value not in (None, "") else None


def _withheld_reason(row: dict, period_start: date, period_end: date) -> tuple[bool, str | None]:
    """(in the return, why withheld) for one derived row and the period (DHSC's filtering of events in a
    period, Main_tables/docs/methodology/4-event-filtering.md: requests, assessments and reviews that ended in
    the period; services that started by its end and had not ended before its start)."""
    start, end = row["event_start"], row["event_end"]
    first, last = period_start.isoformat(), period_end.isoformat()
    if start is None or start > last:
        return False, None
    if row["event_type"] == SERVICE:
        return (end is None or end >= first), None
    if end is not None and first <= end <= last:
        return True, None
    if end is None:
        return False, (f"{row['event_type'].lower()} still open at the end of the period: only services may be "
                       "open in the return; it is reported in the period it ends")
    if end > last:
        return False, (f"{row['event_type'].lower()} ended after the period ({end}): it is reported in the "
                       "period it ends")
    return False, None  # ended before the period: reported in an earlier return


def _event_label(row: dict) -> str:
    return f"{row['event_type']} from {row['event_start']} ({row['process_id']} instance {row['instance_id']})"


def _funding_status(rows: list[dict]) -> str | None:
    """Client_Funding_Status from the latest costed plan's contribution (the financial assessment's charge)."""
    paid = next((r["contribution"] for r in reversed(rows) if r.get("contribution")), None)
    if not paid:
        return None
    if paid.get("full_cost") is True:
        return "Fully client funded"
    if str(paid.get("council_weekly")) in ("0", "0.00") and str(paid.get("weekly_contribution")) not in ("0", "0.00"):
        return "Fully client funded"  # the assessed charge is the whole cost of the plan: nothing left for us
    if str(paid.get("weekly_contribution")) in ("0", "0.00"):
        return "Fully social care funded"
    return "Joint client and social care funded"


def spec_rows(case: dict, history: list[dict], period_start: date, period_end: date, la_code: Any,
              withheld: list[dict], problems: list[dict]) -> list[dict]:
    """One case's rows of the return (keyed by CLD_FIELDS); what is left out goes to ``withheld``/``problems``."""
    reference = (case or {}).get("reference")
    try:
        person = person_fields(case, history)
        derived = derive_cld_events(case, history)
    except CldDataError as exc:
        problems.append({"case_reference": reference, "event": None, "field": None, "value": None,
                         "why": f"{exc}: none of this case's events can be reported until it is corrected"})
        return []
    funding = _funding_status(derived)
    out: list[dict] = []
    for row in derived:
        included, why = _withheld_reason(row, period_start, period_end)
        if not included:
            if why:
                withheld.append({"case_reference": reference, "local_person_id": row.get("local_person_id")
                                 or person["local_person_id"], "event_type": row["event_type"],
                                 "event_start": row["event_start"], "event_end": row["event_end"],
                                 "process_id": row["process_id"], "instance_id": row["instance_id"], "why": why})
            continue
        merged = {**person, **row}
        if merged["client_type"] == SERVICE_USER:
            merged["client_funding_status"] = funding
        elif merged["client_type"] == CARER:
            merged["primary_support_reason"] = CARER_PRIMARY_SUPPORT_REASON
        out += _spec_lines(merged, reference, period_start, period_end, la_code, problems)
    return out


def _spec_lines(row: dict, reference: Any, period_start: date, period_end: date, la_code: Any,
                problems: list[dict]) -> list[dict]:
    """The return's row(s) for one derived row: a costed support plan gives one row per costed service."""
    event = _event_label(row)

    def problem(field: str, value: Any, why: str) -> None:
        problems.append({"case_reference": reference, "event": event, "field": field, "value": value, "why": why})

    base: dict[str, Any] = dict.fromkeys(CLD_FIELDS)
    base.update({
        "LA_Code": la_code,
        "Reporting_Period_Start_Date": period_start.isoformat(),
        "Reporting_Period_End_Date": period_end.isoformat(),
        "NHS_Number": row.get("nhs_number"),
        "LA_Person_Unique_Identifier": row.get("local_person_id"),
        "GP_Practice_Code": row.get("gp_practice_code"),
        "Date_of_Birth": row.get("date_of_birth"),
        "Date_of_Death": row.get("date_of_death"),
        "Postcode": row.get("postcode"),
        "Client_Funding_Status": row.get("client_funding_status"),
        "Event_Reference": f"{reference}-{row['instance_id']}-{min(row['source_event_seq'])}",
        "Event_Start_Date": row["event_start"],
        "Event_End_Date": row["event_end"],
    })
    if row.get("cared_for_person_id"):
        base["Adult_1_Linked_Person_ID"] = row["cared_for_person_id"]
    for field, (key, table) in CODED_FIELDS.items():
        if row["event_type"] not in FIELD_SPEC[field]["event_types"]:
            continue
        value = row.get(key)
        if value is None:
            if field in ASKED_FIELDS and row["event_type"] == ASKED_FIELDS[field][0]:
                problem(field, None, f"not answered: {ASKED_FIELDS[field][1]}")
            continue
        coded = value if table is _AS_RECORDED else table.get(value)
        if coded is None:
            problem(field, value, f"{value!r} has no {field} in the specification's list "
                                  f"({'not in the list' if table is _AS_RECORDED else 'no translation'})")
        elif coded not in CODE_LISTS[field]:
            problem(field, value, f"{coded!r} is not in the recorded {field} list (handlers/cld_spec/code_lists.json)")
        else:
            base[field] = coded
    if row.get("care_home") and row.get("service_type") is None:
        problem("Service_Type", None, "the plan moves the person into a care home but does not say whether the home "
                                      "provides nursing care (residential or nursing care): answer 'Will the care "
                                      "home provide nursing care?' on the support plan")
    if row.get("client_funding_status") is not None and row["client_funding_status"] not in \
            CODE_LISTS["Client_Funding_Status"]:
        problem("Client_Funding_Status", row["client_funding_status"], "not in the recorded list")
        base["Client_Funding_Status"] = None
    if row["event_type"] != SERVICE:
        return [base]
    # a plan costed as a weekly total (one unit a week); a plan whose services cost the budget nothing (or were never
    # costed) gives no cost rather than a cost of nothing
    if row.get("unit_cost") not in (None, "", "0", "0.00", 0):
        base["Unit_Cost"] = row["unit_cost"]
        base["Planned_units_per_week"] = row.get("planned_units_per_week")
    lines = [line for line in row.get("service_lines") or [] if line.get("unit_cost") is not None]
    components = row["process_id"] == "support_plan" and not row.get("care_home")
    if not lines:
        if components:  # one row for the plan: its services' type, when they are all of one type
            given = {line.get("service_component") for line in row.get("service_lines") or []}
            if len(given) > 1 and None not in given:
                problem("Service_Component", None, "the plan's services are of different types ("
                        + ", ".join(sorted(str(g) for g in given)) + ") and none is costed, so the plan is one row "
                        "and no one type can be given: give each service its unit cost and units a week")
            else:
                base["Service_Component"] = _plan_component(
                    given.pop() if len(given) == 1 else None, "the plan (not costed service by service)",
                    lambda value, why: problem("Service_Component", value, why))
        return [base]
    out = []
    for n, line in enumerate(lines, 1):
        spec = {**base, "Event_Reference": f"{base['Event_Reference']}/{n}", "Unit_Cost": line["unit_cost"],
                "Planned_units_per_week": line.get("units_per_week")}
        if components:
            spec["Service_Component"] = _plan_component(
                line.get("service_component"), f"service line {n} (Event_Reference {spec['Event_Reference']})",
                lambda value, why: problem("Service_Component", value, why))
        if not row.get("delivery_changed"):  # a direct payment review's change applies to every line
            mechanism = SPEC_LINE_DELIVERY.get(line.get("delivery"))
            if mechanism is None:
                problem("Delivery_Mechanism", line.get("delivery"), "a service line paid for in a way with no "
                                                                    "Delivery_Mechanism")
            spec["Delivery_Mechanism"] = mechanism
        out.append(spec)
    return out


def _plan_component(value: Any, what: str, problem: Any) -> str | None:
    """A long-term community plan's service line -> its Service_Component; None (and a problem naming the line) when
    the plan was written before "Type of service" was asked, or the answer is "Other or none of these"."""
    if value is None:
        problem(None, f"{what}: not answered: the plan was written before '{SERVICE_COMPONENT_QUESTION}' was asked; "
                      f"answer '{SERVICE_COMPONENT_QUESTION}' for each service at the next plan (a review)")
        return None
    coded = SPEC_SERVICE_COMPONENT.get(value)
    if coded is None:
        problem(value, f"{what}: 'Other or none of these' (or an answer not in the form's list) has no "
                       "Service_Component in the specification's list: the cell is left empty; check whether the "
                       "service is one of the listed types")
    elif coded not in CODE_LISTS["Service_Component"]:
        problem(value, f"{coded!r} is not in the recorded Service_Component list (handlers/cld_spec/code_lists.json)")
        return None
    return coded


def _case_ids(engine: Any) -> list[int]:
    from sqlalchemy import select

    from engine.schema import cases

    with engine.db.engine.connect() as conn:
        return [r.id for r in conn.execute(select(cases.c.id).order_by(cases.c.id))]


def _handlers_read() -> frozenset[str] | None:
    """The service-task handlers whose calls (``handler.called``) a CLD row reads: every mapping's match of that type
    names its handler (``data.handler``). None when some match reads such calls whatever their handler."""
    names: set[str] = set()
    any_handler = False

    def walk(x: Any) -> None:
        nonlocal any_handler
        if isinstance(x, dict):
            kinds = x.get("type")
            if "handler.called" in (kinds if isinstance(kinds, tuple) else (kinds,)):
                wanted = x.get("data.handler")
                if wanted is None:
                    any_handler = True
                names.update(wanted if isinstance(wanted, tuple) else [wanted])
            for v in x.values():
                walk(v)
        elif isinstance(x, (list, tuple)):
            for v in x:
                walk(v)

    walk(PROCESS_MAPPINGS)
    return None if any_handler else frozenset(n for n in names if isinstance(n, str))


_HANDLERS_READ = _handlers_read()
# canonical JSON (sorted keys, no spaces): a call's data opens with its element (a text) and then its handler
_CALL_HEAD = re.compile(r'\{(?:"element_id":"([^"\\]*)",)?"handler":"([^"\\]*)"')


def _slim_data(kind: str, raw: str) -> dict:
    """An event's data for the return: parsed, except a service-task call that no CLD row reads (its handler is not
    one a mapping names, ``_HANDLERS_READ``: the local timescales each instance reads, the letters, the directory
    searches — most of a history's bytes), which keeps only its element and handler and an empty output."""
    if kind == "handler.called" and _HANDLERS_READ is not None:
        head = _CALL_HEAD.match(raw)
        if head is not None and head.group(2) not in _HANDLERS_READ:
            return {"handler": head.group(2), "element_id": head.group(1), "output": {}}
    return _DECODE(raw)[0]  # canonical JSON, no surrounding space: json.loads without its two whitespace scans


_DECODE = json.JSONDecoder().raw_decode


_HEAD_CHARS = 400  # a call's element and handler come first in its canonical JSON: ids are a few dozen characters


def _call_head_or_data(events: Any, postgres: bool = False) -> Any:
    """The events' data column, but only the first _HEAD_CHARS of a service-task call whose head names no handler a
    row reads (a call in doubt comes whole; a head that does not hold the handler fails ``_slim_data`` and the call
    is read whole). SQLite: a LIKE per handler read (a name's ``_`` matches any character: more calls come whole).
    PostgreSQL: the head's first handler name, cut out with ``split_part`` and compared with the list at once — the
    name ``_CALL_HEAD`` finds, as a call's head opens with its element and handler; half the server's time of the
    LIKEs (docs/performance.md, "The CLD return for a county year")."""
    from sqlalchemy import and_, case, func, literal, not_, or_

    head = func.substr(events.c.data, 1, _HEAD_CHARS)  # the handler is in the head: no scan of the whole text
    names = sorted(_HANDLERS_READ or ())
    if postgres:
        name = func.split_part(func.split_part(head, literal('"handler":"'), 2), literal('"'), 1)
        unread = and_(events.c.type == "handler.called", name.not_in(names) if names else literal(True))
    else:
        named = or_(*[head.like(f'%"handler":"{n}"%') for n in names])
        unread = and_(events.c.type == "handler.called", not_(named))
    return case((unread, head), else_=events.c.data).label("data")


def _event_data(engine: Any, event_id: int) -> str:
    from sqlalchemy import select

    from engine.schema import events

    with engine.db.engine.connect() as conn:
        return conn.execute(select(events.c.data).where(events.c.id == event_id)).scalar_one()


# On PostgreSQL each batch's three reads are lookups by key (the cases' ids, the instances' case, the chains' unique
# (chain, seq) index). With no statistics on events (a table loaded in bulk and not yet analysed; a server with
# autovacuum off) the planner took 500 chains for a fifth of the table: a parallel scan of every event and a JIT
# compilation for every batch, 0.65-0.84 s a batch against 0.1-0.3 s (docs/performance.md). These settings, for the
# reading transaction only, keep the index whatever the statistics say.
_PG_READ_SETTINGS = ("SET LOCAL jit = off", "SET LOCAL enable_seqscan = off")


def _read_batch(engine: Any, chunk: list[int], chain_of: dict[str, int], slim: bool) -> tuple:
    """One batch's rows as they come from the database: cases, instances, and events (plain tuples, in chain and
    seq order) with their column names."""
    from sqlalchemy import select, text

    from engine.schema import cases, events, instances

    postgres = engine.db.is_postgres
    with engine.db.engine.connect() as conn:
        if postgres:
            for setting in _PG_READ_SETTINGS:
                conn.execute(text(setting))
        case_rows = conn.execute(select(cases).where(cases.c.id.in_(chunk)).order_by(cases.c.id)).all()
        inst_rows = conn.execute(
            select(instances.c.case_id, instances.c.id, instances.c.process_id, instances.c.status,
                   instances.c.parent_instance_id, instances.c.started_at, instances.c.completed_at)
            .where(instances.c.case_id.in_(chunk)).order_by(instances.c.id)).all()
        wanted = [c for c in events.c if not (slim and c.name in ("prev_hash", "hash"))]  # no row reads them
        if slim and _HANDLERS_READ is not None:  # a call no row reads: only its head crosses from the database
            wanted = [_call_head_or_data(events, postgres) if c.name == "data" else c for c in wanted]
        result = conn.execute(select(*wanted).where(events.c.chain.in_(list(chain_of)))
                              .order_by(events.c.chain, events.c.seq))
        columns = list(result.keys())
        event_rows = result.fetchall()
    return case_rows, inst_rows, columns, event_rows


def _in_memory(engine: Any) -> bool:
    """An in-memory SQLite database (engine/trial.py) is one connection per thread: another thread sees none of it."""
    from sqlalchemy.engine import make_url

    return engine.db.dialect == "sqlite" and make_url(engine.db.url).database in (None, "", ":memory:")


class _Inline:
    """ThreadPoolExecutor's submit, run at once in this thread (for an in-memory database)."""

    def __enter__(self) -> _Inline:
        return self

    def __exit__(self, *exc: Any) -> None:
        return None

    def submit(self, fn: Any, *args: Any) -> Any:
        from concurrent.futures import Future

        done: Future = Future()
        done.set_result(fn(*args))
        return done


def read_cases(engine: Any, batch: int = 500, *, slim: bool = False) -> Iterable[tuple[dict, list[dict]]]:
    """(case, history) for every case, in case order, in the shapes ``Engine.get_case`` and ``Engine.history``
    return, read ``batch`` cases at a time (three queries a batch instead of three a case: a county's year is
    tens of thousands of cases). tests/test_cld_spec.py checks the shapes against the engine's own. ``slim``: a
    service-task call no CLD row reads keeps only its element and handler (``_slim_data``; only the head of its
    text is read, ``_call_head_or_data``), and the events come without their hashes (what ``cld_return`` reads).
    The next batch is read from the database by a second thread while this one is parsed and used (the database
    driver waits without holding Python's lock), so the database's time and Python's overlap."""
    from concurrent.futures import ThreadPoolExecutor

    from engine.history import case_chain

    parse = _slim_data if slim else (lambda _kind, raw: json.loads(raw))
    ids = _case_ids(engine)
    chunks = [ids[first:first + batch] for first in range(0, len(ids), batch)]
    chains = [{case_chain(case_id): case_id for case_id in chunk} for chunk in chunks]
    with (_Inline() if _in_memory(engine) else
          ThreadPoolExecutor(max_workers=1, thread_name_prefix="carepath-cld-read")) as pool:
        ahead = pool.submit(_read_batch, engine, chunks[0], chains[0], slim) if chunks else None
        for n, chain_of in enumerate(chains):
            case_rows, inst_rows, columns, event_rows = ahead.result()
            ahead = pool.submit(_read_batch, engine, chunks[n + 1], chains[n + 1], slim) \
                if n + 1 < len(chunks) else None
            insts: dict[int, list[dict]] = {}
            for r in inst_rows:
                item = dict(r._mapping)
                insts.setdefault(item.pop("case_id"), []).append(item)
            histories: dict[int, list[dict]] = {}
            at_chain, at_type, at_data = columns.index("chain"), columns.index("type"), columns.index("data")
            current, history = None, []
            for r in event_rows:  # plain tuples: a row's mapping costs more than its dict
                if r[at_chain] != current:
                    current = r[at_chain]
                    history = histories.setdefault(chain_of[current], [])
                item = dict(zip(columns, r, strict=True))
                try:
                    item["data"] = parse(r[at_type], r[at_data])
                except ValueError:  # a call's head cut short before its handler (never seen): read it whole
                    item["data"] = parse(r[at_type], _event_data(engine, item["id"]))
                history.append(item)
            for row in case_rows:
                case = {"id": row.id, "reference": row.reference, "title": row.title, "data": json.loads(row.data),
                        "instances": insts.get(row.id, [])}
                yield case, histories.get(row.id, [])


def case_event_rows(engine: Any) -> list[dict]:
    """Every case's derived rows (carepath's own keys, Release 1 wording) with the case's person fields, whatever
    their dates: what the measures and the tests read. A case whose history cannot be coded raises CldDataError."""
    out: list[dict] = []
    for case, history in read_cases(engine):
        person = person_fields(case, history)
        out += [{**person, **row} for row in derive_cld_events(case, history)]
    return out


def cld_return(engine: Any, period_start: date, period_end: date, la_code: str | None = None) -> CldReturn:
    """The return for [period_start, period_end] (inclusive): every case's events in the period, as rows keyed by
    the specification's fields (CLD_FIELDS), with ``withheld`` and ``problems``. ``la_code`` defaults to the
    council setting (processes/config/council.json ``la_code``); unset, LA_Code is empty and a problem says so."""
    if period_end < period_start:
        raise ValueError(f"the period ends ({period_end}) before it starts ({period_start})")
    la_code = la_code or la_code_setting()
    result = CldReturn(period_start=period_start, period_end=period_end, la_code=la_code)
    if not la_code:
        result.problems.append({"case_reference": None, "event": None, "field": "LA_Code", "value": None,
                                "why": "the council's LA code is not set: add \"la_code\" to "
                                       "processes/config/council.json (or pass --la-code)"})
    for case, history in read_cases(engine, slim=True):
        result += spec_rows(case, history, period_start, period_end, la_code, result.withheld, result.problems)
    return result


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "Yes" if value else "No"
    return value


def cld_csv_text(rows: Iterable[dict]) -> str:
    """The return as CSV text: the specification's field names as the header, in order; None is an empty cell."""
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CLD_FIELDS)
    for row in rows:
        writer.writerow([_cell(row.get(name)) for name in CLD_FIELDS])
    return buf.getvalue()


def write_cld_csv(rows: Iterable[dict], path: str | Path) -> Path:
    """Write the return (rows keyed by CLD_FIELDS) as a UTF-8 CSV file."""
    path = Path(path)
    path.write_text(cld_csv_text(rows), encoding="utf-8", newline="")
    return path
