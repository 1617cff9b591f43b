"""Every script of the operating model runs in-process, bounded at sight (engine/budget.py), not in a forked,
budgeted child: a fork for each contact made a county year's simulation crawl, and in a test running a simulation
with a second process one such fork waited for ever. A script the judge cannot bound at sight is written another
way (the front door's age from the date of birth once stored `person["age"] = …`, which the judge does not
bound; it now makes a new dict)."""

from __future__ import annotations

import html
import re
from pathlib import Path

from engine.expressions import _in_process
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = re.compile(r"<(bpmn:script|camunda:script)(?:\s[^>]*)?>(.*?)</\1>", re.S)


def test_every_script_in_processes_runs_in_process(tmp_path):
    eng = Engine(f"sqlite:///{tmp_path / 'x.db'}", registry=load_registry("handlers"),
                 forms=FormLibrary.from_folder(ROOT / "forms"))
    env = eng.script_engine.environment
    seen = 0
    for path in sorted((ROOT / "processes").glob("*.bpmn")):
        for _tag, raw in SCRIPT.findall(path.read_text(encoding="utf-8")):
            script = html.unescape(raw)
            assert _in_process("exec", script, env.bounded, env._others), (path.name, script[:300])
            seen += 1
    assert seen >= 10
    eng.db.dispose()
