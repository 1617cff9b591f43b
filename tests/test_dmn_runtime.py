"""Decisions at run time, on SQLite and PostgreSQL: every decision of a file, a decision requirement graph
evaluated in order, the hit policies (COLLECT with SUM and COUNT), and decisions deployed on their own and
versioned (a new version changes the outcome of new evaluations; `deployment` binding keeps the old one).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.cli import main
from engine.errors import DefinitionError
from engine.schema import decision_versions, events

FIXTURES = Path(__file__).parent / "fixtures" / "dmn"


def process(decision: str, binding: str = "") -> bytes:
    """A process evaluating `decision` (process id decide_<decision>), then waiting at a user task."""
    text = (FIXTURES / "uses_decision.bpmn").read_text()
    return (text.replace("DECISION", decision).replace("BINDING", binding)
            .replace('"DECIDE"', f'"decide_{decision}"').encode())


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def decide(eng, decision: str, **data):
    res = eng.start(f"decide_{decision}", data=data)
    assert res.status == "waiting", res.incident
    return eng.instance_snapshot(res.instance_id)["data"]


def stored_versions(eng) -> list[tuple[str, int]]:
    with eng.db.engine.connect() as conn:
        rows = conn.execute(select(decision_versions.c.decision_id, decision_versions.c.version)
                            .order_by(decision_versions.c.id)).all()
    return [tuple(r) for r in rows]


def test_every_decision_of_a_file_is_found(make_engine):
    # before: only the first decision of a file was registered, and 'route' (the second) was refused as
    # "in no .dmn file of this bundle"
    eng = make_engine()
    eng.deploy(files={"two_decisions.dmn": fixture("two_decisions.dmn"), "route.bpmn": process("route"),
                      "band.bpmn": process("band")})
    assert decide(eng, "route", urgent=True)["route"] == "duty team"
    assert decide(eng, "route", urgent=False)["route"] == "waiting list"
    assert decide(eng, "band", score=7)["band"] == "high"


def test_a_graph_of_three_decisions_is_evaluated_in_order(make_engine):
    # before: a decision requiring another deployed, then failed at run time (its inputs were never set)
    eng = make_engine()
    eng.deploy(files={"drg.dmn": fixture("drg.dmn"), "p.bpmn": process("package")})
    # points = needs*2 (+5 living alone) -> band (>= 10 high) -> package
    data = decide(eng, "package", needs=3, lives_alone=True)
    assert data["package"] == "residential review, 11 points"
    data = decide(eng, "package", needs=3, lives_alone=False)
    assert data["package"] == "home care, 6 points"
    # only the decision the task names becomes task data; what it required stays inside the evaluation
    assert "points" not in data and "band" not in data


@pytest.mark.parametrize(("decision", "data", "expected"), [
    ("services_count", {"age": 72}, {"services": 3}),       # COLLECT COUNT
    ("services_count", {"age": 12}, {"services": 0}),       # COUNT of nothing is 0
    ("services_list", {"age": 70}, {"services": ["adult social care", "older people's team"]}),  # COLLECT
    ("services_list", {"age": 10}, {"services": []}),
    ("first_match", {"age": 70}, {"team": "older people"}),  # FIRST: the first in rule order
    ("first_match", {"age": 30}, {"team": "adults"}),
    ("priority", {"risk": 9}, {"urgency": "urgent"}),        # PRIORITY: by the order of outputValues
    ("priority", {"risk": 6}, {"urgency": "soon"}),
    ("priority", {"risk": 1}, {"urgency": "routine"}),
    ("any_agree", {"age": 70}, {"eligible": True}),          # ANY: matching rules agree
])
def test_hit_policies(make_engine, decision, data, expected):
    eng = make_engine()
    eng.deploy(files={"hit_policies.dmn": fixture("hit_policies.dmn"), "p.bpmn": process(decision)})
    got = decide(eng, decision, **data)
    assert {k: got[k] for k in expected} == expected


def test_collect_sum_inside_a_graph(make_engine):
    eng = make_engine()
    eng.deploy(files={"drg.dmn": fixture("drg.dmn"), "p.bpmn": process("points")})
    assert decide(eng, "points", needs=4, lives_alone=True)["points"] == 13  # 8 + 5
    assert decide(eng, "points", needs=4, lives_alone=False)["points"] == 8


def test_any_with_disagreeing_rules_is_an_incident_naming_them(make_engine):
    eng = make_engine()
    dmn = fixture("hit_policies.dmn").replace(b"<text>age &lt; 200</text>", b"<text>False</text>")
    eng.deploy(files={"hit_policies.dmn": dmn, "p.bpmn": process("any_agree")})
    res = eng.start("decide_any_agree", data={"age": 70})
    assert res.status == "failed" or res.incident is not None
    assert "rules 1, 2 match with different outputs" in json.dumps(res.incident)


def test_unique_rules_matching_together_at_run_time_is_an_incident(make_engine):
    # an overlap carepath cannot see at deploy (a rule compares with a name) is caught when it happens
    dmn = fixture("two_decisions.dmn").replace(b"<text>&lt; 5</text>", b"<text>&lt; limit</text>")
    eng = make_engine()
    eng.deploy(files={"two_decisions.dmn": dmn, "p.bpmn": process("band")})
    res = eng.start("decide_band", data={"score": 7, "limit": 10})
    assert res.incident is not None
    assert "rules 1, 2 all match, and its hit policy UNIQUE allows one" in json.dumps(res.incident)


def test_a_dmn_file_deploys_on_its_own_and_new_versions_change_new_evaluations(make_engine):
    # before: a .dmn on its own printed "nothing to deploy" and was not stored
    eng = make_engine()
    refs = eng.deploy(files={"two_decisions.dmn": fixture("two_decisions.dmn")})
    assert [(r.kind, r.process_id, r.version, r.created) for r in refs] == [
        ("decision", "band", 1, True), ("decision", "route", 1, True)]
    assert stored_versions(eng) == [("band", 1), ("route", 1)]
    # a process using a decision deployed earlier, and one bound to the version deployed with it
    eng.deploy(files={"band.bpmn": process("band")})
    eng.deploy(files={"pinned.bpmn": process("route", 'camunda:decisionRefBinding="deployment"')})
    assert decide(eng, "band", score=4)["band"] == "low"
    assert decide(eng, "route", urgent=True)["route"] == "duty team"
    waiting = eng.start("decide_band", data={"score": 4})

    changed = (fixture("two_decisions.dmn").replace(b'"low"', b'"lower"')
               .replace(b'"duty team"', b'"rapid response"'))
    again = eng.deploy(files={"two_decisions.dmn": changed})
    assert [(r.process_id, r.version, r.created) for r in again] == [("band", 2, True), ("route", 2, True)]
    assert decide(eng, "band", score=4)["band"] == "lower"          # latest version, for new evaluations
    # bound to the version deployed with the process (decision route v1, deployed before it)
    assert decide(eng, "route", urgent=True)["route"] == "duty team"
    assert eng.instance_snapshot(waiting.instance_id)["data"]["band"] == "low"  # evaluated before: unchanged
    same = eng.deploy(files={"two_decisions.dmn": changed})
    assert [(r.version, r.created) for r in same] == [(2, False), (2, False)]
    with eng.db.engine.connect() as conn:
        deployed = [json.loads(r.data) for r in conn.execute(
            select(events.c.data).where(events.c.type == "definitions.deployed").order_by(events.c.seq))]
    assert deployed[0]["decisions"] == [{"decision_id": "band", "version": 1, "decision_version_id": 1},
                                        {"decision_id": "route", "version": 1, "decision_version_id": 2}]


def test_deployment_binding_keeps_the_decision_deployed_with_the_process(make_engine):
    eng = make_engine()
    eng.deploy(files={"two_decisions.dmn": fixture("two_decisions.dmn"),
                      "pinned.bpmn": process("route", 'camunda:decisionRefBinding="deployment"'),
                      "band.bpmn": process("band")})
    changed = fixture("two_decisions.dmn").replace(b'"low"', b'"lower"').replace(b'"duty team"', b'"rapid"')
    eng.deploy(files={"two_decisions.dmn": changed})
    assert decide(eng, "route", urgent=True)["route"] == "duty team"  # pinned to its deployment
    assert decide(eng, "band", score=1)["band"] == "lower"            # latest


def test_a_refused_decision_stores_nothing(make_engine):
    eng = make_engine()
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files={"overlap_unique.dmn": fixture("overlap_unique.dmn")})
    assert "rules 1 (r_low) and 2 (r_mid) overlap" in str(err.value)
    assert stored_versions(eng) == []


def test_cli_deploys_a_dmn_file_on_its_own(make_engine, tmp_path, capsys):
    eng = make_engine()
    path = tmp_path / "two_decisions.dmn"
    path.write_bytes(fixture("two_decisions.dmn"))
    assert main(["deploy", str(path), "--db", eng.db.url]) == 0
    out = capsys.readouterr().out
    assert "decision band version 1" in out and "decision route version 1" in out
    assert "nothing to deploy" not in out
    assert main(["deploy", str(path), "--db", eng.db.url]) == 0
    assert "decision band version 1 (unchanged)" in capsys.readouterr().out
    path.write_bytes(fixture("two_decisions.dmn").replace(b'"low"', b'"lower"'))
    assert main(["deploy", str(path), "--db", eng.db.url]) == 0
    assert "decision band version 2" in capsys.readouterr().out
    assert stored_versions(eng) == [("band", 1), ("route", 1), ("band", 2), ("route", 2)]


def test_cli_refuses_a_graph_with_a_cycle_naming_it(make_engine, tmp_path, capsys):
    eng = make_engine()
    path = tmp_path / "cycle.dmn"
    path.write_bytes(fixture("cycle.dmn"))
    assert main(["deploy", str(path), "--db", eng.db.url]) == 1
    err = capsys.readouterr().err
    assert "cycle: 'alpha' → 'beta' → 'alpha'" in err
    assert "requires decision 'gamma', which is in no .dmn file of this bundle and not deployed" in err
    assert stored_versions(eng) == []


def test_a_decision_may_require_one_deployed_earlier_in_another_file(make_engine):
    eng = make_engine()
    drg = fixture("drg.dmn").decode()
    points_only = drg[:drg.index('  <decision id="package"')] + drg[drg.index('  <decision id="points"'):]
    band_only = (drg[:drg.index('  <decision id="package"')] + drg[drg.index('  <decision id="band"'):
                                                                  drg.index('  <decision id="points"')]
                 + "</definitions>\n")
    with pytest.raises(DefinitionError) as err:  # 'points' is nowhere yet
        eng.deploy(files={"band.dmn": band_only.encode()})
    assert "decision 'Band' requires decision 'points', which is in no .dmn file" in str(err.value)
    eng.deploy(files={"points.dmn": points_only.encode()})
    eng.deploy(files={"band.dmn": band_only.encode()})
    eng.deploy(files={"p.bpmn": process("band")})
    assert decide(eng, "band", needs=6, lives_alone=False)["band"] == "high"  # 12 points
    assert decide(eng, "band", needs=2, lives_alone=True)["band"] == "low"    # 9 points
    # a new version of the required decision changes the outcome of the one requiring it
    eng.deploy(files={"points.dmn": points_only.replace("<text>5</text>", "<text>8</text>").encode()})
    assert decide(eng, "band", needs=2, lives_alone=True)["band"] == "high"   # 12 points


def test_a_failing_cell_at_run_time_names_the_cell_without_internal_names(make_engine):
    dmn = fixture("two_decisions.dmn").replace(b"<text>&lt; 5</text>", b"<text>? &lt; limit</text>")
    eng = make_engine()
    eng.deploy(files={"two_decisions.dmn": dmn, "p.bpmn": process("band")})
    res = eng.start("decide_band", data={"score": 7})  # no 'limit' in the data
    text = json.dumps(res.incident)
    assert "dmninput" not in text
    assert "name 'limit' is not defined in expression '? < limit'" in text
    assert "Failed to execute DMN Rule on row 1. Decision 'Band'. Business Rule Task 'Decide'" in text


def test_replay_evaluates_each_step_with_the_decision_version_of_its_time(make_engine):
    from datetime import timedelta

    from engine.replay import replay_case

    eng = make_engine()
    eng.deploy(files={"two_decisions.dmn": fixture("two_decisions.dmn"), "p.bpmn": process("band")})
    case = eng.create_case("Replayed")
    first = eng.start("decide_band", case_id=case, data={"score": 1})
    eng.advance_clock(timedelta(days=1))
    eng.deploy(files={"two_decisions.dmn": fixture("two_decisions.dmn").replace(b'"low"', b'"lower"')})
    eng.advance_clock(timedelta(days=1))
    second = eng.start("decide_band", case_id=case, data={"score": 1})
    assert eng.instance_snapshot(first.instance_id)["data"]["band"] == "low"
    assert eng.instance_snapshot(second.instance_id)["data"]["band"] == "lower"
    report = replay_case(eng, case)
    assert report.ok, report.divergence
    assert report.instances_compared == 2


@pytest.mark.parametrize(("mapping", "data", "expected"), [
    # FIRST keeps one rule after 'band' and 'points' are evaluated: the first in table order
    ("singleEntry", {"needs": 3, "lives_alone": True}, "residential review, 11 points"),
    ("singleResult", {"needs": 3, "lives_alone": False}, {"package": "home care, 6 points"}),
    ("resultList", {"needs": 3, "lives_alone": True}, [{"package": "residential review, 11 points"}]),
    ("collectEntries", {"needs": 1, "lives_alone": False}, ["home care, 2 points"]),
])
def test_a_result_variable_maps_the_rules_the_hit_policy_keeps_after_the_required_decisions(
        make_engine, mapping, data, expected):
    # camunda:resultVariable reads the decision's matched rules; with a requirement graph the required
    # decisions are evaluated first, and under FIRST only the first matching rule is kept (both rules of
    # 'package' match a 'high' band: a result list of two would be wrong)
    text = process("package").decode().replace(
        'camunda:decisionRef="package"',
        f'camunda:decisionRef="package" camunda:resultVariable="plan" camunda:mapDecisionResult="{mapping}"')
    eng = make_engine()
    eng.deploy(files={"drg.dmn": fixture("drg.dmn"), "p.bpmn": text.encode()})
    result = decide(eng, "package", **data)
    assert result["plan"] == expected
    assert "package" not in result  # kept in the result variable, not merged into the task data


def _route_version(tag: str, fast: str) -> bytes:
    """two_decisions.dmn with decision route tagged `tag` (camunda:versionTag) and urgent cases going to `fast`."""
    return (fixture("two_decisions.dmn")
            .replace(b'<definitions ', b'<definitions xmlns:camunda="http://camunda.org/schema/1.0/bpmn" ')
            .replace(b'<decision id="route" name="Route">',
                     f'<decision id="route" name="Route" camunda:versionTag="{tag}">'.encode())
            .replace(b'"duty team"', f'"{fast}"'.encode()))


def test_a_task_bound_to_a_version_by_number_or_tag_evaluates_that_version(make_engine):
    # before: decisionRefBinding="version" and "versionTag" were refused at deploy
    eng = make_engine()
    for tag, fast in (("v1", "duty team"), ("v2", "rapid response"), ("v3", "hospital team")):
        eng.deploy(files={"two_decisions.dmn": _route_version(tag, fast)})
    with eng.db.engine.connect() as conn:
        tags = conn.execute(select(decision_versions.c.version, decision_versions.c.version_tag)
                            .where(decision_versions.c.decision_id == "route")
                            .order_by(decision_versions.c.version)).all()
    assert [tuple(t) for t in tags] == [(1, "v1"), (2, "v2"), (3, "v3")]  # the tags are stored
    by_number = process("route", 'camunda:decisionRefBinding="version" camunda:decisionRefVersion="2"')
    eng.deploy(files={"by_number.bpmn": by_number})
    assert decide(eng, "route", urgent=True)["route"] == "rapid response"  # version 2, not the latest (3)
    by_tag = (process("route", 'camunda:decisionRefBinding="versionTag" camunda:decisionRefVersionTag="v1"')
              .replace(b'"decide_route"', b'"decide_tagged"'))
    eng.deploy(files={"by_tag.bpmn": by_tag})
    res = eng.start("decide_tagged", data={"urgent": True})
    assert eng.instance_snapshot(res.instance_id)["data"]["route"] == "duty team"  # the version tagged v1
    # a new version changes neither
    eng.deploy(files={"two_decisions.dmn": _route_version("v4", "night team")})
    assert decide(eng, "route", urgent=True)["route"] == "rapid response"
    res = eng.start("decide_tagged", data={"urgent": True})
    assert eng.instance_snapshot(res.instance_id)["data"]["route"] == "duty team"
    from engine.replay import replay_case

    report = replay_case(eng, res.case_id)  # the replay evaluates the same bound version
    assert report.ok, str(report)


def test_a_version_deployed_in_the_same_bundle_may_be_bound(make_engine):
    eng = make_engine()
    eng.deploy(files={"two_decisions.dmn": _route_version("v1", "duty team"),
                      "p.bpmn": process("route", 'camunda:decisionRefBinding="versionTag" '
                                                 'camunda:decisionRefVersionTag="v1"')})
    eng.deploy(files={"two_decisions.dmn": _route_version("v2", "rapid response")})
    assert decide(eng, "route", urgent=True)["route"] == "duty team"


@pytest.mark.parametrize(("binding", "words"), [
    ('camunda:decisionRefBinding="version" camunda:decisionRefVersion="7"',
     "business rule task 'Decide' is bound to version 7 of decision 'route' (camunda:decisionRefVersion), which is "
     "not deployed: its versions are 1 (tagged 'v1'), 2 (tagged 'v2')"),
    ('camunda:decisionRefBinding="versionTag" camunda:decisionRefVersionTag="v9"',
     "business rule task 'Decide' is bound to a version tagged 'v9' of decision 'route' "
     "(camunda:decisionRefVersionTag), which is not deployed"),
])
def test_a_binding_to_a_version_that_is_not_deployed_is_a_deploy_problem_and_stores_nothing(make_engine, binding,
                                                                                              words):
    eng = make_engine()
    eng.deploy(files={"two_decisions.dmn": _route_version("v1", "duty team")})
    eng.deploy(files={"two_decisions.dmn": _route_version("v2", "rapid response")})
    with pytest.raises(DefinitionError) as err:
        eng.deploy(files={"p.bpmn": process("route", binding)})
    [problem] = err.value.problems
    assert (problem.file, problem.element_id, problem.line) == ("p.bpmn", "rule", 6)
    assert words in problem.message
    with pytest.raises(Exception, match="decide_route"):
        eng.start("decide_route", data={"urgent": True})  # nothing was deployed


def test_the_script_engine_parses_a_decision_entry_once_and_still_refuses_one_that_does_not_parse():
    """SpiffWorkflow's DMN engine asks the script engine to validate every entry at every decision; the answer
    for a text is kept, and a text that does not parse (an operator entry such as `>= 65`, which the DMN engine
    tries that way first) is parsed once too, yet refused every time it is asked."""
    from engine.registry import HandlerRegistry
    from engine.scripting import CarepathScriptEngine, _parse_error

    eng = CarepathScriptEngine(HandlerRegistry())
    before = _parse_error.cache_info().hits
    eng.validate("age >= 65 and score < 3")
    eng.validate("age >= 65 and score < 3")
    assert _parse_error.cache_info().hits == before + 1
    before = _parse_error.cache_info()
    for _ in range(3):
        with pytest.raises(SyntaxError) as exc:
            eng.validate("age >= ")
        assert (exc.value.msg, exc.value.lineno, exc.value.offset) == ("invalid syntax", 1, 8)  # as the parser says
    after = _parse_error.cache_info()
    assert (after.misses, after.hits) == (before.misses + 1, before.hits + 2)
