"""no-label-overlap: a name drawn outside its element (events, gateways, flows) covers nothing.

The label's box is the file's BPMNLabel bounds; without them, where bpmn-js puts it (centred
below an event or gateway; 15px above the middle of a flow), sized as bpmn-js measures 11px
text wrapped at 90px. A label over a shape, crossed by a flow or over another label cannot
be read. Each pair is reported once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..diagram import Diagram, Flow
from ..geometry import Box, Grid, boxes_overlap, segment_crosses
from ..rule import Finding, Rule


@dataclass
class _Label:
    owner: str
    what: str  # "the label of start ('Referral received')"
    box: Box
    plane: int
    around: set[str]  # subprocesses drawn around the labelled element


def _labels(d: Diagram) -> list[_Label]:
    out = []
    for node in d.drawn_nodes():
        box = node.label()
        if box is not None and node.shape is not None:
            out.append(_Label(node.id, f"the label of {node.describe()}", box, node.shape.plane, d.ancestors(node.id)))
    for flow in d.drawn_flows():
        box = flow.label()
        if box is not None and flow.plane is not None:
            out.append(_Label(flow.id, f"the name of flow {flow.describe()}", box, flow.plane, d.ancestors(flow.id)))
    return out


def check(d: Diagram) -> Iterator[Finding]:
    labels = _labels(d)
    index = Grid()
    for i, label in enumerate(labels):
        index.add(label.box, i)
    for i, label in enumerate(labels):
        for node in d.shapes_near(label.plane, label.box):
            assert node.shape is not None
            if node.id not in label.around and boxes_overlap(label.box, node.shape.bounds):
                yield Finding(label.owner, f"{label.what} overlaps the shape of {node.describe()}: move the label "
                                           "or the shape")
        crossing: dict[str, Flow] = {}
        for flow, a, b in d.segments_near(label.plane, label.box):
            if flow.id not in crossing and segment_crosses(a, b, label.box):
                crossing[flow.id] = flow
        for flow in crossing.values():
            yield Finding(label.owner, f"{label.what} is crossed by flow {flow.describe()}: move the label "
                                       "clear of the line")
        for j in index.near(label.box):
            other = labels[j]  # type: ignore[index]
            if j > i and other.plane == label.plane and boxes_overlap(label.box, other.box):  # type: ignore[operator]
                yield Finding(label.owner, f"{label.what} overlaps {other.what}: move one of them")


rule = Rule("no-label-overlap", "warning",
            "The name of an event, gateway or flow lies over no shape, no flow and no other name.", check)
