"""no-label-overlap: a name drawn outside its element (events, gateways, flows) covers nothing.

The label's box is the file's BPMNLabel bounds; without them, where bpmn-js puts it (centred
below an event or gateway; 15px above the middle of a flow), sized as bpmn-js measures 11px
text wrapped at 90px. A label over a shape, crossed by a flow or over another label cannot
be read. Each pair is reported once."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..diagram import Diagram
from ..geometry import Box, boxes_overlap, segment_crosses
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
    for label in labels:
        for node in d.drawn_nodes():
            assert node.shape is not None
            if node.shape.plane == label.plane and node.id not in label.around \
                    and boxes_overlap(label.box, node.shape.bounds):
                yield Finding(label.owner, f"{label.what} overlaps the shape of {node.describe()}: move the label "
                                           "or the shape")
        for flow in d.drawn_flows():
            if flow.plane == label.plane and any(segment_crosses(a, b, label.box) for a, b in flow.segments()):
                yield Finding(label.owner, f"{label.what} is crossed by flow {flow.describe()}: move the label "
                                           "clear of the line")
    for i, a in enumerate(labels):
        for b in labels[i + 1:]:
            if a.plane == b.plane and boxes_overlap(a.box, b.box):
                yield Finding(a.owner, f"{a.what} overlaps {b.what}: move one of them")


rule = Rule("no-label-overlap", "warning",
            "The name of an event, gateway or flow lies over no shape, no flow and no other name.", check)
