"""A data-quality report on a Client Level Data return before it is sent (handlers/cld.py ``cld_return``).

In the style of DHSC's own checks on the submitted data (DataS-DHSC/ASC-CLD-LA-Dashboard,
Stored_procedures/create_GetDQValues_procedure.sql: each field of each row is "Passed: Valid", "Passed: Blank
(Not Mandatory)", "Failed: Blank (Mandatory)" or "Failed: Invalid"; Main_tables/docs/methodology: events in
the period, end dates, deduplication of overlapping services). Each finding names the case to fix.

    quality_report(rows, problems) -> [{"check", "severity", "field", "case_reference", "detail"}, ...]

Checks (``CHECKS``), errors first:
- ``not_coded``: a value the return could not code (its ``problems``): the cell is empty in the file (among them
  a long-term plan's service with no "Type of service", or "Other or none of these": no Service_Component);
- ``missing_mandatory``: a field the specification makes mandatory for the row's event type is empty
  (fields.json ``mandatory``: true; fields whose status the sources do not give are not checked);
- ``invalid_value``: a coded field's value is not in its recorded list (code_lists.json);
- ``end_before_start``: the event ends before it starts;
- ``out_of_order``: the event starts after the period's end, a request, assessment or review ends after
  it, or the event starts after the person's date of death, or ends after it (or is still open);
- ``service_without_delivery_mechanism``: a service row with no Delivery_Mechanism;
- ``overlapping_events`` (warning): two different events of the same person, type (and for services the same service
  type) overlapping in time — DHSC counts such services once (its deduplication);
- ``no_nhs_number`` (warning): a person with no NHS number: DHSC falls back to the local person id, so
  their events cannot be linked to health data.
"""

from __future__ import annotations

from typing import Any, Iterable

from . import cld

ERROR, WARNING = "error", "warning"
CHECKS = ("not_coded", "missing_mandatory", "invalid_value", "end_before_start", "out_of_order",
          "service_without_delivery_mechanism", "overlapping_events", "no_nhs_number")


def case_reference(row: dict) -> str | None:
    """The case a row comes from: its Event_Reference is ``<case reference>-<instance>-<history event>[/<line>]``."""
    ref = row.get("Event_Reference")
    if not ref:
        return None
    return str(ref).split("/", 1)[0].rsplit("-", 2)[0]


def _blank(value: Any) -> bool:
    return value is None or value == ""


def _finding(check: str, severity: str, field: str | None, case: str | None, detail: str) -> dict[str, Any]:
    return {"check": check, "severity": severity, "field": field, "case_reference": case, "detail": detail}


def _event(row: dict) -> str:
    return f"{row.get('Event_Type')} {row.get('Event_Reference')} from {row.get('Event_Start_Date')}"


def quality_report(rows: Iterable[dict], problems: Iterable[dict]) -> list[dict[str, Any]]:
    """The findings for the return's rows and its problems, errors first, then by check and case."""
    rows = list(rows)
    found: list[dict[str, Any]] = []
    for p in problems:
        value = "" if p.get("value") is None else f" {p['value']!r}"
        found.append(_finding("not_coded", ERROR, p.get("field"), p.get("case_reference"),
                              f"{p.get('event') or 'the return'}: {p.get('field') or ''}{value}: {p['why']}"))
    submission_missing: set[str] = set()  # a submission field (LA code, period) missing is said once
    for row in rows:
        case = case_reference(row)
        event_type = row.get("Event_Type")
        for spec in cld.SPEC_FIELDS:
            name = spec["name"]
            if spec["mandatory"] is True and event_type in spec["event_types"] and _blank(row.get(name)):
                if spec["module"] == "Submission information":
                    if name not in submission_missing:
                        submission_missing.add(name)
                        found.append(_finding("missing_mandatory", ERROR, name, None,
                                              f"{name} is mandatory and empty in every row: set it for the return"))
                    continue
                found.append(_finding("missing_mandatory", ERROR, name, case,
                                      f"{_event(row)}: {name} is mandatory and empty"))
            allowed = cld.CODE_LISTS.get(name)
            if allowed and spec["format"] == "list" and not _blank(row.get(name)) and row[name] not in allowed:
                found.append(_finding("invalid_value", ERROR, name, case,
                                      f"{_event(row)}: {name} {row[name]!r} is not in the specification's list"))
        start, end = row.get("Event_Start_Date"), row.get("Event_End_Date")
        if start and end and end < start:
            found.append(_finding("end_before_start", ERROR, "Event_End_Date", case,
                                  f"{_event(row)}: ends on {end}, before it starts"))
        period_end = row.get("Reporting_Period_End_Date")
        if start and period_end and start > period_end:
            found.append(_finding("out_of_order", ERROR, "Event_Start_Date", case,
                                  f"{_event(row)}: starts after the period ends ({period_end})"))
        if event_type != cld.SERVICE and end and period_end and end > period_end:
            found.append(_finding("out_of_order", ERROR, "Event_End_Date", case,
                                  f"{_event(row)}: ends after the period ({period_end}); only a service may be "
                                  "open at the end of the period"))
        died = row.get("Date_of_Death")
        if died and start and start > died:
            found.append(_finding("out_of_order", ERROR, "Date_of_Death", case,
                                  f"{_event(row)}: starts after the person's date of death ({died})"))
        elif died and start and (end is None or end > died):
            found.append(_finding("out_of_order", ERROR, "Date_of_Death", case, f"{_event(row)}: " + (
                f"ends on {end}, after the person's date of death ({died})" if end else
                f"is still open after the person's date of death ({died}): close the case or end the service")))
        if event_type == cld.SERVICE and _blank(row.get("Delivery_Mechanism")):
            found.append(_finding("service_without_delivery_mechanism", ERROR, "Delivery_Mechanism", case,
                                  f"{_event(row)}: a service with no delivery mechanism"))
    found += _overlaps(rows)
    seen: set[Any] = set()
    for row in rows:
        person = row.get("LA_Person_Unique_Identifier")
        if _blank(row.get("NHS_Number")) and person not in seen:
            seen.add(person)
            found.append(_finding("no_nhs_number", WARNING, "NHS_Number", case_reference(row),
                                  f"person {person} has no NHS number: record it on the case so their events can "
                                  "be linked"))
    order = {c: i for i, c in enumerate(CHECKS)}
    found.sort(key=lambda f: (f["severity"] != ERROR, order[f["check"]], f["case_reference"] or "", f["detail"]))
    return found


def _overlaps(rows: list[dict]) -> list[dict[str, Any]]:
    """Different events of one person, same event type (services: same service type), overlapping in time."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        if not row.get("Event_Start_Date"):
            continue
        kind = row.get("Service_Type") if row.get("Event_Type") == cld.SERVICE else None
        groups.setdefault((row.get("LA_Person_Unique_Identifier"), row.get("Event_Type"), kind), []).append(row)
    found = []
    for (person, event_type, kind), group in groups.items():
        events: dict[str, dict] = {}
        for row in group:  # a costed plan's service lines are one event
            events.setdefault(str(row.get("Event_Reference")).split("/", 1)[0], row)
        ordered = sorted(events.values(), key=lambda r: r["Event_Start_Date"])
        for a, b in zip(ordered, ordered[1:], strict=False):
            a_end = a.get("Event_End_Date")
            # an event that ends on the day the next starts follows it (a plan superseded that day)
            if a_end is None or a_end > b["Event_Start_Date"]:
                what = f"{event_type.lower()}s" + (f" ({kind})" if kind else "")
                found.append(_finding("overlapping_events", WARNING, "Event_Start_Date", case_reference(b),
                                      f"person {person}: two {what} overlap: {_event(a)} (to "
                                      f"{a_end or 'open'}) and {_event(b)}"))
    return found


def format_report(findings: list[dict[str, Any]]) -> str:
    """The report as text for the command line."""
    if not findings:
        return "Data-quality report: no findings."
    errors = sum(f["severity"] == ERROR for f in findings)
    lines = [f"Data-quality report: {errors} error(s), {len(findings) - errors} warning(s)"]
    lines += [f"  {f['severity'].upper():7} {f['check']:<34} {f['case_reference'] or '(the return)'}  {f['detail']}"
              for f in findings]
    return "\n".join(lines)
