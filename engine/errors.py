"""One error hierarchy for carepath: every error the engine raises is a CarepathError.

    CarepathError
    ├── DefinitionError        a diagram or decision table cannot be deployed (lists every problem)
    ├── UnsafeXmlError         hostile or oversized XML refused before parsing
    ├── UnsafeExpressionError  an expression or script tried something the sandbox forbids
    ├── ExpressionError        an expression or script failed while evaluating
    ├── NotFoundError          an unknown case, instance, task, process or version
    ├── ConflictError          a stale or duplicate change (another request got there first)
    ├── ValidationError        submitted data does not fit (e.g. a task form)
    ├── HandlerFailed          a service-task handler raised; the instance holds an incident
    ├── ClockError             the clock cannot do what was asked (e.g. advance a real clock)
    └── StateError             the operation does not fit the current state (e.g. retry without incident)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class CarepathError(Exception):
    """Base of every carepath error. `context` names where it happened (case, instance, task...)."""

    code = "error"

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.context = {k: v for k, v in context.items() if v is not None}

    def __str__(self) -> str:
        if not self.context:
            return self.message
        where = ", ".join(f"{k}={v}" for k, v in self.context.items())
        return f"{self.message} ({where})"

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **self.context}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a diagram: which file, which element, which line, and what.

    `rule` names the lint rule that found it (None for the deploy checks); `severity` is
    "error" (blocks a deploy) or "warning" (printed; blocks only `deploy --strict`)."""

    file: str
    message: str
    element_id: str | None = None
    line: int | None = None
    rule: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        """One line: file:line [element]: message (a newline in a quoted script or name is shown as \\n)."""
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
        if self.element_id:
            where += f" [{self.element_id}]"
        message = self.message.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\\n")
        if self.rule:
            return f"{where}: {message} ({self.severity}: {self.rule})"
        return f"{where}: {message}"

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "element_id": self.element_id, "line": self.line, "message": self.message,
                "rule": self.rule, "severity": self.severity}


class DefinitionError(CarepathError):
    code = "definition_invalid"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"{len(self.problems)} problem(s) in the definitions:\n{lines}")

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, "problems": [p.to_dict() for p in self.problems]}


class UnsafeXmlError(CarepathError):
    code = "xml_refused"


class UnsafeExpressionError(CarepathError):
    code = "expression_refused"


class ExpressionError(CarepathError):
    code = "expression_failed"


class NotFoundError(CarepathError):
    code = "not_found"


class ConflictError(CarepathError):
    code = "conflict"


class ValidationError(CarepathError):
    code = "invalid"

    def __init__(self, message: str, errors: list[dict[str, Any]] | None = None, **context: Any) -> None:
        super().__init__(message, **context)
        self.errors = errors or []

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "errors": self.errors}


class HandlerFailed(CarepathError):
    code = "handler_failed"


class ClockError(CarepathError):
    code = "clock"


class SettingError(CarepathError, ValueError):
    """A setting (an environment variable) the engine cannot use: the command line says so in one line."""

    code = "setting"


class StateError(CarepathError):
    code = "state"
