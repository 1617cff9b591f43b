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
  [/^eventDefinitions/, "timer"],
  [/^extensionElements/, "handler parameters"],
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
  if (Array.isArray(value)) { return value.length ? value.map(show).join(", ") : "(none)"; }
  if (typeof value !== "object") { return String(value); }
  const type = value.$type || "";
  if (type === "bpmn:TimerEventDefinition") {
    const kind = ["timeDate", "timeDuration", "timeCycle"].find((k) => value.get(k));
    return kind ? `${kind.slice(4).toLowerCase()} ${show(value.get(kind))}` : "a timer with no value";
  }
  if (type === "bpmn:ExtensionElements") { return show(value.get("values")); }
  if (type === "camunda:InputOutput") { return show(value.get("inputParameters")); }
  if (type === "camunda:InputParameter") { return `${value.get("name")} = ${show(value.get("value"))}`; }
  if (value.body !== undefined) { return String(value.body); }
  if (value.text !== undefined) { return String(value.text); }
  if (value.id) { return value.name ? `'${value.name}'` : value.id; }
  return type.replace(/^\w+:/, "") || "element";
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

function businessObject(viewer, id) {
  const element = viewer && viewer.get("elementRegistry").get(id);
  return element ? element.businessObject : null;
}

// bpmn-js-differ reports a change by property path (`camunda:candidateGroups`,
// `eventDefinitions[0]`, `extensionElements.values[0].inputParameters[1]`) and hands its ChangeHandler
// jsondiffpatch's [left, right] pair as (newValue, oldValue). So each changed property is described by
// reading its top-level property from both diagrams, old and new the right way round; only when an
// element is missing from one side are the differ's own values used (turned round).
function topProperty(path) { return path.split(/[.[]/)[0]; }

function oldAndNew(path, change, baseBo, draftBo) {
  const top = topProperty(path);
  if (baseBo && draftBo) { return [baseBo.get(top), draftBo.get(top)]; }
  return [change.newValue, change.oldValue];
}

export function describeChanges(changes, baseViewer, draftViewer) {
  const lines = [];
  const sorted = (obj) => Object.keys(obj).sort();
  sorted(changes._added).forEach((id) => lines.push({ kind: "added", id, text: `Added ${named(changes._added[id], id)}` }));
  sorted(changes._removed).forEach((id) => lines.push({ kind: "removed", id,
    text: `Removed ${named(changes._removed[id], id)}` }));
  sorted(changes._changed).forEach((id) => {
    const entry = changes._changed[id];
    const model = entry.model;
    const baseBo = businessObject(baseViewer, id);
    const draftBo = businessObject(draftViewer, id);
    const seen = new Set();
    const parts = [];
    Object.keys(entry.attrs).forEach((path) => {
      const key = baseBo && draftBo ? topProperty(path) : path;
      if (seen.has(key)) { return; }
      seen.add(key);
      const [oldValue, newValue] = oldAndNew(path, entry.attrs[path], baseBo, draftBo);
      if (show(oldValue) !== show(newValue)) {
        parts.push(`${attributeName(key)} ${show(oldValue)} → ${show(newValue)}`);
      }
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
  const baseUrl = container.getAttribute("data-base-url");
  const [baseXml, draftXml] = await Promise.all([baseUrl ? fetchText(baseUrl) : Promise.resolve(null),
    fetchText(container.getAttribute("data-draft-url"))]);
  const panes = document.createElement("div");
  panes.className = "app-diff";
  container.appendChild(panes);
  const options = { moddleExtensions: { camunda: camundaModdle } };
  const base = baseXml && new NavigatedViewer({ container: pane(panes, "Live version", "diagram-diff-base"), ...options });
  const draft = new NavigatedViewer({ container: pane(panes, baseXml ? "Draft" : "Draft (a new process)",
    "diagram-diff-draft"), ...options });
  if (base) {
    await base.importXML(baseXml);
    base.get("canvas").zoom("fit-viewport");
    nameCanvas(document.getElementById("diagram-diff-base"), "Live version of the diagram");
  }
  await draft.importXML(draftXml);
  draft.get("canvas").zoom("fit-viewport");
  nameCanvas(document.getElementById("diagram-diff-draft"), "Draft of the diagram");
  if (!base) {
    status.textContent = "A new process: there is no live version to compare it with.";
    container.setAttribute("data-rendered", "true");
    window.carepathReview = { base, draft, changes: null, lines: [] };
    return;
  }
  const changes = diff(base.getDefinitions(), draft.getDefinitions());
  Object.keys(changes._added).forEach((id) => mark(draft, id, "added"));
  Object.keys(changes._removed).forEach((id) => mark(base, id, "removed"));
  Object.keys(changes._changed).forEach((id) => { mark(base, id, "changed"); mark(draft, id, "changed"); });
  container.insertBefore(legend(), panes);
  const lines = describeChanges(changes, base, draft);
  if (list) {
    list.textContent = "";
    const heading = document.createElement("h3");
    heading.className = "govuk-heading-s";
    heading.textContent = lines.length ? "Changes in the drawing" : "Nothing changed in the drawing";
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
  // the changes in words (the server's list, below) also name what the drawing cannot show: inside an element
  const inWords = Number(container.getAttribute("data-word-changes")) || 0;
  status.textContent = lines.length
    ? `${lines.length} change${lines.length === 1 ? "" : "s"} in the drawing between the live version and the draft.`
    : (inWords ? "No change shows in the drawing: the changes in words below are inside its elements."
      : "No change between the live version and the draft.");
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
