// The modeller page (/processes/drafts/{id}/edit, api/modeller.py): a draft's BPMN diagrams in the
// bpmn-js Modeler with the properties panel (base BPMN groups + carepath's group), its DMN files
// in dmn-js, checking as you draw (bpmnlint's recommended rules + the server's deploy validation,
// shown on the canvas and in the problems list) and saving the draft through the drafts API.
// No inline script (the pages' CSP forbids it): the page carries data attributes only.
import BpmnModeler from "bpmn-js/lib/Modeler";
import DmnModeler from "dmn-js/lib/Modeler";
import { BpmnPropertiesPanelModule, BpmnPropertiesProviderModule } from "bpmn-js-properties-panel";
import camundaModdle from "camunda-bpmn-moddle/resources/camunda.json";
import lintModule from "bpmn-js-bpmnlint";
import lintConfig from "carepath-lint-config";
import { CarepathPropertiesModule } from "./carepath-provider.js";
import { setServerProblems } from "./server-problems.js";

import "bpmn-js/dist/assets/diagram-js.css";
import "bpmn-js/dist/assets/bpmn-js.css";
import "bpmn-js/dist/assets/bpmn-font/css/bpmn.css";
import "@bpmn-io/properties-panel/dist/assets/properties-panel.css";
import "bpmn-js-bpmnlint/dist/assets/css/bpmn-js-bpmnlint.css";
import "dmn-js/dist/assets/dmn-js-shared.css";
import "dmn-js/dist/assets/dmn-js-drd.css";
import "dmn-js/dist/assets/dmn-js-decision-table.css";
import "dmn-js/dist/assets/dmn-js-decision-table-controls.css";
import "dmn-js/dist/assets/dmn-js-literal-expression.css";
import "dmn-js/dist/assets/dmn-font/css/dmn.css";
import "./modeller.css";

const CHECK_DELAY = 300; // ms after the last change before the server checks the draft

function $(id) { return document.getElementById(id); }

function api(root) {
  const csrf = root.getAttribute("data-csrf");
  const base = root.getAttribute("data-api");
  async function call(method, url, body) {
    const response = await fetch(url, {
      method, credentials: "same-origin",
      headers: Object.assign({ Accept: "application/json" },
        body === undefined ? {} : { "Content-Type": "application/json", "X-CSRF-Token": csrf }),
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (e) { data = null; }
    if (!response.ok) {
      const err = new Error((data && (data.message || data.detail)) || `the server answered ${response.status}`);
      err.status = response.status;
      err.data = data;
      throw err;
    }
    return data;
  }
  return {
    call,
    catalogue: () => call("GET", base + "/catalogue"),
    validate: (files, processId) => call("POST", base + "/validate", { files, process_id: processId }),
    timer: (kind, expression, event) => call("POST", base + "/timer", { kind, expression, event }),
    expression: (kind, text) => call("POST", base + "/expression", { kind, text }),
  };
}

function say(text) {
  const status = $("modeller-status");
  status.textContent = "";
  // a fresh text node, so screen readers announce the same message twice in a row
  window.setTimeout(() => { status.textContent = text; }, 50);
}

function labelCanvas(container, label) {
  Array.prototype.forEach.call(container.querySelectorAll("[tabindex]"), (el) => {
    if (el.closest(".djs-palette, .djs-context-pad, .djs-popup")) { return; }
    el.setAttribute("role", "application");
    el.setAttribute("aria-label", label);
  });
}

async function start(root) {
  const server = api(root);
  const draftUrl = root.getAttribute("data-draft-url");
  const [catalogue, draft] = await Promise.all([server.catalogue(), server.call("GET", draftUrl)]);
  const files = Object.assign({}, draft.files);
  const names = Object.keys(files).sort((a, b) => (a === draft.main_file ? -1 : b === draft.main_file ? 1
    : a.localeCompare(b)));
  const state = { revision: draft.revision, current: null, serverProblems: [], lintIssues: {}, dirty: false,
    checkTimer: null, checkSeq: 0, lastRoundTripMs: null, checks: 0, ready: false };

  const bpmn = new BpmnModeler({
    container: $("modeller-canvas"),
    // carepath's group open from the start: it is what the engine reads
    propertiesPanel: { parent: $("modeller-properties"), layout: { groups: { carepath: { open: true } } } },
    additionalModules: [BpmnPropertiesPanelModule, BpmnPropertiesProviderModule, CarepathPropertiesModule, lintModule],
    moddleExtensions: { camunda: camundaModdle },
    linting: { bpmnlint: lintConfig, active: true },
    carepath: { catalogue, api: server },
  });
  const dmn = new DmnModeler({ container: $("modeller-dmn") });

  function isDmn(name) { return /\.dmn$/i.test(name); }

  async function currentXml() {
    if (!state.current) { return null; }
    const modeler = isDmn(state.current) ? dmn : bpmn;
    const { xml } = await modeler.saveXML({ format: true });
    return xml;
  }

  async function allFiles() {
    const xml = await currentXml();
    if (state.current && xml) { files[state.current] = xml; }
    return Object.assign({}, files);
  }

  // ------------------------------------------------------------ checking
  function scheduleCheck() {
    window.clearTimeout(state.checkTimer);
    state.checkTimer = window.setTimeout(check, CHECK_DELAY);
  }

  async function check() {
    const seq = ++state.checkSeq;
    const started = performance.now();
    $("modeller-problems-summary").textContent = "Checking…";
    let result;
    try {
      result = await server.validate(await allFiles(), draft.process_id);
    } catch (err) {
      if (seq === state.checkSeq) { $("modeller-problems-summary").textContent = "The server could not check the draft: " + err.message; }
      return;
    }
    if (seq !== state.checkSeq) { return; }
    state.serverProblems = result.problems || [];
    setServerProblems(isDmn(state.current || "") ? null : state.current, state.serverProblems);
    const done = () => {
      state.lastRoundTripMs = performance.now() - started;
      state.checks += 1;
      root.setAttribute("data-checks", String(state.checks));
    };
    if (isDmn(state.current || "")) {
      renderProblems();
      done();
    } else {
      bpmn.get("eventBus").once("linting.completed", done);
      bpmn.get("linting").update();
    }
  }

  // ------------------------------------------------------------ the problems list
  function describe(file, elementId, message, severity, rule) {
    return { file, elementId, message, severity, rule };
  }

  function elementLabel(elementId) {
    const el = elementId && bpmn.get("elementRegistry").get(elementId);
    const name = el && el.businessObject && el.businessObject.name;
    return name ? `'${name}' (${elementId})` : elementId;
  }

  function renderProblems() {
    const items = [];
    if (state.current && !isDmn(state.current)) {
      Object.keys(state.lintIssues).forEach((id) => {
        state.lintIssues[id].forEach((issue) => {
          const own = /^carepath\//.test(issue.rule || "");
          items.push(describe(state.current, issue.actualElementId || id, issue.message,
            issue.category === "error" ? "error" : "warning", own ? "carepath" : "bpmnlint " + issue.rule));
        });
      });
    }
    state.serverProblems.filter((p) => p.file !== state.current || isDmn(p.file)).forEach((p) => {
      items.push(describe(p.file, p.element_id, p.message, p.severity || "error", p.rule || "carepath"));
    });
    const errors = items.filter((i) => i.severity === "error").length;
    const warnings = items.length - errors;
    $("modeller-problems-summary").textContent = items.length
      ? `${errors} error${errors === 1 ? "" : "s"} and ${warnings} warning${warnings === 1 ? "" : "s"}. `
        + "Nothing can be deployed while an error remains."
      : "No problems found: carepath can deploy this draft.";
    $("modeller-problems-count").textContent = String(items.length);
    const list = $("modeller-problems");
    list.textContent = "";
    items.forEach((item) => {
      const li = document.createElement("li");
      li.className = "app-problem app-problem--" + item.severity;
      li.setAttribute("data-element-id", item.elementId || "");
      li.setAttribute("data-file", item.file || "");
      const text = `${item.severity === "error" ? "Error" : "Warning"} in ${item.file}`
        + (item.elementId ? ` at ${item.file === state.current ? elementLabel(item.elementId) : item.elementId}` : "")
        + `: ${item.message}` + (item.rule ? ` (${item.rule})` : "");
      if (item.elementId && files[item.file] !== undefined) {
        const button = document.createElement("button");
        button.type = "button";
        button.className = "app-problem__button";
        button.textContent = text;
        button.addEventListener("click", () => goTo(item.file, item.elementId));
        li.appendChild(button);
      } else {
        li.textContent = text;
      }
      list.appendChild(li);
    });
  }

  async function goTo(file, elementId) {
    if (file !== state.current) { await open(file); }
    if (isDmn(file)) { say(`Opened ${file}.`); return; }
    const registry = bpmn.get("elementRegistry");
    const element = registry.get(elementId) || registry.get(elementId + "_di");
    const participant = !element && registry.filter((e) => e.businessObject && e.businessObject.processRef
      && e.businessObject.processRef.id === elementId)[0];
    const target = element || participant;
    if (!target) { say(`'${elementId}' is not on the diagram.`); return; }
    bpmn.get("selection").select(target);
    if (target.waypoints || target.x !== undefined) { bpmn.get("canvas").scrollToElement(target); }
    say(`Selected ${elementLabel(target.id)} on the diagram; its properties are in the panel.`);
  }

  // ------------------------------------------------------------ files
  async function open(name) {
    if (state.current) { files[state.current] = await currentXml(); }
    state.current = name;
    const dmnFile = isDmn(name);
    $("modeller-bpmn").hidden = dmnFile;
    $("modeller-dmn").hidden = !dmnFile;
    $("modeller-properties").hidden = dmnFile; // the panel edits BPMN elements; dmn-js edits in the table
    Array.prototype.forEach.call(document.querySelectorAll("[data-file-tab]"), (b) => {
      b.setAttribute("aria-pressed", b.getAttribute("data-file-tab") === name ? "true" : "false");
    });
    state.opening = true;
    try {
      if (dmnFile) {
        await dmn.importXML(files[name]);
        const table = dmn.getViews().find((v) => v.type === "decisionTable");
        if (table) { await dmn.open(table); }
      } else {
        setServerProblems(name, state.serverProblems);
        await bpmn.importXML(files[name]);
        bpmn.get("canvas").zoom("fit-viewport");
        labelCanvas($("modeller-canvas"), `Diagram ${name}: use the palette and the context pad to draw; `
          + "the properties panel shows the selected element");
      }
    } finally {
      state.opening = false;
    }
    renderProblems();
  }

  function buildTabs() {
    const nav = $("modeller-files");
    nav.textContent = "";
    names.forEach((name) => {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "govuk-button govuk-button--secondary app-file-tab";
      b.setAttribute("data-file-tab", name);
      b.setAttribute("aria-pressed", "false");
      b.textContent = (isDmn(name) ? "Decision table " : "Diagram ") + name;
      b.addEventListener("click", () => open(name).then(() => say(`Opened ${name}.`)));
      nav.appendChild(b);
    });
  }

  // ------------------------------------------------------------ saving
  async function save() {
    const button = $("modeller-save");
    button.disabled = true;
    say("Saving…");
    try {
      const saved = await server.call("PUT", draftUrl, { files: await allFiles(), revision: state.revision });
      state.revision = saved.revision;
      state.dirty = false;
      root.setAttribute("data-revision", String(saved.revision));
      // the server's time of the save (its clock may be a simulated one), in UK time whatever the browser's zone
      const when = saved.updated_at ? new Date(saved.updated_at) : new Date();
      const uk = { timeZone: "Europe/London" };
      const at = when.toLocaleTimeString("en-GB", { ...uk, hour: "2-digit", minute: "2-digit" });
      const day = when.toLocaleDateString("en-GB", { ...uk, day: "numeric", month: "long", year: "numeric" });
      say(`Saved at ${at} on ${day} (revision ${saved.revision}).`);
    } catch (err) {
      if (err.status === 409) {
        say(`Not saved: ${err.message} Your changes are still here: copy what you need, then reload the page to see theirs.`);
      } else if (err.status === 422 && err.data && err.data.problems) {
        say("Not saved: " + err.data.problems.map((p) => `${p.file}: ${p.message}`).join("; "));
      } else {
        say("Not saved: " + err.message);
      }
    } finally {
      button.disabled = false;
    }
  }

  bpmn.on("linting.completed", (event) => {
    state.lintIssues = event.issues || {};
    renderProblems();
  });
  bpmn.on("commandStack.changed", () => {
    if (state.opening) { return; }
    state.dirty = true;
    scheduleCheck();
  });
  dmn.on("views.changed", () => {
    const viewer = dmn.getActiveViewer();
    if (viewer && !viewer.__carepathHooked) {
      viewer.__carepathHooked = true;
      viewer.on("commandStack.changed", () => { if (!state.opening) { state.dirty = true; scheduleCheck(); } });
    }
  });
  $("modeller-save").addEventListener("click", save);
  window.addEventListener("beforeunload", (event) => {
    if (state.dirty) { event.preventDefault(); event.returnValue = ""; }
  });

  buildTabs();
  await open(names[0]);
  root.setAttribute("data-drawn-ms", String(Math.round(performance.now()))); // since navigation started
  await check();
  state.ready = true;
  root.setAttribute("data-ready-ms", String(Math.round(performance.now())));
  root.setAttribute("data-ready", "true");
  window.carepathModeller = { bpmn, dmn, state, check, open, save, allFiles };
}

const root = $("modeller");
if (root) {
  start(root).catch((err) => {
    root.setAttribute("data-ready", "failed");
    const status = $("modeller-status");
    if (status) { status.textContent = "The modeller could not open this draft: " + err.message; }
  });
}
