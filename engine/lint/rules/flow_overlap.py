"""flow-overlap: no two sequence flows are drawn along the same line.

Two flows on one line look like one, and the reader cannot tell where either goes. Flows
leaving the same element (a fan-out) or entering the same element (a fan-in) may share a
trunk, as modellers draw them."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import Diagram
from ..geometry import collinear_overlap, segment_box
from ..rule import Finding, Rule
from . import _names


def check(d: Diagram) -> Iterator[Finding]:
    flows = d.drawn_flows()
    order = {f.id: i for i, f in enumerate(flows)}
    for f in flows:
        assert f.plane is not None
        reported: set[str] = set()
        for p in f.segments():
            x, y, w, h = segment_box(*p)
            for g, *q in d.segments_near(f.plane, (x - 1, y - 1, w + 2, h + 2)):
                if order[g.id] <= order[f.id] or g.id in reported or f.source == g.source or f.target == g.target:
                    continue
                hit = collinear_overlap(p, (q[0], q[1]))
                if hit is not None:
                    reported.add(g.id)
                    yield Finding(f.id, f"{_names.flow(d, f)} runs along {_names.flow(d, g)} "
                                        f"({_names.at(*hit)}): draw them apart")


rule = Rule("flow-overlap", "warning",
            "No two sequence flows are drawn along the same line, except flows sharing a source or a target.", check)
