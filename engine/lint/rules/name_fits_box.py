"""name-fits-box: a task's (or collapsed subprocess's) name fits in its box.

bpmn-js writes an activity's name inside the box in 12px Arial, wrapping at the box width
less 7px each side (`engine.lint.text` repeats its line breaking). A default 80px box holds 3 lines clear of the
task-type marker and of boundary events on its edge; each further 14.4px of height holds
one more line. A longer name runs over the box's edge."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import ACTIVITIES, Diagram
from ..geometry import task_line_capacity
from ..rule import Finding, Rule
from ..text import task_lines


def check(d: Diagram) -> Iterator[Finding]:
    for node in d.drawn_nodes():
        assert node.shape is not None
        if node.tag not in ACTIVITIES or not node.name or node.shape.expanded:
            continue
        _, _, width, height = node.shape.bounds
        lines, room = task_lines(node.name, width), task_line_capacity(height)
        if lines > room:
            yield Finding(node.id, f"the name of {node.describe()} takes {lines} lines in a box {width:.0f}px wide "
                                   f"and {height:.0f}px high, which holds {room}: shorten the name or make the box "
                                   "wider")


rule = Rule("name-fits-box", "warning", "A task's name fits inside its box (at most 3 lines in a default box).",
            check)
