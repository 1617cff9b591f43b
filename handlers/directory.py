"""The community services directory: search it, and record signposting and referrals.

The front door signposts people to community services before anything heavier, records
each referral and calls back later to check it was right (operating model, tier 1). The
directory is local data, kept in `processes/config/community_directory.json`; its need
domains and areas are part of that file so a council can change them without code.

The file is validated when it is loaded (at `register` and whenever it changes on disk):
an error names the entry and the field, so a bad edit fails at start-up, not mid-case.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from engine.registry import HandlerContext, HandlerRegistry

from . import working_days
from .config_files import cached, read_json

DEFAULT_PATH = Path(__file__).resolve().parent.parent / "processes" / "config" / "community_directory.json"
#: lets a deployment point at its own directory without editing code
PATH_ENV = "CAREPATH_COMMUNITY_DIRECTORY"
COUNTYWIDE = "countywide"

_REQUIRED_TEXT = ("id", "name", "organisation", "opening_hours", "eligibility")
_REQUIRED_CONTACT = ("phone", "email", "website")
_COST_TYPES = ("free", "charge")


class DirectoryError(ValueError):
    """The directory file is missing, not JSON, or an entry is incomplete."""


@dataclass(frozen=True)
class Directory:
    need_domains: dict[str, str]  # code -> plain-English label for letters and "why" text
    areas: dict[str, str]
    services: dict[str, dict[str, Any]]  # by id, in file order


def _entry_problems(entry: Any, need_domains: dict[str, str], areas: dict[str, str]) -> list[str]:
    if not isinstance(entry, dict):
        return ["is not an object"]
    problems = [f"missing or empty '{f}'" for f in _REQUIRED_TEXT if not _text(entry.get(f))]
    for field, known in (("needs", need_domains), ("areas", areas)):
        values = entry.get(field)
        if not isinstance(values, list) or not values:
            problems.append(f"missing or empty '{field}' (a list)")
            continue
        unknown = [v for v in values if v not in known]
        if unknown:
            problems.append(f"unknown {field} {unknown} (known: {sorted(known)})")
    contact = entry.get("contact")
    if not isinstance(contact, dict):
        problems.append("missing 'contact'")
    else:
        problems += [f"missing or empty 'contact.{f}'" for f in _REQUIRED_CONTACT if not _text(contact.get(f))]
    cost = entry.get("cost")
    if not isinstance(cost, dict) or cost.get("type") not in _COST_TYPES:
        problems.append(f"'cost.type' must be one of {list(_COST_TYPES)}")
    return problems


def _text(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


def parse_directory(data: Any, source: str = "community directory") -> Directory:
    """Validate the directory's JSON and index it; every problem is reported, not just the first."""
    if not isinstance(data, dict):
        raise DirectoryError(f"{source}: the top level must be an object")
    need_domains, areas, services = data.get("need_domains"), data.get("areas"), data.get("services")
    problems: list[str] = []
    for name, value in (("need_domains", need_domains), ("areas", areas)):
        if not isinstance(value, dict) or not value:
            problems.append(f"'{name}' must be a non-empty object of code -> label")
    if not isinstance(services, list) or not services:
        problems.append("'services' must be a non-empty list")
    if problems:
        raise DirectoryError(f"{source}: " + "; ".join(problems))
    assert isinstance(need_domains, dict) and isinstance(areas, dict) and isinstance(services, list)
    if COUNTYWIDE not in areas:
        raise DirectoryError(f"{source}: 'areas' must include '{COUNTYWIDE}'")

    by_id: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()  # ids of invalid entries too, so a duplicate of one is still reported
    for index, entry in enumerate(services):
        sid = entry.get("id") if isinstance(entry, dict) else None
        label = f"service #{index}" + (f" '{sid}'" if _text(sid) else "")
        entry_problems = _entry_problems(entry, need_domains, areas)
        if isinstance(sid, str) and _text(sid):
            if sid in seen:
                entry_problems.append("duplicate id")
            seen.add(sid)
        if entry_problems:
            problems.append(f"{label}: " + ", ".join(entry_problems))
        elif isinstance(sid, str):
            by_id[sid] = entry
    if problems:
        raise DirectoryError(f"{source}: " + "; ".join(problems))
    return Directory(dict(need_domains), dict(areas), by_id)


def load_directory(path: str | Path) -> Directory:
    path = Path(path)
    data = read_json(path, "the community directory", DirectoryError)
    return parse_directory(data, str(path))


def current_directory(path: str | Path | None = None) -> Directory:
    """The directory at `path` (default: $CAREPATH_COMMUNITY_DIRECTORY or the bundled file).

    Reloaded when the file's modification time changes, so an edited directory is picked
    up without a restart; the handlers' results record what was found, so replay does
    not depend on the file staying the same.
    """
    return cached(Path(path or os.environ.get(PATH_ENV) or DEFAULT_PATH), load_directory, share=True)


# ---------------------------------------------------------------- handlers


def _summary(service: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": service["id"],
        "name": service["name"],
        "organisation": service["organisation"],
        "contact": dict(service["contact"]),
        "opening_hours": service["opening_hours"],
        "cost": dict(service["cost"]),
        "eligibility": service["eligibility"],
    }


def search_directory(ctx: HandlerContext, needs: list[str], area: str | None = None, limit: int = 5) -> dict[str, Any]:
    """Services that help with `needs`, best first.

    Ranked by how many of the needs a service covers, then services working in the
    person's own area before countywide ones (local groups are closer to hand), then name.
    With an area, services that work only in other areas are left out.
    """
    directory = current_directory()
    if isinstance(needs, str) or not isinstance(needs, list) or not needs:
        raise ValueError("needs must be a non-empty list of need domain codes")
    unknown = [n for n in needs if n not in directory.need_domains]
    if unknown:
        raise ValueError(f"unknown need domain(s) {unknown}; known: {sorted(directory.need_domains)}")
    if area is not None and area not in directory.areas:
        raise ValueError(f"unknown area {area!r}; known: {sorted(directory.areas)}")
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValueError(f"limit must be a positive whole number, got {limit!r}")
    wanted = list(dict.fromkeys(needs))  # keep the caller's order, drop repeats

    ranked: list[tuple[tuple[int, int, str], dict[str, Any]]] = []
    for service in directory.services.values():
        covered = [n for n in wanted if n in service["needs"]]
        if not covered:
            continue
        local = area is not None and area != COUNTYWIDE and area in service["areas"]
        if area is not None and not local and COUNTYWIDE not in service["areas"]:
            continue
        if local and area is not None:
            where = f"works in {directory.areas[area]}"
        elif COUNTYWIDE in service["areas"]:
            where = f"covers {directory.areas[COUNTYWIDE]}"
        else:
            where = "works in " + ", ".join(directory.areas[a] for a in service["areas"])
        labels = ", ".join(directory.need_domains[n] for n in covered)
        match = {
            **_summary(service),
            "needs_matched": covered,
            "area_match": area if local else (COUNTYWIDE if COUNTYWIDE in service["areas"] else None),
            "why": f"Helps with {labels} ({len(covered)} of {len(wanted)} needs); {where}.",
        }
        ranked.append(((-len(covered), 0 if local else 1, service["name"].casefold()), match))
    ranked.sort(key=lambda pair: pair[0])
    matches = [m for _, m in ranked[:limit]]
    found = {n for m in matches for n in m["needs_matched"]}
    return {
        "needs": wanted,
        "area": area,
        "matches": matches,
        # so the worker sees at once which needs the directory could not help with
        "not_covered": [n for n in wanted if n not in found],
    }


def record_signposting(
    ctx: HandlerContext, services: list[str], person_consents: bool, call_back_in_days: int = 14
) -> dict[str, Any]:
    """Record the services a person was pointed to, and when to call them back.

    With consent the council passes the person's details on ("referral"); without it the
    person is only given the contact details ("signposted") — nothing is shared. Either
    way the front door calls back to check the service was right.

    The call back is `call_back_in_days` calendar days after today (UK date), moved to the
    next working day when it lands on a weekend or bank holiday.
    """
    directory = current_directory()
    if isinstance(services, str) or not isinstance(services, list) or not services:
        raise ValueError("services must be a non-empty list of directory service ids")
    if not isinstance(person_consents, bool):
        raise ValueError(f"person_consents must be true or false, got {person_consents!r}")
    if isinstance(call_back_in_days, bool) or not isinstance(call_back_in_days, int) or call_back_in_days < 0:
        raise ValueError(f"call_back_in_days must be a whole number of days >= 0, got {call_back_in_days!r}")
    unknown = [s for s in services if s not in directory.services]
    if unknown:
        raise ValueError(f"unknown service id(s) in the community directory: {', '.join(map(str, unknown))}")

    referred_at = ctx.now.isoformat()
    method = "referral" if person_consents else "signposted"
    referrals = [
        {
            "service_id": sid,
            "name": directory.services[sid]["name"],
            "organisation": directory.services[sid]["organisation"],
            "contact": dict(directory.services[sid]["contact"]),
            "method": method,
            "referred_at": referred_at,
        }
        for sid in dict.fromkeys(services)
    ]
    today = working_days.as_local_date(ctx.now)
    due = working_days.next_working_day_on_or_after(today + timedelta(days=call_back_in_days))
    return {
        "referrals": referrals,
        "person_consents": person_consents,
        "details_shared": person_consents,
        "call_back_due": due.isoformat(),
        "call_back_rule": f"{call_back_in_days} calendar days, moved to the next working day if needed",
    }


def register(registry: HandlerRegistry) -> None:
    current_directory()  # a broken directory file should stop start-up, not a case
    registry.register("search_directory", search_directory)
    registry.register("record_signposting", record_signposting)
