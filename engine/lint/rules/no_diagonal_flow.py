"""no-diagonal-flow: sequence flows are drawn with right angles.

Camunda Modeler and bpmn-js route sequence flows horizontally and vertically; a slanting
line is usually a waypoint dragged by mistake, and it cuts across the grid of lanes and
columns the reader follows."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import Diagram
from ..rule import Finding, Rule
from . import _names

TOLERANCE = 1  # pixels a segment may lean and still count as straight


def check(d: Diagram) -> Iterator[Finding]:
    for flow in d.drawn_flows():
        for a, b in flow.segments():
            if abs(a[0] - b[0]) > TOLERANCE and abs(a[1] - b[1]) > TOLERANCE:
                yield Finding(flow.id, f"{_names.flow(d, flow)} has a slanting segment from x={a[0]:.0f}, "
                                       f"y={a[1]:.0f} to x={b[0]:.0f}, y={b[1]:.0f}: draw it with right angles")
                break


rule = Rule("no-diagonal-flow", "warning", "Sequence flows are drawn with horizontal and vertical segments only.",
            check)
