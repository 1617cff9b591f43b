"""no-flow-through-shape: no sequence flow is drawn through a shape that is not one of its ends.

A line through a box reads as if the flow went through that step. A flow's own source and
target are its ends; so is the activity a boundary event sits on, when the flow leaves that
event; a subprocess drawn around the flow contains it rather than being crossed."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import Diagram
from ..geometry import segment_crosses, shrink
from ..rule import Finding, Rule
from . import _names

EDGE_TOLERANCE = 1  # a line running along a shape's edge, or 1px into it, does not cross it


def check(d: Diagram) -> Iterator[Finding]:
    shapes = d.drawn_nodes()
    for flow in d.drawn_flows():
        ends = {flow.source, flow.target}
        source = d.nodes.get(flow.source)
        if source is not None and source.attached_to:
            ends.add(source.attached_to)
        around = d.ancestors(flow.id)
        for node in shapes:
            assert node.shape is not None
            if node.id in ends or node.id in around or node.shape.plane != flow.plane:
                continue
            box = shrink(node.shape.bounds, EDGE_TOLERANCE)
            if any(segment_crosses(a, b, box) for a, b in flow.segments()):
                x, y, w, h = node.shape.bounds
                yield Finding(flow.id, f"{_names.flow(d, flow)} is drawn through {node.describe()} "
                                       f"({_names.at(x + w / 2, y + h / 2)}): route the flow around it or move "
                                       "the shape")


rule = Rule("no-flow-through-shape", "warning",
            "No sequence flow is drawn through a shape other than its source, target or the host of its "
            "boundary event.", check)
