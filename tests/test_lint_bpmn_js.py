"""The lint rules judge a drawing as bpmn-js draws and saves it (the library behind Camunda Modeler
and the workbench's modeller), in headless Chromium (tests/browser.py), nothing served:

- the lines bpmn-js breaks every task name and every label into are the lines engine.lint.text
  counts, so name-fits-box and no-label-overlap measure what a process owner sees;
- every diagram in processes/, opened in the bpmn-js Modeler, moved as a whole (so bpmn-js
  rewrites every bound, waypoint and label with its own measurements) and saved, lints clean;
- a task dragged onto a flow in the Modeler and saved is flagged by no-flow-through-shape.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from engine.lint import lint_files
from engine.lint.diagram import ACTIVITIES, read_diagram
from engine.lint.text import LABEL_FONT, TASK_FONT, layout
from engine.xmlsafe import parse_xml
from tests.browser import launch, unavailable

ROOT = Path(__file__).resolve().parent.parent
BPMN_JS = ROOT / "node_modules" / "bpmn-js" / "dist"
MODELER_JS = BPMN_JS / "bpmn-modeler.production.min.js"
CSS = [BPMN_JS / "assets" / "diagram-js.css", BPMN_JS / "assets" / "bpmn-js.css"]
DIAGRAMS = sorted((ROOT / "processes").glob("*.bpmn"))

IMPORT = """async (xml) => {
  if (window.modeler) window.modeler.destroy();
  window.modeler = new BpmnJS({ container: '#canvas' });
  const result = await window.modeler.importXML(xml);
  return (result.warnings || []).map((w) => String(w.message || w));
}"""

LINES = """() => {
  const registry = window.modeler.get('elementRegistry');
  const out = {};
  for (const el of registry.getAll()) {
    const text = registry.getGraphics(el).querySelector('text');
    if (text && text.textContent) out[el.id] = Array.from(text.querySelectorAll('tspan')).map((t) => t.textContent);
  }
  return out;
}"""

MOVE_ALL = """async () => {
  const registry = window.modeler.get('elementRegistry');
  const root = window.modeler.get('canvas').getRootElement();
  const top = registry.filter((el) => el.parent === root && !el.waypoints && !el.labelTarget);
  window.modeler.get('modeling').moveElements(top, { x: 40, y: 40 });
  return (await window.modeler.saveXML({ format: true })).xml;
}"""

DROP_ON_FLOW = """async ([shapeId, flowId]) => {
  const registry = window.modeler.get('elementRegistry');
  const shape = registry.get(shapeId), flow = registry.get(flowId);
  const [a, b] = flow.waypoints;
  const mid = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
  const delta = { x: mid.x - (shape.x + shape.width / 2), y: mid.y - (shape.y + shape.height / 2) };
  window.modeler.get('modeling').moveElements([shape], delta);
  return (await window.modeler.saveXML({ format: true })).xml;
}"""


@pytest.fixture(scope="module")
def page():
    if not MODELER_JS.is_file():
        unavailable(f"{MODELER_JS.relative_to(ROOT)} is missing: run `make setup` (npm ci)")
    with launch() as browser:
        context = browser.new_context(viewport={"width": 1600, "height": 1000})
        page = context.new_page()
        page.route("**/*", lambda route: route.abort())
        page.set_content('<!doctype html><html><head><meta charset="utf-8"><title>lint</title></head>'
                         '<body><div id="canvas" style="width:1600px;height:1000px"></div></body></html>')
        for css in CSS:
            page.add_style_tag(path=str(css))
        page.add_script_tag(path=str(MODELER_JS))
        yield page
        context.close()


@pytest.mark.parametrize("path", DIAGRAMS, ids=[p.name for p in DIAGRAMS])
def test_names_break_into_the_lines_bpmn_js_draws(page, path):
    assert page.evaluate(IMPORT, path.read_text(encoding="utf-8")) == []
    drawn = page.evaluate(LINES)
    diagram = read_diagram(parse_xml(path.read_bytes(), path.name), path.name)
    checked = 0
    for node in diagram.nodes.values():
        if not node.name or node.shape is None:
            continue
        if node.tag in ACTIVITIES:
            ours, theirs = layout(node.name, node.shape.bounds[2] - 14, TASK_FONT), drawn[node.id]
        elif node.external_label:
            wrap = max(90, node.shape.label[2]) if node.shape.label else 90
            ours, theirs = layout(node.name, wrap, LABEL_FONT), drawn[f"{node.id}_label"]
        else:
            continue
        assert [text.strip() for text, _ in ours] == [t.strip() for t in theirs], (node.id, node.name)
        checked += 1
    assert checked >= 5


@pytest.mark.parametrize("path", DIAGRAMS, ids=[p.name for p in DIAGRAMS])
def test_a_diagram_moved_and_saved_by_the_bpmn_js_modeler_still_lints_clean(page, path):
    assert page.evaluate(IMPORT, path.read_text(encoding="utf-8")) == []
    saved = page.evaluate(MOVE_ALL)
    original = {n.id: n.shape.bounds for n in read_diagram(parse_xml(path.read_bytes(), "o"), "o").nodes.values()}
    moved = read_diagram(parse_xml(saved.encode(), path.name), path.name)
    assert all(n.shape.bounds[:2] == (original[n.id][0] + 40, original[n.id][1] + 40)
               for n in moved.nodes.values() if n.shape and n.shape.plane == 0), "the Modeler did not move the diagram"
    assert [str(p) for p in lint_files({path.name: saved.encode()})] == []


def test_a_task_dropped_on_a_flow_in_the_modeler_is_flagged(page):
    path = ROOT / "processes" / "review.bpmn"
    assert page.evaluate(IMPORT, path.read_text(encoding="utf-8")) == []
    saved = page.evaluate(DROP_ON_FLOW, ["start_next_review", "f_r9"])
    found = [(p.rule, p.element_id) for p in lint_files({"review.bpmn": saved.encode()})]
    assert ("no-flow-through-shape", "f_r9") in found


FIXTURES = sorted((ROOT / "tests" / "fixtures" / "lint").glob("*/*.bpmn"))


@pytest.mark.parametrize("path", FIXTURES, ids=[f"{p.parent.name}/{p.name}" for p in FIXTURES])
def test_the_lint_fixtures_are_diagrams_bpmn_js_opens(page, path):
    assert page.evaluate(IMPORT, path.read_text(encoding="utf-8")) == []


# ---------------------------------------------------------------- round trip through a Camunda-style modeller
# Camunda Modeler is bpmn-js with camunda-bpmn-moddle: a diagram opened and saved there keeps every
# camunda:* attribute carepath reads. The same save, done here, must leave what carepath reads unchanged.
CAMUNDA_MODDLE = ROOT / "node_modules" / "camunda-bpmn-moddle" / "resources" / "camunda.json"
CAMUNDA_MODELER_EXPORT = ROOT / "tests" / "fixtures" / "camunda_review.bpmn"  # saved by Camunda Modeler 5.17

SAVE_AS_CAMUNDA_MODELER = """async ([xml, camunda]) => {
  if (window.modeler) window.modeler.destroy();
  window.modeler = new BpmnJS({ container: '#canvas', moddleExtensions: { camunda } });
  const result = await window.modeler.importXML(xml);
  if ((result.warnings || []).length) return { warnings: result.warnings.map((w) => String(w.message || w)) };
  return { xml: (await window.modeler.saveXML({ format: true })).xml };
}"""


def _saved_by_modeler(page, path: Path) -> bytes:
    import json

    out = page.evaluate(SAVE_AS_CAMUNDA_MODELER, [path.read_text(encoding="utf-8"),
                                                  json.loads(CAMUNDA_MODDLE.read_text(encoding="utf-8"))])
    assert "warnings" not in out, out
    return out["xml"].encode()


def _what_carepath_reads(files: dict[str, bytes], **checks) -> dict[str, str]:
    import json
    import re

    from engine.bpmn import parse_bundle
    from engine.definitions import info_to_json

    bundle = parse_bundle(files, **checks)

    # line numbers move when a modeller reformats the file; everything else must be the same
    def without_lines(info_json: str) -> str:
        return json.dumps(json.loads(re.sub(r'"line": \d+', '"line": null', info_json)), sort_keys=True)

    return {pid: without_lines(info_to_json(info)) for pid, info in bundle.processes.items()}


def test_the_operating_model_saved_by_a_camunda_style_modeller_reads_the_same_and_deploys(page, tmp_path):
    from engine.forms import FormLibrary
    from engine.registry import load_registry
    from engine.runtime import Engine

    files = {p.name: p.read_bytes() for p in sorted((ROOT / "processes").glob("*.*")) if p.suffix in (".bpmn", ".dmn")}
    saved = {name: (_saved_by_modeler(page, ROOT / "processes" / name) if name.endswith(".bpmn") else data)
             for name, data in files.items()}
    assert saved != files  # the modeller did rewrite them
    eng = Engine(f"sqlite:///{tmp_path / 'rt.db'}", registry=load_registry("handlers"),
                 forms=FormLibrary.from_folder(ROOT / "forms"))
    checks = eng.definition_checks()
    assert _what_carepath_reads(saved, **checks) == _what_carepath_reads(files, **checks)
    eng.init()
    refs = eng.deploy(files=saved)
    assert {r.process_id for r in refs if r.created} >= {"front_door", "reablement", "needs_assessment", "review"}
    assert lint_files(saved) == []
    eng.db.dispose()


def test_a_camunda_modeler_export_deploys_and_runs_unchanged_and_after_another_save(page, tmp_path):
    from engine.forms import FormLibrary
    from engine.registry import HandlerRegistry
    from engine.runtime import Engine

    registry = HandlerRegistry()
    for name in ("send_letter", "send_reminder", "lookup_person"):
        registry.register(name, lambda ctx, **params: {"ok": True})
    forms = FormLibrary({name: {"type": "object"} for name in
                         ("triage.form", "review_form", "forms/escalate.html")})
    original = CAMUNDA_MODELER_EXPORT.read_bytes()
    again = _saved_by_modeler(page, CAMUNDA_MODELER_EXPORT)
    assert _what_carepath_reads({"r.bpmn": again}) == _what_carepath_reads({"r.bpmn": original})
    for n, data in enumerate((original, again)):
        eng = Engine(f"sqlite:///{tmp_path / f'cm{n}.db'}", registry=registry, forms=forms)
        eng.init(simulated_start=datetime(2031, 3, 3, 9, tzinfo=timezone.utc))
        eng.deploy(files={"camunda_review.bpmn": data})
        started = eng.start("care_review", data={"urgent": False})
        assert [t["element_id"] for t in eng.list_tasks(case_id=started.case_id)] == ["triage"]
        eng.db.dispose()
