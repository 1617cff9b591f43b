"""The replay page (/cases/{id}/replay, api/replay_pages.py) of a case with 10,000 events (issue 9;
goals: first paint < 1 s, each step < 100 ms).

    .venv/bin/python -m bench.replay_view_bench                 # SQLite, 10,000 events
    .venv/bin/python -m bench.replay_view_bench --events 2000 --no-browser

The case is Joan Barker's journey through the operating model's own diagrams (front door ->
reablement -> needs assessment), then months of work on the open assessment task — claimed,
a draft saved, released, the case record corrected — until it has 10,000 events, then the
assessment, budget and plan are finished. Set-up is not measured. Measured, with the timeline
cache empty as after a restart:

* server: the first page (step 1) — once as the first replay since the process started (the
  empty scratch database is made then), once more with the case out of the cache — and each of
  the next 50 steps, then a jump to the last step, then 50 steps back from the end;
* browser (Chromium, as the auditor, the case out of the cache): the page's first contentful
  paint and the time until every diagram is drawn and marked, and 50 steps with the `j` key, each
  until the new step's diagrams are marked (case_replay.js records the time in data-step-ms).

Results are printed and saved under bench/results/.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from bench.run import machine

ROOT = Path(__file__).resolve().parent.parent


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {"n": len(values), "median_ms": round(statistics.median(ordered), 1),
            "p95_ms": round(ordered[max(0, int(len(ordered) * 0.95) - 1)], 1), "max_ms": round(ordered[-1], 1)}


def build(url: str, target: int) -> tuple[Any, int]:
    from api.demo_cases import _assessment, _contact, _plan, _ras
    from api.demo_users import create_demo_users
    from tests.test_timeline import journey_engine

    eng = journey_engine(url)
    create_demo_users(eng)

    def task(case_id: int, element: str) -> dict[str, Any]:
        [t] = [t for t in eng.list_tasks(case_id=case_id) if t["element_id"] == element]
        return t

    def complete(case_id: int, element: str, data: dict[str, Any], actor: str) -> None:
        t = task(case_id, element)
        if t.get("assignee") != actor:
            eng.claim(t["id"], actor)
        eng.complete_task(t["id"], data, actor=actor)

    case_id = eng.start("front_door", actor="front-door-advisor", title="Joan Barker").case_id
    complete(case_id, "record_contact", _contact(
        "Joan Barker", 78, "4 Mill Lane, Northby", "Falls at home",
        outcomes_unable=["personal_hygiene", "being_appropriately_clothed", "using_the_home_safely"]),
        "front-door-advisor")
    complete(case_id, "plan_reablement", {"goals": ["Wash and dress"], "setting": "home", "start_type": "planned",
                                          "visits_per_day": 2}, "reablement-coordinator")
    eng.advance_clock(timedelta(days=20))
    complete(case_id, "deliver_reablement", {"outcome": "needs_remain", "summary": "Needs help with meals"},
             "reablement-coordinator")
    assess = task(case_id, "assess_needs")
    finish = 24  # events the last four completions add (roughly)
    for i in range(max(0, (target - finish - len(eng.history(case_id))) // 4)):  # four events a round
        eng.claim(assess["id"], "social-worker")
        eng.save_draft(assess["id"], {"notes": f"visit {i}"}, actor="social-worker")
        eng.release(assess["id"], "social-worker")
        eng.update_case_record(case_id, {"contact_log": i}, actor="team-manager", reason=f"call {i}")
    complete(case_id, "assess_needs", _assessment("Joan Barker", "personal_hygiene", "managing_nutrition",
                                                  "using_home_safely"), "social-worker")
    complete(case_id, "score_needs", _ras(personal_care="moderate", nutrition="low"), "social-worker")
    complete(case_id, "write_plan", _plan("Demo social worker"), "social-worker")
    complete(case_id, "sign_off_plan", {"signed_off": True}, "team-manager")
    return eng, case_id


def server(eng: Any, case_id: int, steps: int) -> dict[str, Any]:
    import re

    from fastapi.testclient import TestClient

    from api.app import create_app
    from api.demo_users import demo_password
    from engine import timeline

    app = create_app(eng, run_timers=False)
    client = TestClient(app, follow_redirects=False)
    token = re.search(r'name="form_token" value="([^"]+)"', client.get("/sign-in").text).group(1)
    client.post("/sign-in", data={"form_token": token, "username": "auditor", "password": demo_password("auditor")})
    timeline.clear_cache()
    t0 = time.perf_counter()
    first = client.get(f"/cases/{case_id}/replay")
    first_s = time.perf_counter() - t0  # the first replay since the process started: the empty scratch db made
    assert first.status_code == 200, first.text[:500]
    timeline.clear_cache()
    t0 = time.perf_counter()
    again = client.get(f"/cases/{case_id}/replay")
    again_s = time.perf_counter() - t0  # the case not in the cache, as for any case opened later
    assert again.status_code == 200
    total = first.context["total"]
    forward = []
    for n in range(2, 2 + steps):
        t0 = time.perf_counter()
        r = client.get(f"/cases/{case_id}/replay?step={n}")
        forward.append(_ms(time.perf_counter() - t0))
        assert r.status_code == 200
    t0 = time.perf_counter()
    last = client.get(f"/cases/{case_id}/replay?step={total}")
    jump_s = time.perf_counter() - t0
    assert last.status_code == 200 and last.context["replayed"], last.context.get("divergence")
    back = []
    for n in range(total - 1, total - 1 - steps, -1):
        t0 = time.perf_counter()
        r = client.get(f"/cases/{case_id}/replay?step={n}")
        back.append(_ms(time.perf_counter() - t0))
    return {"events": len(eng.history(case_id)), "steps": total, "first_page_after_start_ms": _ms(first_s),
            "first_page_ms": _ms(again_s),
            "next_steps": _summary(forward), "jump_to_last_step_ms": _ms(jump_s), "steps_back_from_the_end":
                _summary(back), "page_bytes": len(first.content)}


def browser(eng: Any, case_id: int, steps: int) -> dict[str, Any]:
    from api.app import create_app
    from api.demo_users import demo_password
    from engine import timeline
    from tests.browser import launch, live_server, sign_in

    timeline.clear_cache()
    app = create_app(eng, run_timers=False)
    with live_server(app) as base, launch() as b:
        page = b.new_context(viewport={"width": 1280, "height": 900}).new_page()
        sign_in(page, base, "auditor", demo_password("auditor"), then=None)
        t0 = time.perf_counter()
        page.goto(f"{base}/cases/{case_id}/replay")
        page.wait_for_function("() => document.querySelector('#replay-main').dataset.firstPaintMs !== undefined")
        first = time.perf_counter() - t0
        drawn_ms = float(page.get_attribute("#replay-main", "data-first-paint-ms"))
        fcp = page.evaluate("() => (performance.getEntriesByName('first-contentful-paint')[0] || {}).startTime")
        per_step, wall = [], []
        for n in range(2, 2 + steps):
            t0 = time.perf_counter()
            page.keyboard.press("j")
            page.wait_for_function("n => { const m = document.querySelector('#replay-main');"
                                   " return m.dataset.step === String(n) && m.dataset.stepMs !== undefined; }", arg=n)
            wall.append(_ms(time.perf_counter() - t0))
            per_step.append(float(page.get_attribute("#replay-main", "data-step-ms")))
    return {"first_contentful_paint_ms": round(fcp or 0, 1), "diagrams_drawn_ms": _ms(first),
            "diagrams_drawn_after_script_start_ms": drawn_ms,
            "step_in_page_ms": _summary(per_step), "step_keypress_to_marked_ms": _summary(wall)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--events", type=int, default=10_000)
    p.add_argument("--steps", type=int, default=50)
    p.add_argument("--no-browser", action="store_true")
    args = p.parse_args()
    result: dict[str, Any] = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
                              "command": "python -m bench.replay_view_bench " + " ".join(
                                  f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                  if k in ("events", "steps"))}
    with tempfile.TemporaryDirectory(prefix="carepath-bench-") as tmp:
        t0 = time.perf_counter()
        eng, case_id = build(f"sqlite:///{tmp}/bench.db", args.events)
        result["build_s"] = round(time.perf_counter() - t0, 1)
        result["server"] = server(eng, case_id, args.steps)
        print(json.dumps(result["server"], indent=2), flush=True)
        if not args.no_browser:
            result["browser"] = browser(eng, case_id, args.steps)
            print(json.dumps(result["browser"], indent=2), flush=True)
        eng.db.dispose()
    out = ROOT / "bench" / "results" / f"replay-view-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"saved {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
