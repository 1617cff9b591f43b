"""unbounded-cycle: a non-interrupting boundary timer that repeats for ever (`R/P1D`, no count).

Each firing of a non-interrupting boundary timer starts a new path beside the task it is attached to, and the
workflow keeps every path it has run; the saved state of the case, rewritten at every step, grows with each
firing, and every step of the case costs more than the last (a chase every minute, `R/PT1M`, took 0.35 s a step
after a day). A count (`R12/P1M`) bounds it; so does a diagram in which the chase ends the wait. The cycle is
not refused, so that diagrams drawn for Camunda deploy unchanged, but this warning names it. A cycle computed by
an expression cannot be judged here and is not flagged."""

from __future__ import annotations

import re
from collections.abc import Iterator

from ..diagram import Diagram
from ..rule import Finding, Rule

_FOR_EVER = re.compile(r"R/\S+|R-1/\S+")


def check(d: Diagram) -> Iterator[Finding]:
    for node in d.nodes.values():
        cycle = node.repeating_timer
        if node.tag == "boundaryEvent" and cycle and _FOR_EVER.fullmatch(cycle):
            name = " ".join(node.name.split())
            event = f"{node.id} ('{name}')" if name else node.id
            every = cycle.split("/", 1)[1]
            yield Finding(node.id, f"boundary timer {event} repeats for ever ({cycle}) without stopping the task: "
                                   "each firing adds to the case's saved state, so the case's steps grow slower "
                                   f"the longer the task waits; give it a number of repetitions (e.g. R12/{every})")


rule = Rule("unbounded-cycle", "warning",
            "A non-interrupting boundary timer repeats a bounded number of times (R12/P1D), not for ever (R/P1D).",
            check)
