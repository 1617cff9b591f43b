"""Check a carepath evidence pack: `python3 verify.py` in the folder the zip was unpacked into.

Needs Python 3 only (its standard library); the signature check runs `openssl` if it is installed.
README.txt says what each check shows. Prints each result and exits 1 if anything is wrong.
"""
import base64
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys

os.chdir(os.path.dirname(os.path.abspath(__file__)))  # the pack's folder


def canon(value):  # canonical JSON: sorted keys, no spaces, non-ASCII kept
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def load(name):
    with open(name, encoding="utf-8") as f:
        return json.load(f)


def sha256(name):
    with open(name, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


bad = []
# 1. every file against SHA256SUMS (the same as `sha256sum -c SHA256SUMS`)
for line in open("SHA256SUMS", encoding="utf-8"):
    digest, name = line.rstrip("\n").split("  ", 1)
    if not os.path.exists(name) or sha256(name) != digest:
        bad.append(f"{name} is not the file SHA256SUMS lists")
# 2. every event's hash recomputed with history.json's hash_recipe, and each event's link to the one before
history, heads = load("history.json"), load("chain-heads.json")
prev, at_seq = "0" * 64, {}
for e in history["events"]:
    text = "\n".join([e["prev_hash"], canon([e["chain"], e["seq"], e["step"], e["type"], e["at"], e["actor"],
                                              e["instance_id"]]), e["data_json"]])
    if e["prev_hash"] != prev:
        bad.append(f"event #{e['seq']}: its prev_hash is not the hash of the event before it")
    if hashlib.sha256(text.encode("utf-8")).hexdigest() != e["hash"]:
        bad.append(f"event #{e['seq']}: its hash does not match its content (it was changed)")
    prev, at_seq[e["seq"]] = e["hash"], e["hash"]
if prev != (heads.get("case_chain") or {}).get("hash"):
    bad.append("the last event's hash is not the case chain's head in chain-heads.json")
print(f"History: {len(history['events'])} events checked" + ("" if bad else ", every hash and link is right"))
# 3. the signed heads file: does it hold this case's head, and is it signed by the council's key?
signed = sorted(glob.glob("heads-*.json"))
if signed and os.path.exists("heads-public-key.pem"):
    doc = load(signed[0])
    head = next((h for h in doc["heads"] if h["chain"] == history["chain"]), None)
    if head is None or head["seq"] == 0:
        print(f"{signed[0]}: the case had no events yet when it was signed")
    elif at_seq.get(head["seq"]) != head["hash"]:
        bad.append(f"{signed[0]}: event #{head['seq']} in history.json is not the one signed at {doc['signed_at']}")
    elif bad:  # the signed hash is there, but the history itself is wrong: it vouches for nothing more
        print(f"{signed[0]}: event #{head['seq']} has the hash signed at {doc['signed_at']}, but the history "
              "has the problems listed below, so this does not show that events #1 to "
              f"#{head['seq']} are the ones signed")
    else:
        print(f"{signed[0]}: events #1 to #{head['seq']} are the ones signed at {doc['signed_at']}")
    with open("signed-text.json", "wb") as f:  # what was signed: the file without its signature
        f.write(canon({k: v for k, v in doc.items() if k != "signature"}).encode("utf-8"))
    with open("signature.bin", "wb") as f:
        f.write(base64.b64decode(doc["signature"]))
    with open("heads-public-key.pem", encoding="ascii") as f:  # its id: SHA-256 of the raw key, 16 digits
        der = base64.b64decode("".join(f.read().split("-----")[2].split()))
    print(f"Public key id {hashlib.sha256(der[-32:]).hexdigest()[:16]} (the heads file names key {doc['key_id']})")
    cmd = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", "heads-public-key.pem", "-rawin",
           "-in", "signed-text.json", "-sigfile", "signature.bin"]
    if shutil.which("openssl"):
        ok = subprocess.run(cmd, capture_output=True).returncode == 0
        print("Signature: " + ("verified with heads-public-key.pem" if ok else "DOES NOT VERIFY"))
        bad += [] if ok else [f"{signed[0]} is not signed by heads-public-key.pem (or was changed after signing)"]
    else:
        print("Signature: not checked here (no openssl): run " + " ".join(cmd))
elif signed:
    print(f"Signed heads: {signed[0]} is here but no public key to check it with (README.txt says why)")
else:
    print("Signed heads: no heads file in this pack (README.txt says why and what to ask the council for)")
print("\n".join(["PROBLEMS:", *bad]) if bad else "Everything checked is as it was exported.")
sys.exit(1 if bad else 0)
