"""What changed between two sets of diagram files, in words (engine/diagram_changes.py)."""

from __future__ import annotations

from pathlib import Path

from engine.diagram_changes import compare_files
from tests.conftest import DIAGRAMS

THREE = (DIAGRAMS / "three_tasks.bpmn").read_text()
ROOT = Path(__file__).resolve().parent.parent


def test_compare_files_names_added_removed_and_changed_elements_in_words():
    old = THREE.encode()
    new = (THREE.replace('camunda:candidateGroups="team_manager"', 'camunda:candidateGroups="social_work"')
           .replace('<bpmn:sequenceFlow id="f4" sourceRef="decide" targetRef="end"/>',
                    '<bpmn:sequenceFlow id="f4" sourceRef="decide" targetRef="end">'
                    '<bpmn:conditionExpression>ok</bpmn:conditionExpression></bpmn:sequenceFlow>')
           .replace('<bpmn:endEvent id="end">', '<bpmn:endEvent id="done" name="Done">')
           .replace('targetRef="end"', 'targetRef="done"')).encode()
    changes = {(c.kind, c.element_id): c for c in compare_files({"a.bpmn": old}, {"a.bpmn": new})}
    assert set(changes) == {("added", "done"), ("removed", "end"), ("changed", "decide"), ("changed", "f4")}
    assert changes["changed", "decide"].details == (
        "candidateGroups changed from 'team_manager' to 'social_work'",)
    assert "targetRef changed from 'end' to 'done'" in changes["changed", "f4"].details
    assert "condition changed" in changes["changed", "f4"].details
    assert str(changes["added", "done"]) == "Added: end event 'Done' (done)"
    assert compare_files({"a.bpmn": old}, {"b.bpmn": old}) == []


def test_moving_shapes_is_not_a_change_but_a_decision_rule_is():
    bpmn = (ROOT / "processes" / "front_door.bpmn").read_text()
    moved = bpmn.replace('<dc:Bounds x="', '<dc:Bounds x="1', 1)
    assert moved != bpmn
    assert compare_files({"f.bpmn": bpmn.encode()}, {"f.bpmn": moved.encode()}) == []
    dmn = (ROOT / "processes" / "screening.dmn").read_text()
    start = dmn.index("<text>", dmn.index("<outputEntry"))
    end = dmn.index("</text>", start)
    changed = dmn[:start] + "<text>\"changed\"" + dmn[end:]
    [change] = compare_files({"s.dmn": dmn.encode()}, {"s.dmn": changed.encode()})
    assert (change.kind, change.type, change.file) == ("changed", "output entry", "s.dmn")
    assert change.details == ("text changed",)


def test_an_attribute_left_at_its_default_when_the_modeller_saves_is_not_a_change():
    """bpmn-js drops cancelActivity="true" and dmn-js hitPolicy="UNIQUE" when they save: the review listed
    "cancelActivity removed (was 'true')" and "hitPolicy removed (was 'UNIQUE')", changes that change nothing,
    while the visual diff beside them did not."""
    bpmn = (ROOT / "processes" / "reablement.bpmn").read_text()
    assert 'id="period_ended" name="Reablement period reached" cancelActivity="true"' in bpmn
    saved = bpmn.replace(' cancelActivity="true"', "")
    assert compare_files({"r.bpmn": bpmn.encode()}, {"r.bpmn": saved.encode()}) == []
    dmn = (ROOT / "processes" / "screening.dmn").read_text()
    assert 'hitPolicy="UNIQUE"' in dmn
    assert compare_files({"s.dmn": dmn.encode()}, {"s.dmn": dmn.replace(' hitPolicy="UNIQUE"', "").encode()}) == []
    [change] = compare_files({"r.bpmn": bpmn.encode()},
                             {"r.bpmn": bpmn.replace(' cancelActivity="true"', ' cancelActivity="false"').encode()})
    assert change.details == ("cancelActivity changed from 'true' to 'false'",)  # a real change still shows
    [change] = compare_files({"s.dmn": dmn.encode()},
                             {"s.dmn": dmn.replace(' hitPolicy="UNIQUE"', ' hitPolicy="FIRST"').encode()})
    assert change.details == ("hitPolicy changed from 'UNIQUE' to 'FIRST'",)
