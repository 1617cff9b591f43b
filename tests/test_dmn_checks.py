"""Deploy-time checks of DMN files (engine/dmn.py): every problem named with file, element and line, in words a
modeller can act on; overlapping UNIQUE rules, requirement cycles, FEEL cells and internal names."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.bpmn import parse_bundle
from engine.dmn import _entry_set, _overlap
from engine.errors import DefinitionError, Problem

FIXTURES = Path(__file__).parent / "fixtures" / "dmn"


def problems_of(files: dict[str, bytes], **kwargs) -> list[Problem]:
    with pytest.raises(DefinitionError) as err:
        parse_bundle(files, **kwargs)
    return err.value.problems


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def table(*rules: tuple[str, ...], policy: str = "UNIQUE", inputs: tuple[str, ...] = ("amount",)) -> bytes:
    """A one-decision DMN file; each rule is its input entries followed by one output entry."""
    columns = "".join(f'<input id="in{i}" label="{t}"><inputExpression id="ie{i}"><text>{t}</text>'
                      f"</inputExpression></input>" for i, t in enumerate(inputs))
    body = ""
    for n, rule in enumerate(rules):
        *entries, out = rule
        cells = "".join(f'<inputEntry id="r{n}i{i}"><text>{e}</text></inputEntry>' for i, e in enumerate(entries))
        body += f'<rule id="r{n}">{cells}<outputEntry id="r{n}o"><text>{out}</text></outputEntry></rule>'
    return (f'<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="x">'
            f'<decision id="dec" name="Decision"><decisionTable id="t" hitPolicy="{policy}">{columns}'
            f'<output id="o" name="result" />{body}</decisionTable></decision></definitions>').encode()


def test_two_decisions_of_one_file_both_deploy() -> None:
    bundle = parse_bundle({"two_decisions.dmn": fixture("two_decisions.dmn")})
    assert bundle.decisions == {"band": "two_decisions.dmn", "route": "two_decisions.dmn"}


def test_a_process_may_use_the_second_decision_of_a_file() -> None:
    # before: "uses decision 'route', which is in no .dmn file of this bundle and not deployed"
    bpmn = (FIXTURES / "uses_decision.bpmn").read_text().replace("DECISION", "route").replace("BINDING", "")
    bundle = parse_bundle({"two_decisions.dmn": fixture("two_decisions.dmn"), "p.bpmn": bpmn.encode()})
    assert bundle.processes["DECIDE"].decisions_used == {"route"}


def test_overlapping_unique_rules_are_refused_naming_both() -> None:
    problems = problems_of({"overlap_unique.dmn": fixture("overlap_unique.dmn")})
    assert [(p.file, p.element_id, p.line) for p in problems] == [("overlap_unique.dmn", "r_mid", 9)]
    assert "decision 'Charge band': rules 1 (r_low) and 2 (r_mid) overlap" in problems[0].message
    assert "use hit policy FIRST or PRIORITY" in problems[0].message


@pytest.mark.parametrize(("first", "second", "overlap"), [
    ('"home"', '"home"', True),
    ('"home"', '"day"', False),
    ("< 5", ">= 5", False),            # the boundary belongs to one rule only
    ("<= 5", ">= 5", True),
    ("1 <= ? < 3", "3 <= ? <= 4", False),
    ("1 <= ? <= 3", "? >= 3", True),
    ("in (1, 2)", "2", True),
    ("in (1, 2)", "> 2", False),
    ("-", '"anything"', True),
    ("== 4", "4 < ? < 6", False),
])
def test_overlap_of_comparable_entries(first: str, second: str, overlap: bool) -> None:
    assert _overlap(_entry_set(first), _entry_set(second)) is overlap
    dmn = table((first.replace("<", "&lt;").replace(">", "&gt;"), '"a"'),
                (second.replace("<", "&lt;").replace(">", "&gt;"), '"b"'))
    if overlap:
        assert "overlap" in problems_of({"t.dmn": dmn})[0].message
    else:
        parse_bundle({"t.dmn": dmn})


@pytest.mark.parametrize("entry", ["limit", "!= 3", "len(?) > 2", "? % 2 == 0"])
def test_entries_carepath_cannot_compare_are_left_to_run_time(entry: str) -> None:
    assert _entry_set(entry) is None
    parse_bundle({"t.dmn": table(("&gt;= 0", '"a"'), (entry.replace(">", "&gt;"), '"b"'))})


def test_first_and_collect_may_overlap() -> None:
    for policy in ("FIRST", "COLLECT", "PRIORITY", "ANY", "RULE ORDER"):
        rules = (("&gt;= 0", '"a"'), ("&gt;= 5", '"b"'))
        if policy == "PRIORITY":
            continue  # needs outputValues; see test_priority_needs_output_values
        parse_bundle({"t.dmn": table(*rules, policy=policy)})


def test_priority_needs_output_values() -> None:
    problems = problems_of({"t.dmn": table(("&gt;= 0", '"a"'), policy="PRIORITY")})
    assert "ranks rules by the outputs' allowed values (outputValues)" in problems[0].message


def test_unknown_hit_policy_and_aggregation_are_named() -> None:
    problems = problems_of({"t.dmn": table(("-", '"a"'), policy="SOMETIMES")})
    assert "hit policy SOMETIMES is not supported: use one of UNIQUE, FIRST, PRIORITY, ANY, COLLECT" \
        in problems[0].message
    dmn = table(("-", "1")).replace(b'hitPolicy="UNIQUE"', b'hitPolicy="COLLECT" aggregation="AVERAGE"')
    assert "aggregation AVERAGE is not supported: use one of SUM, COUNT, MIN, MAX" in \
        problems_of({"t.dmn": dmn})[0].message


def test_feel_cells_name_the_language_decision_rule_and_cell_with_the_python_to_write() -> None:
    problems = {p.element_id: (p.message, p.line) for p in problems_of({"feel.dmn": fixture("feel.dmn")})}
    assert problems["r_range_a"] == (
        "decision 'Eligibility', rule 1, input 'Amount': `[1..10]` is a FEEL expression; carepath evaluates "
        "Python expressions: write `1 <= ? <= 10`", 8)
    assert problems["r_range_k"][0].endswith('is a FEEL expression; carepath evaluates Python expressions: '
                                             'write `in ("home","day")`')
    assert problems["r_range_o"][0].endswith("write `True`")
    assert problems["r_not_k"][0].endswith('write `!= "residential"`')
    assert problems["r_not_o"][0].endswith('write `"yes" if amount > 5 else "no"`')
    assert "`date(\"2026-01-01\")` is a FEEL expression; carepath evaluates Python expressions" \
        in problems["r_date_a"][0]
    assert "`${amount > 5}` is written in JUEL; carepath evaluates Python expressions" in problems["r_juel_o"][0]
    assert "r_ok_o" not in problems and "r_ok_a" not in problems  # `>= 0` and `amount > 5` are Python too


def test_simple_feel_unary_tests_the_library_accepts_keep_working() -> None:
    for entry in ("&lt; 5", "&gt;= 5", '"high"', "5", "4 &lt; ? &lt; 6", "-", "in (1, 2)", "True"):
        parse_bundle({"t.dmn": table((entry, '"x"'))})


def test_internal_names_never_reach_a_message() -> None:
    # before: "... refused in expression 'dmninput == undefined_name.__class__'"
    problems = problems_of({"feel.dmn": fixture("feel.dmn")})
    assert not any("dmninput" in p.message for p in problems)
    message = next(p.message for p in problems if p.element_id == "r_q_a")
    assert message == ("decision 'Eligibility', rule 6, input 'Amount': `? == undefined_name.__class__` is "
                       'refused: "__class__" is an invalid attribute name because it starts with "_"')
    syntax = problems_of({"t.dmn": table(("&gt; (3", '"x"'))})[0].message
    assert "dmninput" not in syntax and "cell_input" not in syntax and "`> (3` is refused: syntax error" in syntax


def test_cycles_and_missing_requirements_are_refused_by_name() -> None:
    problems = problems_of({"cycle.dmn": fixture("cycle.dmn")})
    messages = sorted(p.message for p in problems)
    assert messages == [
        "decision 'Beta' requires decision 'gamma', which is in no .dmn file of this bundle and not deployed",
        "decisions require each other in a cycle: 'alpha' → 'beta' → 'alpha'; a decision cannot depend on itself",
    ]
    # a requirement on a decision deployed earlier is allowed
    fixed = fixture("cycle.dmn").replace(b'<requiredDecision href="#alpha" />', b"")
    parse_bundle({"cycle.dmn": fixed}, known_decisions={"gamma"})


def test_a_decision_that_is_not_a_table_is_named() -> None:
    dmn = (b'<definitions xmlns="https://www.omg.org/spec/DMN/20191111/MODEL/" id="d" name="d" namespace="x">'
           b'<decision id="lit" name="Literal"><literalExpression id="le"><text>1</text></literalExpression>'
           b'</decision></definitions>')
    assert problems_of({"lit.dmn": dmn})[0].message == (
        "decision 'Literal' holds a literalExpression: carepath evaluates decisions written as exactly one "
        "decision table")


@pytest.mark.parametrize(("binding", "message"), [
    ('camunda:decisionRefBinding="newest"',
     'binds its decision by camunda:decisionRefBinding="newest": carepath evaluates the latest deployed version (the '
     'default), the one deployed with the process ("deployment"), a version by number ("version") or by tag '
     '("versionTag")'),
    ('camunda:decisionRefBinding="version"',
     "binds its decision by version but gives no camunda:decisionRefVersion: name the version to use"),
    ('camunda:decisionRefBinding="version" camunda:decisionRefVersion="two"',
     'binds its decision to camunda:decisionRefVersion="two", which is not a version number: write a whole number '
     'such as 2'),
    ('camunda:decisionRefBinding="versionTag"',
     "binds its decision by versionTag but gives no camunda:decisionRefVersionTag: name the version to use"),
])
def test_a_binding_carepath_cannot_follow_is_named_at_deploy(binding: str, message: str) -> None:
    bpmn = (FIXTURES / "uses_decision.bpmn").read_text().replace("DECISION", "band").replace("BINDING", binding)
    problems = problems_of({"two_decisions.dmn": fixture("two_decisions.dmn"), "p.bpmn": bpmn.encode()})
    assert [(p.element_id, p.line) for p in problems] == [("rule", 6)]
    assert problems[0].message == f"business rule task 'Decide' {message}"


def test_latest_and_deployment_bindings_are_accepted() -> None:
    for binding in ('camunda:decisionRefBinding="latest"', 'camunda:decisionRefBinding="deployment"',
                    'camunda:decisionRefBinding="version" camunda:decisionRefVersion="1"',
                    'camunda:decisionRefBinding="versionTag" camunda:decisionRefVersionTag="v1"'):
        bpmn = (FIXTURES / "uses_decision.bpmn").read_text().replace("DECISION", "band").replace("BINDING", binding)
        parse_bundle({"two_decisions.dmn": fixture("two_decisions.dmn"), "p.bpmn": bpmn.encode()})
