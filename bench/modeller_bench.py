"""The browser modeller with a 100-element diagram (issue 8): time to open it, and the check round trip per edit.

    .venv/bin/python -m bench.modeller_bench [--opens 7] [--edits 25]

A process of 100 elements (a start event, 48 tasks — user tasks with a team and a form, service
tasks with a handler and its parameter, alternately — an end event, and the 49 flows between them,
all drawn) is saved as a draft through the drafts API, then opened in the modeller in headless
Chromium (tests/browser.py) served by uvicorn (api/app.py). Measured:

* open: from the start of navigation to the diagram drawn (bpmn-js imported it) and to interactive
  (drawn, the catalogue loaded, and the first server check and bpmnlint run shown on the canvas
  and in the problems list); the first open is cold (empty browser cache), the rest warm;
* round trip per edit: an element renamed, then the page's own check (the draft's XML exported,
  POST /api/modeller/validate, bpmnlint re-run with the server's problems) timed in the page from
  the start of the check to the lint result (the 300 ms typing pause before it is by design and not
  counted);
* the server's part alone: POST /api/modeller/validate for the same files, from Python.

Goals (issue 8): open < 1 s, round trip < 200 ms. Results go to bench/results/modeller-*.json;
docs/performance.md has the numbers.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from api.app import create_app
from api.auth import create_user
from engine.forms import FormLibrary
from engine.registry import load_registry
from engine.runtime import Engine
from tests.browser import launch, live_server, sign_in
from tests.conftest import START
from tests.front_door_world import Api

from .run import machine

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
PASSWORD = "benchmark password"
TASKS = 48  # + start + end = 50 flow nodes, + 49 flows = 99, + the process = 100 elements


def chain_diagram(tasks: int = TASKS) -> str:
    """A drawn BPMN process: start, `tasks` tasks in a row (user and service alternately), end."""
    nodes = ['<bpmn:startEvent id="start" name="Start"><bpmn:outgoing>f0</bpmn:outgoing></bpmn:startEvent>']
    shapes = ['<bpmndi:BPMNShape id="start_di" bpmnElement="start"><dc:Bounds x="100" y="122" width="36" '
              'height="36" /></bpmndi:BPMNShape>']
    flows, edges = [], []
    x = 100
    prev, prev_right = "start", 136
    for i in range(1, tasks + 2):
        nid = f"t{i}" if i <= tasks else "end"
        x = prev_right + 50
        if nid == "end":
            nodes.append(f'<bpmn:endEvent id="end" name="End"><bpmn:incoming>f{i - 1}</bpmn:incoming></bpmn:endEvent>')
            shapes.append(f'<bpmndi:BPMNShape id="end_di" bpmnElement="end"><dc:Bounds x="{x}" y="122" width="36" '
                          'height="36" /></bpmndi:BPMNShape>')
            right, mid = x + 36, 140
        elif i % 2:
            nodes.append(f'<bpmn:userTask id="{nid}" name="Check {i}" camunda:candidateGroups="social_work" '
                         f'camunda:formKey="review"><bpmn:incoming>f{i - 1}</bpmn:incoming>'
                         f'<bpmn:outgoing>f{i}</bpmn:outgoing></bpmn:userTask>')
            right, mid = x + 100, 140
        else:
            nodes.append(f'<bpmn:serviceTask id="{nid}" name="Deadline {i}" camunda:type="external" '
                         f'camunda:topic="deadline"><bpmn:extensionElements><camunda:inputOutput>'
                         f'<camunda:inputParameter name="working_days">{i}</camunda:inputParameter>'
                         f'</camunda:inputOutput></bpmn:extensionElements><bpmn:incoming>f{i - 1}</bpmn:incoming>'
                         f'<bpmn:outgoing>f{i}</bpmn:outgoing></bpmn:serviceTask>')
            right, mid = x + 100, 140
        if nid != "end":
            shapes.append(f'<bpmndi:BPMNShape id="{nid}_di" bpmnElement="{nid}"><dc:Bounds x="{x}" y="100" '
                          'width="100" height="80" /></bpmndi:BPMNShape>')
        flows.append(f'<bpmn:sequenceFlow id="f{i - 1}" sourceRef="{prev}" targetRef="{nid}" />')
        edges.append(f'<bpmndi:BPMNEdge id="f{i - 1}_di" bpmnElement="f{i - 1}"><di:waypoint x="{prev_right}" '
                     f'y="{mid}" /><di:waypoint x="{x}" y="{mid}" /></bpmndi:BPMNEdge>')
        prev, prev_right = nid, right
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" xmlns:dc="http://www.omg.org/spec/DD/20100524/DC"
  xmlns:di="http://www.omg.org/spec/DD/20100524/DI" xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
  id="defs_bench" targetNamespace="http://carepath.local/processes">
  <bpmn:process id="bench_chain" name="Benchmark chain" isExecutable="true">
    {"".join(nodes)}
    {"".join(flows)}
  </bpmn:process>
  <bpmndi:BPMNDiagram id="diagram_bench"><bpmndi:BPMNPlane id="plane_bench" bpmnElement="bench_chain">
    {"".join(shapes)}
    {"".join(edges)}
  </bpmndi:BPMNPlane></bpmndi:BPMNDiagram>
</bpmn:definitions>
"""


def _stats(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "p50": round(statistics.median(values), 1), "p95": round(p95, 1),
            "max": round(max(values), 1)}


def run(opens: int, edits: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        eng = Engine(f"sqlite:///{tmp}/bench.db", registry=load_registry("handlers"),
                     forms=FormLibrary.from_folder(ROOT / "forms"))
        eng.init(simulated_start=START)
        create_user(eng, "owner", PASSWORD, roles=["process_owner"])
        app = create_app(eng, run_timers=False)
        owner = Api(app, "owner", PASSWORD)
        xml = chain_diagram()
        files = {"bench_chain.bpmn": xml}
        draft = owner.post("/api/processes/drafts", {"process_id": "bench_chain", "base_version": None,
                                                     "files": files})
        assert draft.status_code == 201, draft.text
        draft_id = draft.json()["id"]
        server = []
        for _ in range(edits):
            t0 = time.perf_counter()
            r = owner.post("/api/modeller/validate", {"files": files, "process_id": "bench_chain"})
            server.append((time.perf_counter() - t0) * 1000)
            assert r.status_code == 200 and r.json()["problems"] == [], r.text
        result: dict[str, Any] = {"elements": 100, "server_validate_ms": _stats(server)}
        with launch() as browser, live_server(app) as base:
            context = browser.new_context(viewport={"width": 1400, "height": 900})
            page = context.new_page()
            sign_in(page, base, "owner", PASSWORD, then=None)
            drawn, ready = [], []
            for _ in range(opens):
                page.goto(f"{base}/processes/drafts/{draft_id}/edit")
                page.wait_for_selector("#modeller[data-ready='true']", timeout=30_000)
                drawn.append(float(page.get_attribute("#modeller", "data-drawn-ms")))
                ready.append(float(page.get_attribute("#modeller", "data-ready-ms")))
            count = page.evaluate("() => window.carepathModeller.bpmn.get('elementRegistry')"
                                  ".filter(e => e.type !== 'label' && e.businessObject).length")
            result["open"] = {"cold_drawn_ms": drawn[0], "cold_interactive_ms": ready[0],
                              "warm_drawn_ms": _stats(drawn[1:]), "warm_interactive_ms": _stats(ready[1:]),
                              "shapes_on_canvas": count}
            trips, lint = [], []
            for i in range(edits):
                before = int(page.get_attribute("#modeller", "data-checks") or 0)
                page.evaluate("""(i) => { const m = window.carepathModeller.bpmn;
                    m.get('modeling').updateLabel(m.get('elementRegistry').get('t1'), 'Check ' + i); }""", i)
                page.wait_for_function(f"() => Number(document.querySelector('#modeller').dataset.checks) > {before}")
                trips.append(page.evaluate("() => window.carepathModeller.state.lastRoundTripMs"))
                lint.append(page.evaluate("""async () => { const t = performance.now();
                    await window.carepathModeller.bpmn.get('linting').lint(); return performance.now() - t; }"""))
            result["round_trip_ms"] = _stats(trips)
            result["bpmnlint_only_ms"] = _stats(lint)
        eng.db.dispose()
    return result


def _at_least(low: int):  # type: ignore[no-untyped-def]
    def whole(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if n < low:
            raise argparse.ArgumentTypeError(f"{n} is too few: at least {low}")
        return n
    return whole


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--opens", type=_at_least(2), default=7,
                   help="times the modeller page is opened (the first is cold, the others warm: at least 2)")
    p.add_argument("--edits", type=_at_least(1), default=25, help="edits (and server checks) measured")
    args = p.parse_args()
    result = {"when": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
              "command": f"python -m bench.modeller_bench --opens {args.opens} --edits {args.edits}",
              "modeller": run(args.opens, args.edits)}
    text = json.dumps(result, indent=2)
    print(text)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"modeller-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
