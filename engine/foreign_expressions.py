"""Expressions written for other engines: recognised, named, and turned into Python only when trivially safe.

carepath evaluates Python expressions (in its sandbox, engine/expressions.py). Diagrams from Camunda 7 carry
JUEL (`${amount > 5}`, `#{approverGroups}`), Camunda 8 (Zeebe) diagrams carry FEEL (`=amount > 5`), the BPMN
specification's examples XPath (`getDataObject('order')/amount`), and Camunda timers cron (`0 0 9 * * MON-FRI`).
None of them is evaluated here: this is a deliberate difference (docs/diagram-attributes.md, "Expressions from
other engines"). What this module does:

* `foreign_language(text, declared)` names the language an expression is written in, when it is not Python;
* `python_suggestion(language, text)` gives the Python a modeller most likely meant, for the message;
* `bare_variable(text)` turns the one form that means the same in every language, a bare variable name
  (`${approverGroups}`, `#{initiator}`, `=dueDate`), into Python (`approverGroups`); anything else is refused.
"""

from __future__ import annotations

import re

JUEL, FEEL, XPATH, CRON = "JUEL", "FEEL", "XPath", "cron"

_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_JUEL = re.compile(r"\A\s*[$#]\{(?P<body>.*)\}\s*\Z", re.DOTALL)
_JUEL_BARE = re.compile(rf"\A\s*[$#]\{{\s*(?P<name>{_NAME})\s*\}}\s*\Z")
_FEEL_BARE = re.compile(rf"\A\s*=\s*(?P<name>{_NAME})\s*\Z")
_CRON_FIELD = r"[0-9*?/,\-LW#A-Za-z]+"
_CRON = re.compile(rf"\A\s*{_CRON_FIELD}(?:\s+{_CRON_FIELD}){{4,6}}\s*\Z")
_XPATH = re.compile(r"\bgetDataObject\s*\(|\A\s*/{1,2}[A-Za-z]")
#: the `language` URIs of a formal expression or script, by the language they name
_DECLARED = (("juel", JUEL), ("feel", FEEL), ("xpath", XPATH), ("javascript", "JavaScript"),
             ("ecmascript", "JavaScript"), ("groovy", "Groovy"), ("java", "Java"))
_PYTHON_LANGUAGES = ("python", "py")


def declared_language(language: str | None) -> str | None:
    """The non-Python language a `language="…"` attribute names (a URI or a short name), else None."""
    text = (language or "").strip().lower()
    if not text or any(p in text for p in _PYTHON_LANGUAGES):
        return None
    for marker, name in _DECLARED:
        if marker in text:
            return name
    return language.strip() if language else None


def foreign_language(text: str, declared: str | None = None, *, timer: bool = False) -> str | None:
    """The language `text` is written in when it is plainly not Python: JUEL, FEEL, XPath, cron (timers only),
    or whatever `declared` (the element's `language` attribute) names; None when it may be Python.
    Callers ask only about text the Python check refused (or with a declared language), so valid Python is
    never refused by these patterns."""
    named = declared_language(declared)
    if named:
        return named
    if _JUEL.match(text):
        return JUEL
    stripped = text.lstrip()
    if stripped.startswith("=") and not stripped.startswith("=="):
        return FEEL
    if timer and _CRON.match(text) and not text.strip().isidentifier():
        return CRON
    if _XPATH.search(text):
        return XPATH
    return None


def bare_variable(text: str) -> str | None:
    """`${name}`, `#{name}` or `=name` as the Python expression `name`; None for anything else."""
    found = _JUEL_BARE.match(text) or _FEEL_BARE.match(text)
    return found.group("name") if found else None


_JUEL_WORDS = ((r"&&", " and "), (r"\|\|", " or "), (r"!(?!=)", " not "), (r"\beq\b", "=="), (r"\bne\b", "!="),
               (r"\blt\b", "<"), (r"\bgt\b", ">"), (r"\ble\b", "<="), (r"\bge\b", ">="), (r"\bnull\b", "None"),
               (r"\btrue\b", "True"), (r"\bfalse\b", "False"), (r"\bempty\s+", "not "))
_FEEL_WORDS = ((r"(?<![<>!=])=(?!=)", "=="), (r"\bnull\b", "None"), (r"\btrue\b", "True"),
               (r"\bfalse\b", "False"))


def _tidy(text: str) -> str:
    return " ".join(text.split())


def python_suggestion(language: str, text: str) -> str:
    """What to write instead, as a sentence ending the message."""
    if language == JUEL:
        found = _JUEL.match(text)
        body = found.group("body") if found else text
        for pattern, repl in _JUEL_WORDS:
            body = re.sub(pattern, repl, body)
        return f"write `{_tidy(body)}`"
    if language == FEEL:
        body = text.lstrip()[1:]
        for pattern, repl in _FEEL_WORDS:
            body = re.sub(pattern, repl, body)
        return f"write `{_tidy(body)}`"
    if language == CRON:
        return ("write an ISO 8601 repeating interval such as `R/P1D` (every day) or "
                "`R/2027-01-04T09:00:00Z/P1W` (every week from a start), or a Python expression giving one")
    if language == XPATH:
        return "read the value from the task data by name, e.g. `order[\"amount\"] > 5`"
    return "write it in Python"


def foreign_message(language: str, text: str) -> str:
    """'this is a JUEL expression; carepath evaluates Python expressions: write `amount > 5`'."""
    noun = "timer expression" if language == CRON else "expression"
    what = f"an {language}" if language[0] in "AEIOX" else f"a {language}"  # "an XPath", "a JUEL"
    if language in (JUEL, FEEL, XPATH, CRON):
        return f"this is {what} {noun}; carepath evaluates Python expressions: {python_suggestion(language, text)}"
    return f"this is written in {language}; carepath evaluates Python expressions: write it in Python"
