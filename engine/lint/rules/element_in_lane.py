"""element-in-lane: every flow node, and its label, is drawn inside the lane that lists it.

The lane a node is listed in (its flowNodeRef) is the team that does the work; a shape drawn
in another lane tells the reader the wrong team. When a process has lanes, a node that no
lane lists belongs to no team. A horizontal lane's first 30px hold its name, so shapes stay
right of them (below them in a vertical lane); a label may reach into that band, as bpmn-js
places the label of a start event drawn at the default spot. Boundary events go with their host and need
not be listed."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import Diagram, Lane, Node
from ..geometry import Box, inside
from ..rule import Finding, Rule

LANE_HEADER = 30


def _content(lane: Lane) -> Box | None:
    if lane.shape is None:
        return None
    x, y, w, h = lane.shape.bounds
    if lane.shape.horizontal is False:
        return x, y + LANE_HEADER, w, max(0.0, h - LANE_HEADER)
    return x + LANE_HEADER, y, max(0.0, w - LANE_HEADER), h


def check(d: Diagram) -> Iterator[Finding]:
    lanes_of: dict[str | None, list[Lane]] = {}  # the process or subprocess whose lane set it is
    for lane in d.lanes:
        lanes_of.setdefault(lane.owner, []).append(lane)
    children: dict[str | None, list[Node]] = {}
    for node in d.nodes.values():
        children.setdefault(node.parent, []).append(node)
    for owner, lanes in lanes_of.items():
        listing: dict[str, list[Lane]] = {}
        for lane in lanes:
            for ref in lane.refs:
                listing.setdefault(ref, []).append(lane)
        for node in children.get(owner, []):
            listed = listing.get(node.id, [])
            if not listed:
                if node.tag != "boundaryEvent":
                    yield Finding(node.id, f"{node.describe()} is in no lane, though the process has lanes: move it "
                                           "into the lane of the team that does it")
                continue
            if node.shape is None:
                continue
            leaves = [lane for lane in listed if not lane.nested] or listed
            for lane in leaves:
                area = _content(lane)
                if area is None:
                    continue
                if not inside(node.shape.bounds, area):
                    yield Finding(node.id, f"{node.describe()} is listed in lane {lane.describe()} but drawn "
                                           "outside it: move it into that lane")
                elif (label := node.label()) is not None and lane.shape is not None \
                        and not inside(label, lane.shape.bounds):
                    yield Finding(node.id, f"the label of {node.describe()} runs outside its lane "
                                           f"{lane.describe()}: move the label into the lane")


rule = Rule("element-in-lane", "warning",
            "Every flow node and its label lie inside the lane that lists it, and no node is left out of the lanes.",
            check)
