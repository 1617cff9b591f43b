"""Evidence packs (api/evidence.py): what is in the zip, who may make one, and what is logged.

The cases are the ones tests/test_api_cases.py builds: Joan Barker (front door → reablement, open)
and Peter Clarke (needs assessment → personal budget → support plan, with letters), on SQLite and
PostgreSQL. The PDF's text is read back with pypdf.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import zipfile

import pytest
from pypdf import PdfReader
from sqlalchemy import func, select

from api import case_record as cr
from api.access import restrict_case
from api.auth import case_access_log
from api.errors import ApiError
from api.evidence import build_pack, user_named
from carepath.cli import main as cli_main
from engine.errors import NotFoundError, ValidationError
from engine.history import SYSTEM_CHAIN, canonical_json, event_hash
from engine.integrity import last_check
from engine.schema import chains, events
from tests.test_api_cases import build_world
from tests.test_history import _bypass_triggers

FILES = {"evidence.pdf", "history.json", "chain-heads.json", "manifest.json", "SHA256SUMS", "README.txt", "verify.py"}
REASON = "Ombudsman complaint 31/0042 about the support plan (asked for by J. Reid, investigator)"


@pytest.fixture
def world(db_url):
    eng, cases = build_world(db_url)
    yield eng, cases
    eng.db.dispose()


def _pdf_text(data: bytes) -> str:
    text = " ".join(page.extract_text() for page in PdfReader(io.BytesIO(data)).pages)
    return " ".join(text.split())


def _stored(eng, case_id: int) -> list[dict]:
    with eng.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(events).where(events.c.chain == f"case:{case_id}").order_by(events.c.seq))]


def _system_events(eng) -> int:
    with eng.db.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(events).where(events.c.chain == SYSTEM_CHAIN)).scalar()


def _exports(eng, case_id: int) -> list[dict]:
    """The case's access log lines for exports, as stored (user, reason, page, outcome)."""
    with eng.db.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            select(case_access_log).where(case_access_log.c.case_id == case_id,
                                          case_access_log.c.action == "export").order_by(case_access_log.c.id))]


# ---------------------------------------------------------------------- the pack
def test_the_zip_holds_the_files_and_its_manifest_and_sums_match_every_file(world):
    eng, cases = world
    pack = build_pack(eng, cases["peter"], user_named(eng, "audrey"), REASON)
    assert re.fullmatch(r"evidence-CASE-\d{6}-20310303\.zip", pack.filename)
    with zipfile.ZipFile(io.BytesIO(pack.content)) as z:
        assert z.testzip() is None
        files = {name: z.read(name) for name in z.namelist()}
    assert set(files) == FILES
    manifest = json.loads(files["manifest.json"])
    listed = {f["name"]: f for f in manifest["files"]}
    assert set(listed) == FILES - {"manifest.json", "SHA256SUMS"}
    for name, entry in listed.items():
        assert entry["sha256"] == hashlib.sha256(files[name]).hexdigest(), name
        assert entry["bytes"] == len(files[name])
    sums = dict(reversed(line.split("  ", 1)) for line in files["SHA256SUMS"].decode().splitlines())
    assert set(sums) == FILES - {"SHA256SUMS"}
    for name, digest in sums.items():
        assert digest == hashlib.sha256(files[name]).hexdigest(), name
    assert manifest["reason"] == REASON
    assert manifest["exported_by"]["username"] == "audrey" and manifest["exported_by"]["name"] == "Audrey Lamb"
    assert manifest["exported_at"] == "2031-03-03T09:00:00+00:00"  # the engine's clock, not the wall clock
    assert manifest["case"]["reference"] == eng.get_case(cases["peter"])["reference"]


def test_the_pdf_has_the_cover_the_integrity_result_every_event_the_diagrams_and_the_letters(world):
    eng, cases = world
    peter = cases["peter"]
    pack = build_pack(eng, peter, user_named(eng, "audrey"), REASON)
    pdf = pack.files["evidence.pdf"]
    assert pdf.startswith(b"%PDF-")
    text = _pdf_text(pdf)
    ref = eng.get_case(peter)["reference"]
    assert f"Case {ref}" in text and "Peter Clarke" in text
    assert "Audrey Lamb (username audrey; role: Auditor)" in text and REASON in text
    opened = cr.load(eng, peter, with_history=False).case["created_at"]
    assert f"{cr.day_and_time(opened)} (UK time)" in text and "UTC" not in text  # the case opened, in UK time
    assert "Integrity check passed: the history has not been altered." in text
    assert "FAILED" not in text
    # every event, in order, with its type as stored
    stored = _stored(eng, peter)
    assert re.findall(r"\[([a-z_]+\.[a-z_]+)\]", text) == [e["type"] for e in stored]
    for e in stored:
        assert f"#{e['seq']} " in text
    for sentence in ("Assess needs completed by Sam Okoro", "Sign off plan completed by Mary Khan",
                     "Write support plan claimed by Sam Okoro", "Needs assessment (Care Act s.9) started"):
        assert sentence in text, sentence
    # a drawing of each process the case ran through, with the task names from the diagrams
    for title in ("Path taken: Needs assessment (Care Act s.9) (version 1)", "Path taken: Personal budget (RAS)",
                  "Path taken: Support plan"):
        assert title in text, title
    assert "Write support plan" in text and "Sign off plan" in text
    # the letters as sent, whole
    letters = eng.documents(peter)
    assert letters
    for doc in letters:
        assert doc["title"] in text
        last_line = [line for line in doc["body"].splitlines() if line.strip()][-1]
        assert " ".join(last_line.split()) in text


def test_history_json_is_the_stored_chain_and_verifies_on_its_own(world):
    eng, cases = world
    peter = cases["peter"]
    pack = build_pack(eng, peter, user_named(eng, "mary"), REASON)
    doc = json.loads(pack.files["history.json"])
    stored = _stored(eng, peter)
    assert doc["chain"] == f"case:{peter}"
    as_stored = [{**{k: v for k, v in e.items() if k != "data_json"}, "data": e["data_json"]} for e in doc["events"]]
    assert as_stored == stored
    # an investigator can re-check every link with nothing but the file and the recipe it states
    prev = "0" * 64
    for e in doc["events"]:
        assert e["prev_hash"] == prev
        assert canonical_json(json.loads(e["data_json"])) == e["data_json"]
        assert event_hash(prev, e["chain"], e["seq"], e["step"], e["type"], e["at"], e["actor"], e["instance_id"],
                          e["data_json"]) == e["hash"]
        prev = e["hash"]
    heads = json.loads(pack.files["chain-heads.json"])
    with eng.db.engine.connect() as conn:
        rows = {r.chain: r for r in conn.execute(select(chains))}
    case_head = rows[f"case:{peter}"]
    assert heads["case_chain"] == {"chain": f"case:{peter}", "seq": case_head.seq, "hash": case_head.hash}
    assert heads["case_chain"]["hash"] == prev and heads["case_chain"]["seq"] == stored[-1]["seq"]
    # the system chain's head includes the integrity check run for this export
    assert heads["system_chain"] == {"chain": SYSTEM_CHAIN, "seq": rows[SYSTEM_CHAIN].seq,
                                     "hash": rows[SYSTEM_CHAIN].hash}


def test_the_export_runs_an_integrity_check_and_is_logged_with_its_reason(world):
    eng, cases = world
    joan = cases["joan"]
    before = _system_events(eng)
    build_pack(eng, joan, user_named(eng, "audrey"), f"  {REASON}\n", page="/cases/1/evidence")
    check = last_check(eng, joan)
    assert check is not None and check["checked_by"] == "audrey"
    assert _system_events(eng) == before + 1
    [entry] = _exports(eng, joan)
    assert entry["user"] == "audrey" and entry["reason"] == REASON and entry["outcome"] == "allowed"
    assert entry["page"] == "/cases/1/evidence"


def test_a_tampered_history_is_reported_as_failed_in_the_pdf(world):
    eng, cases = world
    peter = cases["peter"]
    _bypass_triggers(eng, "UPDATE events SET actor = 'mallory' WHERE chain = :c AND seq = 7", c=f"case:{peter}")
    pack = build_pack(eng, peter, user_named(eng, "audrey"), REASON)
    text = _pdf_text(pack.files["evidence.pdf"])
    assert "Integrity check FAILED" in text and "passed" not in text.split("Integrity of the history")[1][:200]
    assert f"case:{peter} event #7" in text
    # the path is worked out by re-running the case, which stops at the edited event: the PDF says so
    assert "The path drawn may stop short of the history: the replay stopped at event #" in text
    assert json.loads(pack.files["manifest.json"])["integrity"]["verified"] is False


@pytest.mark.parametrize("reason", ["", "   \n  ", "x" * 2001])
def test_no_pack_without_a_reason_and_nothing_is_recorded(world, reason):
    eng, cases = world
    before = _system_events(eng)
    with pytest.raises(ValidationError) as err:
        build_pack(eng, cases["peter"], user_named(eng, "audrey"), reason)
    assert err.value.errors[0]["field"] == "reason"
    assert _exports(eng, cases["peter"]) == []
    assert _system_events(eng) == before  # no integrity check was run either


def test_who_may_export(world):
    eng, cases = world
    joan = cases["joan"]
    # sam is a social worker with no task on Joan's case: refused, and the refusal is logged
    with pytest.raises(ApiError) as err:
        build_pack(eng, joan, user_named(eng, "sam"), REASON)
    assert err.value.status == 403
    # rosa works on Joan's case and may open it, but exporting is for team managers and auditors
    with pytest.raises(ApiError) as err:
        build_pack(eng, joan, user_named(eng, "rosa"), REASON)
    assert err.value.status == 403 and "team managers and auditors" in err.value.message
    # a process owner does not open case records at all
    with pytest.raises(ApiError):
        build_pack(eng, joan, user_named(eng, "percy"), REASON)
    assert [(a["user"], a["outcome"]) for a in _exports(eng, joan)] == [
        ("sam", "refused"), ("rosa", "refused"), ("percy", "refused")]
    assert build_pack(eng, joan, user_named(eng, "mary"), REASON).content.startswith(b"PK")
    # a restricted case: only those named on it, and of them only team managers and auditors
    restrict_case(eng, joan, ["mary", "rosa"])
    with pytest.raises(NotFoundError, match=f"no case {joan}"):  # as an unknown case: existence not disclosed
        build_pack(eng, joan, user_named(eng, "audrey"), REASON)
    assert build_pack(eng, joan, user_named(eng, "mary"), REASON).filename.endswith(".zip")
    with pytest.raises(NotFoundError):
        build_pack(eng, 999_999, user_named(eng, "audrey"), REASON)


# ---------------------------------------------------------------------- the command line
def test_carepath_evidence_writes_the_pack(world, tmp_path, capsys):
    eng, cases = world
    ref = eng.get_case(cases["peter"])["reference"]
    out = tmp_path / "pack.zip"
    url = str(eng.db.engine.url.render_as_string(hide_password=False))
    code = cli_main(["evidence", ref, "--reason", REASON, "--out", str(out), "--as", "audrey", "--db", url])
    assert code == 0, capsys.readouterr().err
    assert str(out) in capsys.readouterr().out
    with zipfile.ZipFile(out) as z:
        assert set(z.namelist()) == FILES
        manifest = json.loads(z.read("manifest.json"))
    assert manifest["reason"] == REASON and manifest["exported_by"]["username"] == "audrey"
    assert _exports(eng, cases["peter"])[-1]["page"] == "carepath evidence"

    assert cli_main(["evidence", ref, "--reason", " ", "--out", str(tmp_path / "x.zip"), "--as", "audrey",
                     "--db", url]) == 1
    assert "Enter why you are exporting this case" in capsys.readouterr().err
    assert cli_main(["evidence", "CASE-999999", "--reason", REASON, "--as", "audrey", "--db", url]) == 1
    assert "no case 'CASE-999999'" in capsys.readouterr().err
    assert cli_main(["evidence", ref, "--reason", REASON, "--as", "nobody", "--db", url]) == 1
    assert "no active user 'nobody'" in capsys.readouterr().err
    assert not (tmp_path / "x.zip").exists()


def test_a_letter_with_markup_is_printed_as_text_and_nothing_is_fetched(world, monkeypatch):
    from sqlalchemy import insert

    import api.evidence as ev
    from engine.schema import documents

    eng, cases = world
    joan = cases["joan"]
    instance = eng.get_case(joan)["instances"][0]["id"]
    with eng.db.transaction() as conn:
        conn.execute(insert(documents).values(
            case_id=joan, instance_id=instance, element_id="x", handler="eligibility_letter", kind="eligibility",
            title="<b>Bold</b> title", body="Dear Joan,\n<img src='file:///etc/hostname'> <script>x()</script>\nBye",
            created_at=eng.now()))
    asked: list[str] = []
    real = ev._fetch_nothing
    monkeypatch.setattr(ev, "_fetch_nothing", lambda url, *a, **k: asked.append(url) or real(url))
    text = _pdf_text(build_pack(eng, joan, user_named(eng, "audrey"), REASON).files["evidence.pdf"])
    assert "<b>Bold</b> title" in text
    assert "<img src='file:///etc/hostname'> <script>x()</script>" in text
    assert asked == []  # the markup was text: nothing was even asked for


def test_with_its_head_removed_the_history_is_still_exported_whole_and_reported(world):
    eng, cases = world
    peter = cases["peter"]
    stored = _stored(eng, peter)
    _bypass_triggers(eng, "DELETE FROM chains WHERE chain = :c", c=f"case:{peter}")
    pack = build_pack(eng, peter, user_named(eng, "audrey"), REASON)
    assert [e["seq"] for e in json.loads(pack.files["history.json"])["events"]] == [e["seq"] for e in stored]
    assert json.loads(pack.files["chain-heads.json"])["case_chain"] is None
    text = _pdf_text(pack.files["evidence.pdf"])
    assert "Integrity check FAILED" in text and "no recorded head" in text


def test_the_pdf_says_whether_the_case_matches_the_signed_heads_kept_outside_the_database(world, tmp_path,
                                                                                          monkeypatch):
    from engine.anchoring import generate_keys, sign_heads_to_dir

    eng, cases = world
    key, _pub, _pem = generate_keys(tmp_path / "heads.key")
    folder = tmp_path / "signed"
    folder.mkdir()
    signed = sign_heads_to_dir(eng, key, folder)
    monkeypatch.setenv("CAREPATH_HEADS_DIR", str(folder))
    monkeypatch.setenv("CAREPATH_HEADS_KEY", str(key))
    text = " ".join(_pdf_text(build_pack(eng, cases["peter"], user_named(eng, "audrey"), REASON)
                              .files["evidence.pdf"]).split())
    assert f"Signed heads kept outside the database: the case matches {signed.name}" in text


# ---------------------------------------------------------------------- how to check a pack (README.txt, verify.py)
@pytest.fixture
def signed(world, tmp_path, monkeypatch):
    """Heads signed as the schedule signs them, and carepath set to compare cases with them."""
    from engine.anchoring import generate_keys, sign_heads_to_dir

    eng, _cases = world
    (tmp_path / "keys").mkdir()
    key, _pub, _pem = generate_keys(tmp_path / "keys" / "heads.key")
    folder = tmp_path / "signed"
    folder.mkdir()
    path = sign_heads_to_dir(eng, key, folder)
    monkeypatch.setenv("CAREPATH_HEADS_DIR", str(folder))
    monkeypatch.setenv("CAREPATH_HEADS_KEY", str(key))
    return path


def _unpack(pack, folder):
    folder.mkdir()
    with zipfile.ZipFile(io.BytesIO(pack.content)) as z:
        z.extractall(folder)
    return folder


def _verify(folder):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "verify.py"], cwd=folder, capture_output=True, text=True, timeout=60)
    return done.returncode, done.stdout + done.stderr


def _resum(folder):
    """Recompute SHA256SUMS, as someone altering a file would."""
    names = [line.split("  ", 1)[1] for line in (folder / "SHA256SUMS").read_text().splitlines()]
    (folder / "SHA256SUMS").write_text("".join(
        f"{hashlib.sha256((folder / n).read_bytes()).hexdigest()}  {n}\n" for n in names))


def test_the_pack_holds_the_signed_heads_file_and_public_key_and_says_how_to_check_it(world, signed, tmp_path):
    import subprocess
    import sys

    eng, cases = world
    peter = cases["peter"]
    pack = build_pack(eng, peter, user_named(eng, "audrey"), REASON)
    assert set(pack.files) == FILES | {signed.name, "heads-public-key.pem"}
    assert pack.files[signed.name] == signed.read_bytes()  # the very file compared with, as kept
    pem = pack.files["heads-public-key.pem"].decode()
    assert pem.startswith("-----BEGIN PUBLIC KEY-----") and "PRIVATE" not in pem
    assert pem.encode() == (signed.parent.parent / "keys" / "heads.key.pub").read_bytes()
    manifest = json.loads(pack.files["manifest.json"])
    anchor = manifest["integrity"]["signed_heads"]
    assert anchor["status"] == "anchored" and anchor["file"] == signed.name and re.fullmatch(r"[0-9a-f]{16}",
                                                                                           anchor["key_id"])
    assert manifest["integrity"]["passed"] is True and manifest["how_to_check"] == "README.txt"
    assert {f["name"] for f in manifest["files"]} == set(pack.files) - {"manifest.json", "SHA256SUMS"}
    sums = {line.split("  ", 1)[1] for line in pack.files["SHA256SUMS"].decode().splitlines()}
    assert sums == set(pack.files) - {"SHA256SUMS"}
    readme = pack.files["README.txt"].decode()
    assert f"case:{peter}" in readme and anchor["key_id"] in readme and signed.name in readme
    # the PDF says the same, and gives the signed-heads result once
    text = _pdf_text(pack.files["evidence.pdf"])
    assert "How to check this pack" in text and "python3 verify.py" in text and "sha256sum -c SHA256SUMS" in text
    assert "pkeyutl -verify -pubin -inkey heads-public-key.pem" in text and anchor["key_id"] in text
    assert text.count("Signed heads") == 1 and text.count("events #1 to #") == 1

    # an investigator follows README.txt's commands, in order, in the unpacked folder: every one succeeds
    folder = _unpack(pack, tmp_path / "pack")
    commands = [line.strip() for line in readme.splitlines()
                if line.startswith("    ") and line.split()[0] in ("sha256sum", "python3", "openssl")]
    assert [c.split()[0] for c in commands] == ["python3", "sha256sum", "python3", "openssl"]
    outputs = []
    for command in commands:
        argv = command.split()
        argv[0] = sys.executable if argv[0] == "python3" else argv[0]
        done = subprocess.run(argv, cwd=folder, capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        outputs.append(done.stdout)
    assert outputs[0].rstrip().endswith("Everything checked is as it was exported.")
    assert "events #1 to #" in outputs[0] and "Signature: verified with heads-public-key.pem" in outputs[0]
    assert f"Public key id {anchor['key_id']}" in outputs[0]
    assert all(line.endswith(": OK") for line in outputs[1].splitlines())
    assert "Signature Verified Successfully" in outputs[3]


def test_the_included_script_finds_an_altered_history_or_heads_file(world, signed, tmp_path):
    eng, cases = world
    pack = build_pack(eng, cases["peter"], user_named(eng, "audrey"), REASON)
    # an event's data edited: SHA256SUMS no longer matches; with the sums recomputed, the recipe finds the event
    folder = _unpack(pack, tmp_path / "edited")
    doc = json.loads((folder / "history.json").read_text())
    doc["events"][4]["data_json"] = doc["events"][4]["data_json"].replace("}", ',"extra":1}', 1)
    (folder / "history.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    rc, out = _verify(folder)
    assert rc == 1 and "history.json is not the file SHA256SUMS lists" in out
    _resum(folder)
    rc, out = _verify(folder)
    seq = doc["events"][4]["seq"]
    assert rc == 1 and f"event #{seq}: its hash does not match its content" in out and "PROBLEMS:" in out
    # every hash recomputed after the edit (a wholesale rewrite): only the signed heads file catches it
    prev = doc["events"][4]["prev_hash"]
    for e in doc["events"][4:]:
        e["prev_hash"] = prev
        e["hash"] = prev = event_hash(prev, e["chain"], e["seq"], e["step"], e["type"], e["at"], e["actor"],
                                      e["instance_id"], e["data_json"])
    (folder / "history.json").write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    heads = json.loads((folder / "chain-heads.json").read_text())
    heads["case_chain"]["hash"] = prev
    (folder / "chain-heads.json").write_text(json.dumps(heads))
    _resum(folder)
    rc, out = _verify(folder)
    assert rc == 1 and "every hash and link is right" in out
    assert f"{signed.name}: event #" in out and "is not the one signed at" in out
    # the signed heads file itself altered (to match the rewrite): its signature no longer verifies
    signed_doc = json.loads((folder / signed.name).read_text())
    for h in signed_doc["heads"]:
        if h["chain"] == doc["chain"]:
            h["hash"] = {e["seq"]: e["hash"] for e in doc["events"]}[h["seq"]]
    (folder / signed.name).write_text(json.dumps(signed_doc))
    _resum(folder)
    rc, out = _verify(folder)
    assert rc == 1 and "Signature: DOES NOT VERIFY" in out and "events #1 to #" in out


def test_a_pack_of_an_edited_history_says_it_failed_first_and_vouches_for_nothing_the_edit_touched(
        world, signed, tmp_path):
    # an event edited in place (trigger dropped) below the signed head: the head still has its signed hash. The
    # README's result said only "signed heads - matches - ...", and verify.py printed "events #1 to #N are the
    # ones signed" above the problem it then found
    eng, cases = world
    peter = cases["peter"]
    _bypass_triggers(eng, "UPDATE events SET actor = 'mallory' WHERE chain = :c AND seq = 7", c=f"case:{peter}")
    pack = build_pack(eng, peter, user_named(eng, "audrey"), REASON)
    readme = pack.files["README.txt"].decode()
    result = " ".join(readme.split("RESULT WHEN EXPORTED:")[1].split())
    assert result.startswith(f"integrity check FAILED (hash chain: ALTERED - case:{peter} event #7"), result
    assert "signed heads - matches" in result
    rc, out = _verify(_unpack(pack, tmp_path / "pack"))
    assert rc == 1 and "event #7: its hash does not match its content" in out
    assert "events #1 to #" not in out.replace("does not show that events #1 to #", ""), out
    assert "does not show that events #1 to #" in out
    # an untouched case's pack says it passed
    joan = build_pack(eng, cases["joan"], user_named(eng, "audrey"), REASON).files["README.txt"].decode()
    assert " ".join(joan.split("RESULT WHEN EXPORTED:")[1].split()).startswith(
        "integrity check passed (hash chain: verified; replay: matches); signed heads - matches")


def test_without_signed_heads_the_pack_still_says_how_to_check_it_and_what_to_ask_for(world, tmp_path):
    eng, cases = world
    pack = build_pack(eng, cases["joan"], user_named(eng, "audrey"), REASON)
    assert set(pack.files) == FILES
    assert json.loads(pack.files["manifest.json"])["integrity"]["signed_heads"]["status"] == "unavailable"
    assert "No signed heads file was compared" in pack.files["README.txt"].decode()
    text = _pdf_text(pack.files["evidence.pdf"])
    assert "How to check this pack" in text and "no signed heads file was compared" in text
    # branches name where they led: an unnamed joining gateway by the named step it leads on to, not its id
    assert "at “Carer asks for support?”, “No” (on to “Safeguarding concern?”)" in text
    assert "carer_merge" not in text and "concern_merge" not in text
    rc, out = _verify(_unpack(pack, tmp_path / "pack"))
    assert rc == 0 and "no heads file in this pack" in out and "Everything checked is as it was exported." in out
