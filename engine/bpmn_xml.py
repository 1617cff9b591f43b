"""The BPMN XML vocabulary carepath reads: the namespaces of BPMN and of the dialects (SpiffWorkflow, Camunda 7,
Zeebe) and the small readers engine/bpmn_parser.py and engine/bpmn_checks.py share."""

from __future__ import annotations

from typing import Any

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"
NSMAP = {
    "bpmn": BPMN_NS,
    "bpmndi": "http://www.omg.org/spec/BPMN/20100524/DI",
    "dc": "http://www.omg.org/spec/DD/20100524/DC",
    "spiffworkflow": SPIFF_NS,
    "camunda": CAMUNDA_NS,
    "zeebe": ZEEBE_NS,
}


def _xp(node: Any, path: str) -> list[Any]:
    return node.xpath(path, namespaces=NSMAP)


def _attr(node: Any, ns: str, name: str) -> str | None:
    value = node.get(f"{{{ns}}}{name}")
    return value.strip() if value is not None and value.strip() else None


def _text(node: Any) -> str | None:
    return node.text.strip() if node is not None and node.text and node.text.strip() else None


def _split(value: str | None) -> tuple[str, ...]:
    return tuple(g.strip() for g in (value or "").split(",") if g.strip())
