"""The process-wide cache of read diagrams (engine/content_cache.py): a file is known by its content, never
its path; a broken file is refused every time; what one caller gets cannot change what the next one gets."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.bpmn import _BUILT_SPECS, _CHECKED_BUNDLES, build_specs, parse_bundle
from engine.content_cache import ContentCache
from engine.errors import DefinitionError
from engine.lint import lint_files
from engine.schema import process_versions
from tests.conftest import DIAGRAMS

THREE = (DIAGRAMS / "three_tasks.bpmn").read_bytes()
RENAMED = THREE.replace(b'name="Screen"', b'name="Screen the referral"')
# the second flow leaves from an element that does not exist: carepath's checks refuse it
BROKEN = THREE.replace(b'<bpmn:sequenceFlow id="f2" sourceRef="record_contact"',
                       b'<bpmn:sequenceFlow id="f2" sourceRef="nowhere"')
# SpiffWorkflow's parser itself refuses it (a flow to an element that does not exist)
UNBUILDABLE = THREE.replace(b'targetRef="decide"/>', b'targetRef="gone"/>')
# drawn through the middle of a task: a layout warning
SLANTED = THREE.replace(b'<di:waypoint x="93" y="70" />', b'<di:waypoint x="93" y="170" />')


def test_a_changed_diagram_under_the_same_path_is_read_again(make_engine, tmp_path):
    path = tmp_path / "three_tasks.bpmn"
    path.write_bytes(THREE)
    eng = make_engine()
    [first] = eng.deploy([path])
    started = eng.start("three_tasks")
    eng.complete_task(eng.list_tasks(case_id=started.case_id)[0]["id"], {})
    assert [t["name"] for t in eng.list_tasks(case_id=started.case_id)] == ["Screen"]

    path.write_bytes(RENAMED)  # same folder, same name, new content
    [second] = eng.deploy([path])
    assert (first.version, second.version, second.created) == (1, 2, True)
    renamed = eng.start("three_tasks")
    eng.complete_task(eng.list_tasks(case_id=renamed.case_id)[0]["id"], {})
    assert [t["name"] for t in eng.list_tasks(case_id=renamed.case_id)] == ["Screen the referral"]
    # the running instance keeps the version it started on
    assert [t["name"] for t in eng.list_tasks(case_id=started.case_id)] == ["Screen"]

    # and the checks and specs, asked directly, describe each content as it is
    assert parse_bundle({"three_tasks.bpmn": THREE}).processes["three_tasks"].user_tasks["screen"].name == "Screen"
    assert parse_bundle({"three_tasks.bpmn": RENAMED}).processes["three_tasks"].user_tasks["screen"].name == \
        "Screen the referral"
    assert build_specs({"three_tasks.bpmn": THREE}, "three_tasks")[0].task_specs["screen"].bpmn_name == "Screen"
    assert build_specs({"three_tasks.bpmn": RENAMED}, "three_tasks")[0].task_specs["screen"].bpmn_name == \
        "Screen the referral"


def test_a_broken_diagram_is_refused_every_time_even_after_a_good_one_of_the_same_name(make_engine):
    eng = make_engine()
    eng.deploy(files={"three_tasks.bpmn": THREE})
    refused = []
    for _ in range(3):
        with pytest.raises(DefinitionError) as err:
            eng.deploy(files={"three_tasks.bpmn": BROKEN})
        refused.append([(p.file, p.element_id, p.message) for p in err.value.problems])
    assert refused[0] and refused[0] == refused[1] == refused[2]
    assert any(element == "f2" and "nowhere" in message for _f, element, message in refused[0]), refused[0]
    for _ in range(2):  # SpiffWorkflow's own refusal, too
        with pytest.raises(DefinitionError, match="a sequence flow from 'Screen' leads to 'gone'"):
            build_specs({"three_tasks.bpmn": UNBUILDABLE}, "three_tasks")
    with eng.db.engine.connect() as conn:  # nothing of the broken one was stored
        assert conn.execute(select(func.count()).select_from(process_versions)).scalar() == 1
    assert [(r.version, r.created) for r in eng.deploy(files={"three_tasks.bpmn": THREE})] == [(1, False)]


def test_not_well_formed_and_hostile_files_are_refused_every_time():
    for data in (b"<bpmn:definitions", b'<?xml version="1.0"?><!DOCTYPE d [<!ENTITY x "x">]><a>&x;</a>'):
        for _ in range(2):
            with pytest.raises(DefinitionError):
                parse_bundle({"bad.bpmn": data})
            [problem] = lint_files({"bad.bpmn": data})
            assert problem.file == "bad.bpmn" and problem.rule is None


def test_lint_findings_follow_the_content():
    assert lint_files({"a.bpmn": THREE}) == []
    slanted = [(p.rule, p.element_id) for p in lint_files({"a.bpmn": SLANTED})]
    assert ("no-diagonal-flow", "f1") in slanted
    assert [(p.rule, p.element_id) for p in lint_files({"a.bpmn": SLANTED})] == slanted  # the same again
    assert lint_files({"a.bpmn": THREE}) == []
    assert {p.file for p in lint_files({"b.bpmn": SLANTED})} == {"b.bpmn"}  # a finding names its own file


def test_the_checks_arguments_are_part_of_the_key():
    files = {"three_tasks.bpmn": THREE}
    parse_bundle(files, forms={"contact", "screening", "decision"})
    with pytest.raises(DefinitionError, match="'decision', which is not in the form library"):
        parse_bundle(files, forms={"contact", "screening"})
    with pytest.raises(DefinitionError, match="front_door"):
        parse_bundle(files, teams=("team_manager",))
    parse_bundle(files, teams=("team_manager", "front_door"))


def test_what_a_caller_changes_in_its_copy_is_not_given_to_the_next():
    files = {"three_tasks.bpmn": THREE}
    bundle = parse_bundle(files)
    bundle.processes["three_tasks"].user_tasks.clear()
    bundle.decisions["x"] = "y"
    again = parse_bundle(files)
    assert set(again.processes["three_tasks"].user_tasks) == {"record_contact", "screen", "decide"}
    assert again.decisions == {}
    spec, subprocesses = build_specs(files, "three_tasks")
    subprocesses["added"] = spec
    assert "added" not in build_specs(files, "three_tasks")[1]


def test_the_caches_are_bounded_and_forget_the_least_recently_used():
    cache: ContentCache[int] = ContentCache(2)
    built: list[str] = []

    def build(key: str) -> int:
        built.append(key)
        return len(built)

    assert cache.get("a", lambda: build("a")) == 1
    assert cache.get("b", lambda: build("b")) == 2
    assert cache.get("a", lambda: build("a")) == 1  # "a" is now the most recently used
    assert cache.get("c", lambda: build("c")) == 3  # "b" goes
    assert len(cache) == 2
    assert cache.get("b", lambda: build("b")) == 4
    assert built == ["a", "b", "c", "b"]
    with pytest.raises(ZeroDivisionError):
        cache.get("d", lambda: 1 // 0)
    assert cache.get("d", lambda: 5) == 5  # a failure keeps nothing
    assert _CHECKED_BUNDLES.size and _BUILT_SPECS.size and len(_BUILT_SPECS) <= _BUILT_SPECS.size
