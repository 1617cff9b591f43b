"""Decisions (DMN): carepath's checks of a .dmn file, and the evaluation of a decision with the decisions it requires.

SpiffWorkflow's DMN package parses a decision table (`DMNParser`) and matches its rules (`DMNEngine.decide`,
Python expressions through the workflow's script engine); carepath uses both and adds what the library leaves
out (its notes: docs/diagram-attributes.md, "Business rule tasks and decisions"):

* every decision of a file is registered, not only the first (`DecisionParsers.add_dmn_xml`);
* a decision's required decisions (`informationRequirement/requiredDecision`, a decision requirement graph) are
  evaluated first, in order, their outputs visible to the decisions that require them
  (`DecisionEngine.result`); a cycle or a missing required decision is refused at deploy;
* the hit policies UNIQUE, FIRST, PRIORITY, ANY, COLLECT (with SUM, COUNT, MIN, MAX), RULE ORDER and
  OUTPUT ORDER; the library matches the rules, carepath applies the policy to the matches;
* overlapping UNIQUE rules are refused at deploy where the input entries are comparable (`-`, equal literals,
  `in (...)`, numeric comparisons and ranges), and two UNIQUE rules matching at run time are an error;
* a cell written in FEEL (or JUEL) is refused naming the language, the decision, rule and cell, with the
  Python to write where there is one.

`check_dmn` runs the checks of one file; `check_requirements` those across files (requirements, cycles).
"""

from __future__ import annotations

import ast
import copy
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
from SpiffWorkflow.dmn.engine.DMNEngine import DMNEngine
from SpiffWorkflow.dmn.parser.DMNParser import DMNParser

from engine.errors import CarepathError, Problem
from engine.expressions import check_expression

__all__ = [
    "AGGREGATIONS", "HIT_POLICIES", "DecisionEngine", "DecisionInfo", "DecisionParsers",
    "DecisionBinding", "binding_problem", "check_dmn", "pinned_key", "read_pinned", "check_requirements",
    "evaluation_order", "read_binding",
]

HIT_POLICIES = ("UNIQUE", "FIRST", "PRIORITY", "ANY", "COLLECT", "RULE ORDER", "OUTPUT ORDER")
AGGREGATIONS = ("SUM", "COUNT", "MIN", "MAX")
#: binding of a business rule task to a version of its decision: the latest deployed (default) or the one
#: deployed with the process version (camunda:decisionRefBinding="deployment", zeebe bindingType="deployment")
BINDINGS = ("latest", "deployment")
#: binding to one deployed version of the decision: by its number (camunda:decisionRefBinding="version" +
#: camunda:decisionRefVersion) or by its tag (decisionRefBinding="versionTag" + camunda:decisionRefVersionTag;
#: zeebe bindingType="versionTag" + versionTag): the latest version with that tag
PINNED = ("version", "versiontag")
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
ZEEBE_NS = "http://camunda.org/schema/zeebe/1.0"


@dataclass
class DecisionInfo:
    """One decision of a .dmn file, as carepath's checks read it."""

    id: str
    name: str
    file: str
    line: int | None
    required: list[str] = field(default_factory=list)  # ids of the decisions it requires, in document order
    version_tag: str | None = None  # the decision's camunda:versionTag, which a business rule task may bind to


# --- reading ---------------------------------------------------------------------------


def _local(node: Any) -> str:
    return etree.QName(node).localname if isinstance(node.tag, str) else ""


def _children(node: Any, local: str) -> list[Any]:
    return [c for c in node if _local(c) == local]


def _text(node: Any, local: str = "text") -> str:
    found = _children(node, local)
    return (found[0].text or "").strip() if found else ""


def _required_ids(decision: Any) -> list[str]:
    ids: list[str] = []
    for requirement in _children(decision, "informationRequirement"):
        for required in _children(requirement, "requiredDecision"):
            href = (required.get("href") or "").strip()
            if href:
                ids.append(href.rsplit("#", 1)[-1])
    return ids


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- FEEL and other languages -----------------------------------------------------------

_RANGE = re.compile(r"^\s*([\[\](])\s*(.+?)\s*\.\.\s*(.+?)\s*([\])[])\s*$")
_FEEL_FUNCTION = re.compile(r"\b(date and time|date|time|duration|years and months duration|string length|"
                            r"substring|upper case|lower case|contains|starts with|ends with|matches|"
                            r"list contains|count|sum|min|max|mean|not|floor|ceiling|decimal|number|string)\s*\(")
_IF_THEN = re.compile(r"^\s*if\s+(.+?)\s+then\s+(.+?)\s+else\s+(.+?)\s*$", re.S)
_FEEL_NAMES = {"true": "True", "false": "False", "null": "None"}
_QUESTION_MARK = re.compile(r"(\?)(?=(?:[^'\"]|['\"][^'\"]*['\"])*$)")  # as the library finds it
_PLACEHOLDER = "cell_input"  # stands for the input value while a test is compiled; never shown


def _language(node: Any, inherited: str | None) -> str | None:
    own = (node.get("expressionLanguage") or "").strip().lower()
    return own or inherited


def _language_name(uri: str) -> str | None:
    """'JUEL', 'JavaScript', ... for a language carepath does not evaluate; None for Python or FEEL."""
    for key, name in (("juel", "JUEL"), ("javascript", "JavaScript"), ("ecmascript", "JavaScript"),
                      ("groovy", "Groovy"), ("jruby", "JRuby"), ("jython", "Jython"), ("xpath", "XPath")):
        if key in uri:
            return name
    return None


def _feel_rewrite(text: str, unary: bool) -> str | None:
    """The Python for a FEEL form carepath recognises ('' when there is none to offer); None if not FEEL."""
    stripped = text.strip()
    if "${" in stripped or "#{" in stripped:
        return None
    match = _RANGE.match(stripped)
    if match:
        start, low, high, end = match.groups()
        lower = "<=" if start == "[" else "<"
        upper = "<=" if end == "]" else "<"
        return f"{low} {lower} ? {upper} {high}" if unary else f"{low} {lower} x {upper} {high}"
    if unary and re.match(r"^\s*not\s*\((.*)\)\s*$", stripped, re.S):
        inner = re.match(r"^\s*not\s*\((.*)\)\s*$", stripped, re.S).group(1).strip()  # type: ignore[union-attr]
        return f"not in ({inner})" if "," in inner else f"!= {inner}"
    match = _IF_THEN.match(stripped)
    if match:
        cond, then, other = match.groups()
        return f"{then} if {cond} else {other}"
    if _FEEL_FUNCTION.search(stripped):
        return ""
    try:
        tree = ast.parse(stripped, mode="eval")
    except SyntaxError:
        tree = None
    if tree is not None:
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
        feel = names & set(_FEEL_NAMES)
        if feel:
            rewritten = stripped
            for name in feel:
                rewritten = re.sub(rf"\b{name}\b", _FEEL_NAMES[name], rewritten)
            return rewritten
        if unary and isinstance(tree.body, ast.Tuple) and not stripped.startswith("("):
            return f"in ({stripped})"  # a FEEL list of allowed values
        return None
    if re.search(r"(?<![=<>!])=(?!=)", stripped):
        return re.sub(r"(?<![=<>!])=(?!=)", "==", stripped)
    return None


def _python_problem(text: str, unary: bool) -> str | None:
    """Why `text` is not a Python expression (or unary test) carepath evaluates; None if it is."""
    source = text
    if unary:
        if _QUESTION_MARK.search(text):
            source = _QUESTION_MARK.sub(_PLACEHOLDER, text)
        else:
            try:
                ast.parse(text, mode="eval")
            except SyntaxError:
                source = f"{_PLACEHOLDER} {text}"  # the library's reading of `< 5`
    message = check_expression(source, "eval")
    if message is None:
        return None
    # carepath's message ends with the source it compiled; the cell's own text is shown instead
    message = re.sub(r"\s*(— refused )?in expression '.*'$", "", message, flags=re.S)
    message = re.sub(r"\s*\(line \d+, column \d+\)", "", message)
    return message.replace(_PLACEHOLDER, "?")


# --- hit policies and overlap -----------------------------------------------------------


@dataclass(frozen=True)
class _Interval:
    low: float
    high: float
    low_open: bool
    high_open: bool

    def contains(self, value: Any) -> bool:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return False
        above = value > self.low or (value == self.low and not self.low_open)
        below = value < self.high or (value == self.high and not self.high_open)
        return above and below

    def meets(self, other: _Interval) -> bool:
        if self.high < other.low or other.high < self.low:
            return False
        if self.high == other.low:
            return not (self.high_open or other.low_open)
        if other.high == self.low:
            return not (other.high_open or self.low_open)
        return True


_ANY = "any"
_FLIP = {"<": ">", "<=": ">=", ">": "<", ">=": "<=", "==": "=="}


def _literal(node: Any) -> tuple[bool, Any]:
    try:
        value = ast.literal_eval(node)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False, None
    return (True, value) if isinstance(value, (str, int, float, bool)) or value is None else (False, None)


def _bound(op: str, value: float) -> _Interval | set[Any]:
    inf = math.inf
    return {
        "<": _Interval(-inf, value, True, True), "<=": _Interval(-inf, value, True, False),
        ">": _Interval(value, inf, True, True), ">=": _Interval(value, inf, False, True),
        "==": {value},
    }[op]


_OPS = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=", ast.Eq: "=="}


def _entry_set(text: str) -> Any:
    """What an input entry matches, where carepath can tell: _ANY, a set of literals, an _Interval;
    None when it cannot (a name, a call, `!=`, ...)."""
    text = text.strip()
    if text in ("", "-"):
        return _ANY
    source = _QUESTION_MARK.sub("_q_", text) if _QUESTION_MARK.search(text) else text
    try:
        tree = ast.parse(source, mode="eval").body
    except SyntaxError:
        try:
            tree = ast.parse(f"_q_ {text}", mode="eval").body
        except SyntaxError:
            return None
    ok, value = _literal(tree)
    if ok:
        return {value}
    if not isinstance(tree, ast.Compare):
        return None
    operands = [tree.left, *tree.comparators]
    result: Any = _ANY
    for left, op, right in zip(operands, tree.ops, operands[1:], strict=False):
        if isinstance(op, ast.In) and isinstance(left, ast.Name) and left.id == "_q_":
            ok, values = False, None
            if isinstance(right, (ast.Tuple, ast.List, ast.Set)):
                pairs = [_literal(e) for e in right.elts]
                ok, values = all(p[0] for p in pairs), {p[1] for p in pairs}
            if not ok:
                return None
            piece: Any = values
        elif type(op) in _OPS:
            name_left = isinstance(left, ast.Name) and left.id == "_q_"
            name_right = isinstance(right, ast.Name) and right.id == "_q_"
            if name_left == name_right:
                return None
            ok, value = _literal(right if name_left else left)
            if not ok:
                return None
            symbol = _OPS[type(op)] if name_left else _FLIP[_OPS[type(op)]]
            if symbol != "==" and (isinstance(value, bool) or not isinstance(value, (int, float))):
                return None
            piece = _bound(symbol, value)
        else:
            return None
        result = _intersect(result, piece)
        if result is None:
            return None
    return result


def _intersect(a: Any, b: Any) -> Any:
    """The set matched by both (for `4 < ? < 6`), or None when it cannot be told."""
    if a == _ANY:
        return b
    if b == _ANY:
        return a
    if isinstance(a, set) and isinstance(b, set):
        return a & b
    if isinstance(a, set) or isinstance(b, set):
        points, interval = (a, b) if isinstance(a, set) else (b, a)
        return {p for p in points if interval.contains(p)}
    low = max((a.low, a.low_open), (b.low, b.low_open), key=lambda t: (t[0], t[1]))
    high = min((a.high, not a.high_open), (b.high, not b.high_open), key=lambda t: (t[0], t[1]))
    return _Interval(low[0], high[0], low[1], not high[1])


def _overlap(a: Any, b: Any) -> bool:
    if a == _ANY or b == _ANY:
        return True
    if isinstance(a, set) and isinstance(b, set):
        return bool(a & b)
    if isinstance(a, set) or isinstance(b, set):
        points, interval = (a, b) if isinstance(a, set) else (b, a)
        return any(interval.contains(p) for p in points)
    empty_a = a.low > a.high or (a.low == a.high and (a.low_open or a.high_open))
    empty_b = b.low > b.high or (b.low == b.high and (b.low_open or b.high_open))
    return not (empty_a or empty_b) and a.meets(b)


def _priorities(table: Any) -> list[list[Any] | None]:
    """Per output, its outputValues as literals (the order PRIORITY and OUTPUT ORDER rank by), or None."""
    result: list[list[Any] | None] = []
    for output in _children(table, "output"):
        values = _children(output, "outputValues")
        text = _text(values[0]) if values else ""
        parsed: list[Any] | None = None
        if text:
            try:
                value = ast.literal_eval(f"({text},)")
                parsed = list(value)
            except (ValueError, SyntaxError):
                parsed = None
        result.append(parsed)
    return result


# --- the checks of one file -------------------------------------------------------------


def check_dmn(file: str, root: Any, problems: list[Problem]) -> dict[str, DecisionInfo]:
    """Check every decision of a DMN document (problems appended); the decisions by id, in document order."""
    decisions: dict[str, DecisionInfo] = {}

    def add(node: Any, message: str) -> None:
        problems.append(Problem(file, message, node.get("id"), node.sourceline))

    found = _children(root, "decision")
    if not found:
        add(root, "no decision in this DMN file")
        return decisions
    file_language = _language(root, None)
    for decision in found:
        decision_id = (decision.get("id") or "").strip()
        if not decision_id:
            add(decision, "a decision has no id")
            continue
        label = _one_line(decision.get("name") or decision_id)
        if decision_id in decisions:
            add(decision, f"decision id '{decision_id}' is used twice in this file")
            continue
        tag = (decision.get(f"{{{CAMUNDA_NS}}}versionTag") or "").strip() or None
        decisions[decision_id] = DecisionInfo(decision_id, label, file, decision.sourceline, _required_ids(decision),
                                              tag)
        _check_decision(decision, label, file_language, add)
    return decisions


def _check_decision(decision: Any, label: str, file_language: str | None, add: Any) -> None:
    tables = _children(decision, "decisionTable")
    if len(tables) != 1:
        other = [_local(c) for c in decision if _local(c) in ("literalExpression", "context", "invocation",
                                                                   "relation", "list", "functionDefinition")]
        what = f"a {other[0]}" if other else "no decision table"
        add(decision, f"decision '{label}' holds {what}: carepath evaluates decisions written as exactly one "
                      "decision table")
        return
    table = tables[0]
    language = _language(table, file_language)
    policy = " ".join((table.get("hitPolicy") or "UNIQUE").split()).upper()
    aggregation = (table.get("aggregation") or "").strip().upper()
    if policy not in HIT_POLICIES:
        add(table, f"decision '{label}': hit policy {policy} is not supported: use one of {', '.join(HIT_POLICIES)}")
    if aggregation and (policy != "COLLECT" or aggregation not in AGGREGATIONS):
        add(table, f"decision '{label}': aggregation {aggregation} is "
                   + (f"not supported: use one of {', '.join(AGGREGATIONS)}" if policy == "COLLECT"
                      else "only for hit policy COLLECT"))
    outputs = _children(table, "output")
    if policy in ("PRIORITY", "OUTPUT ORDER") and not any(_priorities(table)):
        add(table, f"decision '{label}': hit policy {policy} ranks rules by the outputs' allowed values "
                   "(outputValues), and no output has any")
    inputs = _children(table, "input")
    input_labels = [_one_line(c.get("label") or c.get("name") or c.get("id") or f"input {i + 1}")
                    for i, c in enumerate(inputs)]
    output_labels = [_one_line(c.get("label") or c.get("name") or c.get("id") or f"output {i + 1}")
                     for i, c in enumerate(outputs)]

    def cell(node: Any, where: str, text: str, unary: bool, inherited: str | None) -> None:
        lang = _language(node, inherited)
        other = _language_name(lang or "")
        if other:
            add(node, f"decision '{label}', {where}: `{_one_line(text)}` is written in {other}; carepath "
                      "evaluates Python expressions")
            return
        rewrite = _feel_rewrite(text, unary)
        if rewrite is not None:
            advice = f": write `{rewrite}`" if rewrite else ""
            add(node, f"decision '{label}', {where}: `{_one_line(text)}` is a FEEL expression; carepath "
                      f"evaluates Python expressions{advice}")
            return
        reason = _python_problem(text, unary)
        if reason:
            add(node, f"decision '{label}', {where}: `{_one_line(text)}` is refused: {reason}")

    for column, name in zip(inputs, input_labels, strict=False):
        expressions = _children(column, "inputExpression")
        text = _text(expressions[0]) if expressions else ""
        if not text:
            add(column, f"decision '{label}': input '{name}' has no expression")
        else:
            cell(expressions[0], f"input '{name}'", text, False, _language(column, language))
    for column, name in zip(outputs, output_labels, strict=False):
        if not (column.get("name") or column.get("label")):
            add(column, f"decision '{label}': output '{name}' has no name (the name its value is kept under)")
    rules = _children(table, "rule")
    sets: list[list[Any] | None] = []
    for number, rule in enumerate(rules, start=1):
        entries = _children(rule, "inputEntry")
        out_entries = _children(rule, "outputEntry")
        where = f"rule {number}"
        if len(entries) != len(inputs) or len(out_entries) != len(outputs):
            add(rule, f"decision '{label}', {where}: has {len(entries)} input and {len(out_entries)} output "
                      f"entries for {len(inputs)} inputs and {len(outputs)} outputs")
            sets.append(None)
            continue
        for entry, name in zip(entries, input_labels, strict=False):
            text = _text(entry)
            if text and text != "-":
                cell(entry, f"{where}, input '{name}'", text, True, language)
        for entry, name in zip(out_entries, output_labels, strict=False):
            text = _text(entry)
            if text:
                cell(entry, f"{where}, output '{name}'", text, False, language)
        sets.append([_entry_set(_text(e)) for e in entries])
    if policy == "UNIQUE":
        for i, first in enumerate(sets):
            for j in range(i + 1, len(sets)):
                second = sets[j]
                if first is None or second is None or any(s is None for s in (*first, *second)):
                    continue
                if all(_overlap(a, b) for a, b in zip(first, second, strict=False)):
                    add(rules[j], f"decision '{label}': rules {i + 1} ({rules[i].get('id')}) and {j + 1} "
                                  f"({rules[j].get('id')}) overlap: with hit policy UNIQUE at most one rule may "
                                  "match; make them exclusive, or use hit policy FIRST or PRIORITY")


def check_requirements(decisions: Mapping[str, DecisionInfo], known: Iterable[str],
                       problems: list[Problem]) -> set[str]:
    """Required decisions that exist, and no cycles; the ids of the decisions with a problem here."""
    known = set(known)
    broken: set[str] = set()
    for info in decisions.values():
        for required in info.required:
            if required not in decisions and required not in known:
                problems.append(Problem(info.file, f"decision '{info.name}' requires decision '{required}', which "
                                                   "is in no .dmn file of this bundle and not deployed",
                                        info.id, info.line))
                broken.add(info.id)
    state: dict[str, int] = {}
    reported: set[frozenset[str]] = set()

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for nxt in decisions[node].required if node in decisions else []:
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                if frozenset(cycle) not in reported:
                    reported.add(frozenset(cycle))
                    info = decisions[nxt]
                    problems.append(Problem(info.file, "decisions require each other in a cycle: "
                                                       + " → ".join(f"'{d}'" for d in cycle)
                                                       + "; a decision cannot depend on itself", info.id, info.line))
                broken.update(cycle)
            elif state.get(nxt) is None and nxt in decisions:
                visit(nxt, [*path, nxt])
        state[node] = 2

    for decision_id in decisions:
        if decision_id not in state:
            visit(decision_id, [decision_id])
    return broken


def evaluation_order(top: str, required: Mapping[str, list[str]]) -> list[str]:
    """`top` and the decisions it requires, each after those it requires (depth first, document order)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node: str, depth: int) -> None:
        if node in seen:
            return
        if depth > len(required) + 1:
            raise ValueError(f"decision '{node}' is part of a requirement cycle")
        for nxt in required.get(node, []):
            visit(nxt, depth + 1)
        seen.add(node)
        order.append(node)

    visit(top, 0)
    return order


# --- SpiffWorkflow's parser, for every decision of a file --------------------------------


class _OneDecisionParser(DMNParser):
    """The library's DMN parser, for one decision of a file that may hold several."""

    def __init__(self, parser: Any, root: Any, nsmap: dict[str, str], decision: Any, filename: str | None) -> None:
        super().__init__(parser, root, nsmap, filename=filename)
        self.decision_node = decision
        self.priorities = [_priorities(t) for t in _children(decision, "decisionTable")]
        self.aggregations = [(t.get("aggregation") or "").strip().upper() for t in _children(decision, "decisionTable")]

    def parse(self) -> None:
        if self.decision is None:
            self.decision = self._parse_decision([self.decision_node])

    @property
    def bpmn_id(self) -> str:
        return self.decision_node.get("id")

    def get_name(self) -> str:
        return self.decision_node.get("name")


class DecisionParsers:
    """Mixin for a BpmnDmnParser: every decision of a .dmn file, and business rule tasks evaluating a decision
    with its requirements. `deployed_dmn_parsers` keeps the decisions of the files a process version was deployed
    with, for tasks bound to them (`use_latest_decisions` puts the latest deployed in `dmn_parsers`)."""

    dmn_parsers: dict[str, Any]
    dmn_parsers_by_name: dict[str, Any]

    def add_dmn_xml(self, node: Any, filename: str | None = None) -> None:
        namespaces = dict(self.namespaces)  # type: ignore[attr-defined]
        namespaces.update({k: v for k, v in node.nsmap.items() if k is not None})
        namespaces["dmn"] = etree.QName(node).namespace
        for decision in node.findall(f"{{{namespaces['dmn']}}}decision"):
            if not decision.get("id"):
                continue
            parser = _OneDecisionParser(self, node, namespaces, decision, filename)
            self.dmn_parsers[parser.bpmn_id] = parser
            self.dmn_parsers_by_name[parser.get_name()] = parser

    def use_latest_decisions(self, roots: Mapping[str, Any]) -> None:
        """Keep the decisions added so far as the deployment's, then add the latest deployed (file -> root)."""
        self.deployed_dmn_parsers = dict(self.dmn_parsers)
        for name, root in roots.items():
            self.add_dmn_xml(root, filename=name)

    def use_pinned_decisions(self, roots: Mapping[str, Any]) -> None:
        """The .dmn files of the decision versions business rule tasks are bound to, by `pinned_key`."""
        kept = (self.dmn_parsers, self.dmn_parsers_by_name)
        self.pinned_dmn_parsers: dict[str, dict[str, Any]] = {}
        try:
            for key, root in roots.items():
                self.dmn_parsers, self.dmn_parsers_by_name = {}, {}
                self.add_dmn_xml(root, filename=f"(bound) {key}")
                self.pinned_dmn_parsers[key] = self.dmn_parsers
        finally:
            self.dmn_parsers, self.dmn_parsers_by_name = kept

    def get_engine(self, decision_ref: str | None, node: Any) -> DecisionEngine:
        registry = self.dmn_parsers
        if read_binding(node) == "deployment":
            registry = {**registry, **getattr(self, "deployed_dmn_parsers", {})}
        pinned = read_pinned(node)
        if pinned is not None and decision_ref is not None:  # without the bound files (a deploy's check): latest
            registry = {**registry, **getattr(self, "pinned_dmn_parsers", {}).get(
                pinned_key(decision_ref, pinned[0], pinned[1]), {})}
        if decision_ref not in registry:
            raise ValidationException(f"decision '{decision_ref}' is in no .dmn file of this bundle and not "
                                      "deployed", node=node, file_name="")
        required = {d: [r for r in _required_ids(p.decision_node)] for d, p in registry.items()}
        try:
            order = evaluation_order(decision_ref, required)
        except ValueError as exc:
            raise ValidationException(str(exc), node=node, file_name="") from None
        steps = []
        for decision_id in order:
            if decision_id not in registry:
                raise ValidationException(f"decision '{decision_ref}' requires decision '{decision_id}', which is "
                                          "in no .dmn file of this bundle and not deployed", node=node, file_name="")
            parser = registry[decision_id]
            parser.parse()
            table = parser.decision.decisionTables[0]
            steps.append(_Step(decision_id, parser.decision.name or decision_id, table,
                               parser.priorities[0], parser.aggregations[0]))
        return DecisionEngine(steps)


def binding_problem(node: Any) -> str | None:
    """Why a business rule task's binding to its decision is not one carepath supports, or None."""
    binding = read_binding(node)
    if binding in BINDINGS:
        return None
    if binding in PINNED:
        if read_pinned(node) is not None:
            return None
        raw_version = (node.get(f"{{{CAMUNDA_NS}}}decisionRefVersion") or "").strip()
        if binding == "version" and raw_version:
            return (f'binds its decision to camunda:decisionRefVersion="{_one_line(raw_version)[:60]}", which is '
                    "not a version number: write a whole number such as 2")
        attribute = ("camunda:decisionRefVersion" if binding == "version" else
                     "camunda:decisionRefVersionTag" if node.get(f"{{{CAMUNDA_NS}}}decisionRefBinding") else
                     "zeebe:calledDecision versionTag")
        return (f"binds its decision by {'version' if binding == 'version' else 'versionTag'} but gives no "
                f"{attribute}: name the version to use")
    raw = (node.get(f"{{{CAMUNDA_NS}}}decisionRefBinding") or "").strip()
    attribute = "camunda:decisionRefBinding"
    if not raw:
        attribute = "zeebe:calledDecision bindingType"
        raw = next((c.get("bindingType", "").strip() for c in
                    node.iterfind(f"./{{*}}extensionElements/{{{ZEEBE_NS}}}calledDecision")), binding)
    return (f'binds its decision by {attribute}="{_one_line(raw)[:60]}": carepath evaluates the latest deployed '
            'version (the default), the one deployed with the process ("deployment"), a version by number '
            '("version") or by tag ("versionTag")')


@dataclass(frozen=True)
class DecisionBinding:
    """A business rule task bound to one version of its decision: `kind` "version" (value: the number) or
    "versionTag" (value: the tag); checked against the deployed versions at deploy (engine/definitions.py)."""

    element_id: str
    name: str
    line: int | None
    decision_id: str
    kind: str
    value: str
    attribute: str


def pinned_key(decision_id: str, kind: str, value: str) -> str:
    return f"{decision_id}@{kind}={value}"


def read_pinned(node: Any) -> tuple[str, str, str] | None:
    """(kind "version" or "versionTag", the number or tag, the attribute giving it) when a business rule task is
    bound to one version of its decision and names it; else None."""
    binding = read_binding(node)
    if binding == "version":
        value = (node.get(f"{{{CAMUNDA_NS}}}decisionRefVersion") or "").strip()
        if value.isdigit() and int(value) > 0:
            return "version", str(int(value)), "camunda:decisionRefVersion"
        return None
    if binding == "versiontag":
        value = (node.get(f"{{{CAMUNDA_NS}}}decisionRefVersionTag") or "").strip()
        if value:
            return "versionTag", value, "camunda:decisionRefVersionTag"
        for called in node.iterfind(f"./{{*}}extensionElements/{{{ZEEBE_NS}}}calledDecision"):
            value = (called.get("versionTag") or "").strip()
            if value:
                return "versionTag", value, "zeebe:calledDecision versionTag"
    return None


def read_binding(node: Any) -> str:
    """'deployment' when a business rule task is bound to the decision deployed with its process, else 'latest'."""
    camunda = (node.get(f"{{{CAMUNDA_NS}}}decisionRefBinding") or "").strip().lower()
    if camunda:
        return camunda
    for called in node.iterfind(f"./{{*}}extensionElements/{{{ZEEBE_NS}}}calledDecision"):
        binding = (called.get("bindingType") or "").strip().lower()
        if binding:
            return binding
    return "latest"


# --- evaluation ---------------------------------------------------------------------------


@dataclass
class _Step:
    id: str
    name: str
    table: Any
    priorities: list[list[Any] | None]
    aggregation: str


class _Scope:
    """The task as the library's engine sees it, with the outputs of required decisions added to its data
    (the task's own data is not changed), and a script engine that shows a cell's `?` as the modeller wrote it."""

    def __init__(self, task: Any, data: dict[str, Any]) -> None:
        self._task = task
        self.data = data
        self.workflow = _Delegate(task.workflow, script_engine=_CellScriptEngine(task.workflow.script_engine))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._task, name)


class _Delegate:
    def __init__(self, target: Any, **overrides: Any) -> None:
        self._target = target
        self.__dict__.update(overrides)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


# the name the library gives a cell's `?` before evaluating it (DMNEngine.evaluate)
_LIBRARY_INPUT_NAME = "dmninputexpr"


class _CellScriptEngine(_Delegate):
    def __init__(self, script_engine: Any) -> None:
        super().__init__(script_engine)

    def evaluate(self, task: Any, expression: str, external_context: Any = None) -> Any:
        try:
            return self._target.evaluate(task, expression, external_context=external_context)
        except CarepathError as exc:
            if _LIBRARY_INPUT_NAME in exc.message:
                exc.message = exc.message.replace(_LIBRARY_INPUT_NAME, "?")
                exc.args = (exc.message,)
            raise


class DecisionEngine:
    """What SpiffWorkflow's business rule task calls (`result(task)`): the decision's required decisions first,
    then the decision, each table's rules matched by the library's DMNEngine."""

    def __init__(self, steps: list[_Step]) -> None:
        self.steps = steps
        self._matchers = []
        for step in steps:
            every = copy.copy(step.table)
            every.hit_policy = "RULE ORDER"  # the library stops at the first match only for UNIQUE
            self._matchers.append(DMNEngine(every))
        self.decision_table = steps[-1].table  # as the library's DMNEngine exposes it

    def result(self, task: Any) -> dict[str, Any]:
        scope = _Scope(task, dict(task.data))
        result: dict[str, Any] = {}
        for step, matcher in zip(self.steps, self._matchers, strict=True):
            try:
                result = self._apply(step, matcher.decide(scope), scope)
            except WorkflowTaskException as exc:
                exc.add_note(f"Decision '{step.name}'")
                raise
            scope.data.update(result)
        return result

    def rule_outputs(self, task: Any) -> list[dict[str, Any]]:
        """The outputs of each rule the hit policy keeps, one dict a rule, for a result variable's mapping
        (`camunda:mapDecisionResult`): the required decisions first, as `result` evaluates them; an aggregated
        COLLECT gives one dict of the aggregates."""
        scope = _Scope(task, dict(task.data))
        last = len(self.steps) - 1
        for index, (step, matcher) in enumerate(zip(self.steps, self._matchers, strict=True)):
            try:
                matched = matcher.decide(scope)
                if index < last:
                    scope.data.update(self._apply(step, matched, scope))
                    continue
                return self._kept_rules(step, matched, scope)
            except WorkflowTaskException as exc:
                exc.add_note(f"Decision '{step.name}'")
                raise
        return []

    def _kept_rules(self, step: _Step, matched: list[Any], scope: _Scope) -> list[dict[str, Any]]:
        policy = " ".join(step.table.hit_policy.split()).upper()
        if not matched:
            return []
        if step.aggregation or policy == "ANY":
            return [self._apply(step, matched, scope)]
        if policy == "UNIQUE" and len(matched) > 1:
            self._apply(step, matched, scope)  # raises, naming the rules
        if policy in ("UNIQUE", "FIRST"):
            return [matched[0].output_as_dict(scope)]
        outputs = [rule.output_as_dict(scope) for rule in matched]
        if policy in ("PRIORITY", "OUTPUT ORDER"):
            outputs.sort(key=lambda out: self._rank(step, out))
            return outputs[:1] if policy == "PRIORITY" else outputs
        return outputs  # COLLECT and RULE ORDER: every matching rule, in table order

    def _apply(self, step: _Step, matched: list[Any], scope: _Scope) -> dict[str, Any]:
        policy = " ".join(step.table.hit_policy.split()).upper()
        if not matched:
            if policy == "COLLECT":
                return {self._key(o): self._empty(step.aggregation) for o in step.table.outputs}
            if policy in ("RULE ORDER", "OUTPUT ORDER"):
                return {self._key(o): [] for o in step.table.outputs}
            return {}
        if policy == "UNIQUE" and len(matched) > 1:
            raise WorkflowTaskException(
                f"decision '{step.name}': rules {', '.join(str(r.row_number) for r in matched)} all match, and its "
                "hit policy UNIQUE allows one", task=scope._task)
        if policy in ("PRIORITY", "OUTPUT ORDER"):
            outputs = [(rule, rule.output_as_dict(scope)) for rule in matched]
            outputs.sort(key=lambda pair: self._rank(step, pair[1]))
            if policy == "PRIORITY":
                return outputs[0][1]
            return {self._key(o): [out.get(self._key(o)) for _r, out in outputs] for o in step.table.outputs}
        if policy == "ANY":
            outputs = [rule.output_as_dict(scope) for rule in matched]
            if any(out != outputs[0] for out in outputs[1:]):
                raise WorkflowTaskException(
                    f"decision '{step.name}': rules {', '.join(str(r.row_number) for r in matched)} match with "
                    "different outputs, and its hit policy ANY needs them to agree", task=scope._task)
            return outputs[0]
        if policy in ("COLLECT", "RULE ORDER"):
            outputs = [rule.output_as_dict(scope) for rule in matched]
            collected = {self._key(o): [out.get(self._key(o)) for out in outputs] for o in step.table.outputs}
            if step.aggregation:
                return {key: self._aggregate(step, key, values, scope) for key, values in collected.items()}
            return collected
        return matched[0].output_as_dict(scope)  # UNIQUE (one match) and FIRST

    @staticmethod
    def _key(output: Any) -> str:
        return output.name or output.label

    @staticmethod
    def _empty(aggregation: str) -> Any:
        return 0 if aggregation == "COUNT" else (None if aggregation else [])

    def _aggregate(self, step: _Step, key: str, values: list[Any], scope: _Scope) -> Any:
        present = [v for v in values if v is not None and v != ""]
        if step.aggregation == "COUNT":
            return len(present)
        if not present:
            return None
        try:
            if step.aggregation == "SUM":
                return sum(present)
            return min(present) if step.aggregation == "MIN" else max(present)
        except TypeError:
            raise WorkflowTaskException(
                f"decision '{step.name}': output '{key}' cannot be aggregated with {step.aggregation} "
                f"(values {present!r:.200})", task=scope._task) from None

    @staticmethod
    def _rank(step: _Step, output: Mapping[str, Any]) -> tuple[int, ...]:
        ranks = []
        for column, allowed in zip(step.table.outputs, step.priorities, strict=False):
            if allowed is None:
                continue
            value = output.get(column.name or column.label)
            ranks.append(allowed.index(value) if value in allowed else len(allowed))
        return tuple(ranks)
