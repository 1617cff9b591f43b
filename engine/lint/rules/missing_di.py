"""missing-di: every flow node has a shape and every sequence flow an edge in the drawing.

A modeller draws only what the diagram interchange places: an element without a shape is
invisible in Camunda Modeler and the workbench, though the engine would still run it."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import Diagram
from ..rule import Finding, Rule


def check(d: Diagram) -> Iterator[Finding]:
    if not d.has_di:
        for pid in d.processes:
            if any(n.process == pid for n in d.nodes.values()):
                yield Finding(pid, f"process {pid} has no drawing (no BPMNDiagram): a modeller cannot show it; "
                                   "open the file in a modeller and save it to lay it out")
        return
    for node in d.nodes.values():
        if node.shape is None:
            yield Finding(node.id, f"{node.describe()} has no shape in the drawing, so a modeller does not show it")
    for flow in d.flows.values():
        if flow.plane is None:
            yield Finding(flow.id, f"sequence flow {flow.describe()} from {flow.source} to {flow.target} has no "
                                   "edge in the drawing, so a modeller does not show it")
        elif not flow.drawn:
            yield Finding(flow.id, f"sequence flow {flow.describe()} has an edge with fewer than two waypoints")


rule = Rule("missing-di", "warning", "Every flow node has a shape and every sequence flow an edge in the drawing.",
            check)
