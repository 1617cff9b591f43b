"""no-flow-through-shape: no sequence flow is drawn through a shape that is not one of its ends.

A line through a box reads as if the flow went through that step. A flow's own source and
target are its ends; so is the activity a boundary event sits on, when the flow leaves that
event; a subprocess drawn around the flow contains it rather than being crossed."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import Diagram, Node
from ..geometry import segment_box, segment_crosses, shrink
from ..rule import Finding, Rule
from . import _names

EDGE_TOLERANCE = 1  # a line running along a shape's edge, or 1px into it, does not cross it


def check(d: Diagram) -> Iterator[Finding]:
    for flow in d.drawn_flows():
        assert flow.plane is not None
        ends = {flow.source, flow.target}
        source = d.nodes.get(flow.source)
        if source is not None and source.attached_to:
            ends.add(source.attached_to)
        around = d.ancestors(flow.id)
        crossed: dict[str, Node] = {}
        for a, b in flow.segments():
            for node in d.shapes_near(flow.plane, segment_box(a, b)):
                assert node.shape is not None
                if node.id in ends or node.id in around or node.id in crossed:
                    continue
                if segment_crosses(a, b, shrink(node.shape.bounds, EDGE_TOLERANCE)):
                    crossed[node.id] = node
        for node in sorted(crossed.values(), key=lambda n: n.line or 0):
            assert node.shape is not None
            x, y, w, h = node.shape.bounds
            yield Finding(flow.id, f"{_names.flow(d, flow)} is drawn through {node.describe()} "
                                   f"({_names.at(x + w / 2, y + h / 2)}): route the flow around it or move the shape")


rule = Rule("no-flow-through-shape", "warning",
            "No sequence flow is drawn through a shape other than its source, target or the host of its "
            "boundary event.", check)
