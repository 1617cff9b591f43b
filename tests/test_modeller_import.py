"""Every processes/*.bpmn opens in bpmn-js, the library behind Camunda Modeler and bpmn.io.

Each diagram is imported into bpmn-js's NavigatedViewer in headless Chromium (tests/browser.py):
no import error, no import warning, every task's name drawn on the canvas, and a non-empty
drawing. Nothing is served: the page is set from a string, bpmn-js comes from node_modules
(`make setup` runs `npm ci`), and every network request the page makes is refused and reported.

With CAREPATH_UPDATE_SCREENSHOTS=1 a PNG of each rendered diagram is written to
docs/diagrams/png/<name>.png for people to look at; otherwise the tests write nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from lxml import etree

from tests.browser import launch, unavailable

ROOT = Path(__file__).resolve().parent.parent
PROCESSES = ROOT / "processes"
BPMN_JS = ROOT / "node_modules" / "bpmn-js" / "dist"
VIEWER_JS = BPMN_JS / "bpmn-navigated-viewer.production.min.js"
CSS = [BPMN_JS / "assets" / "diagram-js.css", BPMN_JS / "assets" / "bpmn-js.css"]
SCREENSHOTS = ROOT / "docs" / "diagrams" / "png"
UPDATE_SCREENSHOTS = os.environ.get("CAREPATH_UPDATE_SCREENSHOTS") == "1"

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
TASK_TAGS = (
    "task",
    "userTask",
    "serviceTask",
    "scriptTask",
    "businessRuleTask",
    "sendTask",
    "receiveTask",
    "manualTask",
    "callActivity",
    "subProcess",
)
MAX_SIDE = 4000  # screenshot size cap, in CSS pixels
MARGIN = 40

DIAGRAMS = sorted(PROCESSES.glob("*.bpmn"))

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>carepath modeller check</title>
<style>html, body { margin: 0; padding: 0; background: white; }
#canvas { width: 100vw; height: 100vh; }</style>
</head><body><div id="canvas"></div></body></html>"""

IMPORT = """async (xml) => {
  const describe = (w) => ({
    message: String(w.message || w),
    id: (w.element && w.element.id) || null,
    type: (w.element && w.element.$type) || null,
    property: w.property || null,
  });
  window.viewer = new BpmnJS({ container: '#canvas' });
  try {
    const result = await window.viewer.importXML(xml);
    return { error: null, warnings: (result.warnings || []).map(describe) };
  } catch (err) {
    return { error: String(err.message || err), warnings: (err.warnings || []).map(describe) };
  }
}"""

DRAWING = """() => {
  const canvas = window.viewer.get('canvas');
  const layer = document.querySelector('#canvas svg .viewport');
  const box = layer.getBBox();
  const inner = canvas.viewbox().inner;
  return {
    bbox: { width: box.width, height: box.height },
    inner: { width: inner.width, height: inner.height },
    texts: Array.from(document.querySelectorAll('#canvas svg text')).map((t) => t.textContent),
  };
}"""

LABELS = """() => {
  const registry = window.viewer.get('elementRegistry');
  const out = {};
  for (const el of registry.getAll()) {
    const gfx = registry.getGraphics(el);
    const text = gfx && gfx.querySelector('text');
    if (text) out[el.id] = text.textContent;
  }
  return out;
}"""


def squash(text: str) -> str:
    """Text without whitespace: bpmn-js wraps a label into lines wherever it fits."""
    return re.sub(r"\s+", "", text)


def task_names(path: Path) -> dict[str, str]:
    tree = etree.parse(str(path), etree.XMLParser(resolve_entities=False, no_network=True))
    names = {}
    for tag in TASK_TAGS:
        for el in tree.iter(f"{{{BPMN_NS}}}{tag}"):
            if el.get("name"):
                names[el.get("id")] = el.get("name")
    return names


@pytest.fixture(scope="module")
def browser():
    if not VIEWER_JS.is_file():
        unavailable(f"{VIEWER_JS.relative_to(ROOT)} is missing: run `make setup` (npm ci)")
    with launch() as b:
        yield b


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1600, "height": 1000}, device_scale_factor=1)
    page = context.new_page()
    page.requests = []  # anything the page tries to fetch
    page.errors = []  # uncaught page errors and console errors

    def refuse(route):
        page.requests.append(route.request.url)
        route.abort()

    page.route("**/*", refuse)
    page.on("pageerror", lambda exc: page.errors.append(f"pageerror: {exc}"))
    page.on("console", lambda msg: msg.type == "error" and page.errors.append(f"console: {msg.text}"))
    page.set_content(PAGE)
    for css in CSS:
        page.add_style_tag(path=str(css))
    page.add_script_tag(path=str(VIEWER_JS))
    yield page
    context.close()


def test_there_are_diagrams():
    assert len(DIAGRAMS) >= 10, DIAGRAMS


@pytest.mark.parametrize("path", DIAGRAMS, ids=[p.name for p in DIAGRAMS])
def test_diagram_opens_in_bpmn_js(page, path: Path):
    result = page.evaluate(IMPORT, path.read_text(encoding="utf-8"))
    problems = [f"  {w['type']} {w['id']}: {w['message']}" for w in result["warnings"]]
    if result["error"] or problems:
        print(f"bpmn-js import of {path.name}:")
        if result["error"]:
            print(f"  error: {result['error']}")
        print("\n".join(problems))
    assert result["error"] is None, f"{path.name}: bpmn-js could not import it: {result['error']}"
    assert not problems, f"{path.name}: bpmn-js import warnings:\n" + "\n".join(problems)

    drawing = page.evaluate(DRAWING)
    assert drawing["bbox"]["width"] > 0 and drawing["bbox"]["height"] > 0, f"{path.name}: nothing drawn"

    drawn = {squash(t) for t in drawing["texts"]}
    labels = {k: squash(v) for k, v in page.evaluate(LABELS).items()}
    names = task_names(path)
    assert names, f"{path.name}: no named tasks found"
    missing = {
        id_: name for id_, name in names.items() if labels.get(id_) != squash(name) and squash(name) not in drawn
    }
    assert not missing, f"{path.name}: task names not shown on the canvas: {missing}"

    assert not page.errors, f"{path.name}: errors in the page: {page.errors}"
    assert not page.requests, f"{path.name}: the page tried to fetch: {page.requests}"

    if UPDATE_SCREENSHOTS:
        width = min(int(drawing["inner"]["width"]) + 2 * MARGIN, MAX_SIDE)
        height = min(int(drawing["inner"]["height"]) + 2 * MARGIN, MAX_SIDE)
        page.set_viewport_size({"width": max(width, 400), "height": max(height, 300)})
        page.evaluate(
            """() => { const c = window.viewer.get('canvas'); c.resized(); c.zoom('fit-viewport', 'auto'); }"""
        )
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{path.stem}.png"))
