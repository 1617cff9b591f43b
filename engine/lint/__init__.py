"""Lint rules that read any BPMN diagram's drawing (its BPMN DI), in the style of bpmnlint.

    from engine.lint import RULES, lint_files
    problems = lint_files({"review.bpmn": data})   # every finding as an engine.errors.Problem

One rule per module under `engine/lint/rules/`, each with a name, a default severity, a
one-line description and `check(diagram)`; `RULES` maps name -> rule. The rules protect
what makes a picture hard to read: a flow drawn through a shape, a label over a shape, a
flow or another label, a task name too long for its box, an element outside its lane, two
flows drawn on one line, an element the drawing leaves out; and one rule reads what the diagram says:
a start form carepath would not show (no-start-form). Every rule is a
"warning": `carepath deploy` prints warnings and deploys; `carepath deploy --strict` (and
`Engine.deploy(strict=True)`) refuses while any remain; a rule of severity "error" blocks
every deploy. DMN files and files without a BPMN root have nothing to lint.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import partial

from engine.content_cache import ContentCache
from engine.errors import DefinitionError, Problem, UnsafeXmlError
from engine.xmlsafe import parse_xml

from .diagram import BPMN, Diagram, read_diagram
from .rule import Finding, Rule
from .rules import RULES

__all__ = ["RULES", "Diagram", "Finding", "Rule", "lint_diagram", "lint_files"]


MAX_FINDINGS_PER_RULE = 200  # a drawing this broken needs redrawing, not a longer list


def lint_diagram(diagram: Diagram) -> list[Problem]:
    """Every finding of every rule on one parsed diagram, in file order (at most 200 a rule)."""
    found = []
    for rule in RULES.values():
        for count, f in enumerate(rule.check(diagram)):
            if count == MAX_FINDINGS_PER_RULE:
                found.append(Problem(diagram.file, f"more findings of {rule.name} than the {count} listed: fix "
                                                   "these first", rule=rule.name, severity=rule.severity))
                break
            line = diagram.lines.get(f.element_id) if f.element_id else None
            found.append(Problem(diagram.file, f.message, element_id=f.element_id, line=line,
                                 rule=rule.name, severity=rule.severity))
    return sorted(found, key=lambda p: (p.line or 0, p.rule or "", p.element_id or "", p.message))


def lint_files(files: Mapping[str, bytes]) -> list[Problem]:
    """Lint every BPMN file of a bundle (DMN files have no drawing to lint).

    A file the hardened intake refuses or cannot parse is reported as one problem with
    rule None and severity "error" (deploy reports the same file through its own checks)."""
    problems: list[Problem] = []
    for name, data in files.items():
        try:
            key = (name, hashlib.sha256(data).digest(), tuple(RULES.items()), MAX_FINDINGS_PER_RULE)
            problems.extend(_LINTED.get(key, partial(_lint_file, name, data)))
        except DefinitionError as exc:
            problems.extend(exc.problems)
        except UnsafeXmlError as exc:
            problems.append(Problem(name, exc.message, line=exc.context.get("line")))
    return problems


#: (file name, SHA-256 of its bytes, the rules) -> the findings on a file that could be read (engine/content_cache.py):
#: a file read again gets the same findings; one the intake refuses is read, and refused, every time
_LINTED: ContentCache[tuple[Problem, ...]] = ContentCache(256)


def _lint_file(name: str, data: bytes) -> tuple[Problem, ...]:
    tree = parse_xml(data, name)
    if tree.getroot().tag != f"{{{BPMN}}}definitions":
        return ()
    return tuple(lint_diagram(read_diagram(tree, name)))
