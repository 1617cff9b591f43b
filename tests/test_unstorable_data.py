"""Data the history cannot keep as the JSON it is given — a number that is not finite (NaN, Infinity) or text
with an unpaired surrogate — is refused where it comes into the engine (a start, a completion, a draft, a
message, a case record), naming the field, with nothing stored (engine/history.py `refuse_unstorable`). Before,
NaN was stored as `NaN` in the history (not JSON) and the case never replayed again; a surrogate was a
UnicodeEncodeError from the hash. The web API refused both already (api/inputs.py); Python callers and the
command line did not."""

from __future__ import annotations

import math

import pytest

from engine.errors import ValidationError
from engine.forms import FormLibrary
from engine.replay import replay_case
from tests.conftest import DIAGRAMS


@pytest.fixture
def eng(make_engine):
    return make_engine("deadline.bpmn", "timer_at.bpmn", forms=FormLibrary.from_folder(DIAGRAMS / "forms"))


@pytest.mark.parametrize(("value", "said"), [
    (math.nan, "is not a finite number"), (math.inf, "is not a finite number"),
    (-math.inf, "is not a finite number"), ("a\udc80b", "holds an unpaired surrogate"),
])
def test_a_completion_a_draft_and_a_start_refuse_it_naming_the_field(eng, value, said):
    case_id = eng.start("deadline", title="Harriet Jones").case_id
    [task] = eng.list_tasks(case_id=case_id)
    before = eng.history(case_id)
    with pytest.raises(ValidationError, match=f"'scores/1' {said}.*nothing was saved") as caught:
        eng.complete_task(task["id"], {"scores": [1, value]}, actor="w1")
    assert caught.value.errors[0]["field"] == "scores/1"
    eng.claim(task["id"], "w1")
    with pytest.raises(ValidationError, match=said):
        eng.save_draft(task["id"], {"scores": [1, value]}, actor="w1")
    with pytest.raises(ValidationError, match=f"the start data of 'deadline': 'x' {said}"):
        eng.start("deadline", case_id=case_id, data={"x": value})
    with pytest.raises(ValidationError, match=said):
        eng.update_case_record(case_id, {"address": {"line1": value}}, actor="w1")
    assert eng.history(case_id)[len(before):] == [e for e in eng.history(case_id)[len(before):]
                                                  if e["type"] == "task.claimed"]  # only the claim
    assert [i["status"] for i in eng.get_case(case_id)["instances"]] == ["waiting"]
    eng.complete_task(task["id"], {"scores": [1, 2.5]}, actor="w1")
    assert replay_case(eng, case_id).ok


def test_a_field_name_with_a_surrogate_is_refused_too(eng):
    with pytest.raises(ValidationError, match="'person' has a field name"):
        eng.start("deadline", data={"person": {"na\ud800me": "x"}})
    with pytest.raises(ValidationError, match="title.*unpaired surrogate"):
        eng.start("deadline", title="Harriet \udcff")
    assert eng.list_tasks() == []


def test_a_message_with_it_is_refused_and_nothing_is_kept(eng):
    from sqlalchemy import func, select

    from engine.schema import messages

    case_id = eng.start("deadline", title="Harriet Jones").case_id
    with pytest.raises(ValidationError, match="data: 'reply/text' holds an unpaired surrogate"):
        eng.deliver_message("reply", case_id=case_id, data={"reply": {"text": "yes \ud83d"}})
    with eng.db.engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(messages)).scalar() == 0
