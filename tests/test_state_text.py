"""engine/state.py `StateCodec.data_text`: a completed instance's data as stored, in one pass — the text the round
trip through the library's encoder (`convert_data`) and a sorted dump gave, or the same JSON value where keys are
not all text."""

from __future__ import annotations

import json
from datetime import date

import pytest

from engine.state import StateCodec

CODEC = StateCodec()


@pytest.mark.parametrize("data", [
    {"b": 1, "a": {"z": [1, 2.5, None, True], "y": "é", "x": {"d": 1, "c": 2}}},
    {"s": "\u2028 <script>", "big": 10**30, "nan": float("nan"), "t": (1, 2), "empty": {}},
    {"settings": {f"k{i}": i for i in range(40)}, "answers": [{"q": "a"}, {"q": "b"}]},
])
def test_the_text_is_the_round_trip_s_byte_for_byte(data):
    assert CODEC.data_text(data) == json.dumps(CODEC.convert_data(data), sort_keys=True)


def test_keys_that_are_not_all_text_give_the_same_json_value():
    for data in ({1: "a", "b": 2}, {1: "a", "1": "b"}, {2: "x", 10: "y"}, {"n": {3: [1], "a": None}}):
        assert json.loads(CODEC.data_text(data)) == json.loads(json.dumps(CODEC.convert_data(data), sort_keys=True))


def test_what_json_cannot_hold_is_refused_as_before():
    for data in ({"d": date(2026, 1, 2)}, {"o": object()}):
        with pytest.raises(TypeError):
            CODEC.data_text(data)
        with pytest.raises(TypeError):
            CODEC.convert_data(data)
