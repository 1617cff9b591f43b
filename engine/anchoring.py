"""Anchoring the history outside the database: signed heads files.

A history that verifies against itself can still be rewritten wholesale by someone with write
access to the database (every hash recomputed, the head moved). A *heads file* records, at one
moment, every chain's head — its last event number and hash — with the time (the engine's clock)
and an Ed25519 signature over the file's canonical JSON. The private key lives in a file on the
machine that signs, never in the database; the files are kept somewhere the database's
administrators cannot change (docs/auditing.md). `verify_against` then finds any history rewritten
after the file was signed: each signed chain must still hold, at the signed number, an event with
the signed hash, and verify from its first event on (so nothing before it changed either).

    {"format": "carepath-heads/1", "signed_at": "...", "key_id": "...",
     "heads": [{"chain": "case:1", "seq": 7, "hash": "..."}, ...], "signature": "<base64>"}

The signature covers the canonical JSON (engine.history.canonical_json) of everything but
"signature".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, select, tuple_

from . import history
from .errors import CarepathError
from .schema import chains, events

FORMAT = "carepath-heads/1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
log = logging.getLogger("carepath.anchoring")


class AnchoringError(CarepathError):
    """A key or heads file that cannot be used: unreadable, malformed, tampered or wrongly signed."""


# ---------------------------------------------------------------------------- keys
def generate_keys(private_path: str | Path, public_path: str | Path | None = None) -> tuple[Path, Path, str]:
    """Write a new Ed25519 private key (PEM, readable by its owner only: 0600) and its public key.

    Refuses to overwrite either file. Returns (private path, public path, public key PEM)."""
    private_path = Path(private_path)
    public_path = Path(public_path) if public_path else private_path.with_name(private_path.name + ".pub")
    for p in (private_path, public_path):
        if p.exists():
            raise AnchoringError(f"{p} already exists: choose another file (a key is never overwritten)")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
    public_pem = key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo)
    try:
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except OSError as exc:
        raise AnchoringError(f"cannot create the key file {private_path}: {exc.strerror}") from None
    with os.fdopen(fd, "wb") as f:
        f.write(private_pem)
    os.chmod(private_path, 0o600)  # whatever the umask
    public_path.write_bytes(public_pem)
    return private_path, public_path, public_pem.decode()


def _read(path: str | Path, what: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise AnchoringError(f"cannot read the {what} {path}: {exc.strerror}") from None


def load_private_key(path: str | Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(_read(path, "private key"), password=None)
    except (ValueError, TypeError) as exc:
        raise AnchoringError(f"{path} is not an unencrypted PEM private key: {exc}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AnchoringError(f"{path} is not an Ed25519 private key")
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(_read(path, "public key"))
    except (ValueError, TypeError) as exc:
        raise AnchoringError(f"{path} is not a PEM public key: {exc}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AnchoringError(f"{path} is not an Ed25519 public key")
    return key


def key_id(public_key: Ed25519PublicKey) -> str:
    """A short name for a key: the first 16 hex digits of the SHA-256 of its raw 32 bytes."""
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


# ---------------------------------------------------------------------------- heads files
def _signed_text(doc: dict[str, Any]) -> bytes:
    return history.canonical_json({k: v for k, v in doc.items() if k != "signature"}).encode("utf-8")


class SigningRefused(AnchoringError):
    """The heads were not signed: a chain does not verify, or no longer extends the heads of the previous
    signed file. `findings` says where (chain and event number, never an event's content)."""

    def __init__(self, message: str, findings: list[history.Finding], previous: str | None) -> None:
        super().__init__(message)
        self.findings = findings
        self.previous = previous


def _snapshot(engine: Any, conn: Connection) -> Connection:
    """One consistent view for the heads and the events read after them (SQLite: the connection's read
    transaction already is one; PostgreSQL: REPEATABLE READ)."""
    if engine.db.is_postgres:
        conn = conn.execution_options(isolation_level="REPEATABLE READ")
    return conn


def _heads_now(conn: Connection) -> list[dict[str, Any]]:
    return [{"chain": r.chain, "seq": r.seq, "hash": r.hash}
            for r in conn.execute(select(chains).order_by(chains.c.chain))]


def _sign_doc(now: Any, key: Ed25519PrivateKey, heads: list[dict[str, Any]]) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": FORMAT, "signed_at": history.iso(now), "key_id": key_id(key.public_key()),
                           "heads": heads}
    doc["signature"] = base64.b64encode(key.sign(_signed_text(doc))).decode("ascii")
    return doc


def heads_document(engine: Any, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Every chain's head now, with the engine's time, signed — unchecked: `checked_heads_document` is
    what the signer uses."""
    with engine.db.engine.connect() as conn:
        now = engine.now(conn)
        heads = _heads_now(conn)
    return _sign_doc(now, key, heads)


def extension_findings(conn: Connection, previous: dict[str, Any] | None) -> list[history.Finding]:
    """Why the history now must not be signed after `previous` (a checked heads document, or None for a
    first signing): empty when every chain verifies and extends its previously signed head.

    With no previous file every chain is verified from its first event (history.verify). After one:
    each previously signed head must still be there, at its number, with its hash (one indexed look-up
    per 500 chains), and each chain whose head moved since is verified from that signed event on —
    only the events written since are hashed (history.verify_chain with `after`); a chain met with an
    erasure in that stretch is verified whole, as an erasure's digest covers it from its first event.
    A chain the previous file does not name is verified whole. docs/auditing.md "Why the signer's check
    is enough" gives the argument."""
    if previous is None:
        return history.verify(conn)[1]
    when = previous["signed_at"]
    findings = _signed_head_findings(conn, previous)
    broken = {f.chain for f in findings}
    prev = {h["chain"]: h for h in previous["heads"]}
    now = {r.chain: r for r in conn.execute(select(chains))}
    for name in sorted(set(prev) - set(now)):
        if prev[name]["seq"] > 0 and name not in broken:
            findings.append(history.Finding(name, None, None, f"the chain's head, signed at {when}, was removed"))
    for name in sorted(now):
        head, signed = now[name], prev.get(name)
        if name in broken or (signed and (signed["seq"], signed["hash"]) == (head.seq, head.hash)):
            continue
        if signed and head.seq < signed["seq"]:
            findings.append(history.Finding(name, head.seq, None, f"the chain's head moved back from event "
                                            f"#{signed['seq']}, signed at {when}, to #{head.seq}"))
            continue
        after = (signed["seq"], signed["hash"]) if signed and signed["seq"] > 0 else (0, history.GENESIS)
        _, found, saw_erasure = history.verify_chain(conn, name, head, after=after)
        if saw_erasure and after[0] > 0:  # retention erasure: its digest is checked over the whole chain
            found = history.verify(conn, name)[1]
        findings += found
    return findings


def checked_heads_document(engine: Any, key: Ed25519PrivateKey,
                           previous: tuple[str, dict[str, Any]] | None) -> dict[str, Any]:
    """Every chain's head now, signed — after checking, in the same snapshot, that every chain verifies
    and extends the heads of `previous` ((its name, its checked document), or None: the first signing).
    Raises SigningRefused (and signs nothing) otherwise."""
    with engine.db.engine.connect() as raw:
        conn = _snapshot(engine, raw)
        now = engine.now(conn)
        heads = _heads_now(conn)
        findings = extension_findings(conn, previous[1] if previous else None)
    if findings:
        name = previous[0] if previous else None
        against = f"do not extend the heads signed in {name}" if name else "do not verify"
        chains_ = sorted({f.chain for f in findings})
        raise SigningRefused(
            f"refused to sign the heads: {len(chains_)} chain(s) {against} or do not verify "
            f"(first: {findings[0].chain} event #{findings[0].seq if findings[0].seq is not None else '?'}); "
            "nothing was signed — run carepath audit verify"
            + (f" --against {name}" if name else "") + " and investigate (docs/auditing.md)", findings, name)
    return _sign_doc(now, key, heads)


def heads_files(folder: str | Path) -> list[Path]:
    """The heads files the schedule wrote in `folder`, oldest first: heads-<time>.json, then
    heads-<time>-2.json, -3 … for files signed at the same engine time."""
    folder = Path(folder)
    if not folder.is_dir():
        return []

    def order(path: Path) -> tuple[str, int, str]:
        m = re.match(r"^heads-(.*?)(?:-(\d+))?\.json$", path.name)
        return (m.group(1), int(m.group(2) or 1), path.name) if m else (path.name, 1, path.name)

    return sorted(folder.glob("heads-*.json"), key=order)


def previous_heads(files: list[Path], public_key: Ed25519PublicKey) -> tuple[str, dict[str, Any]] | None:
    """The newest of `files` (oldest first) signed with this key, checked: (its name, its document)."""
    ours = key_id(public_key)
    for path in reversed(files):
        try:
            return path.name, read_heads_file(path, public_key)
        except AnchoringError:
            if _file_key_id(path) not in (None, ours):
                continue  # signed with an earlier key: rotation
            log.warning("heads file %s cannot be read or does not match its signature: the previous one is "
                        "used to check the history against", path.name)
    return None


def _file_key_id(path: Path) -> str | None:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return doc.get("key_id") if isinstance(doc, dict) and isinstance(doc.get("key_id"), str) else None


def _write_new(path: Path, doc: dict[str, Any]) -> None:
    text = json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    try:
        os.link(tmp, path)  # fails if the file exists: a heads file is never replaced
    except FileExistsError:
        raise AnchoringError(f"{path} already exists: a heads file is never overwritten") from None
    finally:
        tmp.unlink(missing_ok=True)


def sign_heads(engine: Any, key_path: str | Path, out: str | Path,
               previous: str | Path | None = None) -> dict[str, Any]:
    """Write a signed heads file to `out` (which must not exist yet); returns the document. The history
    is checked first against `previous` (a heads file), or else the newest heads-*.json beside `out`
    signed with this key, or else verified whole (checked_heads_document)."""
    key = load_private_key(key_path)
    out = Path(out)
    if out.exists():
        raise AnchoringError(f"{out} already exists: a heads file is never overwritten")
    if not out.parent.is_dir():
        raise AnchoringError(f"the folder {out.parent} does not exist")
    if previous is not None:
        before = (Path(previous).name, read_heads_file(previous, key.public_key()))
    else:
        before = previous_heads(heads_files(out.parent), key.public_key())
    doc = checked_heads_document(engine, key, before)
    _write_new(out, doc)
    return doc


def sign_heads_to_dir(engine: Any, key_path: str | Path, folder: str | Path) -> Path | None:
    """The scheduled job: a new file heads-<engine time>.json in `folder`, unless the heads have not
    moved since the newest file there (then nothing is written and None is returned). The history is
    checked against the newest file signed with this key first: SigningRefused, and no file, when a
    chain does not verify or no longer extends it (checked_heads_document)."""
    key = load_private_key(key_path)
    folder = Path(folder)
    if not folder.is_dir():
        raise AnchoringError(f"the heads folder {folder} does not exist")
    before = previous_heads(heads_files(folder), key.public_key())
    with engine.db.engine.connect() as conn:
        if before is not None and before[1]["heads"] == _heads_now(conn):
            return None
    doc = checked_heads_document(engine, key, before)
    if before is not None and before[1]["heads"] == doc["heads"]:
        return None
    stamp = re.sub(r"[^0-9T]", "", doc["signed_at"][:19]) + "Z"
    path, n = folder / f"heads-{stamp}.json", 1
    while path.exists():
        n += 1
        path = folder / f"heads-{stamp}-{n}.json"
    _write_new(path, doc)
    return path


def read_heads_file(path: str | Path, public_key: Ed25519PublicKey) -> dict[str, Any]:
    """The document in a heads file, after checking its form and its signature with `public_key`."""
    raw = _read(path, "heads file")
    try:
        doc = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise AnchoringError(f"the heads file {path} is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise AnchoringError(f"the heads file {path} is not a carepath heads file (format {FORMAT!r})")
    sig = doc.get("signature")
    if not isinstance(sig, str) or not sig:
        raise AnchoringError(f"the heads file {path} is not signed")
    try:
        signature = base64.b64decode(sig, validate=True)
    except (binascii.Error, ValueError):
        raise AnchoringError(f"the heads file {path} has a damaged signature (not base64)") from None
    try:
        public_key.verify(signature, _signed_text(doc))
    except InvalidSignature:
        raise AnchoringError(f"the heads file {path} does not match its signature with this public key "
                             f"(key {key_id(public_key)}): it was altered after signing, or signed with "
                             f"another key (key {doc.get('key_id')!r})") from None
    heads = doc.get("heads")
    if not isinstance(heads, list) or not all(
            isinstance(h, dict) and isinstance(h.get("chain"), str) and isinstance(h.get("seq"), int)
            and not isinstance(h.get("seq"), bool) and h["seq"] >= 0 and isinstance(h.get("hash"), str)
            and (_HEX64.match(h["hash"]) or h["hash"] == history.GENESIS) for h in heads):
        raise AnchoringError(f"the heads file {path} is signed but its heads are malformed")
    return doc


def _signed_head_findings(conn: Connection, doc: dict[str, Any]) -> list[history.Finding]:
    """Each head a (checked) heads document signed: is that event still there, with the signed hash?"""
    findings: list[history.Finding] = []
    when = doc["signed_at"]
    signed_heads = [h for h in doc["heads"] if h["seq"] > 0]
    found: dict[tuple[str, int], list[Any]] = {}
    for i in range(0, len(signed_heads), 500):  # the signed events, 500 a query
        keys = [(h["chain"], h["seq"]) for h in signed_heads[i:i + 500]]
        q = select(events.c.id, events.c.chain, events.c.seq, events.c.hash).where(
            tuple_(events.c.chain, events.c.seq).in_(keys))
        for r in conn.execute(q):
            found.setdefault((r.chain, r.seq), []).append(r)
    for h in signed_heads:
        name, seq, signed = h["chain"], h["seq"], h["hash"]
        rows = found.get((name, seq), [])
        if not rows:
            findings.append(history.Finding(name, seq, None,
                                            f"event #{seq}, the head signed at {when}, is missing: "
                                            "the chain was cut short or rewritten"))
        elif all(r.hash != signed for r in rows):
            findings.append(history.Finding(name, seq, rows[0].id,
                                            f"event #{seq} is not the one signed at {when}: the history "
                                            f"up to it was rewritten after the heads were signed (somewhere "
                                            f"in events #1 to #{seq})"))
    return findings


def verify_against(engine: Any, doc: dict[str, Any]) -> list[history.Finding]:
    """What in the database no longer agrees with a (checked) heads document.

    Each signed chain must still exist, hold at the signed number an event with the signed hash,
    and verify from its first event (history.verify) — so no event up to the signed head was
    rewritten, and later events follow it. Chains begun after the signing are verified as usual.
    """
    with engine.db.engine.connect() as conn:
        findings = _signed_head_findings(conn, doc)
        _, own = history.verify(conn)
    return findings + own


# ---------------------------------------------------------------------------- a chain against every file
@dataclass
class Signed:
    """One head signed for a chain, and the run of files (oldest first) that signed that same head."""

    seq: int
    hash: str
    first: str
    first_at: str
    last: str
    last_at: str
    files: int = 1


@dataclass
class HeadsIndex:
    """What every heads file in a folder signed, read once: for each chain, the distinct heads signed, in
    file order (a chain that did not move between files adds nothing). Kept per folder and key while
    the process runs; files added later are read on the next use, and a file changed or removed makes
    the index read every file again."""

    seen: list[tuple[str, int, int]] = field(default_factory=list)  # (name, mtime_ns, size), oldest first
    by_chain: dict[str, list[Signed]] = field(default_factory=dict)
    trusted: int = 0
    newest: tuple[str, str, str | None] | None = None  # (file, signed_at, key_id) of the newest trusted file
    untrusted: list[tuple[str, str]] = field(default_factory=list)  # (file, why)
    other_key: list[tuple[str, str]] = field(default_factory=list)  # (file, why): key rotation

    def update(self, files: list[Path], public_key: Ed25519PublicKey) -> HeadsIndex:
        stats = []
        for path in files:
            try:
                st = path.stat()
            except OSError:
                continue
            stats.append((path, (path.name, st.st_mtime_ns, st.st_size)))
        if [s for _p, s in stats[:len(self.seen)]] != self.seen:
            self.__init__()  # type: ignore[misc]  # a file changed or went: read them all again
        ours = key_id(public_key)
        for path, stat_ in stats[len(self.seen):]:
            self.seen.append(stat_)
            try:
                doc = read_heads_file(path, public_key)
            except AnchoringError as exc:
                if _file_key_id(path) not in (None, ours):
                    self.other_key.append((path.name, exc.message))
                else:
                    self.untrusted.append((path.name, exc.message))
                continue
            self.trusted += 1
            self.newest = (path.name, doc["signed_at"], doc.get("key_id"))
            for h in doc["heads"]:
                runs = self.by_chain.setdefault(h["chain"], [])
                if runs and (runs[-1].seq, runs[-1].hash) == (h["seq"], h["hash"]):
                    runs[-1].last, runs[-1].last_at, runs[-1].files = path.name, doc["signed_at"], runs[-1].files + 1
                else:
                    runs.append(Signed(h["seq"], h["hash"], path.name, doc["signed_at"], path.name, doc["signed_at"]))
        return self


_INDEXES: dict[tuple[str, str], HeadsIndex] = {}
_INDEX_LOCK = threading.Lock()


def heads_index(folder: str | Path, public_key: Ed25519PublicKey) -> HeadsIndex:
    """The index of every heads file in `folder` checked with `public_key`, brought up to date."""
    files = heads_files(folder)
    with _INDEX_LOCK:
        index = _INDEXES.setdefault((str(Path(folder).resolve()), key_id(public_key)), HeadsIndex())
        return index.update(files, public_key)


def chain_against_files(conn: Connection, name: str, signed: list[Signed]) -> dict[str, Any] | None:
    """Does the chain still hold every head the files signed for it? None if so; else {file, signed_at,
    seq, altered_from, altered_to, message}: `file` is the oldest file that disagrees, and the rewrite
    lies somewhere between the newest head still matching below it and the first head that does not."""
    runs = [s for s in signed if s.seq > 0]
    if not runs:
        return None
    stored: dict[int, set[str]] = {}
    seqs = sorted({s.seq for s in runs})
    for i in range(0, len(seqs), 500):
        for r in conn.execute(select(events.c.seq, events.c.hash).where(events.c.chain == name,
                                                                        events.c.seq.in_(seqs[i:i + 500]))):
            stored.setdefault(r.seq, set()).add(r.hash)
    bad = [s for s in runs if s.hash not in stored.get(s.seq, set())]
    if not bad:
        return None
    first = bad[0]
    hi = min(s.seq for s in bad)
    below = [s.seq for s in runs if s not in bad and s.seq < hi]
    lo = max(below) + 1 if below else 1
    where = f"somewhere in events #{lo} to #{hi}" if lo < hi else f"at event #{hi}"
    files = f"{first.first}" + (f" (and {first.files - 1} later file(s) to {first.last})" if first.files > 1 else "")
    if first.seq not in stored:
        what = (f"event #{first.seq}, the head signed in {files} at {first.first_at}, is missing: the history "
                f"was cut short or rewritten after the heads were signed, {where}")
    else:
        what = (f"event #{first.seq} is not the one signed in {files} at {first.first_at}: the history up to "
                f"it was rewritten after the heads were signed, {where}")
    after = [s for s in runs[runs.index(bad[-1]) + 1:]]
    if after:
        what += (f"; the newer heads files from {after[0].first} on match the history as it is now: they were "
                 "signed after it was rewritten")
    return {"file": first.first, "signed_at": first.first_at, "seq": first.seq, "altered_from": lo,
            "altered_to": hi, "message": what}


def verify_against_files(engine: Any, folder: str | Path, public_key: Ed25519PublicKey,
                         chain: str | None = None) -> tuple[list[history.Finding], HeadsIndex]:
    """Every chain (or one) against every heads file in `folder` (chain_against_files), and verified
    from its first event (history.verify). Returns (findings, the index: its files that could not be
    trusted are the caller's to report)."""
    index = heads_index(folder, public_key)
    findings: list[history.Finding] = []
    with engine.db.engine.connect() as conn:
        names = [chain] if chain else sorted(index.by_chain)
        for name in names:
            bad = chain_against_files(conn, name, index.by_chain.get(name, []))
            if bad:
                findings.append(history.Finding(name, bad["seq"], None, bad["message"]))
        findings += history.verify(conn, chain)[1]
    return findings, index


# ---------------------------------------------------------------------------- one case against every file
def newest_heads_file(folder: str | Path) -> Path | None:
    """The newest heads file the schedule wrote in `folder` (heads_files' order)."""
    found = heads_files(folder)
    return found[-1] if found else None


def anchor_case(engine: Any, case_id: int, folder: str | Path | None,
                public_key_path: str | Path | None) -> dict[str, Any]:
    """Does the case's chain still hold every head signed for it, in every heads file in `folder`?
    (Only the signed heads are compared here; the events between them are history.verify's.)

    Returns {status, message, file, signed_at, key_id, seq}; status is one of 'anchored' (every signed
    head is there: `file` is the newest file, `seq` its head), 'altered' (a signed head is missing or
    different: `file` is the oldest file that disagrees, and `altered_from`/`altered_to` the events the
    rewrite lies in), 'not_yet' (the case is newer than the newest file), 'unavailable' (no folder, key
    or file configured) or 'error' (the newest file is damaged or wrongly signed — said plainly).
    """
    out: dict[str, Any] = {"file": None, "signed_at": None, "key_id": None, "seq": None}
    if not folder or not public_key_path:
        return {**out, "status": "unavailable",
                "message": "no heads files are configured (CAREPATH_HEADS_DIR and CAREPATH_HEADS_PUBLIC_KEY)"}
    files = heads_files(folder)
    if not files:
        return {**out, "status": "unavailable", "message": f"no heads file has been written in {folder} yet"}
    try:
        public_key = load_public_key(public_key_path)
    except AnchoringError as exc:
        return {**out, "file": files[-1].name, "status": "error", "message": exc.message}
    index = heads_index(folder, public_key)
    name = history.case_chain(case_id)
    with engine.db.engine.connect() as conn:
        bad = chain_against_files(conn, name, index.by_chain.get(name, []))
    if bad is not None:
        return {**out, **bad, "key_id": key_id(public_key), "status": "altered"}
    newest_name = files[-1].name
    untrusted = dict(index.untrusted + index.other_key)
    if newest_name in untrusted or index.newest is None:
        why = untrusted.get(newest_name) or f"the heads file {newest_name} cannot be read"
        return {**out, "file": newest_name, "status": "error", "message": why}
    out.update(file=index.newest[0], signed_at=index.newest[1], key_id=index.newest[2])
    runs = [s for s in index.by_chain.get(name, []) if s.seq > 0]
    if not runs:
        return {**out, "status": "not_yet",
                "message": f"the case had no history when the heads were signed at {index.newest[1]}"}
    head = runs[-1]
    older = sum(r.files for r in runs[:-1])  # the older files that name this case (not those signed before it)
    message = (f"event #{head.seq}, the head signed for this case in {head.last} at {head.last_at} "
               f"(key {index.newest[2]}), is still there with its signed hash")
    if older > 0:
        message += f", as is each head signed for it in the {older} older heads file(s) from {runs[0].first}"
    if index.untrusted:
        message += (f"; {len(index.untrusted)} older heads file(s) could not be checked: "
                    + ", ".join(f for f, _ in index.untrusted[:3]))
    return {**out, "file": head.last, "signed_at": head.last_at, "seq": head.seq, "status": "anchored",
            "message": message}
