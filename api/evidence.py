"""Evidence packs: one case exported for an investigator, as a zip an auditor can hand on.

`GET /cases/{id}/evidence` asks why (a reason is required); `POST` returns
`evidence-<reference>-<YYYYMMDD>.zip` holding:

* `evidence.pdf` — rendered by WeasyPrint from `templates/evidence_pdf.html`: a cover (case, who
  exported it, when, why), the integrity result (`engine.integrity.check_case`, run at export
  time), every history event in plain English with its time and actor, the path taken on the
  diagram of each process instance (drawn on the server by api/diagram_svg.py), case notes and
  every letter as sent;
* `history.json` — the case chain's events exactly as stored (hashes, and each event's data as the
  canonical JSON text that was hashed), so the chain can be re-verified outside carepath;
* `chain-heads.json` — the case chain's head and the system chain's head when the pack was made;
* `manifest.json` — the case, the export (who, when, why) and the SHA-256 and size of the three
  files above; `SHA256SUMS` — `sha256sum -c` lines for all four.

Who may export (docs/security.md): team managers and auditors (`EXPORT_ROLES`) who may open the
case — a restricted case only by those named on it. Every export, and every refused attempt, is
written to the case access log with its reason and page; the reason is never written to the
server's log. `build_pack` is shared with the command line (`carepath evidence`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import textwrap
import zipfile
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from engine.clock import as_utc
from engine.errors import NotFoundError, ValidationError
from engine.history import case_chain
from engine.lint.diagram import read_diagram
from engine.schema import cases, chains, events, users
from engine.xmlsafe import parse_xml
from handlers.people import check_name

from . import case_record as cr
from . import page_kit as kit
from .access import can_open_case, case_exists, log_access, refusal
from .auth import OVERSIGHT_ROLES, User
from .diagram_svg import Marks, names, render_svg
from .inputs import Id, to_id

router = APIRouter(include_in_schema=False)
EXPORT_ROLES = OVERSIGHT_ROLES  # team managers and auditors
MAX_REASON = 2000
REASON_EMPTY = "Enter why you are exporting this case"
REASON_LONG = f"Why you are exporting this case must be {MAX_REASON} characters or fewer"
FILES = ("evidence.pdf", "history.json", "chain-heads.json")  # always there; and the signed heads file, key, ...
PUBLIC_KEY_FILE = "heads-public-key.pem"
VERIFY_SCRIPT = Path(__file__).with_name("data") / "evidence_verify.py"  # verify.py in the pack
HASH_RECIPE = ("hash = SHA-256 of prev_hash + '\\n' + canonical JSON of [chain, seq, step, type, at, actor, "
               "instance_id] + '\\n' + data_json (UTF-8; canonical JSON: sorted keys, no spaces, non-ASCII kept)")


@dataclass
class Pack:
    filename: str  # evidence-CASE-000123-20310303.zip
    content: bytes  # the zip
    files: dict[str, bytes]  # what is in it, by name


# ---------------------------------------------------------------------- who may export
def may_export(user: User) -> bool:
    return user.has(*EXPORT_ROLES)


kit.templates.env.globals["may_export"] = may_export  # the case record shows the link to those who may


def check_export(engine: Any, user: User, case_id: int, *, page: str | None) -> None:
    """404 for an unknown case; 403 (logged as a refused export) unless this user may export it."""
    case_exists(engine, case_id)
    ok, why = can_open_case(engine, user, case_id)
    if ok and not may_export(user):
        ok, why = False, "only team managers and auditors may export an evidence pack"
    if not ok:
        log_access(engine, case_id, user, "export", page=page, outcome="refused")
        raise refusal(case_id, why)


def clean_reason(reason: str | None) -> str:
    return checked_reason((reason or "").strip(), MAX_REASON, REASON_EMPTY, REASON_LONG)  # its lines kept


def checked_reason(text: str, limit: int, empty: str, too_long: str) -> str:
    """An export's required "reason" field: `text`, or a ValidationError naming the field with `empty` (nothing
    given) or `too_long` (over `limit` characters). Also the subject access export's (api/subject_access.py)."""
    if not text:
        raise ValidationError(empty, errors=[{"field": "reason", "message": empty}])
    if len(text) > limit:
        raise ValidationError(too_long, errors=[{"field": "reason", "message": too_long}])
    # the reason is what the case's history and access log keep of why it was exported: it must read as typed
    problem = check_name(text, "Reason", noun="reason")
    if problem is None and not any(c.isalnum() for c in text):
        problem = "Enter the reason in words"
    if problem:
        raise ValidationError(problem, errors=[{"field": "reason", "message": problem}])
    return text


# ---------------------------------------------------------------------- building the pack
def build_pack(engine: Any, case_id: int, user: User, reason: str, *, page: str | None = None) -> Pack:
    """Check access, run the integrity check, build the zip and log the export (see the module docstring)."""
    reason = clean_reason(reason)
    check_export(engine, user, case_id, page=page)
    from engine.integrity import check_case

    from .integrity import heads_settings

    settings = heads_settings()
    integrity = check_case(engine, case_id, actor=user.username, **settings)
    signed_files = _signed_heads_files(integrity.get("anchor") or {}, settings)
    stored, heads = _stored_history(engine, case_id)
    rec = cr.load(engine, case_id, with_history=False)
    rec.history = [dict(e, data=json.loads(e["data_json"])) for e in stored]
    exported_at = engine.now()
    ref = rec.case["reference"]
    exporter = {"username": user.username, "name": user.display_name, "roles": sorted(user.roles)}

    history_json = _json_bytes({"case": {"id": case_id, "reference": ref}, "chain": case_chain(case_id),
                                "hash_recipe": HASH_RECIPE, "events": stored})
    heads_json = _json_bytes({"read_at": _iso(exported_at), **heads})
    anchor = integrity.get("anchor") or {}
    how = {"chain": case_chain(case_id), "heads": heads, "anchor": anchor, "integrity": _integrity_view(integrity),
           "signed_file": next((n for n in signed_files if n != PUBLIC_KEY_FILE), None),
           "key_included": PUBLIC_KEY_FILE in signed_files}
    pdf = render_pdf(engine, rec, integrity=integrity, exporter=exporter, reason=reason, exported_at=exported_at,
                     heads=heads, how=how)
    files = {"evidence.pdf": pdf, "history.json": history_json, "chain-heads.json": heads_json, **signed_files,
             "verify.py": VERIFY_SCRIPT.read_bytes(),
             "README.txt": readme(ref, exported_at, how).encode()}
    listed = list(files)
    manifest = _json_bytes({
        "case": {"id": case_id, "reference": ref}, "exported_by": exporter, "exported_at": _iso(exported_at),
        "reason": reason, "how_to_check": "README.txt",
        "integrity": {"passed": _integrity_view(integrity)["ok"], "verified": integrity.get("verified"),
                      "replay_ok": integrity.get("replay_ok"),
                      "signed_heads": {k: anchor.get(k) for k in ("status", "message", "file", "signed_at", "key_id")}},
        "files": [{"name": n, "sha256": _sha256(files[n]), "bytes": len(files[n])} for n in listed]})
    files["manifest.json"] = manifest
    files["SHA256SUMS"] = "".join(f"{_sha256(files[n])}  {n}\n" for n in (*listed, "manifest.json")).encode()
    name = f"evidence-{_safe(ref)}-{as_utc(exported_at):%Y%m%d}.zip"
    content = _zip(files, exported_at)
    log_access(engine, case_id, user, "export", page=page, reason=reason)
    return Pack(name, content, files)


def _signed_heads_files(anchor: dict[str, Any], settings: dict[str, Any]) -> dict[str, bytes]:
    """The signed heads file the case was compared with, exactly as it is kept, and the public key that
    checks it (written afresh from the key, so only ever a public key) as heads-public-key.pem; {} when
    the check had no file (none configured or written yet), and no key when it cannot be read."""
    from cryptography.hazmat.primitives import serialization

    from engine.anchoring import AnchoringError, load_public_key

    if not anchor.get("file") or not settings.get("heads_dir"):
        return {}
    out: dict[str, bytes] = {}
    try:
        out[anchor["file"]] = (Path(settings["heads_dir"]) / anchor["file"]).read_bytes()
    except OSError:
        return {}
    try:
        key = load_public_key(settings["public_key"])
    except AnchoringError:
        return out
    out[PUBLIC_KEY_FILE] = key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return out


def _stored_history(engine: Any, case_id: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The case chain's events as stored, up to the heads read first (one consistent cut even while the
    case moves on), and those heads."""
    chain = case_chain(case_id)
    with engine.db.engine.connect() as conn:
        head_rows = {r.chain: r for r in conn.execute(select(chains).where(chains.c.chain.in_([chain, "system"])))}
        q = select(events).where(events.c.chain == chain)
        if chain in head_rows:  # without a head (removed: the integrity check says so) every stored event
            q = q.where(events.c.seq <= head_rows[chain].seq)
        rows = conn.execute(q.order_by(events.c.seq, events.c.id)).all()
    stored = [{"id": r.id, "chain": r.chain, "seq": r.seq, "step": r.step, "case_id": r.case_id,
               "instance_id": r.instance_id, "type": r.type, "at": r.at, "actor": r.actor, "data_json": r.data,
               "prev_hash": r.prev_hash, "hash": r.hash} for r in rows]

    def head(name: str) -> dict[str, Any] | None:
        r = head_rows.get(name)
        return None if r is None else {"chain": r.chain, "seq": r.seq, "hash": r.hash}

    return stored, {"case_chain": head(chain), "system_chain": head("system")}


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str) + "\n").encode()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _iso(at: datetime) -> str:
    return as_utc(at).isoformat(timespec="seconds")


def _safe(reference: str) -> str:
    return re.sub(r"[^A-Za-z0-9-]+", "-", reference).strip("-") or "case"


def _zip(files: dict[str, bytes], at: datetime) -> bytes:
    buf = io.BytesIO()
    stamp = as_utc(at).timetuple()[:6]
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in files.items():
            info = zipfile.ZipInfo(name, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return buf.getvalue()


# ---------------------------------------------------------------------- README.txt: how to check the pack
HASH_STEPS = ("SHA-256 of: prev_hash, a newline, the canonical JSON of [chain, seq, step, type, at, actor, "
              "instance_id], a newline, data_json (as UTF-8). Canonical JSON: keys sorted, no spaces, non-ASCII "
              "characters kept as they are - in Python json.dumps(x, sort_keys=True, separators=(\",\", \":\"), "
              "ensure_ascii=False)")
ANCHOR_WORDS = {"anchored": "matches", "altered": "DOES NOT MATCH", "not_yet": "not signed yet",
                "error": "the heads file cannot be trusted", "unavailable": "not compared"}
OPENSSL_VERIFY = (f"openssl pkeyutl -verify -pubin -inkey {PUBLIC_KEY_FILE} -rawin -in signed-text.json "
                  "-sigfile signature.bin")


def readme(reference: str, exported_at: datetime, how: dict[str, Any]) -> str:
    """README.txt: what each file is and how to check the pack, by the script and by hand (docs/auditing.md)."""
    anchor, signed, head = how["anchor"], how["signed_file"], (how["heads"].get("case_chain") or {})
    lines = [
        f"HOW TO CHECK THIS EVIDENCE PACK - case {reference}, exported {cr.day_and_time(exported_at)} (UK time)",
        "",
        "This zip was exported from carepath, the council's adult social care case system. It holds:",
        "  evidence.pdf      the case in plain English: the integrity result, every event, diagrams, notes, letters",
        "  history.json      every event of the case's history exactly as stored, each with its hash",
        "  chain-heads.json  the case history's last event (its head) and the system history's, when exported",
        "  manifest.json     who exported it, when and why, the integrity result, and each file's SHA-256",
    ]
    if signed:
        lines.append(f"  {signed}  the signed heads file the case was compared with (kept outside carepath)")
    if how["key_included"]:
        lines.append(f"  {PUBLIC_KEY_FILE}  the public key that checks that file's signature (it cannot sign)")
    lines += [
        "  verify.py         a short script doing checks 1 to 3 below: Python 3 and its standard library only",
        "  SHA256SUMS        the SHA-256 of every other file",
        "",
        "QUICK CHECK. In the folder you unpacked the zip into, read verify.py, then run:",
        "    python3 verify.py",
        "It prints each result, then \"Everything checked is as it was exported.\" (exit status 0), or",
        "\"PROBLEMS:\" and what is wrong (exit status 1).",
        "",
        "THE SAME CHECKS BY HAND",
        "1. No file has changed since the pack was made:",
        "    sha256sum -c SHA256SUMS",
        "   (on a Mac: shasum -a 256 -c SHA256SUMS). Every line must end in OK.",
        "",
        textwrap.fill(f"2. No event was changed, added or removed after it was written. For each event in "
                      f"history.json, in order, compute the {HASH_STEPS}. It must equal the event's hash; each "
                      "event's prev_hash must be the hash of the event before it (the first event's: 64 zeros); "
                      "and the last event's hash must be case_chain.hash in chain-heads.json (event "
                      f"#{head.get('seq', '?')}). history.json's hash_recipe says the same.",
                      width=100, subsequent_indent="   ", break_on_hyphens=False),
        "   A rewrite that recomputed every hash after a change would pass this check: check 3 catches it.",
        "",
    ]
    if signed:
        lines += [
            f"3. The history is the one the council signed. {signed} was signed at {anchor.get('signed_at')} with",
            f"   key {anchor.get('key_id')}; it lists the head (last event number and hash) of every history in",
            "   carepath at that moment (other cases only as numbers and hashes: the signature covers the whole file).",
            f"   Find \"{how['chain']}\" in its \"heads\": the event of history.json with that seq must have that",
            "   hash.",
            "   Then check the signature (OpenSSL 3.0 or later). verify.py writes the two files this reads -",
            "   signed-text.json, the canonical JSON of the heads file without its \"signature\", and signature.bin,",
            "   the signature decoded from base64:",
            "    python3 verify.py",
            f"    {OPENSSL_VERIFY}",
            "   It must say \"Signature Verified Successfully\".",
            "   The key in this pack only shows the file was signed by whoever holds that key: ask the council's",
            f"   internal audit for their heads public key (or its key id) and check it is key {anchor.get('key_id')}",
            "   (verify.py prints the id of the key in the pack: the first 16 hex digits of the SHA-256 of its raw",
            "   32 bytes).",
            "   Events after the signed one were written after the file was signed: the council can check them",
            "   against a later heads file with: carepath audit verify --against <heads file> --public-key <key>",
        ]
        if not how["key_included"]:
            lines.append("   The public key could not be read when the pack was made: ask the council for it.")
    else:
        lines += [
            "3. No signed heads file was compared when the pack was made"
            + (f": {anchor.get('message')}." if anchor.get("message") else "."),
            "   To show the history was not rewritten later, ask the council for a heads file signed after the",
            "   export and its public key; the council checks it with:",
            "   carepath audit verify --against <heads file> --public-key <key>",
        ]
    view = how.get("integrity") or {}
    result = "integrity check passed" if view.get("ok") else "integrity check FAILED"
    result += (" (hash chain: " + ("verified" if view.get("verified") else "ALTERED - " + "; ".join(
        view.get("findings") or ["see the PDF"])) + "; replay: " + ("matches" if view.get("replay_ok") else
                                                                      "DOES NOT MATCH") + ")")
    lines += ["", textwrap.fill(f"RESULT WHEN EXPORTED: {result}; signed heads - "
                                f"{ANCHOR_WORDS.get(anchor.get('status'), 'not compared')}"
                                + (f" - {anchor.get('message')}" if anchor.get("message") else "")
                                + ". manifest.json's \"integrity\" holds the whole result.", width=100,
                                break_on_hyphens=False), ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------- the PDF
def pdf_of(template: str, **context: Any) -> bytes:
    """The PDF of `template` rendered with `context` (the evidence pack's and the subject access export's)."""
    import weasyprint  # imported here: only exports need it (and its system libraries)

    html = kit.templates.get_template(template).render(**context)
    return weasyprint.HTML(string=html, url_fetcher=_fetch_nothing).write_pdf()


def render_pdf(engine: Any, rec: cr.Loaded, *, integrity: dict[str, Any], exporter: dict[str, Any], reason: str,
               exported_at: datetime, heads: dict[str, Any], how: dict[str, Any] | None = None) -> bytes:
    from .letters_pdf import delivery

    sent = delivery(engine, rec.case["id"])  # how each letter was sent, and the SHA-256 of a posted PDF
    return pdf_of(
        "evidence_pdf.html",
        case=rec.case, name=rec.person.get("name") or rec.case["title"], exporter=exporter, reason=reason,
        exported_at=cr.day_and_time(exported_at), integrity=_integrity_view(integrity), heads=heads,
        how=how or {}, openssl_verify=OPENSSL_VERIFY, hash_steps=HASH_STEPS,
        opened=cr.day_and_time(rec.case["created_at"]),
        roles=", ".join(cr.humanise(r) for r in exporter["roles"]),
        events=evidence_chronology(rec), diagrams=diagrams(engine, rec), path_note=path_note(engine, rec),
        notes=[{**n, "label": cr.NOTE_KINDS.get(n["kind"], cr.humanise(n["kind"])),
                "when": cr.day_and_time(n["at"]), "who": rec.who(n["author"])} for n in rec.notes],
        letters=[{**d, "when": cr.day_and_time(d["created_at"]), "delivery": sent.get(d["id"])} for d in rec.documents],
        rows=[r for r in cr.person_rows(engine, rec.person) if r["text"]])


def _fetch_nothing(url: str, *args: Any, **kwargs: Any) -> dict[str, Any]:
    """The PDF is made from the template alone: no file or network address is ever read while rendering."""
    raise ValueError(f"evidence PDFs fetch nothing (asked for {url[:60]!r})")


def _integrity_view(result: dict[str, Any]) -> dict[str, Any]:
    findings = [str(f) for f in result.get("verify_findings") or []]
    ok = bool(result.get("passed", bool(result.get("verified")) and bool(result.get("replay_ok"))))
    return {"ok": ok, "verified": bool(result.get("verified")), "findings": findings,
            "anchor": result.get("anchor") or {},
            "replay_ok": bool(result.get("replay_ok")), "divergence": result.get("replay_divergence"),
            "checked_at": cr.day_and_time(result.get("checked_at")) if result.get("checked_at") else "",
            "checked_by": result.get("checked_by") or ""}


def evidence_chronology(rec: cr.Loaded) -> list[dict[str, Any]]:
    """Every event of the case chain, oldest first, as a sentence (the case page's wording); events the
    case page leaves out get their type in words, so nothing in the history is missing from the PDF."""
    completed = {e["data"].get("task_id") for e in rec.history if e["type"] == "task.completed"}
    inst_by_id = {i["id"]: i for i in rec.instances}
    doc_queue: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for d in rec.documents:
        doc_queue.setdefault((d["instance_id"], d["element_id"]), []).append(d)
    out = []
    for e in rec.history:
        text, _, _ = cr.describe(e, rec, inst_by_id, completed, doc_queue)
        if text is None:
            ver = rec.versions.get(e.get("instance_id"))
            el = (e.get("data") or {}).get("element_id")
            text = cr.humanise(e["type"].replace(".", " ")) + (f": {ver.element_name(el)}" if ver and el else "")
        out.append({"seq": e["seq"], "when": cr.day_and_time(e["at"]), "who": rec.who(e["actor"]),
                    "text": text, "type": e["type"]})
    return out


def diagrams(engine: Any, rec: cr.Loaded) -> list[dict[str, Any]]:
    """The diagram of the version each process instance ran on (the version it was on last, if it was
    moved) with its path taken (`engine.timeline.path`) marked; instances of one version that took
    exactly the same path and stand in the same place (yearly reviews, say) share one drawing."""
    from engine.timeline import diagram_of, path

    groups: dict[tuple[Any, ...], list[dict[str, Any]]] = {}
    for p in path(engine, rec.case["id"])["instances"]:
        where = (*p["ready"], *(w["element_id"] for w in p["waiting"]), *p["running"], *p["failed"])
        key = (p["process_version_id"], p["status"], tuple(sorted(p["completed"])), tuple(sorted(p["flows"])),
               tuple(sorted(where)), tuple((b["gateway"], b["flow"]) for b in p["branches"]))
        groups.setdefault(key, []).append(p)
    out = []
    for key, insts in groups.items():
        p = insts[0]
        xml, file = diagram_of(engine, p["process_version_id"])
        where = key[4]
        marks = Marks.of(done=p["completed"], flows=p["flows"], current=where)
        label = f"{p['name']} (version {p['version']})"
        ids = ", ".join(str(i["instance_id"]) for i in insts)
        title = f"{label}: the path taken by process instance{'s' if len(insts) > 1 else ''} {ids}"
        called = names(xml, file=file)
        drawn = read_diagram(parse_xml(xml, file), file)
        out.append({"instances": insts, "version": label, "title": title,
                    "svg": render_svg(xml, marks, file=file, title=title, prefix=f"d{len(out) + 1}"),
                    "branches": [{"gateway": called.get(b["gateway"], b["gateway"]),
                                  "flow": called.get(b["flow"], b["flow"]),
                                  "target": _leads_to(drawn, b["target"])} for b in p["branches"]],
                    "current": [called.get(e, e) for e in dict.fromkeys(where)]})
    return out


def _leads_to(drawn: Any, element: str) -> str:
    """Where a branch led, for the PDF: “its name”; an element with no name (a gateway joining branches,
    say) by the first named element it leads on to; its id only when nothing named follows."""
    at, seen = element, set()
    while at not in seen:
        seen.add(at)
        node = drawn.nodes.get(at)
        if node is not None and node.name:
            return f"to “{node.name}”" if at == element else f"on to “{node.name}”"
        onward = [f.target for f in drawn.flows.values() if f.source == at]
        if len(onward) != 1:
            break
        at = onward[0]
    return f"to {element}"


def path_note(engine: Any, rec: cr.Loaded) -> str | None:
    """Why the drawn path may be short of the history (the replay that works it out stopped), or None."""
    from engine.timeline import path

    return path(engine, rec.case["id"]).get("divergence")  # cached: the same replay `diagrams` used


# ---------------------------------------------------------------------- the command line
def user_named(engine: Any, username: str, who: str = "a team manager or auditor") -> User:
    """The active user `username` (for `carepath evidence --as`; `who`: the roles the command is for)."""
    from .auth import _user

    with engine.db.engine.connect() as conn:
        row = conn.execute(select(users).where(users.c.username == username, users.c.active.is_(True))).first()
    if row is None:
        raise NotFoundError(f"no active user '{username}': name {who} with --as",
                            user=username)
    return _user(row)


def export_to_file(engine: Any, case_ref: str, username: str, reason: str, out: str | None) -> tuple[str, Pack]:
    """`carepath evidence CASE --reason TEXT --out FILE --as USER`: the pack written to `out` (default: its
    own name in the current folder); CASE is a case id or reference."""
    from pathlib import Path

    user = user_named(engine, username)
    case_id = case_id_of(engine, case_ref)
    pack = build_pack(engine, case_id, user, reason, page="carepath evidence")
    target = Path(out) if out else Path(pack.filename)
    if target.is_dir():
        target = target / pack.filename
    target.write_bytes(pack.content)
    return str(target), pack


def case_id_of(engine: Any, ref: str) -> int:
    case_id = find_case(engine, ref.strip())
    if case_id is None:
        raise NotFoundError(f"no case '{ref}' (give its id or its reference, e.g. CASE-000123)", case=ref)
    return case_id


def find_case(engine: Any, text: str) -> int | None:
    """The case whose id (a whole number) or reference is `text`, or None."""
    with engine.db.engine.connect() as conn:
        q = select(cases.c.id).where(cases.c.reference == text)
        if (n := to_id(text)) is not None:
            q = select(cases.c.id).where(cases.c.id == n)
        found = conn.execute(q).scalar()
    return None if found is None else int(found)


# ---------------------------------------------------------------------- the pages
NOT_FOUND = "There is no case record at this address."


def _form(request: Request, user: User, case: dict[str, Any], *, reason: str = "", error: str = "",
          status: int = 200) -> Response:
    errors = [{"text": error, "href": "#reason"}] if error else []
    return kit.render(request, "evidence.html", {"user": user, "case": case, "reason": reason, "error": error,
                                                 "errors": errors, "max_reason": MAX_REASON}, status)


@router.get("/cases/{case_id}/evidence", response_class=HTMLResponse)
def evidence_form(request: Request, case_id: Id) -> Response:
    page = kit.Page(request)
    try:
        user = page.open(check_export, case_id, page=f"/cases/{case_id}/evidence")
        case = page.engine.get_case(case_id)
    except Exception as exc:  # noqa: BLE001 - mapped to pages, re-raised when unknown
        return page.guard(exc, not_found=NOT_FOUND)
    return _form(request, user, case)


@router.post("/cases/{case_id}/evidence")
async def evidence_post(request: Request, case_id: Id) -> Response:
    opening = kit.Page(request)
    page = f"/cases/{case_id}/evidence"
    try:
        user = await opening.post(check_export, case_id, page=page)
        engine = opening.engine
        reason = kit.one(opening.form, "reason")
        try:
            pack = await run_in_threadpool(build_pack, engine, case_id, user, reason, page=page)
        except ValidationError as exc:
            case = await run_in_threadpool(engine.get_case, case_id)
            return _form(request, user, case, reason=reason, error=exc.errors[0]["message"], status=400)
    except Exception as exc:  # noqa: BLE001
        return opening.guard(exc, not_found=NOT_FOUND)
    return kit.attachment(pack.content, "application/zip", pack.filename)
