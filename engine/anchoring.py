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
import os
import re
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, tuple_

from . import history
from .errors import CarepathError
from .schema import chains, events

FORMAT = "carepath-heads/1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


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


def heads_document(engine: Any, key: Ed25519PrivateKey) -> dict[str, Any]:
    """Every chain's head now, with the engine's time, signed."""
    with engine.db.engine.connect() as conn:
        now = engine.now(conn)
        heads = [{"chain": r.chain, "seq": r.seq, "hash": r.hash}
                 for r in conn.execute(select(chains).order_by(chains.c.chain))]
    doc: dict[str, Any] = {"format": FORMAT, "signed_at": history.iso(now), "key_id": key_id(key.public_key()),
                           "heads": heads}
    doc["signature"] = base64.b64encode(key.sign(_signed_text(doc))).decode("ascii")
    return doc


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


def sign_heads(engine: Any, key_path: str | Path, out: str | Path) -> dict[str, Any]:
    """Write a signed heads file to `out` (which must not exist yet); returns the document."""
    key = load_private_key(key_path)
    out = Path(out)
    if out.exists():
        raise AnchoringError(f"{out} already exists: a heads file is never overwritten")
    if not out.parent.is_dir():
        raise AnchoringError(f"the folder {out.parent} does not exist")
    doc = heads_document(engine, key)
    _write_new(out, doc)
    return doc


def sign_heads_to_dir(engine: Any, key_path: str | Path, folder: str | Path) -> Path | None:
    """The scheduled job: a new file heads-<engine time>.json in `folder`, unless the heads have not
    moved since the newest file there (then nothing is written and None is returned)."""
    key = load_private_key(key_path)
    folder = Path(folder)
    if not folder.is_dir():
        raise AnchoringError(f"the heads folder {folder} does not exist")
    doc = heads_document(engine, key)
    existing = sorted(folder.glob("heads-*.json"))
    if existing:
        try:
            if json.loads(existing[-1].read_text(encoding="utf-8")).get("heads") == doc["heads"]:
                return None
        except (OSError, ValueError):
            pass  # an unreadable newest file: write a fresh one
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


def verify_against(engine: Any, doc: dict[str, Any]) -> list[history.Finding]:
    """What in the database no longer agrees with a (checked) heads document.

    Each signed chain must still exist, hold at the signed number an event with the signed hash,
    and verify from its first event (history.verify) — so no event up to the signed head was
    rewritten, and later events follow it. Chains begun after the signing are verified as usual.
    """
    findings: list[history.Finding] = []
    when = doc["signed_at"]
    signed_heads = [h for h in doc["heads"] if h["seq"] > 0]
    with engine.db.engine.connect() as conn:
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
                                                "up to it was rewritten after the heads were signed"))
        _, own = history.verify(conn)
    return findings + own


# ---------------------------------------------------------------------------- one case against the newest file
def newest_heads_file(folder: str | Path) -> Path | None:
    """The newest heads file the schedule wrote in `folder` (heads-<time>.json, named so they sort)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = sorted(folder.glob("heads-*.json"))
    return found[-1] if found else None


def anchor_case(engine: Any, case_id: int, folder: str | Path | None,
                public_key_path: str | Path | None) -> dict[str, Any]:
    """Does the case's chain still hold, at the number signed in the newest heads file, the event with
    the signed hash? (The rest of the chain is verified by history.verify.)

    Returns {status, message, file, signed_at, key_id}; status is one of 'anchored' (the signed head
    is there), 'altered' (it is missing or different: the history was rewritten after signing),
    'not_yet' (the case is newer than the file, or had no events then), 'unavailable' (no folder, key
    or file configured) or 'error' (the newest file is damaged or wrongly signed — said plainly).
    """
    out: dict[str, Any] = {"file": None, "signed_at": None, "key_id": None}
    if not folder or not public_key_path:
        return {**out, "status": "unavailable",
                "message": "no heads files are configured (CAREPATH_HEADS_DIR and CAREPATH_HEADS_PUBLIC_KEY)"}
    path = newest_heads_file(folder)
    if path is None:
        return {**out, "status": "unavailable", "message": f"no heads file has been written in {folder} yet"}
    out["file"] = path.name
    try:
        doc = read_heads_file(path, load_public_key(public_key_path))
    except AnchoringError as exc:
        return {**out, "status": "error", "message": exc.message}
    out.update(signed_at=doc["signed_at"], key_id=doc.get("key_id"))
    name = history.case_chain(case_id)
    signed = next((h for h in doc["heads"] if h["chain"] == name), None)
    if signed is None or signed["seq"] == 0:
        return {**out, "status": "not_yet",
                "message": f"the case had no history when the heads were signed at {doc['signed_at']}"}
    with engine.db.engine.connect() as conn:
        hashes = list(conn.execute(select(events.c.hash).where(events.c.chain == name,
                                                               events.c.seq == signed["seq"])).scalars())
    if not hashes:
        return {**out, "status": "altered", "message": f"event #{signed['seq']}, the head signed at "
                f"{doc['signed_at']}, is missing: the history was cut short or rewritten"}
    if signed["hash"] not in hashes:
        return {**out, "status": "altered", "message": f"event #{signed['seq']} is not the one signed at "
                f"{doc['signed_at']}: the history up to it was rewritten after the heads were signed"}
    return {**out, "status": "anchored", "message": f"events #1 to #{signed['seq']} are the ones signed at "
            f"{doc['signed_at']} (key {doc.get('key_id')})"}
