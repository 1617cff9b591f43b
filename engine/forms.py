"""Task forms: one JSON Schema per form name, read from a folder (forms/ by default).

Completing a user task validates the submitted data against its form's schema and reports
every field error at once, each with the field's path.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

from .errors import DefinitionError, NotFoundError, Problem, ValidationError

SUFFIX = ".schema.json"


class FormLibrary:
    def __init__(self, schemas: dict[str, dict[str, Any]] | None = None) -> None:
        self._schemas = dict(schemas or {})
        self._validators = {name: Draft202012Validator(s) for name, s in self._schemas.items()}

    @classmethod
    def from_folder(cls, folder: str | Path) -> FormLibrary:
        folder = Path(folder)
        schemas: dict[str, dict[str, Any]] = {}
        problems: list[Problem] = []
        for path in sorted(folder.glob(f"*{SUFFIX}")) if folder.is_dir() else []:
            name = path.name[: -len(SUFFIX)]
            try:
                schema = json.loads(path.read_text(encoding="utf-8"))
                Draft202012Validator.check_schema(schema)
            except Exception as exc:  # a broken form is named, not crashed on
                problems.append(Problem(str(path), f"not a valid JSON Schema: {exc}"))
                continue
            schemas[name] = schema
        if problems:
            raise DefinitionError(problems)
        return cls(schemas)

    def names(self) -> set[str]:
        return set(self._schemas)

    def schema(self, name: str) -> dict[str, Any]:
        try:
            return self._schemas[name]
        except KeyError:
            raise NotFoundError(f"no form named '{name}'", form=name) from None

    def validate(self, name: str | None, data: dict[str, Any], **context: Any) -> None:
        if not isinstance(data, dict):
            raise ValidationError("the submitted data must be an object of field values", **context)
        if name is None or name not in self._validators:
            return
        errors = []
        for err in sorted(self._validators[name].iter_errors(data), key=lambda e: list(e.absolute_path)):
            path = "/".join(str(p) for p in err.absolute_path)
            if err.validator == "required" and isinstance(err.instance, dict):
                missing = [p for p in err.validator_value if p not in err.instance]
                for field in missing:
                    errors.append({"field": "/".join(filter(None, [path, field])), "message": f"'{field}' is required"})
                continue
            errors.append({"field": path or None, "message": err.message})
        if errors:
            raise ValidationError(f"the form '{name}' has {len(errors)} error(s)", errors=errors, form=name, **context)
