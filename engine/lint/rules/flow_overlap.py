"""flow-overlap: no two sequence flows are drawn along the same line.

Two flows on one line look like one, and the reader cannot tell where either goes. Flows
leaving the same element (a fan-out) or entering the same element (a fan-in) may share a
trunk, as modellers draw them."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import Diagram
from ..geometry import collinear_overlap
from ..rule import Finding, Rule
from . import _names


def check(d: Diagram) -> Iterator[Finding]:
    flows = d.drawn_flows()
    for i, f in enumerate(flows):
        for g in flows[i + 1:]:
            if f.plane != g.plane or f.source == g.source or f.target == g.target:
                continue
            for p in f.segments():
                hit = next((pt for q in g.segments() if (pt := collinear_overlap(p, q)) is not None), None)
                if hit is not None:
                    yield Finding(f.id, f"{_names.flow(d, f)} runs along {_names.flow(d, g)} "
                                        f"({_names.at(*hit)}): draw them apart")
                    break


rule = Rule("flow-overlap", "warning",
            "No two sequence flows are drawn along the same line, except flows sharing a source or a target.", check)
