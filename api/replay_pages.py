"""Replaying a case, step by step, on the diagrams it ran on (`/cases/{id}/replay?step=N`).

The state at each step comes from engine/timeline.py (an incremental replay, cached per case by
its chain head). The page shows every instance that existed at the step on the diagram of the
version it was on then (bpmn-js NavigatedViewer, api/static/case_replay.js), with the path taken
so far marked and the same listed in words; beside it the step's events — who did what and
when, form answers, handler inputs and outputs, timers, letters filed — and the case record as
it was; below, every event of the case, 200 a page, each linking to its step.

Whoever may open the case may replay it (api/access.py `can_open_case`); every page, and every
refusal, is written to the case access log as action 'replay' with the page it came from.
Previous/next are plain links (the page works without JavaScript); the script turns them,
the arrow keys and j/k into in-page steps.
"""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from engine import timeline as tlmod
from engine.errors import NotFoundError

from . import case_record as cr
from . import page_kit as kit
from .access import RESTRICTED, can_open_case, case_exists, log_access, refusal
from .auth import User
from .case_pages import erased_case
from .errors import ApiError
from .inputs import to_id

router = APIRouter(include_in_schema=False)
PAGE = 200  # events a page of the timeline
NOT_FOUND = "There is no case record at this address."
_KINDS = {"userTask": "task", "manualTask": "task", "serviceTask": "automatic step", "scriptTask": "automatic step",
          "businessRuleTask": "decision", "sendTask": "automatic step", "exclusiveGateway": "decision point",
          "inclusiveGateway": "decision point", "parallelGateway": "split or join", "eventBasedGateway":
              "decision point", "startEvent": "start", "endEvent": "end", "intermediateCatchEvent": "wait",
          "boundaryEvent": "timer or event", "intermediateThrowEvent": "event", "callActivity": "sub-process",
          "subProcess": "sub-process"}


class _BadInput(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _whole(value: str | None, what: str, *, default: int | None = None) -> int:
    """A positive whole number from the address, or a message naming what was wrong."""
    if value is None or value == "":
        if default is not None:
            return default
        raise _BadInput(f"The {what} is missing.")
    text = value.strip()
    if not (text.isascii() and text.isdigit()) or len(text) > 9:
        raise _BadInput(f"The {what} in the address must be a whole number, not '{value[:40]}'.")
    return int(text)


_LOOKS_LIKE_REFERENCE = re.compile(r"[A-Za-z]+-\d+")


def _path_id(value: str, what: str) -> int:
    """An id from the address by `Id`'s rule (api/inputs.py `to_id`): not a whole number is a 400 naming it; a
    whole number out of range (0, or past 2^63 − 1) a 404, as for every other route: nothing can be there."""
    text = value.strip()
    if not (text.isascii() and text.isdigit()):
        hint = (" That looks like a case reference: find the case by it (auditors and team managers: Find cases) "
                "and choose Replay on its record." if what == "case number" and _LOOKS_LIKE_REFERENCE.fullmatch(text)
                else "")
        raise _BadInput(f"The {what} in the address must be a whole number, not '{value[:40]}'.{hint}")
    found = to_id(text)
    if found is None:
        raise NotFoundError(f"no {what} {text[:40]}")
    return found


def _page(request: Request) -> str:
    return str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")


def _open(request: Request, user: User, case_id: int, action: str = "replay") -> Any:
    """404 for an unknown case; 403 (logged as refused) for one this user may not open. A view is logged by
    `_shown` once the address is known good: a step or page out of range answers 404 and is no view."""
    engine = request.app.state.engine
    page = _page(request)
    case_exists(engine, case_id)
    ok, why = can_open_case(engine, user, case_id)
    if not ok:
        log_access(engine, case_id, user, action, page=page, outcome="refused")
        if why == RESTRICTED:  # the same answer as an unknown case: its existence is not disclosed
            raise refusal(case_id, why)
        raise ApiError(403, "forbidden", f"You cannot replay this case: {why}.")
    return engine


def _shown(request: Request, user: User, case_id: int, action: str = "replay") -> None:
    log_access(request.app.state.engine, case_id, user, action, page=_page(request))


def _bad(request: Request, user: User | None, message: str) -> Response:
    return kit.error_page(request, user, 400, "Sorry, there is a problem", message)


# ---------------------------------------------------------------------- the page
@router.get("/cases/{case_ref}/replay", response_class=HTMLResponse)
def replay_page(request: Request, case_ref: str) -> Response:
    user = None
    try:
        user = kit.signed_in(request)
        case_id = _path_id(case_ref, "case number")
        step_no = _whole(request.query_params.get("step"), "step number", default=1)
        page_no = request.query_params.get("page")
        page = _whole(page_no, "page number") if page_no is not None else None
        engine = _open(request, user, case_id)
        gone = erased_case(engine, case_id)
        if gone is not None:  # engine/erasure.py: nothing left to replay
            _shown(request, user, case_id)
            return kit.render(request, "case_erased.html", {"user": user, **gone})
        tl = tlmod.timeline(engine, case_id)
        total = len(tl.steps)
        if total == 0:
            raise ApiError(404, "not_found", "This case has no history to replay.")
        if not 1 <= step_no <= total:
            raise ApiError(404, "not_found", f"This case has no step {step_no}: its steps are numbered 1 to {total}.")
        pages = max(1, -(-len(tl.events) // PAGE))
        if page is not None and not 1 <= page <= pages:
            raise ApiError(404, "not_found", f"The timeline has no page {page}: its pages are numbered 1 to {pages}.")
        state = tlmod.state_at(engine, case_id, step_no)
        _shown(request, user, case_id)
    except _BadInput as exc:
        return _bad(request, user, exc.message)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return kit.guard(request, user, exc, not_found=NOT_FOUND)
    # the script asks for the step alone (part=step): the timeline and the integrity panel stay as they are
    partial = request.query_params.get("part") == "step"
    ctx = _context(engine, tl, state, case_id, page, rows=not partial)
    ctx["user"], ctx["partial"] = user, partial
    from .integrity import panel as integrity_panel  # the integrity helper's panel (api/integrity.py)

    ctx["integrity"] = integrity_panel(engine, case_id)
    ctx["altered"] = _altered(ctx["integrity"], tl, case_id)
    seqs = ctx["altered"]["seqs"] if ctx["altered"] else set()
    for row in (*ctx["events"], *ctx["timeline"]):
        row["altered"] = row["seq"] in seqs
    return kit.render(request, "case_replay.html", ctx)


_FINDING_EVENT = re.compile(r"\bevent #(\d+)\b")


def _altered(check: dict[str, Any] | None, tl: Any, case_id: int) -> dict[str, Any] | None:
    """Where the last integrity check found the history altered, for the top of the page and the marks on the
    events: the events its findings name (`seqs`), the first, and the step holding it (None when that event is
    no longer there, e.g. deleted from the end). None when the case was never checked or the check passed."""
    if not check or check.get("passed", check.get("verified") and check.get("replay_ok")):
        return None
    seqs = {int(n) for f in check.get("verify_findings") or [] for n in _FINDING_EVENT.findall(str(f))}
    first = check.get("first_bad_event")
    if first is not None:
        seqs.add(int(first))
    step = tl.step_of_seq.get(first) if first is not None else None
    return {"seqs": seqs, "first": first, "step": step,
            "href": f"/cases/{case_id}/replay?{urlencode({'step': step})}#event-{first}" if step else None}


@router.get("/cases/{case_ref}/replay/diagrams/{version_ref}")
def replay_diagram(request: Request, case_ref: str, version_ref: str) -> Response:
    """The BPMN file of a version this case ran on (a move to another version included): checked like the page."""
    user = None
    try:
        user = kit.signed_in(request)
        case_id = _path_id(case_ref, "case number")
        version_id = _path_id(version_ref, "diagram version")
        engine = _open(request, user, case_id, "replay")
        if erased_case(engine, case_id) is not None:
            raise NotFoundError(f"case {case_id}'s data was erased: there is nothing to replay")
        tl = tlmod.timeline(engine, case_id)
        if version_id not in tl.version_ids:
            raise NotFoundError(f"case {case_id} never ran on process version {version_id}")
        xml, _name = tlmod.diagram_of(engine, version_id)
        _shown(request, user, case_id)
    except _BadInput as exc:
        return _bad(request, user, exc.message)
    except Exception as exc:  # noqa: BLE001
        return kit.guard(request, user, exc, not_found="This case never ran on that diagram.")
    # a version never changes once deployed: the browser may keep it for the session's steps
    return Response(xml, media_type="application/xml", headers={
        "Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; frame-ancestors 'none'; sandbox"})


# ---------------------------------------------------------------------- what the template shows
def _derived(engine: Any, tl: Any, case_id: int) -> dict[str, Any]:
    """Per timeline (cached with it): the case record's loaded parts, completed task ids and letters by event."""
    got = tl.extras.get("replay_page")
    if got is not None:
        return got
    rec = cr.load(engine, case_id, with_history=False)
    rec.history = tl.events
    completed = {e["data"].get("task_id") for e in tl.events if e["type"] == "task.completed"}
    queue: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for d in rec.documents:
        queue.setdefault((d["instance_id"], d["element_id"]), []).append(d)
    letters: dict[int, dict[str, Any]] = {}
    for e in tl.events:  # documents are filed in the order their handler ran
        if e["type"] == "handler.called":
            q = queue.get((e["instance_id"], e["data"].get("element_id")))
            if q:
                letters[e["seq"]] = q.pop(0)
    inst_by_id = {i["id"]: i for i in rec.instances}
    got = {"rec": rec, "completed": completed, "letters": letters, "inst_by_id": inst_by_id}
    tl.extras["replay_page"] = got
    return got


def _sentence(e: dict[str, Any], der: dict[str, Any]) -> str:
    if e["type"] == "instance.migrated":
        d = e["data"]
        return (f"Moved from version {d.get('from_version')} to version {d.get('to_version')} of "
                f"{cr.humanise(d.get('process_id', ''))}" + (f". Reason: {d['reason']}" if d.get("reason") else ""))
    if e["type"] == "instance.child_started":
        return f"Started {cr.humanise(e['data'].get('process_id', ''))} as a process of its own"
    seq = e["seq"]
    queue = {}
    if seq in der["letters"]:
        doc = der["letters"][seq]
        queue = {(doc["instance_id"], doc["element_id"]): [doc]}
    text, _kind, _link = cr.describe(e, der["rec"], der["inst_by_id"], der["completed"], queue)
    return text or cr.humanise(e["type"].replace(".", " "))


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def _event_view(e: dict[str, Any], der: dict[str, Any], names: dict[int, dict[str, str]], case_id: int,
                step_no: int) -> dict[str, Any]:
    d = e["data"] if isinstance(e.get("data"), dict) else {}
    rec = der["rec"]
    view: dict[str, Any] = {"seq": e["seq"], "type": e["type"], "sentence": _sentence(e, der),
                            "who": rec.who(e["actor"]), "when": cr.day_and_time(e["at"]), "at": e["at"],
                            "instance_id": e.get("instance_id"), "details": []}
    el_names = names.get(e.get("instance_id") or 0, {})
    if d.get("element_id"):
        view["element"] = el_names.get(d["element_id"]) or cr.humanise(d["element_id"])
    t = e["type"]
    if t == "task.completed":
        view["details"].append(("Form answers submitted", _pretty(d.get("data") or {})))
    elif t in ("handler.called", "handler.failed"):
        view["details"].append(("Handler", d.get("handler") or ""))
        view["details"].append(("Inputs", _pretty(d.get("inputs"))))
        if t == "handler.called":
            view["details"].append(("Output", _pretty(d.get("output"))))
        else:
            view["details"].append(("Failure", d.get("message") or ""))
    elif t in ("timer.set", "timer.fired", "timer.cleared"):
        view["details"].append(("Due", cr.day_and_time(d.get("due_at")) if d.get("due_at") else "—"))
    elif t in ("case.updated", "case.record_updated", "case.created", "instance.started"):
        if d.get("data"):
            view["details"].append(("Data", _pretty(d.get("data"))))
    elif t == "instance.migrated":
        view["migration"] = {"from": d.get("from_version"), "to": d.get("to_version"),
                             "mapping": d.get("mapping") or {}, "timers": d.get("timers")}
    elif t == "incident.opened":
        view["details"].append(("Problem", d.get("message") or ""))
    if t == "instance.child_started" and d.get("child_instance_id"):
        view["child"] = {"instance_id": d["child_instance_id"], "process": cr.humanise(d.get("process_id", "")),
                         "href": f"/cases/{case_id}/replay?step={step_no}#instance-{d['child_instance_id']}"}
    if e["seq"] in der["letters"]:
        doc = der["letters"][e["seq"]]
        view["letter"] = {"title": doc["title"], "body": doc["body"],
                          "href": f"/cases/{case_id}/letters/{doc['id']}"}
    return view


def _label(names: dict[str, str], kinds: dict[str, str], el: str) -> str:
    name = names.get(el) or cr.humanise(el)
    kind = _KINDS.get(kinds.get(el, ""), "")
    return f"{name} ({kind})" if kind else name


def _instance_view(i: dict[str, Any], d: Any, case_id: int, step_events: list[dict[str, Any]]) -> dict[str, Any]:
    names, kinds = (d.names, d.kinds) if d is not None else ({}, {})
    flow_src = {f: (src, tgt) for (src, tgt), fs in (d.flows.items() if d is not None else []) for f in fs}
    ready = [_label(names, kinds, el) for el in i["ready"]]
    waiting = [_label(names, kinds, w["element_id"]) + (f", due {cr.day_and_time(w['due_at'])}" if w["due_at"] else "")
               for w in i["waiting"]]
    branches = [f"At {names.get(b['gateway']) or cr.humanise(b['gateway'])}: "
                f"{('“' + names[b['flow']] + '” to ') if names.get(b['flow']) else ''}"
                f"{names.get(b['target']) or cr.humanise(b['target'])}" for b in i["branches"]]
    flows = [f"{names.get(flow_src[f][0]) or cr.humanise(flow_src[f][0])} → "
             f"{names.get(flow_src[f][1]) or cr.humanise(flow_src[f][1])}" for f in i["flows"] if f in flow_src]
    touched = any(e.get("instance_id") == i["instance_id"] for e in step_events)
    return {**i, "status_text": cr.STATUS.get(i["status"], cr.humanise(i["status"])),
            "completed_text": [_label(names, kinds, el) for el in i["completed"]],
            "ready_text": ready, "waiting_text": waiting, "branches_text": branches, "flows_text": flows,
            "failed_text": [_label(names, kinds, el) for el in i["failed"]],
            "active": list(i["ready"]) + [w["element_id"] for w in i["waiting"]] + list(i["running"]),
            "branch_flows": [b["flow"] for b in i["branches"]], "touched": touched,
            "diagram_url": f"/cases/{case_id}/replay/diagrams/{i['process_version_id']}",
            "parent_name": None}


# engine/lifecycle.py CLOSED_KEY, LAST_CLOSURE_KEY
_CLOSURES = {"case_closed": "Closed", "last_closure": "Last closure"}


def _record_rows(data: dict[str, Any], who: Any = None) -> list[tuple[str, str]]:
    rows = []
    for k, v in sorted(data.items()):
        if k == "person" and isinstance(v, dict):
            rows += [(cr.humanise(f), cr.show_value(None, x)) for f, x in sorted(v.items())]
        elif k in _CLOSURES and isinstance(v, dict) and v.get("at"):
            rows.append((_CLOSURES[k], _closure_words(v, who or (lambda u: u))))
        else:
            rows.append((cr.humanise(k), _readable(v)))
    return rows


def _closure_words(closure: dict[str, Any], who: Any) -> str:
    """A closure kept on the case record in words: "8 January 2027, 12:14am by Sam Smith: Moved to another
    council" (it showed the stored ISO time, username and reason code)."""
    why = cr._reason_words(closure.get("reason"))
    text = f"{cr.day_and_time(closure.get('at'))} by {who(closure.get('by'))}: {why}"
    details = closure.get("details") if isinstance(closure.get("details"), dict) else {}
    if details:
        text += "\n" + _readable(details)
    return text


def _readable(value: Any, indent: str = "") -> str:
    """A value kept on the case record as a person reads it: a list of plain values comma-joined ("22 Elm
    Road, Northby"), a nested object one "Name: value" line each (indented under its name), a list of
    objects one block each, Yes/No, and "—" for nothing; never raw JSON."""
    if value is None or value == "" or value == [] or value == {}:
        return "—"
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, dict):
        lines = []
        for k, v in value.items():
            if isinstance(v, (dict, list)) and v and not _plain_list(v):
                lines.append(f"{indent}{cr.humanise(str(k))}:\n{_readable(v, indent + '  ')}")
            else:
                lines.append(f"{indent}{cr.humanise(str(k))}: {_readable(v)}")
        return "\n".join(lines)
    if isinstance(value, list):
        if _plain_list(value):
            return indent + ", ".join(_readable(v) for v in value)
        return "\n\n".join(_readable(v, indent) if isinstance(v, (dict, list)) else indent + _readable(v)
                           for v in value)
    return str(value)


def _plain_list(value: Any) -> bool:
    return isinstance(value, list) and not any(isinstance(v, (dict, list)) for v in value)


def _context(engine: Any, tl: Any, state: dict[str, Any], case_id: int, page: int | None, *,
             rows: bool = True) -> dict[str, Any]:
    der = _derived(engine, tl, case_id)
    rec = der["rec"]
    step_no, total = state["step"], state["steps"]
    diagrams = {i["instance_id"]: tl.diagram(i["process_version_id"]) for i in state["instances"]}
    names = {iid: (d.names if d is not None else {}) for iid, d in diagrams.items()}
    insts = [_instance_view(i, diagrams[i["instance_id"]], case_id, state["events"]) for i in state["instances"]]
    by_id = {i["instance_id"]: i for i in insts}
    for i in insts:
        parent = by_id.get(i["parent_instance_id"]) if i["parent_instance_id"] else None
        i["parent_name"] = parent["name"] if parent else None
        el = i["started_by_element"]
        i["started_by_name"] = (names.get(i["parent_instance_id"], {}).get(el) or cr.humanise(el)) if el else None
    events = [_event_view(e, der, names, case_id, step_no) for e in state["events"]]
    first_seq = state["events"][0]["seq"]
    index = next(n for n, e in enumerate(tl.events) if e["seq"] == first_seq) if page is None else None
    pages = max(1, -(-len(tl.events) // PAGE))
    page = page if page is not None else (index // PAGE + 1 if index is not None else 1)
    timeline_rows = []
    for e in tl.events[(page - 1) * PAGE: page * PAGE] if rows else []:
        n = tl.step_of_seq[e["seq"]]
        timeline_rows.append({"seq": e["seq"], "step": n, "when": cr.day_and_time(e["at"]), "who": rec.who(e["actor"]),
                     "text": _sentence(e, der), "current": n == step_no})

    def href(step: int, pg: int | None = None) -> str:
        q: dict[str, Any] = {"step": step}
        if pg is not None:
            q["page"] = pg
        return f"/cases/{case_id}/replay?{urlencode(q)}"

    return {"case": rec.case, "name": rec.person.get("name") or rec.case["title"], "step": step_no, "total": total,
            "at": cr.day_and_time(state["at"]), "who": rec.who(state["actor"]), "events": events,
            "instances": insts, "record_rows": _record_rows(state["case_record"], rec.who),
            "replayed": state["replayed"], "divergence": state["divergence"],
            "prev_href": href(step_no - 1) if step_no > 1 else None,
            "next_href": href(step_no + 1) if step_no < total else None,
            "first_href": href(1), "last_href": href(total),
            "timeline": timeline_rows, "page": page, "pages": pages, "total_events": len(tl.events),
            "page_prev": href(step_no, page - 1) + "#timeline" if page > 1 else None,
            "page_next": href(step_no, page + 1) + "#timeline" if page < pages else None}
