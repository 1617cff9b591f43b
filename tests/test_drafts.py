"""Process drafts (engine/drafts.py): four eyes, stale saves, drafts never run, rebase before
approval, hostile uploads, and approval deploying a new version recorded in the system chain."""

from __future__ import annotations

import json
import re

import pytest
from sqlalchemy import func, select

from engine import drafts
from engine.cli import main
from engine.errors import ConflictError, DefinitionError, StateError, UnsafeXmlError, ValidationError
from engine.history import SYSTEM_CHAIN
from engine.registry import HandlerRegistry
from engine.runtime import Engine
from engine.schema import deployments, events, instances, process_drafts, process_versions
from tests.conftest import DIAGRAMS

THREE = (DIAGRAMS / "three_tasks.bpmn").read_text()
BOMB = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol2;</bpmn:definitions>"""
XXE = """<?xml version="1.0"?>
<!DOCTYPE d [<!ENTITY x SYSTEM "file:///etc/passwd">]>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"><bpmn:process id="p">&x;</bpmn:process>
</bpmn:definitions>"""


def renamed(old: str, new: str, xml: str = THREE) -> str:
    assert f'name="{old}"' in xml
    return xml.replace(f'name="{old}"', f'name="{new}"', 1)


def new_draft(eng, actor="alice", xml=THREE, **kw):
    return drafts.create_draft(eng, process_id="three_tasks", files={"three_tasks.bpmn": xml},
                               base_version=kw.pop("base_version", 1), actor=actor, **kw)


def submitted(eng, xml, author="alice", note="Screening renamed"):
    d = new_draft(eng, author)
    d = drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": xml}, expected_revision=d["revision"],
                          actor=author)
    return drafts.submit_draft(eng, d["id"], actor=author, note=note)


def system_events(eng) -> list[tuple[str, str, dict]]:
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(events.c.type, events.c.actor, events.c.data)
                            .where(events.c.chain == SYSTEM_CHAIN).order_by(events.c.seq)).all()
    return [(r.type, r.actor, json.loads(r.data)) for r in rows]


def counts(eng) -> tuple[int, int, int]:
    with eng.db.engine.connect() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t)).scalar()
                     for t in (process_drafts, process_versions, events))


def test_approving_your_own_draft_is_refused_and_nothing_is_deployed(make_engine):
    eng = make_engine("three_tasks.bpmn")
    d = submitted(eng, renamed("Screen", "Screen the contact"))
    before = counts(eng)
    with pytest.raises(drafts.FourEyesError, match="you wrote it; another process owner must"):
        drafts.approve_draft(eng, d["id"], actor="alice", note="mine")
    assert counts(eng) == before
    assert drafts.get_draft(eng, d["id"])["status"] == "submitted"


def test_someone_who_saved_a_draft_cannot_approve_it_either(make_engine):
    eng = make_engine("three_tasks.bpmn")
    d = new_draft(eng, "alice")
    d = drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": renamed("Screen", "Screen it")},
                          expected_revision=1, actor="bob")
    assert d["editors"] == ["alice", "bob"]
    drafts.submit_draft(eng, d["id"], actor="alice", note="two hands")
    with pytest.raises(drafts.FourEyesError, match="you saved it"):
        drafts.approve_draft(eng, d["id"], actor="bob", note="")
    assert drafts.approve_draft(eng, d["id"], actor="carol", note="")["version"] == 2


def test_a_stale_save_is_refused_naming_who_saved_and_when(make_engine):
    eng = make_engine("three_tasks.bpmn")
    d = new_draft(eng, "alice")
    eng.advance_clock(to=eng.now().replace(hour=14, minute=30))
    saved = drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": renamed("Screen", "Bob's name")},
                              expected_revision=1, actor="bob")
    assert saved["revision"] == 2
    with pytest.raises(ConflictError) as err:
        drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": renamed("Screen", "Alice's name")},
                          expected_revision=1, actor="alice")
    assert "saved by bob at 2031-03-03 14:30 UTC (revision 2)" in err.value.message
    after = drafts.get_draft(eng, d["id"])
    assert after["revision"] == 2 and 'name="Bob\'s name"' in after["files"]["three_tasks.bpmn"]
    with pytest.raises(ConflictError):  # an approval of what the reviewer no longer sees
        drafts.submit_draft(eng, d["id"], actor="bob", expected_revision=1)


def test_a_draft_never_runs(make_engine):
    eng = make_engine("three_tasks.bpmn")
    d = submitted(eng, renamed("Screen", "Screen the contact"))
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(process_versions)).scalar() == 1
    res = eng.start("three_tasks")
    eng.complete_task(res.ready_tasks[0]["id"], {})
    [task] = eng.list_tasks(case_id=res.case_id)
    assert task["name"] == "Screen"  # the live version's name, not the draft's
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(instances.c.process_version_id)
                            .where(instances.c.id == res.instance_id)).scalar() == 1
    assert d["status"] == "submitted" and d["deployed_version"] is None


def test_approval_deploys_a_new_version_that_new_cases_start_on_while_old_ones_stay(make_engine):
    eng = make_engine("three_tasks.bpmn")
    old = eng.start("three_tasks")
    d = submitted(eng, renamed("Screen", "Screen the contact"), note="Say what is screened")
    result = drafts.approve_draft(eng, d["id"], actor="bob", note="Say what is screened", expected_revision=2)
    assert (result["process_id"], result["version"]) == ("three_tasks", 2)
    assert result["draft"]["status"] == "deployed" and result["draft"]["deployed_version"] == 2
    with eng.db.engine.connect() as conn:
        dep = conn.execute(select(deployments).where(deployments.c.id == result["deployment_id"])).one()
    assert (dep.author, dep.approver, dep.deployed_by, dep.change_note) == (
        "alice", "bob", "bob", "Say what is screened")
    [v2, v1] = drafts.list_versions(eng, "three_tasks")
    assert (v2["version"], v2["author"], v2["approver"], v2["live"], v1["running"]) == (2, "alice", "bob", True, 1)

    new = eng.start("three_tasks")
    eng.complete_task(new.ready_tasks[0]["id"], {})
    assert [t["name"] for t in eng.list_tasks(case_id=new.case_id)] == ["Screen the contact"]
    eng.complete_task(old.ready_tasks[0]["id"], {})
    assert [t["name"] for t in eng.list_tasks(case_id=old.case_id)] == ["Screen"]

    types = [(t, a) for t, a, _ in system_events(eng)]
    assert types[-2:] == [("draft.approved", "bob"), ("definitions.deployed", "bob")]
    assert [t for t, _ in types if t.startswith("draft.")] == [
        "draft.created", "draft.saved", "draft.submitted", "draft.approved"]
    deployed = system_events(eng)[-1][2]
    assert (deployed["author"], deployed["approver"], deployed["change_note"]) == (
        "alice", "bob", "Say what is screened")
    assert eng.verify() == (len(system_events(eng)) + sum(len(eng.history(c)) for c in (old.case_id, new.case_id)),
                            [])
    assert main(["audit", "verify", "--db", eng.db.url]) == 0
    with pytest.raises(StateError, match="is deployed"):  # a deployed draft is history
        drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": THREE}, expected_revision=2, actor="alice")


def test_a_draft_whose_base_is_no_longer_live_must_be_rebased(make_engine):
    eng = make_engine("three_tasks.bpmn")
    first = submitted(eng, renamed("Screen", "Screen the contact"), author="alice")
    second = new_draft(eng, "carol", xml=renamed("Decide", "Decide what happens next"))
    assert [(o["id"], o["author"], o["same_base"]) for o in drafts.get_draft(eng, second["id"])["others"]] == [
        (first["id"], "alice", True)]
    assert [o["author"] for o in drafts.get_draft(eng, first["id"])["others"]] == ["carol"]
    drafts.approve_draft(eng, first["id"], actor="bob", note="")

    d = drafts.get_draft(eng, second["id"])
    assert (d["base_version"], d["live_version"], d["base_is_live"]) == (1, 2, False)
    with pytest.raises(StateError, match="version 2 is live now: rebase the draft"):
        drafts.submit_draft(eng, second["id"], actor="carol", note="")
    rebased = drafts.rebase_draft(eng, second["id"], actor="carol", expected_revision=1)
    assert (rebased["from_version"], rebased["to_version"]) == (1, 2)
    [change] = rebased["changes"]
    assert (change.kind, change.element_id) == ("changed", "screen")
    assert "name changed from 'Screen' to 'Screen the contact'" in change.details
    d = rebased["draft"]
    assert (d["base_version"], d["base_is_live"], d["revision"]) == (2, True, 2)
    assert d["rebase_changes"]["changes"][0]["element_id"] == "screen"
    with pytest.raises(StateError, match="already starts from the live version"):
        drafts.rebase_draft(eng, second["id"], actor="carol")
    # the owner carries over the change made meanwhile, then it goes through review
    both = renamed("Screen", "Screen the contact", renamed("Decide", "Decide what happens next"))
    drafts.save_draft(eng, second["id"], files={"three_tasks.bpmn": both}, expected_revision=2, actor="carol")
    drafts.submit_draft(eng, second["id"], actor="carol", note="Decide, clearer")
    assert drafts.approve_draft(eng, second["id"], actor="bob", note="")["version"] == 3


def test_approval_is_refused_when_the_base_went_out_of_date_after_submission(make_engine):
    eng = make_engine("three_tasks.bpmn")
    waiting = submitted(eng, renamed("Decide", "Decide now"), author="carol")
    eng.deploy(files={"three_tasks.bpmn": renamed("Screen", "Screened by the CLI").encode()}, actor="ops")
    before = counts(eng)
    with pytest.raises(StateError, match="rebase the draft"):
        drafts.approve_draft(eng, waiting["id"], actor="bob", note="")
    assert counts(eng) == before


def test_a_draft_that_does_not_validate_cannot_be_submitted(make_engine):
    eng = make_engine("three_tasks.bpmn")
    d = new_draft(eng, xml=THREE.replace('camunda:formKey="screening" ', ""))  # saving work in progress is fine
    [problem] = [p for p in drafts.draft_problems(eng, d["id"]) if p.severity == "error"]
    assert (problem.file, problem.element_id) == ("three_tasks.bpmn", "screen") and "names no form" in problem.message
    with pytest.raises(DefinitionError) as err:
        drafts.submit_draft(eng, d["id"], actor="alice", note="")
    assert [p.element_id for p in err.value.problems] == ["screen"]
    assert drafts.get_draft(eng, d["id"])["status"] == "draft"


def test_approval_rechecks_the_draft_against_what_is_registered_now(make_engine, calls):
    eng = make_engine("budget.bpmn", "annual_review.bpmn")
    xml = (DIAGRAMS / "budget.bpmn").read_text().replace('name="Approve budget"', 'name="Approve the budget"')
    d = drafts.create_draft(eng, process_id="budget", files={"budget.bpmn": xml}, base_version=1, actor="alice")
    drafts.submit_draft(eng, d["id"], actor="alice", note="clearer")
    # the handler was removed from the registry since the draft was submitted
    without = Engine(eng.db.url, registry=HandlerRegistry(), forms=eng.forms)
    before = counts(eng)
    with pytest.raises(DefinitionError) as err:
        drafts.approve_draft(without, d["id"], actor="bob", note="")
    assert ("budget.bpmn", "calculate") in {(p.file, p.element_id) for p in err.value.problems}
    assert counts(eng) == before
    without.db.dispose()


def test_an_identical_draft_has_nothing_to_deploy(make_engine):
    eng = make_engine("three_tasks.bpmn")
    d = new_draft(eng)
    drafts.submit_draft(eng, d["id"], actor="alice", note="no change")
    before = counts(eng)
    with pytest.raises(StateError, match="the same as version 1"):
        drafts.approve_draft(eng, d["id"], actor="bob", note="")
    assert counts(eng) == before


@pytest.mark.parametrize("name,content,error,words", [
    ("bomb.bpmn", BOMB, UnsafeXmlError, "entity declaration"),
    ("xxe.bpmn", XXE, UnsafeXmlError, "external entity"),
    ("huge.bpmn", "<a>" + " " * (6 * 1024 * 1024) + "</a>", UnsafeXmlError, "the limit is 5 MB"),
    ("broken.bpmn", THREE[:400], DefinitionError, "not well-formed"),
    ("notes.txt", THREE, DefinitionError, "must end in .bpmn or .dmn"),
    ("../../etc/x.bpmn", THREE, DefinitionError, "no folders"),
    # libxml2's own words were shown: "Excessive depth in document: 256, use XML_PARSE_HUGE option"
    ("deep.bpmn", '<?xml version="1.0"?><definitions>' + "<a>" * 100_000 + "</a>" * 100_000 + "</definitions>",
     DefinitionError, "deep.bpmn:1: not well-formed XML: elements are nested more than 256 deep, far deeper than "
                      "any diagram (line 1, column"),
])
def test_a_hostile_or_broken_file_is_refused_and_nothing_is_stored(make_engine, name, content, error, words):
    eng = make_engine("three_tasks.bpmn")
    d = new_draft(eng)
    before = counts(eng)
    with pytest.raises(error) as err:
        drafts.create_draft(eng, process_id="three_tasks", files={name: content}, base_version=1, actor="alice")
    assert words in str(err.value)
    with pytest.raises(error):
        drafts.save_draft(eng, d["id"], files={name: content}, expected_revision=1, actor="alice")
    if name.endswith(".bpmn") and "/" not in name:
        with pytest.raises(error):
            drafts.draft_from_upload(eng, process_id="three_tasks", filename=name, data=content.encode(),
                                     actor="alice")
    assert counts(eng) == before
    assert drafts.get_draft(eng, d["id"])["files"] == {"three_tasks.bpmn": THREE}


def test_an_upload_replaces_the_live_file_in_a_new_draft(make_engine):
    eng = make_engine("three_tasks.bpmn")
    xml = renamed("Decide", "Decide together").encode()
    d = drafts.draft_from_upload(eng, process_id="three_tasks", filename="C:\\Users\\me\\three_tasks.bpmn",
                                 data=xml, actor="alice")
    assert d["files"] == {"three_tasks.bpmn": xml.decode()} and d["base_version"] == 1
    assert d["main_file"] == "three_tasks.bpmn" and d["change_note"] == "uploaded three_tasks.bpmn"
    with pytest.raises(DefinitionError, match="does not hold the process 'budget'"):
        drafts.draft_from_upload(eng, process_id="budget", filename="three_tasks.bpmn", data=xml, actor="alice")
    # saved again from a browser's downloads: the diagram keeps the process's file name (it was stored as
    # "three_tasks (1).bpmn", which would sit beside three_tasks.bpmn when committed back to processes/)
    again = drafts.draft_from_upload(eng, process_id="three_tasks", filename="three_tasks (1).bpmn", data=xml,
                                     actor="alice")
    assert again["files"] == {"three_tasks.bpmn": xml.decode()} and again["main_file"] == "three_tasks.bpmn"
    # a new process: its id comes from the file
    fresh = (DIAGRAMS / "deadline.bpmn").read_bytes()
    new = drafts.draft_from_upload(eng, process_id=None, filename="deadline.bpmn", data=fresh, actor="alice")
    assert (new["process_id"], new["base_version"], new["live_version"]) == ("deadline", None, None)
    assert [p["process_id"] for p in drafts.list_processes(eng)] == ["deadline", "three_tasks"]


def test_refuse_needs_a_reason_and_the_author_withdraws_instead(make_engine):
    eng = make_engine("three_tasks.bpmn")
    d = submitted(eng, renamed("Screen", "Triage"))
    with pytest.raises(ValidationError, match="say why"):
        drafts.refuse_draft(eng, d["id"], actor="bob", reason="  ")
    with pytest.raises(drafts.FourEyesError, match="withdraw it instead"):
        drafts.refuse_draft(eng, d["id"], actor="alice", reason="changed my mind")
    refused = drafts.refuse_draft(eng, d["id"], actor="bob", reason="Triage is not our word")
    assert (refused["status"], refused["decided_by"], refused["decision_note"]) == (
        "refused", "bob", "Triage is not our word")
    with pytest.raises(StateError, match="not waiting for review"):
        drafts.approve_draft(eng, d["id"], actor="bob", note="")
    again = drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": renamed("Screen", "Screen the contact")},
                              expected_revision=refused["revision"], actor="alice")
    assert again["status"] == "draft"
    with pytest.raises(drafts.FourEyesError, match="only someone who wrote"):
        drafts.withdraw_draft(eng, d["id"], actor="bob")
    gone = drafts.withdraw_draft(eng, d["id"], actor="alice", reason="another way")
    assert gone["status"] == "withdrawn" and drafts.list_drafts(eng) == []
    with pytest.raises(StateError, match="is withdrawn"):
        drafts.submit_draft(eng, d["id"], actor="alice")
    assert [t for t, _, _ in system_events(eng) if t.startswith("draft.")] == [
        "draft.created", "draft.saved", "draft.submitted", "draft.refused", "draft.saved", "draft.withdrawn"]
    assert eng.verify()[1] == []


def test_the_example_case_is_saved_with_the_draft(make_engine):
    eng = make_engine("three_tasks.bpmn")
    d = new_draft(eng)
    example = {"start_data": {"person": {"name": "Ada"}}, "answers": {"record_contact": {"urgent": True}}}
    saved = drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": THREE}, expected_revision=1, actor="alice",
                              example=example)
    assert saved["example"] == example
    with pytest.raises(ValidationError, match="answers must be an object"):
        drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": THREE}, expected_revision=2, actor="alice",
                          example={"answers": {"record_contact": [1]}})


def test_cli_deploy_records_who_and_why(make_engine, tmp_path, monkeypatch):
    eng = make_engine("three_tasks.bpmn")
    (tmp_path / "no_forms").mkdir()
    monkeypatch.setenv("CAREPATH_FORMS", str(tmp_path / "no_forms"))  # the test diagram's forms are not real ones
    (tmp_path / "three_tasks.bpmn").write_text(renamed("Screen", "Screen (CLI)"))
    assert main(["deploy", str(tmp_path / "three_tasks.bpmn"), "--db", eng.db.url, "--as", "carol",
                 "--note", "Hotfix agreed by phone"]) == 0
    [latest, _first] = drafts.list_versions(eng, "three_tasks")
    assert (latest["author"], latest["approver"], latest["change_note"]) == ("carol", "carol", "Hotfix agreed by phone")
    assert system_events(eng)[-1][2]["change_note"] == "Hotfix agreed by phone"


def test_two_approvals_at_once_deploy_one_version_and_the_other_must_rebase(make_engine):
    import threading

    eng = make_engine("three_tasks.bpmn")
    first = submitted(eng, renamed("Screen", "Screen A"), author="alice")
    second = submitted(eng, renamed("Decide", "Decide B"), author="carol")
    start = threading.Barrier(2)
    outcomes: dict[int, object] = {}

    def approve(draft_id: int) -> None:
        start.wait()
        try:
            outcomes[draft_id] = drafts.approve_draft(eng, draft_id, actor="bob", note="at once")["version"]
        except Exception as exc:  # noqa: BLE001 - the outcome is what the test compares
            outcomes[draft_id] = exc

    threads = [threading.Thread(target=approve, args=(d["id"],)) for d in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    versions = [v for v in outcomes.values() if v == 2]
    refused = [v for v in outcomes.values() if isinstance(v, StateError)]
    assert len(versions) == 1 and len(refused) == 1, outcomes
    assert "rebase the draft" in refused[0].message
    assert [v["version"] for v in drafts.list_versions(eng, "three_tasks")] == [2, 1]
    assert eng.verify()[1] == []


def test_deployments_made_before_the_workbench_keep_their_rows_through_migration_0005(db_url):
    from sqlalchemy import text

    from engine.db import Database
    from engine.migrate import upgrade
    from tests.conftest import START

    db = Database(db_url)
    upgrade(db, "0004")
    with db.transaction() as conn:
        dep = conn.execute(text("INSERT INTO deployments (deployed_at, deployed_by, source) "
                                "VALUES (:at, 'ops', 'processes/') RETURNING id"), {"at": START}).scalar_one()
        conn.execute(text("INSERT INTO process_versions (process_id, version, name, content_sha256, deployment_id, "
                          "file_ids, main_file, info, deployed_at) VALUES ('p', 1, 'P', 'x', :dep, '[]', 'p.bpmn', "
                          "'{}', :at)"), {"dep": dep, "at": START})
    upgrade(db)
    with db.engine.connect() as conn:
        [v1] = drafts.list_versions(conn, "p")
        assert drafts.list_drafts(conn) == []
    assert (v1["version"], v1["author"], v1["approver"], v1["change_note"]) == (1, "ops", None, "")
    db.dispose()


def test_a_draft_changed_after_the_reviewer_opened_it_says_it_went_back_to_its_author(make_engine):
    """The author saved a submitted draft again while the reviewer had it open: approving said "Draft 11 is draft,
    not waiting for review"; it now says who changed it, when, and that it must be submitted again."""
    eng = make_engine("three_tasks.bpmn")
    d = submitted(eng, renamed("Screen", "Triage"))
    opened = d["revision"]  # what the reviewer's page was made from
    drafts.save_draft(eng, d["id"], files={"three_tasks.bpmn": renamed("Screen", "Screen the contact")},
                      expected_revision=opened, actor="alice")
    for act in (lambda: drafts.approve_draft(eng, d["id"], actor="bob", note="", expected_revision=opened),
                lambda: drafts.refuse_draft(eng, d["id"], actor="bob", reason="no", expected_revision=opened)):
        with pytest.raises(StateError) as caught:
            act()
        assert re.fullmatch(rf"draft {d['id']} was changed by alice at \d{{4}}-\d\d-\d\d \d\d:\d\d UTC \(revision "
                            rf"{opened + 1}\) after you opened it, so it is back with its author: it must be "
                            r"submitted again before it can be (approved|refused)", caught.value.message), \
            caught.value.message
    with pytest.raises(StateError, match="is still being changed by its author .* before it can be approved"):
        drafts.approve_draft(eng, d["id"], actor="bob", note="")
    assert drafts.list_drafts(eng)[0]["status"] == "draft"
