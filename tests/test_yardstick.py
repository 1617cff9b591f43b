"""bench/yardstick.py measures what it says: (b′) saves the state without the diagram and restores from the text,
and each carepath variant runs with the setting its name gives, read back from the database into the result."""

from __future__ import annotations

import json

from bench import yardstick


def test_b_prime_saves_no_diagram_and_restores_from_the_text():
    full, state_only = yardstick.SpiffVariant("b"), yardstick.SpiffVariant("b_prime")
    full.instance(0)
    state_only.instance(0)
    assert len(state_only.state_bytes) == len(full.state_bytes) == 4  # three wait states and the end
    # the diagram is about half of what (b) saves
    assert all(s < 0.6 * f for s, f in zip(state_only.state_bytes, full.state_bytes, strict=True))

    from SpiffWorkflow.bpmn.workflow import BpmnWorkflow

    wf = BpmnWorkflow(state_only.spec, state_only.subprocess_specs)
    wf.do_engine_steps()
    text = state_only.state_only.dump(wf)
    saved = json.loads(text)
    assert "spec" not in saved and "subprocess_specs" not in saved
    restored = state_only.state_only.load(text)
    assert restored is not wf and restored.spec is state_only.spec  # a new workflow around the held spec
    assert [t.task_spec.name for t in restored.get_tasks()] == [t.task_spec.name for t in wf.get_tasks()]
    assert state_only.state_only.dump(restored) == text
    # and the variant's wait state goes through exactly that: the held spec, not one read back from the text
    assert state_only._roundtrip(wf).spec is state_only.spec
    assert full._roundtrip(full_wf := BpmnWorkflow(full.spec)).spec is not full.spec and full_wf.spec is full.spec


def test_each_carepath_variant_runs_with_its_setting_and_the_result_says_so():
    out = yardstick.run(n=2, rounds=1, warmup=1, variants=["c", "c_full", "c_nocache"], pg_url=None)
    s = out["settings"]
    assert (s["c"]["synchronous"], s["c"]["live_cache_size"]) == ("NORMAL", 2000)
    assert (s["c_full"]["synchronous"], s["c_full"]["live_cache_size"]) == ("FULL", 2000)
    assert (s["c_nocache"]["synchronous"], s["c_nocache"]["live_cache_size"]) == ("NORMAL", 0)
    assert {v["journal_mode"] for v in s.values()} == {"wal"}
    assert set(out["ratios"]) == {"c_full/c", "c_nocache/c"}


def test_without_the_cache_every_step_restores_the_workflow():
    cached, uncached = yardstick.CarepathVariant("c", None), yardstick.CarepathVariant("c_nocache", None)
    try:
        for v in (cached, uncached):
            v.eng.start(yardstick.PROCESS)
        assert len(cached.eng._live) == 1
        assert len(uncached.eng._live) == 0
    finally:
        cached.close()
        uncached.close()
