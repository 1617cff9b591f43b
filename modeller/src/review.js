// The visual diff on the review page (/processes/drafts/{id}/review): the live version and the draft
// drawn side by side with bpmn-js's NavigatedViewer, compared with bpmn-js-differ. Added elements
// are marked on the draft, removed ones on the live version, changed ones on both: by colour AND
// by a text badge ("Added", "Removed", "Changed"), with a legend; the changes are also written in
// words into #diagram-diff-list, attribute changes included.
//
// The page carries <div id="diagram-diff" data-base-url=… data-draft-url=…>; no inline script.
import NavigatedViewer from "bpmn-js/lib/NavigatedViewer";
import camundaModdle from "camunda-bpmn-moddle/resources/camunda.json";
import { diff } from "bpmn-js-differ";

import "bpmn-js/dist/assets/diagram-js.css";
import "bpmn-js/dist/assets/bpmn-js.css";
import "./review.css";

const KINDS = {
  added: { label: "Added", marker: "app-diff-added", where: "on the draft" },
  removed: { label: "Removed", marker: "app-diff-removed", where: "on the live version" },
  changed: { label: "Changed", marker: "app-diff-changed", where: "on both" },
};

// What carepath reads, in words (docs/diagram-attributes.md); anything else by its property path.
const ATTRIBUTES = [
  [/^(camunda:)?candidateGroups$/, "candidate groups"],
  [/^(camunda:)?(formKey|formRef)$/, "form"],
  [/^(camunda:)?topic$/, "handler"],
  [/^(camunda:)?type$/, "implementation"],
  [/^(camunda:)?resultVariable$/, "result variable"],
  [/^name$/, "name"],
  [/^conditionExpression/, "condition"],
  [/^script$/, "script"],
  [/^scriptFormat$/, "script language"],
  [/^default$/, "default flow"],
  [/^(sourceRef|targetRef)$/, "connection"],
  [/eventDefinitions.*time(Duration|Date|Cycle)/, "timer"],
  [/^attachedToRef$/, "attached to"],
  [/^cancelActivity$/, "interrupting"],
  [/^calledElement$/, "called process"],
  [/^(camunda:)?decisionRef$/, "decision"],
  [/inputParameters|inputOutput/, "handler parameters"],
  [/^documentation/, "documentation"],
  [/^\$type$/, "type"],
];

function attributeName(path) {
  for (const [re, words] of ATTRIBUTES) {
    if (re.test(path)) { return words; }
  }
  return path.replace(/\[\d+\]/g, "").replace(/([a-z])([A-Z])/g, "$1 $2").replace(/\./g, " ").toLowerCase();
}

function show(value) {
  if (value === null || value === undefined || value === "") { return "(none)"; }
  if (typeof value === "object") {
    if (value.body !== undefined) { return String(value.body); }
    if (value.value !== undefined && value.name) { return `${value.name} = ${value.value}`; }
    if (value.text !== undefined) { return String(value.text); }
    if (value.id) { return value.name ? `'${value.name}'` : value.id; }
    return (value.$type || "element").replace(/^\w+:/, "");
  }
  return String(value);
}

function typeWords(element) {
  const type = (element && element.$type) || "element";
  return type.replace(/^\w+:/, "").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase();
}

function named(element, id) {
  return element && element.name ? `${typeWords(element)} '${element.name}' (${id})` : `${typeWords(element)} ${id}`;
}

async function fetchText(url) {
  const response = await fetch(url, { credentials: "same-origin" });
  if (!response.ok) { throw new Error(`${url} could not be loaded (${response.status})`); }
  return response.text();
}

function pane(container, title, id) {
  const wrap = document.createElement("figure");
  wrap.className = "app-diff__pane";
  const caption = document.createElement("figcaption");
  caption.className = "govuk-heading-s";
  caption.textContent = title;
  const canvas = document.createElement("div");
  canvas.className = "app-diff__canvas";
  canvas.id = id;
  wrap.appendChild(caption);
  wrap.appendChild(canvas);
  container.appendChild(wrap);
  return canvas;
}

function mark(viewer, id, kind) {
  const registry = viewer.get("elementRegistry");
  if (!registry.get(id)) { return false; }
  viewer.get("canvas").addMarker(id, KINDS[kind].marker);
  const badge = document.createElement("span");
  badge.className = "app-diff-badge app-diff-badge--" + kind;
  badge.textContent = KINDS[kind].label;
  viewer.get("overlays").add(id, "diff", { position: { top: -14, left: 0 }, html: badge });
  return true;
}

function nameCanvas(container, label) {
  Array.prototype.forEach.call(container.querySelectorAll("[tabindex]"), (el) => {
    el.setAttribute("role", "group");
    el.setAttribute("aria-label", label);
  });
}

function legend() {
  const p = document.createElement("ul");
  p.className = "app-diff__legend";
  Object.keys(KINDS).forEach((kind) => {
    const li = document.createElement("li");
    const badge = document.createElement("span");
    badge.className = "app-diff-badge app-diff-badge--" + kind;
    badge.textContent = KINDS[kind].label;
    li.appendChild(badge);
    li.appendChild(document.createTextNode(` marked ${KINDS[kind].where}`));
    p.appendChild(li);
  });
  return p;
}

export function describeChanges(changes, baseRegistry, draftRegistry) {
  const lines = [];
  const sorted = (obj) => Object.keys(obj).sort();
  sorted(changes._added).forEach((id) => lines.push({ kind: "added", id, text: `Added ${named(changes._added[id], id)}` }));
  sorted(changes._removed).forEach((id) => lines.push({ kind: "removed", id,
    text: `Removed ${named(changes._removed[id], id)}` }));
  sorted(changes._changed).forEach((id) => {
    const entry = changes._changed[id];
    const model = entry.model;
    const parts = Object.keys(entry.attrs).map((path) => {
      const { oldValue, newValue } = entry.attrs[path];
      return `${attributeName(path)} ${show(oldValue)} → ${show(newValue)}`;
    });
    const what = model && model.name ? `'${model.name}'` : id;
    lines.push({ kind: "changed", id, text: `Changed ${what}: ${parts.join("; ") || "its details"}` });
  });
  const moved = sorted(changes._layoutChanged).filter((id) => !changes._added[id] && !changes._removed[id]
    && !changes._changed[id]);
  if (moved.length) {
    lines.push({ kind: "layout", id: null, text: `Moved or redrawn only: ${moved.join(", ")}` });
  }
  return lines;
}

async function render(container) {
  const list = document.getElementById("diagram-diff-list");
  const status = document.createElement("p");
  status.className = "govuk-body";
  status.setAttribute("role", "status");
  container.appendChild(status);
  status.textContent = "Drawing the live version and the draft…";
  const [baseXml, draftXml] = await Promise.all([fetchText(container.getAttribute("data-base-url")),
    fetchText(container.getAttribute("data-draft-url"))]);
  const panes = document.createElement("div");
  panes.className = "app-diff";
  container.appendChild(panes);
  const options = { moddleExtensions: { camunda: camundaModdle } };
  const base = new NavigatedViewer({ container: pane(panes, "Live version", "diagram-diff-base"), ...options });
  const draft = new NavigatedViewer({ container: pane(panes, "Draft", "diagram-diff-draft"), ...options });
  await base.importXML(baseXml);
  await draft.importXML(draftXml);
  base.get("canvas").zoom("fit-viewport");
  draft.get("canvas").zoom("fit-viewport");
  nameCanvas(document.getElementById("diagram-diff-base"), "Live version of the diagram");
  nameCanvas(document.getElementById("diagram-diff-draft"), "Draft of the diagram");
  const changes = diff(base.getDefinitions(), draft.getDefinitions());
  Object.keys(changes._added).forEach((id) => mark(draft, id, "added"));
  Object.keys(changes._removed).forEach((id) => mark(base, id, "removed"));
  Object.keys(changes._changed).forEach((id) => { mark(base, id, "changed"); mark(draft, id, "changed"); });
  container.insertBefore(legend(), panes);
  const lines = describeChanges(changes, base.get("elementRegistry"), draft.get("elementRegistry"));
  if (list) {
    list.textContent = "";
    const heading = document.createElement("h3");
    heading.className = "govuk-heading-s";
    heading.textContent = lines.length ? "Changes in the diagram" : "The diagram has not changed";
    list.appendChild(heading);
    const ul = document.createElement("ul");
    ul.className = "govuk-list govuk-list--bullet app-diff__changes";
    lines.forEach((line) => {
      const li = document.createElement("li");
      li.setAttribute("data-kind", line.kind);
      if (line.id) { li.setAttribute("data-element-id", line.id); }
      li.textContent = line.text;
      ul.appendChild(li);
    });
    list.appendChild(ul);
  }
  status.textContent = `${lines.length} change${lines.length === 1 ? "" : "s"} between the live version and the draft.`;
  container.setAttribute("data-rendered", "true");
  window.carepathReview = { base, draft, changes, lines };
}

const container = document.getElementById("diagram-diff");
if (container) {
  render(container).catch((err) => {
    container.setAttribute("data-rendered", "failed");
    const p = document.createElement("p");
    p.className = "govuk-body";
    p.setAttribute("role", "alert");
    p.textContent = "The diagrams could not be compared: " + err.message + ". The list of changes on this page still says what changed.";
    container.appendChild(p);
  });
}
