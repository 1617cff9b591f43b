"""`carepath simulate` (issue 16, carepath/simulate.py): synthetic contacts through the real diagrams, handlers,
decision tables and forms on a throwaway simulated-clock database.

Small scenarios of a few days, so the file stays fast: the routing the screening table makes from the people
drawn, the same seed giving the same output, a queue that forms when a team is short of staff and not when it
is not, each refusal of a bad scenario naming its line and key, and the live database left as it was.
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import pytest
from sqlalchemy import select

from carepath import cli, simulate
from engine.forms import FormLibrary
from engine.runtime import Engine
from engine.schema import chains, events
from tests.simulation_held_world import state

ROOT = Path(__file__).resolve().parent.parent

# one route into the front door, people who either cannot achieve two outcomes (likely eligible: reablement,
# by the screening table) or none and no needs (information and advice: the front door ends)
ROUTING = """\
start: 2026-04-01
days: {days}
seed: {seed}
arrivals:
  self: {{per_year: {per_year}, process: front_door, caller: self}}
weekday: [1, 1, 1, 1, 1, 1, 1]
people:
  outcomes_unable: {{0: 0.7, 2: 0.3}}
  needs: {{0: 1.0}}
  reablement_appropriate: 1.0
durations:
  tasks:
    record_contact: {{median_hours: {hours}, spread: 0.2}}
teams:
  front_door: {{staff: {staff}, hours: "09:00-17:00"}}
  reablement: {{staff: 30, hours: "08:00-20:00", weekends: true}}
"""


def scenario(tmp_path: Path, name: str = "s.yaml", *, days: int = 3, seed: int = 7, per_year: int = 7300,
             staff: int = 40, hours: float = 0.3, text: str | None = None) -> Path:
    path = tmp_path / name
    path.write_text(text if text is not None else ROUTING.format(days=days, seed=seed, per_year=per_year,
                                                                 staff=staff, hours=hours))
    return path


def run(path: Path, **kw) -> dict:
    return simulate.simulate(simulate.load_scenario(path), **kw)


def test_routing_follows_the_screening_table_within_tolerance(tmp_path):
    out = run(scenario(tmp_path, days=7, per_year=5000))
    done = out["processes"]["front_door"].get("completed", 0)
    reablement = sum(out["processes"].get("reablement", {}).values())
    assert done >= 60, out["processes"]  # enough contacts recorded to judge a share
    # 30% of people are likely eligible and reablement is appropriate: the screening table sends them to
    # reablement, the rest end with information and advice. Tolerance: 3 standard errors of a share of `done`.
    share = reablement / done
    tolerance = 3 * (0.3 * 0.7 / done) ** 0.5
    assert abs(share - 0.3) <= tolerance, (share, done)
    assert out["tasks_not_completed"] == {} and out["incidents"] == {}
    assert out["routes"] == {"self": out["contacts"]}
    assert out["teams"]["front_door"]["arrived"] == out["contacts"]  # each contact is one record_contact task


def test_the_scenarios_answers_for_the_contact_form_are_put_over_the_persons(tmp_path):
    # every person drawn is likely eligible with reablement appropriate: the screening table sends each to
    # reablement, unless the scenario answers the contact form's question otherwise (it was once ignored)
    text = ROUTING.format(days=3, seed=5, per_year=5000, staff=40, hours=0.3).replace(
        "outcomes_unable: {0: 0.7, 2: 0.3}", "outcomes_unable: {2: 1.0}")
    plain = run(scenario(tmp_path, text=text))
    assert sum(plain["processes"].get("reablement", {}).values()) >= 20
    answered = run(scenario(tmp_path, "answered.yaml", text=text + (
        "forms:\n  contact:\n    reablement_appropriate: false\n"
        "    reablement_not_appropriate_because: {long_term_condition: 0.5, other: 0.5}\n")))
    assert answered["contacts"] == plain["contacts"] and answered["processes"]["front_door"] == \
        plain["processes"]["front_door"]
    assert "reablement" not in answered["processes"] and answered["tasks_not_completed"] == {}


FORMS = FormLibrary.from_folder(ROOT / "forms")


@pytest.mark.parametrize("form", sorted(FORMS._schemas))
def test_answers_drawn_for_a_form_pass_its_check_the_first_time(form):
    """A simulated worker's answers keep the form's conditional rules (what `unable: true` or a "no" makes
    required, a list that must then name something, a date asked as text), as a real worker's must: the
    simulation does not lean on the form refusing them and the answers being repaired (each refusal is a full
    jsonschema check, and 9% of the answers of a month were refused before)."""
    import random
    from datetime import date

    from engine.errors import ValidationError

    schema = FORMS.schema(form)
    refused = []
    for seed in range(40):
        answers = simulate._fill(schema, {}, random.Random(seed), date(2026, 4, 1))
        try:
            FORMS.validate(form, answers)
        except ValidationError as exc:
            refused.append((seed, exc.errors[:2]))
    assert refused == []


def test_a_text_answer_with_a_pattern_is_a_date_when_the_pattern_asks_for_one_and_an_unreadable_one_stops_nothing():
    import random
    from datetime import date

    rng, today = random.Random(1), date(2026, 4, 1)
    assert simulate._value({"type": "string", "pattern": "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}, rng, today) == "2026-04-01"
    assert simulate._value({"type": "string", "pattern": "^[A-Z]+$"}, rng, today) == "Simulated answer"
    assert simulate._value({"type": "string", "pattern": "(?<"}, rng, today) == "Simulated answer"  # re.error


def _conditions(node):
    if isinstance(node, dict):
        if isinstance(node.get("if"), dict):
            yield node["if"]
        for value in node.values():
            yield from _conditions(value)
    elif isinstance(node, list):
        for value in node:
            yield from _conditions(value)


def test_a_forms_condition_is_judged_as_jsonschema_judges_it():
    """The plain test of a form's `if` (simulate._Fixed) says what jsonschema says, for every form's conditions
    and for answers that tell JSON's values apart (true is not 1, 1 is 1.0, a missing answer, null, a list)."""
    import jsonschema

    conds = [c for name in sorted(FORMS._schemas) for c in _conditions(FORMS.schema(name))]
    conds += [{"properties": {"n": {"const": 1}}}, {"properties": {"n": {"enum": [0, "0", None]}}, "required": ["n"]},
              {"properties": {"n": {"const": True}}}, {"required": ["n"]}, {},
              {"properties": {"n": {"enum": [1, "1"], "type": "string"}}},
              {"properties": {"n": {"const": 1}}, "not": {}}]
    fast = [c for c in conds if isinstance(simulate._condition(c), simulate._Fixed)]
    # all but the mental capacity tests' nested anyOf (6), the contact form's "no date of birth given" (a `not`:
    # the age is asked only then) and the last two (more than fixed values): jsonschema's
    assert len(fast) >= 80 and len(conds) - len(fast) == 9
    odd = [True, False, 1, 1.0, 0, 0.0, "1", "true", None, [], [1], {}, {"n": 1}, "no_further_action_with_advice",
           "appointed", "representative", "continue"]
    for cond in conds:
        names = list((cond.get("properties") or {})) + list(cond.get("required") or []) or ["n"]
        for name in names:
            for value in odd:
                for answers in ({name: value}, {name: value, "other": 1}, {}, {"other": value}):
                    assert simulate._condition(cond).is_valid(answers) == \
                        jsonschema.Draft202012Validator(cond).is_valid(answers), (cond, answers)
    assert simulate._Fixed.of({"properties": {"n": {"minimum": 1}}}) is None  # anything else: jsonschema judges
    assert simulate._Fixed.of({"properties": {"n": {"const": [1]}}}) is None


def test_the_same_seed_gives_the_same_output_and_another_seed_does_not(tmp_path):
    path = scenario(tmp_path, days=2, per_year=3000)
    first, again = run(path), run(path)
    assert json.dumps(first, sort_keys=True, default=str) == json.dumps(again, sort_keys=True, default=str)
    other = run(path, seed=8)
    assert other["seed"] == 8 and json.dumps(other, sort_keys=True, default=str) != json.dumps(
        first, sort_keys=True, default=str)


def test_a_queue_forms_when_the_team_is_short_of_staff_and_not_when_it_is_not(tmp_path):
    # Wednesday and Thursday 1 and 2 April 2026, ~25 contacts a day arriving 08:00-18:00
    short = run(scenario(tmp_path, "short.yaml", days=2, per_year=9000, staff=1, hours=1.0))["teams"]["front_door"]
    enough = run(scenario(tmp_path, "enough.yaml", days=2, per_year=9000, staff=40, hours=1.0))["teams"][
        "front_door"]
    assert short["arrived"] == enough["arrived"] >= 35  # the same contacts (same seed, same arrivals)
    # one person doing an hour each, 8 hours a day: most wait, and those done waited overnight
    assert short["waiting_at_end"] > 20 and short["wait_hours_p95"] > 12
    assert short["done"] <= 16
    # forty people: only the contacts the team sees after its 17:00 close on Thursday are left (those from 16:00:
    # a new task reaches the queue an hour's hand-off after it is made, docs/simulation.md)
    assert enough["waiting_at_end"] <= 8 and enough["wait_hours_p95"] < short["wait_hours_p95"] / 2
    weekly = [w["waiting_at_end"] for w in short["weeks"]]
    assert weekly and weekly[0] > 0



@pytest.mark.parametrize("days", [7, 9])
def test_the_last_weeks_queue_is_the_queue_the_run_ends_with_when_the_period_is_whole_weeks(tmp_path, days):
    """The week-by-week queue ended on 0 for a period of whole weeks (the review page's 14 days): the last week's
    end is the run's end, which the run never reaches, so its queue was never sampled."""
    short = run(scenario(tmp_path, days=days, per_year=3000, staff=1, hours=1.0))["teams"]["front_door"]
    assert short["waiting_at_end"] > 5  # one person, an hour each, no weekends: a queue is left
    assert [w["week"] for w in short["weeks"]] == [1, 2][:(days + 6) // 7]
    assert short["weeks"][-1]["waiting_at_end"] == short["waiting_at_end"]


BAD = [
    ("negative_seed", "seed: -5\narrivals:\n  self: {per_year: 10}\n", "line 1", "seed",
     "seed must be a whole number, 0 or more, not -5"),
    ("negative_count", "arrivals:\n  self: {per_year: 10}\npeople:\n  needs: {-1: 0.5, 2: 0.5}\n", "line 4",
     "people/needs/-1", "needs gives the probability of each whole number of them, 0 or more, not -1"),
    ("word_count", "arrivals:\n  self: {per_year: 10}\npeople:\n  outcomes_unable: {a: 1.0}\n", "line 4",
     "people/outcomes_unable/a", "not 'a'"),
    ("yes_count", "arrivals:\n  self: {per_year: 10}\npeople:\n  needs: {true: 1.0}\n", "line 4",
     "people/needs/True", "not True"),
    ("unknown_process", "arrivals:\n  self: {per_year: 10, process: no_such_process}\n", "line 2",
     "arrivals/self/process", "there is no process 'no_such_process'"),
    ("negative_rate", "arrivals:\n  self: {per_year: 10}\n  gp: {per_year: -5}\n", "line 3",
     "arrivals/gp/per_year", "must be a number from 0 to 1,000,000, not -5"),
    # YAML reads .nan and .inf as numbers: a rate of either never ended (drawing arrivals looped forever)
    ("nan_rate", "arrivals:\n  self: {per_year: .nan}\n", "line 2", "arrivals/self/per_year",
     "must be a number from 0 to 1,000,000, not nan"),
    ("infinite_rate", "arrivals:\n  self: {per_year: .inf}\n", "line 2", "arrivals/self/per_year",
     "must be a number from 0 to 1,000,000, not inf"),
    ("huge_rate", "arrivals:\n  self: {per_year: 1000001}\n", "line 2", "arrivals/self/per_year",
     "must be a number from 0 to 1,000,000, not 1000001"),
    ("nan_probability", "arrivals:\n  self: {per_year: 10}\npeople:\n  age: {18-64: .nan, 65-84: 1.0}\n",
     "line 4", "people/age/18-64", "the probability of '18-64' must be a number from 0 to 1, not nan"),
    ("nan_single_probability", "arrivals:\n  self: {per_year: 10}\npeople:\n  lives_alone: .nan\n", "line 4",
     "people/lives_alone", "must be a probability from 0 to 1, not nan"),
    ("infinite_season", "arrivals:\n  self: {per_year: 10}\nseason: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, .inf]\n",
     "line 3", "season", "season is a list of 12 numbers of 0 or more"),
    ("infinite_hours", "arrivals:\n  self: {per_year: 10}\ndurations:\n  default: {median_hours: .inf}\n",
     "line 4", "durations/default/median_hours", "median_hours must be a number above 0 to 8,760, not inf"),
    ("hours_over_a_year", "arrivals:\n  self: {per_year: 10}\ndurations:\n  default: {median_hours: 8761}\n",
     "line 4", "durations/default/median_hours", "median_hours must be a number above 0 to 8,760, not 8761"),
    ("huge_spread", "arrivals:\n  self: {per_year: 10}\ndurations:\n  teams:\n    front_door: {spread: 5.5}\n",
     "line 5", "durations/teams/front_door/spread", "spread must be a number from 0 to 5.0, not 5.5"),
    ("nan_hold", "arrivals:\n  self: {per_year: 10}\ndurations:\n  tasks:\n    x: {hold_days: {median: .nan}}\n",
     "line 5", "durations/tasks/x/hold_days", "a median from 0 to 3,660 days and a spread from 0 to 5.0"),
    ("long_hold", "arrivals:\n  self: {per_year: 10}\ndurations:\n  tasks:\n    x: {hold_days: {median: 3661}}\n",
     "line 5", "durations/tasks/x/hold_days", "a median from 0 to 3,660 days"),
    ("hour_25", "arrivals:\n  self: {per_year: 10}\nteams:\n  front_door: {staff: 2, hours: \"25:00-26:00\"}\n",
     "line 4", "teams/front_door/hours", "working hours are times of day from 00:00 to 23:59, not '25:00-26:00'"),
    ("team_key", "arrivals:\n  self: {per_year: 10}\nteams:\n  front_door: {staff: 2, lunch: 1}\n", "line 4",
     "teams/front_door/lunch", "'lunch' is not a team key (one of hours, staff, weekends)"),
    ("weekends", "arrivals:\n  self: {per_year: 10}\nteams:\n  front_door: {staff: 2, weekends: maybe}\n", "line 4",
     "teams/front_door/weekends", "weekends is true or false, not 'maybe'"),
    ("age_band_backwards", "arrivals:\n  self: {per_year: 10}\npeople:\n  age: {84-65: 1.0}\n", "line 4",
     "people/age/84-65", "an age band goes from a younger age to an older one, 130 at most, not 84-65"),
    ("age_band_too_old", "arrivals:\n  self: {per_year: 10}\npeople:\n  age: {65-131: 1.0}\n", "line 4",
     "people/age/65-131", "130 at most, not 65-131"),
    ("start_data", "arrivals:\n  self: {per_year: 10, process: hospital_discharge, start_data: [1, 2]}\n", "line 2",
     "arrivals/self/start_data", "start_data is a mapping of the data the process starts with"),
    ("unknown_field", "arrivals:\n  self: {per_year: 10}\nforms:\n  contact:\n    mood: happy\n", "line 5",
     "forms/contact/mood", "the form 'contact' has no field 'mood' (its fields: advice_given, caller,"),
    # a misspelt answer was once repaired into a valid one without a word: the proportions asked were not run
    ("answer_misspelt", "arrivals:\n  self: {per_year: 10}\nforms:\n  safeguarding_triage_decision:\n"
     "    decision: {s42_enquiri: 0.3, other_enquiry: 0.7}\n", "line 5",
     "forms/safeguarding_triage_decision/decision/s42_enquiri",
     "'s42_enquiri' is not an answer the form 'safeguarding_triage_decision' takes at 'decision' ('s42_enquiri' is "
     "not one of ['s42_enquiry', 'other_enquiry', 'no_further_action_with_advice'])"),
    ("answer_wrong_type", "arrivals:\n  self: {per_year: 10}\nforms:\n  contact:\n    needs: 2\n", "line 5",
     "forms/contact/needs", "2 is not an answer the form 'contact' takes at 'needs' (2 is not of type 'array')"),
    # what a form's condition adds to a field's schema (`minLength: 1`) does not, alone, take any value at all
    ("answer_fits_only_a_conditions_part", "arrivals:\n  self: {per_year: 10}\nforms:\n  direct_payment_review:\n"
     "    outcome_reason: 5\n", "line 5", "forms/direct_payment_review/outcome_reason",
     "5 is not an answer the form 'direct_payment_review' takes at 'outcome_reason' (5 is not of type 'string')"),
    ("unknown_task", "arrivals:\n  self: {per_year: 10}\ndurations:\n  tasks:\n    record_contakt: {median_hours: 1}\n",
     "line 5", "durations/tasks/record_contakt",
     "no deployed diagram has a user task 'record_contakt' (user tasks with a like id: record_contact)"),
    ("far_start", "start: 9999-12-01\narrivals:\n  self: {per_year: 10}\n", "line 1", "start",
     "start must be a date from 2000 to 2099, not 9999-12-01"),
    ("start_with_a_time", "start: 2026-04-01 10:00:00\narrivals:\n  self: {per_year: 10}\n", "line 1", "start",
     "start is a date YYYY-MM-DD"),
    ("sum", "arrivals:\n  self: {per_year: 10}\npeople:\n  age: {18-64: 0.5, 65-84: 0.4}\n", "line 4",
     "people/age", "sum to 0.9, not 1"),
    ("unknown_form", "arrivals:\n  self: {per_year: 10}\nforms:\n  no_such_form:\n    x: 1\n", "line 4",
     "forms/no_such_form", "there is no form 'no_such_form'"),
    ("too_many_staff", "arrivals:\n  self: {per_year: 10}\nteams:\n  front_door: {staff: 100000000000}\n",
     "line 4", "teams/front_door/staff", "staff must be a whole number from 1 to 10,000, not 100000000000"),
    ("unknown_team", "arrivals:\n  self: {per_year: 10}\nteams:\n  front_door: {staff: 2}\n  wizards: {staff: 2}\n",
     "line 5", "teams/wizards", "no diagram has a team 'wizards'"),
    ("unknown_key", "arrivals:\n  self: {per_year: 10}\nstaffing: 3\n", "line 3", "staffing",
     "'staffing' is not a scenario key"),
    ("unknown_deadline", "arrivals:\n  self: {per_year: 10}\ndeadlines:\n  front_door/no_timer: Late\n", "line 4",
     "deadlines/front_door/no_timer", "no deployed diagram has a timer 'front_door/no_timer'"),
    ("hold", "arrivals:\n  self: {per_year: 10}\ndurations:\n  tasks:\n    x: {median_hours: 1, hold_days: -3}\n",
     "line 5", "durations/tasks/x/hold_days", "hold_days is {median: DAYS, spread: S}"),
    ("policy_missing", "arrivals:\n  self: {per_year: 10}\nforms:\n  contact:\n    policy: tests.nowhere:fn\n",
     "line 5", "forms/contact/policy", "cannot load the policy"),
]


@pytest.mark.parametrize("name,text,line,key,message", BAD, ids=[b[0] for b in BAD])
def test_a_bad_scenario_is_refused_naming_its_line_and_key(tmp_path, name, text, line, key, message):
    sc = simulate.load_scenario(scenario(tmp_path, text=text))
    library = FormLibrary.from_folder(ROOT / "forms")
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.check_scenario(sc, processes={"front_door", "hospital_discharge"}, forms=library.names(),
                                teams={"front_door", "social_work"},
                                timers={"front_door/wait_for_call_back": "Call-back day"},
                                fields=simulate.form_fields(library), tasks={"record_contact", "x"})
    assert f"s.yaml {line} ({key})" in str(err.value) and message in str(err.value)


HOSTILE = [
    # a few lines of nested aliases expand to billions of values: refused from the composed file, which stays small
    ("aliases", "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n" for p, n in zip("abcdefg", "bcdefgh", strict=True)),
     "s.yaml: the scenario holds more than 100,000 values once its YAML aliases (*name) are written out"),
    ("binary", None, "s.yaml line 2: not UTF-8 text (byte 9 of the file cannot be read)"),
    # YAML readers keep the last of a key given twice: a route or a setting written twice is a mistake
    ("duplicate_route", "arrivals:\n  hospital: {per_year: 2523}\n  self: {per_year: 5}\n  hospital: {per_year: 99}\n",
     "s.yaml line 4 (arrivals/hospital): 'hospital' is given twice in the same place (first on line 2)"),
    ("duplicate_seed", "seed: 1\ndays: 3\nseed: 2\n", "s.yaml line 3 (seed): 'seed' is given twice"),
    # YAML reads 2026-02-30 as a date and its reader raises a bare ValueError
    ("impossible_date", "days: 3\nstart: 2026-02-30\n", "s.yaml line 2 (2026-02-30): not a real date or time"),
    ("impossible_nested_date", "forms:\n  discharge_response:\n    discharge_date: [2026-01-01, 2026-02-31]\n",
     "s.yaml line 3 (2026-02-31): not a real date or time"),
    ("nested", "a: " + "[" * 5000 + "]" * 5000 + "\n", "s.yaml: nested too deeply to be read"),
]


@pytest.mark.parametrize("name,text,message", HOSTILE, ids=[h[0] for h in HOSTILE])
def test_a_hostile_scenario_file_is_refused_at_once_saying_why(tmp_path, name, text, message):
    path = tmp_path / "s.yaml"
    if text is None:
        path.write_bytes(b"days: 3\n\xff\xfe\x00arrivals\n")
    else:
        path.write_text(text)
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.load_scenario(path)
    assert message in str(err.value)


def test_a_scenario_may_repeat_itself_through_yaml_anchors_and_each_key_keeps_its_line(tmp_path):
    text = ("arrivals:\n  self: {per_year: 10}\nteams:\n  front_door: &team\n    staff: 2\n    hours: \"09:00-17:00\"\n"
            "  social_work: *team\n  reablement:\n    <<: *team\n    staff: 0\n")
    sc = simulate.load_scenario(scenario(tmp_path, text=text))
    assert sc.data["teams"]["social_work"] == {"staff": 2, "hours": "09:00-17:00"}
    assert sc.where("teams", "social_work", "staff") == "s.yaml line 5 (teams/social_work/staff)"  # under its anchor
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.check_scenario(sc, processes={"front_door"}, forms=set(), teams={"front_door", "social_work",
                                                                                  "reablement"})
    assert "s.yaml line 10 (teams/reablement/staff): staff must be a whole number from 1 to 10,000, not 0" in str(
        err.value)


def test_without_a_database_the_output_says_the_files_in_processes_were_run(tmp_path, capsys):
    code = cli.main(["--db", f"sqlite:///{tmp_path / 'absent.db'}", "simulate", "--scenario",
                     str(scenario(tmp_path, days=1)), "--processes", "1"])
    out = capsys.readouterr().out
    assert code == 0 and "Diagrams: the files in processes/ (no database file, or none deployed on it): " in out
    assert "front_door v1" in out


@pytest.mark.parametrize("flag,value,message", [
    ("--seed", "-5", "the seed asked: seed must be a whole number, 0 or more, not -5"),
    ("--days", "0", "the period asked: days must be a whole number from 1 to 3660, not 0"),
    ("--days", "3661", "the period asked: days must be a whole number from 1 to 3660, not 3661"),
])
def test_a_period_asked_on_the_command_line_is_named_as_such_not_as_a_line_of_the_file(tmp_path, capsys, flag,
                                                                                       value, message):
    code = cli.main(["--db", f"sqlite:///{tmp_path / 'absent.db'}", "simulate", "--scenario",
                     str(scenario(tmp_path)), flag, value])
    err = capsys.readouterr().err
    assert code == 1 and message in err and "s.yaml" not in err


def test_work_and_services_drawn_to_last_beyond_the_run_end_with_it(tmp_path):
    """The longest durations a scenario may give, with the widest spread: a draw of millions of years overflowed
    a date (the run failed with OverflowError), and a long one was laid over its working days one by one. Such work
    now ends with the run, whose output counts it as neither done nor waiting."""
    text = ROUTING.format(days=3, seed=3, per_year=3650, staff=2, hours=8760).replace("spread: 0.2}", "spread: 5.0}")
    out = run(scenario(tmp_path, text=text))
    team = out["teams"]["front_door"]
    assert out["contacts"] > 20 and team["arrived"] > 2
    assert team["done"] < team["arrived"]  # most of the work drawn lasts longer than the run
    held = ROUTING.format(days=3, seed=3, per_year=36500, staff=400, hours=0.2).replace(
        "record_contact: {median_hours: 0.2, spread: 0.2}",
        "record_contact: {median_hours: 0.2, spread: 0.2, hold_days: {median: 3660, spread: 5.0}}")
    out = run(scenario(tmp_path, "held.yaml", text=held))
    team = out["teams"]["front_door"]
    assert team["arrived"] > 100 and team["done"] < team["arrived"] / 10  # most stay open for years of service


def raising_policy(task, answers, rng):
    raise RuntimeError("the process owner's policy broke")


@pytest.mark.parametrize("policy,said", [
    ("raising_policy", "the policy raised RuntimeError: the process owner's policy broke"),
    ("exiting_policy", "the policy called exit (0)"),  # it ended the command with no word and no output
    ("refused_policy", "the policy's answer was refused by the form 'contact' at front_door/"),  # once redrawn
], ids=["raises", "exits", "refused_answer"])
def test_a_policy_that_fails_names_the_scenario_line(tmp_path, capsys, policy, said):
    text = ROUTING.format(days=1, seed=1, per_year=3000, staff=5, hours=0.3) + (
        f"forms:\n  contact:\n    policy: tests.test_simulate:{policy}\n")
    path = scenario(tmp_path, text=text)
    line = text.splitlines().index(f"    policy: tests.test_simulate:{policy}") + 1
    code = cli.main(["--db", f"sqlite:///{tmp_path / 'absent.db'}", "simulate", "--scenario", str(path)])
    err = capsys.readouterr().err
    assert code == 1 and f"s.yaml line {line} (forms/contact/policy): {said}" in err


def looping_policy(task, answers, rng):
    while True:  # a loop that never ends, catching what it can
        try:
            answers = dict(answers)
        except Exception:  # noqa: BLE001, S110 - a policy's own catch-all does not keep it running
            pass


@pytest.mark.timeout(90)  # without the limit: a hang, failed by pytest-timeout
@pytest.mark.parametrize("processes", ["1", "2"])
def test_a_policy_that_never_returns_is_stopped_and_names_the_scenario_line(tmp_path, capsys, monkeypatch,
                                                                             processes):
    """It once held the run (and, on the pages, the database's one simulation at a time) until the server stopped."""
    monkeypatch.setenv("CAREPATH_SIMULATION_POLICY_SECONDS", "0.5")
    text = ROUTING.format(days=1, seed=1, per_year=3000, staff=5, hours=0.3) + (
        "forms:\n  contact:\n    policy: tests.test_simulate:looping_policy\n")
    line = text.splitlines().index("    policy: tests.test_simulate:looping_policy") + 1
    code = cli.main(["--db", f"sqlite:///{tmp_path / 'absent.db'}", "simulate", "--processes", processes,
                     "--scenario", str(scenario(tmp_path, text=text))])
    err = capsys.readouterr().err
    assert code == 1
    assert f"s.yaml line {line} (forms/contact/policy): the policy at front_door/record_contact did not end within " \
           "0.5 seconds, so it was stopped (a loop that never ends?)" in err


@pytest.mark.timeout(60)
def test_a_policy_module_whose_import_never_ends_is_stopped_and_names_the_scenario_line(tmp_path, monkeypatch):
    monkeypatch.setenv("CAREPATH_SIMULATION_POLICY_SECONDS", "0.5")
    (tmp_path / "endless_policy_module.py").write_text("while True:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    text = ROUTING.format(days=1, seed=1, per_year=3000, staff=5, hours=0.3) + (
        "forms:\n  contact:\n    policy: endless_policy_module:policy\n")
    with pytest.raises(simulate.ScenarioError) as err:
        run(scenario(tmp_path, text=text), days=1)
    assert "(forms/contact/policy): the policy module 'endless_policy_module' was being imported and did not end " \
           "within 0.5 seconds" in str(err.value)
    assert "endless_policy_module" not in sys.modules


def test_a_policy_that_answers_in_time_is_not_stopped_by_the_time_limit(tmp_path, monkeypatch):
    monkeypatch.setenv("CAREPATH_SIMULATION_POLICY_SECONDS", "0.2")
    text = ROUTING.format(days=2, seed=1, per_year=3000, staff=5, hours=0.3) + (
        "forms:\n  contact:\n    policy: tests.test_simulate:slow_policy\n")
    out = run(scenario(tmp_path, text=text))
    assert out["teams"]["front_door"]["done"] > 5 and not out["tasks_not_completed"]


def slow_policy(task, answers, rng):
    import time

    time.sleep(0.05)  # a quarter of the limit, each call: the limit is a call's, not the run's
    return None


def number_policy(task, answers, rng):
    return 5


def test_a_policy_that_returns_no_answers_names_the_scenario_line(tmp_path, capsys):
    text = ROUTING.format(days=1, seed=1, per_year=3000, staff=5, hours=0.3) + (
        "forms:\n  contact:\n    policy: tests.test_simulate:number_policy\n")
    line = text.splitlines().index("    policy: tests.test_simulate:number_policy") + 1
    code = cli.main(["--db", f"sqlite:///{tmp_path / 'absent.db'}", "simulate", "--scenario",
                     str(scenario(tmp_path, text=text))])
    err = capsys.readouterr().err
    assert code == 1
    assert f"s.yaml line {line} (forms/contact/policy): the policy returned int, not a mapping of answers (field: " \
           "value) or None, at front_door/record_contact" in err


def test_the_live_database_is_only_read(tmp_path, capsys):
    db = tmp_path / "live.db"
    live = Engine(f"sqlite:///{db}", forms=FormLibrary.from_folder(ROOT / "forms"))
    live.init()
    live.deploy([ROOT / "processes" / "front_door.bpmn", ROOT / "processes" / "screening.dmn"])
    live.db.dispose()

    before = state(db)
    path = scenario(tmp_path, text=ROUTING.format(days=1, seed=2, per_year=3000, staff=5, hours=0.3)
                    .replace("outcomes_unable: {0: 0.7, 2: 0.3}", "outcomes_unable: {0: 1.0}"))
    code = cli.main(["--db", f"sqlite:///{db}", "--json", "simulate", "--scenario", str(path)])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["contacts"] > 0
    # it ran the live database's deployed versions (only the front door is deployed there), on its own database
    assert set(out["processes"]) == {"front_door"}
    assert out["diagrams"] == {"from": "database", "versions": {"front_door": 1}}  # and says so
    assert out["processes"]["front_door"].get("completed", 0) > 0
    after = state(db)
    assert after == before
    assert before[1]["instances"] == 0 and before[1]["cases"] == 0


@pytest.mark.parametrize("from_live", [False, True], ids=["empty", "from_live"])
def test_a_live_database_not_in_wal_mode_is_read_from_a_copy_and_left_byte_for_byte(tmp_path, capsys, from_live):
    """Opened as carepath opens a database, a SQLite file in rollback-journal mode (restored by another tool, say)
    was switched to WAL: a write. It is read from a copy; the file, its mode and its neighbours stay as they were."""
    import hashlib
    import sqlite3

    db = tmp_path / "live.db"
    live = Engine(f"sqlite:///{db}", forms=FormLibrary.from_folder(ROOT / "forms"))
    # a Monday morning on the live database's clock: a run from it (--from-live starts at the live clock's now)
    # has the day's contacts whatever the hour the suite runs (on the wall clock, an evening run had none)
    live.init(simulated_start=datetime(2026, 12, 7, 9, 0, tzinfo=timezone.utc))
    live.deploy([ROOT / "processes" / "front_door.bpmn", ROOT / "processes" / "screening.dmn"])
    live.db.dispose()
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA journal_mode=DELETE").fetchone() == ("delete",)
    conn.close()
    files = sorted(p.name for p in tmp_path.iterdir())
    digest = hashlib.sha256(db.read_bytes()).hexdigest()
    path = scenario(tmp_path, text=ROUTING.format(days=1, seed=2, per_year=3000, staff=5, hours=0.3)
                    .replace("outcomes_unable: {0: 0.7, 2: 0.3}", "outcomes_unable: {0: 1.0}"))
    files.append(path.name)
    argv = ["--db", f"sqlite:///{db}", "--json", "simulate", "--scenario", str(path), "--processes", "1"]
    code = cli.main(argv + (["--from-live"] if from_live else []))
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and set(out["processes"]) == {"front_door"}  # the live database's versions were read
    assert hashlib.sha256(db.read_bytes()).hexdigest() == digest and db.read_bytes()[18:20] == b"\x01\x01"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(files)  # no -wal or -shm beside it


def test_an_empty_file_named_as_the_live_database_is_refused_and_left_empty(tmp_path, capsys):
    db = tmp_path / "empty.db"
    db.write_bytes(b"")
    code = cli.main(["--db", f"sqlite:///{db}", "simulate", "--scenario", str(scenario(tmp_path)), "--days", "1"])
    err = capsys.readouterr().err
    assert code == 1 and f"the database sqlite:///{db} is not initialised" in err and "source.db" not in err
    assert db.read_bytes() == b""


def test_the_default_scenario_is_the_domain_briefs_county_year_and_valid_against_the_diagrams():
    eng = simulate.scratch_engine(None, simulate.date(2026, 4, 1))
    try:
        procs, teams, timers, tasks = simulate._diagram_facts(eng)
        ck = simulate.check_scenario(simulate.load_scenario(), processes=procs, forms=eng.forms.names(),
                                     teams=teams, timers=timers, fields=simulate.form_fields(eng.forms),
                                     tasks=tasks)
        assert {"record_contact", "deliver_reablement"} <= tasks and not tasks & set(timers)
    finally:
        eng.db.dispose()
    assert ck.days == 365 and sum(r["per_year"] for r in ck.routes.values()) == 26444
    assert ck.routes["safeguarding"]["per_year"] == 4455 and ck.routes["hospital"]["per_year"] == 2523
    assert ck.deadlines["reablement/period_ended"] == "Reablement reached its 6 weeks"
    assert "safeguarding/triage_overdue" in ck.deadlines and "hospital_discharge/response_overdue" in ck.deadlines


def test_simulation_mode_gives_the_same_output_as_the_full_audit_trail():
    # the default scenario (every route: front door, safeguarding, hospital discharge, carers...) for two days:
    # once as the command runs it (engine/simulation.py: no hash chain, only the events the measures read, the
    # clock in memory, no people search index) and once with the whole hash-chained history kept as live
    sc = simulate.load_scenario()
    quick = simulate.simulate(sc, days=2, seed=5)
    full = simulate.simulate(sc, days=2, seed=5, full_history=True)
    assert quick["contacts"] > 100 and len(quick["routes"]) >= 5
    assert sum(t["done"] for t in quick["teams"].values()) > 50
    figures = [m for m in quick["measures"] if m["denominator"]]
    assert figures, quick["measures"]  # some measure has cases behind it in two days
    assert json.dumps(quick, sort_keys=True, default=str) == json.dumps(full, sort_keys=True, default=str)


def test_a_simulation_writes_nothing_but_the_kept_events_unchained():
    eng = simulate.scratch_engine(None, simulate.date(2026, 4, 1))
    try:
        assert eng.simulation is not None and eng.simulation.keep_events == simulate.KEPT_EVENTS
        eng.start("front_door", actor=simulate.ACTOR)
        with eng.db.engine.connect() as conn:
            rows = conn.execute(select(events.c.type, events.c.hash)).all()
            assert conn.execute(select(chains)).all() == []
        assert rows and {r.type for r in rows} <= simulate.KEPT_EVENTS and {r.hash for r in rows} == {""}
        assert "instance.started" in {r.type for r in rows}
    finally:
        eng.db.dispose()


def test_a_simulation_writes_only_the_service_calls_outputs_that_a_cld_row_or_a_measure_reads():
    from handlers import cld, measures

    calls: dict[str, list[dict]] = {}

    def look(eng):
        with eng.db.engine.connect() as conn:
            for (data,) in conn.execute(select(events.c.data).where(events.c.type == "handler.called")):
                d = json.loads(data)
                calls.setdefault(d["handler"], []).append(d)

    simulate.simulate(simulate.load_scenario(), days=3, seed=2, inspect=look)
    read = set(cld._HANDLERS_READ)
    assert read & set(calls) and set(calls) - read - {"local_settings"}  # both kinds were called
    for name, made in calls.items():
        if name in read:  # what a CLD row reads, as the handler returned it
            assert any(d["output"] for d in made), name
        elif name == "local_settings":  # the two timescales a measure reads, nothing else
            assert {k for d in made for k in d["output"]} == set(measures.SETTINGS_READ)
        else:  # a letter, a directory search...: its element and handler only
            assert all(d["output"] == {} and set(d) == {"element_id", "handler", "output"} for d in made), name


@pytest.mark.parametrize("body,message", [
    ("def f(task, answers, rng):\n    return {\n", "its module is not valid Python ("),
    ("x = 1 / 0\n\ndef f(task, answers, rng):\n    return {}\n", "importing its module raised ZeroDivisionError"),
], ids=["syntax_error", "raises_on_import"])
def test_a_policy_module_that_cannot_be_imported_names_the_scenario_line(tmp_path, monkeypatch, body, message):
    (tmp_path / "broken_policy_mod.py").write_text(body)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_policy_mod", raising=False)
    text = "arrivals:\n  self: {per_year: 10}\nforms:\n  contact:\n    policy: broken_policy_mod:f\n"
    sc = simulate.load_scenario(scenario(tmp_path, text=text))
    library = FormLibrary.from_folder(ROOT / "forms")
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.check_scenario(sc, processes={"front_door"}, forms=library.names(), teams={"front_door"},
                                fields=simulate.form_fields(library))
    assert "s.yaml line 5 (forms/contact/policy): cannot load the policy 'broken_policy_mod:f'" in str(err.value)
    assert message in str(err.value)


def test_a_person_cannot_be_drawn_with_more_needs_than_the_contact_form_offers(tmp_path):
    text = "days: 1\narrivals:\n  self: {per_year: 10, process: front_door}\npeople:\n  needs: {0: 0.5, 99: 0.5}\n"
    sc = simulate.load_scenario(scenario(tmp_path, text=text))
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.simulate(sc, days=1)
    assert "s.yaml line 5 (people/needs/99): a person cannot have 99 needs: the contact form has" in str(err.value)


@pytest.mark.parametrize("db,message", [
    ("notaurl", "notaurl is not a database URL"),
    ("junk", "cannot reach the database sqlite:///"),
    ("postgresql://nobody:pw@127.0.0.1:1/nodb", "cannot reach the database postgresql+psycopg://nobody:***@127.0.0.1:1"),
], ids=["not_a_url", "not_a_database", "unreachable"])
def test_a_database_named_that_cannot_be_read_stops_the_run_instead_of_simulating_other_diagrams(
        tmp_path, capsys, db, message):
    """Only a database file that is not there means "the diagrams in processes/" (the test above); a file that is
    not a database, a server that does not answer or an address that is not one is said, in one line."""
    if db == "junk":
        junk = tmp_path / "junk.db"
        junk.write_bytes(bytes(range(256)) * 20)
        before = junk.read_bytes()
        db = f"sqlite:///{junk}"
    code = cli.main(["--db", db, "simulate", "--scenario", str(scenario(tmp_path)), "--days", "1",
                     "--processes", "1"])
    out, err = capsys.readouterr()
    assert code == 1 and message in err and "Traceback" not in err and "pw" not in err and out == ""
    if "junk" in db:
        assert junk.read_bytes() == before


@pytest.mark.parametrize("caller", ["selff", 7, None])
def test_a_route_whose_caller_the_contact_form_does_not_know_is_refused_naming_its_line(tmp_path, caller):
    """The caller is the contact form's caller.relationship: a misspelt one was refused by the form at each
    contact and replaced by a random relationship without a word."""
    text = (f"days: 1\narrivals:\n  self: {{per_year: 10, process: front_door}}\n"
            f"  family: {{per_year: 10, process: front_door, caller: {json.dumps(caller)}}}\n")
    sc = simulate.load_scenario(scenario(tmp_path, text=text))
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.simulate(sc, days=1)
    assert f"s.yaml line 4 (arrivals/family/caller): {caller!r} is not a caller the contact form knows (one of " \
           "self, family_or_friend" in str(err.value)


def refused_policy(task, answers, rng):
    assert task.process_id == task["process_id"] == "front_door" and task.element_id and task.team  # as documented
    return {"caller": {"name": "Simulated caller", "relationship": "bogus"}}


def exiting_policy(task, answers, rng):
    sys.exit(0)


@pytest.mark.parametrize("text,message", [
    ("days: 3\n", "s.yaml (arrivals): the scenario has no arrivals: give at least one route"),
    ("days: 3\narrivals: {}\n", "s.yaml line 2 (arrivals): the scenario has no arrivals"),
    ("arrivals:\n  self: {per_year: 10}\ndeadlines:\n  front_door/wait_for_call_back: 5\n",
     "s.yaml line 4 (deadlines/front_door/wait_for_call_back): a deadline is described in words"),
], ids=["no_arrivals", "empty_arrivals", "deadline_not_words"])
def test_missing_arrivals_and_a_deadline_not_in_words_are_said_plainly(tmp_path, text, message):
    sc = simulate.load_scenario(scenario(tmp_path, text=text))
    library = FormLibrary.from_folder(ROOT / "forms")
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.check_scenario(sc, processes={"front_door"}, forms=library.names(), teams={"front_door"},
                                timers={"front_door/wait_for_call_back": "Call-back day"},
                                fields=simulate.form_fields(library))
    assert message in str(err.value)


@pytest.mark.parametrize("extra,message", [
    (["--seeds", "3"], "--seeds is for --compare-draft"),
    (["--scenario", " "], "--scenario names a scenario file"),
], ids=["seeds_without_a_draft", "empty_scenario"])
def test_options_that_would_be_ignored_are_refused(tmp_path, capsys, extra, message):
    argv = ["--db", f"sqlite:///{tmp_path / 'absent.db'}", "simulate", "--days", "1"]
    if "--scenario" not in extra:
        argv += ["--scenario", str(scenario(tmp_path))]
    code = cli.main(argv + extra)
    assert code == 1 and message in capsys.readouterr().err


def test_a_message_quoting_the_files_text_cannot_drive_the_terminal(tmp_path, capsys):
    """A route's name with an escape sequence (it would clear the screen) and a NUL is quoted as escapes."""
    text = 'arrivals:\n  "bad\\e[2J\\x00route": {per_year: 10, process: no_such_process}\n'
    code = cli.main(["--db", f"sqlite:///{tmp_path / 'absent.db'}", "simulate", "--scenario",
                     str(scenario(tmp_path, text=text))])
    err = capsys.readouterr().err
    assert code == 1 and "there is no process 'no_such_process'" in err
    assert "\x1b" not in err and "\x00" not in err and "bad\\x1b[2J\\x00route" in err


def test_ctrl_c_during_a_run_ends_it_with_one_line_not_a_traceback(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kw):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate, "simulate", interrupted)
    code = cli.main(["--db", f"sqlite:///{tmp_path / 'absent.db'}", "simulate", "--scenario", str(scenario(tmp_path))])
    err = capsys.readouterr().err
    assert code == 130 and err == "carepath: stopped (interrupted); a step under way was not saved\n"


def test_a_json_scenario_gives_a_yes_or_no_fields_odds_with_text_keys(tmp_path):
    """JSON writes every key as text: "true"/"false" for a yes/no field are taken as the values (a YAML scenario
    writes them bare); a key the field does not take is still refused."""
    library = FormLibrary.from_folder(ROOT / "forms")
    good = {"arrivals": {"self": {"per_year": 10}},
            "forms": {"discharge_response": {"can_go_home": {"true": 0.95, "false": 0.05}}}}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(good))
    ck = simulate.check_scenario(simulate.load_scenario(path), processes={"front_door"}, forms=library.names(),
                                 teams={"front_door"}, fields=simulate.form_fields(library))
    assert ck.forms["discharge_response"]["can_go_home"] == {True: 0.95, False: 0.05}
    bad = {**good, "forms": {"discharge_response": {"can_go_home": {"true": 0.5, "maybe": 0.5}}}}
    path.write_text(json.dumps(bad))
    with pytest.raises(simulate.ScenarioError) as err:
        simulate.check_scenario(simulate.load_scenario(path), processes={"front_door"}, forms=library.names(),
                                teams={"front_door"}, fields=simulate.form_fields(library))
    assert "'maybe' is not an answer the form 'discharge_response' takes at 'can_go_home'" in str(err.value)


def test_a_number_written_with_an_exponent_is_read_as_the_number_it_is(tmp_path):
    # PyYAML follows YAML 1.1, where `5.8e3` and `5e3` are text: the scenario refused them as "not a number"
    text = ("arrivals:\n  self: {per_year: 5.8e3}\n  gp: {per_year: 2E+2}\npeople:\n  lives_alone: 45e-2\n"
            "  crisis: 2e\n  5e3: x\n  quoted: '5e3'\n")
    sc = simulate.load_scenario(scenario(tmp_path, text=text))
    assert sc.data["arrivals"] == {"self": {"per_year": 5800.0}, "gp": {"per_year": 200.0}}
    assert sc.data["people"] == {"lives_alone": 0.45, "crisis": "2e", 5000.0: "x", "quoted": "5e3"}
    assert sc.where("people", 5000.0) == "s.yaml line 7 (people/5000.0)"  # a key read the same way keeps its line
    with pytest.raises(simulate.ScenarioError) as err:  # and beyond a float, the bound is still kept
        huge = simulate.load_scenario(scenario(tmp_path, text="arrivals:\n  self: {per_year: 1e400}\n"))
        simulate.check_scenario(huge, processes={"front_door"}, forms=set(), teams=set())
    assert "s.yaml line 2 (arrivals/self/per_year): contacts a year must be a number" in str(err.value)
