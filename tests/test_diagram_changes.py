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
