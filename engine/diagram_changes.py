"""What changed between two sets of BPMN/DMN files, element by element, in words.

`compare_files(old, new)` lists every element (by id) added, removed or changed, with the
attributes that changed ("name changed from 'Screen' to 'Screen the contact'") and the parts
without an id of their own that changed (conditions, timers, extension properties, flows).
Only behaviour is compared: the drawing (BPMN DI, DMN DI) is left out, so a shape moved on the
canvas is not a change here — the review page's visual diff shows layout. Used for a draft's
changes, for what changed meanwhile when a draft is rebased (engine/drafts.py), and by pages.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from lxml import etree

from .xmlsafe import parse_xml

__all__ = ["Change", "compare_files"]


@dataclass(frozen=True)
class Change:
    """One element added, removed or changed between two sets of files, described in words."""

    kind: str  # added | removed | changed
    element_id: str
    name: str
    type: str  # "user task", "sequence flow", "decision" ...
    file: str
    details: tuple[str, ...] = field(default_factory=tuple)

    def __str__(self) -> str:
        label = f"{self.type} '{self.name}' ({self.element_id})" if self.name else f"{self.type} {self.element_id}"
        text = f"{self.kind.capitalize()}: {label}"
        return text + (": " + "; ".join(self.details) if self.details else "")

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "element_id": self.element_id, "name": self.name, "type": self.type,
                "file": self.file, "details": list(self.details), "text": str(self)}


_LAYOUT_NS = ("DI", "DC", "BPMNDI", "DMNDI")  # diagram layout, not behaviour: the visual diff shows it
_CHILD_WORDS = {
    "extensionElements": "extension properties (form, team, handler and so on)",
    "conditionExpression": "condition", "timerEventDefinition": "timer", "documentation": "documentation",
    "script": "script", "incoming": "incoming flows", "outgoing": "outgoing flows", "flowNodeRef": "tasks in the lane",
    "multiInstanceLoopCharacteristics": "multi-instance settings", "text": "text", "inputEntry": "input entry",
    "outputEntry": "output entry", "inputExpression": "input expression",
}
_SKIP_ATTRS = {"id", "exporter", "exporterVersion"}
#: attributes whose absence means this value (BPMN 2.0, DMN 1.3): bpmn-js and dmn-js drop them when they
#: export, so `cancelActivity="true"` written out and left out are the same diagram, not a change to review
_DEFAULTS = {"cancelActivity": "true", "isInterrupting": "true", "parallelMultiple": "false",
             "isForCompensation": "false", "startQuantity": "1", "completionQuantity": "1",
             "gatewayDirection": "Unspecified", "instantiate": "false", "eventGatewayType": "Exclusive",
             "isSequential": "false", "triggeredByEvent": "false", "isClosed": "false", "hitPolicy": "UNIQUE",
             "preferredOrientation": "Rule-as-Row"}


def _words(localname: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", " ", localname).lower()


def _layout(tag: str) -> bool:
    ns = etree.QName(tag).namespace or ""
    return ns.rstrip("/").rsplit("/", 1)[-1].upper() in _LAYOUT_NS


def _local(el: Any) -> str:
    return etree.QName(el).localname


def _attr_name(key: str) -> str:
    q = etree.QName(key)
    return q.localname if not q.namespace else f"{q.localname}"


def _attrs(el: Any) -> dict[str, str]:
    """The attributes that say something: not the id or the exporter, nor one set to its default value."""
    out = {}
    for key, value in el.attrib.items():
        name = _attr_name(key)
        if name in _SKIP_ATTRS or _DEFAULTS.get(name, "").lower() == value.strip().lower():
            continue
        out[name] = value
    return out


def _signature(el: Any) -> Any:
    """What an element says, with elements that have their own id reduced to a reference."""
    attrs = tuple(sorted(_attrs(el).items()))
    kids = tuple((_local(child), _signature(child)) for child in el  # parts with an id are compared on their own
                 if isinstance(child.tag, str) and not _layout(child.tag) and not child.get("id"))
    return (_local(el), attrs, (el.text or "").strip(), kids)


def _elements(files: Mapping[str, bytes]) -> dict[str, tuple[str, Any]]:
    """Every element with an id in the files' behaviour (not their layout): id -> (file, element)."""
    found: dict[str, tuple[str, Any]] = {}
    for name, data in files.items():
        root = parse_xml(data, name).getroot()
        for el in root.iter():
            if not isinstance(el.tag, str) or el is root or _layout(el.tag) or not el.get("id"):
                continue
            if any(_layout(a.tag) for a in el.iterancestors()):
                continue
            found[el.get("id")] = (name, el)
    return found


def _details(old: Any, new: Any) -> list[str]:
    out: list[str] = []
    if _local(old) != _local(new):
        out.append(f"changed from {_words(_local(old))} to {_words(_local(new))}")
    a, b = _attrs(old), _attrs(new)
    for key in sorted(set(a) | set(b)):
        if a.get(key) == b.get(key):
            continue
        label = "name" if key == "name" else key
        if key not in a and key in _DEFAULTS:  # left out: its default
            out.append(f"{label} changed from '{_DEFAULTS[key]}' to '{b[key]}'")
        elif key not in b and key in _DEFAULTS:
            out.append(f"{label} changed from '{a[key]}' to '{_DEFAULTS[key]}'")
        elif key not in a:
            out.append(f"{label} set to '{b[key]}'")
        elif key not in b:
            out.append(f"{label} removed (was '{a[key]}')")
        else:
            out.append(f"{label} changed from '{a[key]}' to '{b[key]}'")
    if (old.text or "").strip() != (new.text or "").strip():
        out.append("text changed")
    old_kids, new_kids = _signature(old)[3], _signature(new)[3]
    if old_kids != new_kids:
        tags = sorted({k[0] for k in set(old_kids) ^ set(new_kids)})
        out.extend(f"{_CHILD_WORDS.get(tag, _words(tag))} changed" for tag in tags)
        if not tags:
            out.append("the order of its parts changed")
    return out


def compare_files(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> list[Change]:
    """Elements added, removed and changed (by id) from `old` to `new`; layout-only moves are not listed."""
    before, after = _elements(old), _elements(new)
    changes: list[Change] = []

    def change(kind: str, eid: str, file: str, el: Any, details: list[str] | None = None) -> Change:
        return Change(kind, eid, el.get("name") or "", _words(_local(el)), PurePosixPath(file).name,
                      tuple(details or ()))

    for eid, (file, el) in after.items():
        if eid not in before:
            changes.append(change("added", eid, file, el))
    for eid, (file, el) in before.items():
        if eid not in after:
            changes.append(change("removed", eid, file, el))
    for eid, (file, el) in after.items():
        if eid in before and _signature(before[eid][1]) != _signature(el):
            changes.append(change("changed", eid, file, el, _details(before[eid][1], el)))
    return changes
