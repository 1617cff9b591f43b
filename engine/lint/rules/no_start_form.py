"""no-start-form: a start event names no start form, which carepath would not show.

Camunda shows a start event's form (`camunda:formKey`, `camunda:formRef`, `zeebe:formDefinition`) to the
person starting the process, to collect its start data. carepath has no start forms: a process's start data
comes from whoever starts it (the API, `carepath start --data`, another process's `start_process`). The form
is not refused, so that diagrams drawn for Camunda deploy unchanged, but it is not silently dropped either:
this warning names it (docs/diagram-attributes.md, "Start forms"). One of the two rules here (with
unbounded-cycle) about what a diagram says rather than how it is drawn."""

from __future__ import annotations

from collections.abc import Iterator

from ..diagram import Diagram
from ..rule import Finding, Rule


def check(d: Diagram) -> Iterator[Finding]:
    for node in d.nodes.values():
        if node.tag == "startEvent" and node.start_form:
            name = " ".join(node.name.split())  # a name drawn on two lines, on one
            event = f"{node.id} ('{name}')" if name else node.id
            yield Finding(node.id, f"start event {event} names a start form ({node.start_form}), which carepath "
                                   "does not show: carepath has no start forms, the start's data comes from "
                                   "whoever starts the process (the API, `carepath start --data`, another "
                                   "process); remove it, or ask for the data in a user task after the start")


rule = Rule("no-start-form", "warning",
            "A start event names no start form (camunda:formKey, camunda:formRef, zeebe:formDefinition), which "
            "carepath would not show.", check)
