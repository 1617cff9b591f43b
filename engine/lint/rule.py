"""The shape of a lint rule, as in bpmnlint: a name, a default severity, one line saying what it
checks, and `check(diagram)` yielding a finding per thing it flags."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .diagram import Diagram

SEVERITIES = ("error", "warning")


@dataclass(frozen=True)
class Finding:
    """One thing a rule flags: the element it is about and what is wrong, in plain English."""

    element_id: str | None
    message: str


@dataclass(frozen=True)
class Rule:
    name: str
    severity: str  # "error" blocks a deploy; "warning" is printed and blocks only `deploy --strict`
    description: str
    check: Callable[[Diagram], Iterable[Finding]]

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"rule {self.name}: severity must be one of {SEVERITIES}, not {self.severity!r}")
