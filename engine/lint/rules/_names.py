"""How a message names a flow: by id, name and ends, so a reader can find it without the ids."""

from __future__ import annotations

from ..diagram import Diagram, Flow


def flow(d: Diagram, f: Flow) -> str:
    def end(eid: str) -> str:
        node = d.nodes.get(eid)
        return f"'{node.name}'" if node is not None and node.name else eid

    return f"flow {f.describe()} from {end(f.source)} to {end(f.target)}"


def at(x: float, y: float) -> str:
    return f"near x={x:.0f}, y={y:.0f}"
