// The properties panel's "What carepath reads" group: the attributes engine/bpmn_parser.py reads,
// written in the camunda dialect (docs/diagram-attributes.md), each a choice where a list exists.
//
// * user task: team (camunda:candidateGroups) from the teams that exist, form (camunda:formKey)
//   from the form library with a link to preview it as a caseworker sees it;
// * service task: handler (camunda:type="external" + camunda:topic) from the handler registry, a
//   field per declared parameter (camunda:inputOutput/camunda:inputParameter, a Python
//   expression) saying its type and whether it is required, and the result variable;
// * timer events: the server's plain-English reading of the timer the base "Timer" group edits,
//   and a local setting (processes/config/timescales.json) to use instead of a written value;
// * conditions (flows leaving an exclusive or inclusive gateway) and scripts: checked by the
//   server's sandbox as they are typed;
// * the process (select the pool or the canvas): what it reads when a case starts, its start inputs
//   (process properties load:NAME = a handler, default:NAME = an expression; docs/engine.md "Start inputs").
// The catalogue (teams, forms, handlers, settings) and the API calls come from config.carepath.
import { h } from "@bpmn-io/properties-panel/preact";
import { useEffect, useState } from "@bpmn-io/properties-panel/preact/hooks";
import {
  Group, SelectEntry, TextAreaEntry, TextFieldEntry, isSelectEntryEdited, isTextAreaEntryEdited,
  isTextFieldEntryEdited,
} from "@bpmn-io/properties-panel";
import { useService } from "bpmn-js-properties-panel";
import { is, getBusinessObject } from "bpmn-js/lib/util/ModelUtil";

const LOW_PRIORITY = 400;
const FORM_PREFIXES = ["camunda-forms:", "embedded:", "deployment:", "app:"];

export function formName(bo) {
  let key = bo.get("camunda:formKey") || bo.get("camunda:formRef") || "";
  key = key.trim();
  let again = true;
  while (again) {
    again = false;
    for (const prefix of FORM_PREFIXES) {
      if (key.startsWith(prefix)) { key = key.slice(prefix.length); again = true; }
    }
  }
  return key;
}

export function handlerName(bo) {
  return bo.get("camunda:type") === "external" ? (bo.get("camunda:topic") || "").trim() : "";
}

function inputParameters(bo) {
  const ext = bo.get("extensionElements");
  const io = ext && (ext.get("values") || []).find((v) => is(v, "camunda:InputOutput"));
  return io ? io.get("inputParameters") || [] : [];
}

export function timerDefinition(bo) {
  return (bo.get("eventDefinitions") || []).find((d) => is(d, "bpmn:TimerEventDefinition")) || null;
}

export function timerText(def) {
  for (const [prop, kind] of [["timeDate", "date"], ["timeDuration", "duration"], ["timeCycle", "cycle"]]) {
    const expr = def && def.get(prop);
    if (expr) { return { kind, text: (expr.get("body") || "").trim() }; }
  }
  return { kind: null, text: "" };
}

// A server check as a live line under the field: what the sandbox (or the timer reader) says.
function useServerCheck(api, kind, text, what, event) {
  const [state, setState] = useState({ text: null, ok: true, message: "" });
  useEffect(() => {
    let cancelled = false;
    if (!text.trim()) {
      setState({ text, ok: true, message: "" });
      return undefined;
    }
    const timer = setTimeout(() => {
      const call = what === "timer" ? api.timer(kind, text, event) : api.expression(kind, text);
      call.then((result) => {
        if (cancelled) { return; }
        const message = result.ok ? (result.reading || "The sandbox accepts this.") : result.problem;
        setState({ text, ok: !!result.ok, message });
      }).catch((err) => {
        if (!cancelled) { setState({ text, ok: false, message: "Could not check: " + err.message }); }
      });
    }, 300);
    return () => { cancelled = true; clearTimeout(timer); };
  }, [kind, text]);
  return state;
}

function checkLine(id, state) {
  if (!state.message) { return null; }
  return h("span", { id, class: state.ok ? "app-check app-check--ok" : "app-check app-check--problem",
    "data-check": state.ok ? "ok" : "problem" },
  h("span", { class: "app-check__label" }, state.ok ? "Checked: " : "Problem: "), state.message);
}

// ------------------------------------------------------------------ user tasks
function TeamEntry({ element, catalogue }) {
  const modeling = useService("modeling");
  const bo = getBusinessObject(element);
  const lane = element.parent && (element.parent.type === "bpmn:Lane" ? element.parent.businessObject.name : null);
  const current = (bo.get("camunda:candidateGroups") || "").trim();
  return h(SelectEntry, {
    element, id: "carepath-team", label: "Team (candidate groups)",
    description: "Who does this task. Left empty, the task goes to the team named by its lane"
      + (lane ? ` (${lane}).` : "."),
    getValue: () => current,
    setValue: (value) => modeling.updateProperties(element, { "camunda:candidateGroups": value || undefined }),
    getOptions: () => {
      const options = [{ value: "", label: "From the lane" }].concat(
        catalogue.teams.map((t) => ({ value: t, label: t.replace(/_/g, " ") })));
      if (current && !catalogue.teams.includes(current)) { options.push({ value: current, label: current }); }
      return options;
    },
  });
}

function FormEntry({ element, catalogue }) {
  const modeling = useService("modeling");
  const bo = getBusinessObject(element);
  const current = formName(bo);
  const known = catalogue.forms.some((f) => f.name === current);
  const description = current && known
    ? h("a", { href: `/processes/forms/${encodeURIComponent(current)}/preview`, target: "_blank",
      rel: "noopener", class: "govuk-link" }, `Preview the form '${current}' as a caseworker sees it (opens in a new tab)`)
    : "The form a caseworker fills in (from the form library).";
  return h(SelectEntry, {
    element, id: "carepath-form", label: "Form", description,
    getValue: () => current,
    setValue: (value) => modeling.updateProperties(element, { "camunda:formKey": value || undefined,
      "camunda:formRef": undefined }),
    getOptions: () => {
      const options = [{ value: "", label: "Choose a form" }].concat(
        catalogue.forms.map((f) => ({ value: f.name, label: f.title ? `${f.title} (${f.name})` : f.name })));
      if (current && !known) { options.push({ value: current, label: `${current} (not in the form library)` }); }
      return options;
    },
  });
}

// A lane's name is the team of the user tasks in it that name none (engine/bpmn_parser.py).
function LaneTeamEntry({ element, catalogue }) {
  const modeling = useService("modeling");
  const current = (getBusinessObject(element).get("name") || "").trim();
  return h(SelectEntry, {
    element, id: "carepath-lane-team", label: "Team of this lane",
    description: "A user task in this lane that names no team goes to the team named here (the lane's name).",
    getValue: () => current,
    setValue: (value) => modeling.updateProperties(element, { name: value || undefined }),
    getOptions: () => {
      const options = [{ value: "", label: "None" }].concat(
        catalogue.teams.map((t) => ({ value: t, label: t.replace(/_/g, " ") })));
      if (current && !catalogue.teams.includes(current)) {
        options.push({ value: current, label: `${current} (not a team)` });
      }
      return options;
    },
  });
}

// ------------------------------------------------------------------ service tasks
function HandlerEntry({ element, catalogue }) {
  const modeling = useService("modeling");
  const bo = getBusinessObject(element);
  const current = handlerName(bo);
  const handler = catalogue.handlers.find((x) => x.name === current);
  let description = "The registered handler this task calls.";
  if (handler) {
    description = handler.params.length
      ? "Parameters: " + handler.params.map((p) => `${p.name} (${p.type}${p.required ? ", required" : ", optional"})`)
        .join("; ") + "."
      : "This handler takes no parameters.";
  }
  return h(SelectEntry, {
    element, id: "carepath-handler", label: "Handler", description,
    getValue: () => current,
    setValue: (value) => modeling.updateProperties(element, value
      ? { "camunda:type": "external", "camunda:topic": value }
      : { "camunda:type": undefined, "camunda:topic": undefined }),
    getOptions: () => {
      const options = [{ value: "", label: "Choose a handler" }].concat(
        catalogue.handlers.map((x) => ({ value: x.name, label: x.name })));
      if (current && !handler) { options.push({ value: current, label: `${current} (not registered)` }); }
      return options;
    },
  });
}

function setParameter(element, name, value, injector) {
  const bpmnFactory = injector.get("bpmnFactory");
  const commandStack = injector.get("commandStack");
  const bo = getBusinessObject(element);
  const commands = [];
  let ext = bo.get("extensionElements");
  if (!ext) {
    ext = bpmnFactory.create("bpmn:ExtensionElements", { values: [] });
    commands.push({ cmd: "element.updateModdleProperties",
      context: { element, moddleElement: bo, properties: { extensionElements: ext } } });
  }
  let io = (ext.get("values") || []).find((v) => is(v, "camunda:InputOutput"));
  if (!io) {
    io = bpmnFactory.create("camunda:InputOutput", { inputParameters: [] });
    io.$parent = ext;
    commands.push({ cmd: "element.updateModdleProperties",
      context: { element, moddleElement: ext, properties: { values: [...ext.get("values"), io] } } });
  }
  const params = io.get("inputParameters") || [];
  const existing = params.find((p) => p.get("name") === name);
  if (!value.trim()) {
    if (existing) {
      commands.push({ cmd: "element.updateModdleProperties",
        context: { element, moddleElement: io, properties: { inputParameters: params.filter((p) => p !== existing) } } });
    }
  } else if (existing) {
    commands.push({ cmd: "element.updateModdleProperties",
      context: { element, moddleElement: existing, properties: { value } } });
  } else {
    const param = bpmnFactory.create("camunda:InputParameter", { name, value });
    param.$parent = io;
    commands.push({ cmd: "element.updateModdleProperties",
      context: { element, moddleElement: io, properties: { inputParameters: [...params, param] } } });
  }
  if (commands.length) { commandStack.execute("properties-panel.multi-command-executor", commands); }
}

function ParameterEntry({ element, param, api, id }) {
  const injector = useService("injector");
  const bo = getBusinessObject(element);
  const found = inputParameters(bo).find((p) => p.get("name") === param.name);
  const value = found ? found.get("value") || "" : "";
  const check = useServerCheck(api, "expression", value, "expression");
  const what = param.declared === false ? "not declared by the handler" : `${param.type}, ${param.required ? "required" : "optional"}`;
  return h(TextFieldEntry, {
    element, id, label: `Parameter ${param.name} (${what})`,
    description: checkLine(id + "-check", check) || "A Python expression on the task data, e.g. person[\"name\"].",
    debounce: useService("debounceInput"),
    getValue: () => value,
    setValue: (v) => setParameter(element, param.name, v || "", injector),
  });
}

function ResultVariableEntry({ element }) {
  const modeling = useService("modeling");
  const bo = getBusinessObject(element);
  return h(TextFieldEntry, {
    element, id: "carepath-result-variable", label: "Result variable",
    description: `Where the handler's result is kept. Empty: ${(bo.id || "").replace(/\W/g, "_")}_result.`,
    debounce: useService("debounceInput"),
    getValue: () => bo.get("camunda:resultVariable") || "",
    setValue: (v) => modeling.updateProperties(element, { "camunda:resultVariable": (v || "").trim() || undefined }),
  });
}

// ------------------------------------------------------------------ conditions and scripts
function ConditionEntry({ element, api }) {
  const modeling = useService("modeling");
  const bpmnFactory = useService("bpmnFactory");
  const bo = getBusinessObject(element);
  const expr = bo.get("conditionExpression");
  const value = expr ? expr.get("body") || "" : "";
  const check = useServerCheck(api, "condition", value, "expression");
  return h(TextAreaEntry, {
    element, id: "carepath-condition", label: "Condition (Python)",
    description: checkLine("carepath-condition-check", check) || "When this path is taken, e.g. urgency == \"high\".",
    debounce: useService("debounceInput"),
    getValue: () => value,
    setValue: (v) => modeling.updateProperties(element, {
      conditionExpression: (v || "").trim() ? bpmnFactory.create("bpmn:FormalExpression", { body: v }) : undefined }),
  });
}

function ScriptEntry({ element, api }) {
  const modeling = useService("modeling");
  const bo = getBusinessObject(element);
  const value = bo.get("script") || "";
  const check = useServerCheck(api, "script", value, "expression");
  return h(TextAreaEntry, {
    element, id: "carepath-script", label: "Script (Python)", rows: 6, monospace: true,
    description: checkLine("carepath-script-check", check) || "Runs in carepath's sandbox; it sets task data.",
    debounce: useService("debounceInput"),
    getValue: () => value,
    setValue: (v) => modeling.updateProperties(element, { script: v || undefined, scriptFormat: "python" }),
  });
}

// ------------------------------------------------------------------ timers
const SETTING_RE = /settings\["([A-Za-z0-9_]+)"\]/;

// How a named local setting becomes a timer: durations as they are, whole days and working days
// through the expressions carepath offers (docs/diagram-attributes.md).
export function settingTimer(setting) {
  const v = setting.value;
  const ref = `settings["${setting.name}"]`;
  if (typeof v === "string" && /^P/.test(v)) { return { prop: "timeDuration", text: ref }; }
  if (Number.isInteger(v) && /working_days/.test(setting.name)) {
    return { prop: "timeDate", text: `working_day_deadline(now().isoformat(), ${ref})` };
  }
  if (Number.isInteger(v) && /days/.test(setting.name)) { return { prop: "timeDuration", text: `"P%dD" % ${ref}` }; }
  return null;
}

function TimerReadingEntry({ element, api }) {
  const bo = getBusinessObject(element);
  const { kind, text } = timerText(timerDefinition(bo));
  const event = is(element, "bpmn:BoundaryEvent") ? "boundary" : is(element, "bpmn:StartEvent") ? "start" : "catch";
  const check = useServerCheck(api, kind || "duration", text, "timer", event);
  const body = checkLine("carepath-timer-reading-text", check)
    || (text ? "Reading the timer…" : "Choose the timer's type and value in the Timer group, or a local setting below.");
  return h("div", { class: "bio-properties-panel-entry", "data-entry-id": "carepath-timer-reading" },
    h("div", { class: "bio-properties-panel-label", id: "carepath-timer-reading-label" }, "When it fires"),
    h("div", { class: "bio-properties-panel-description", role: "status", "aria-live": "polite",
      "aria-labelledby": "carepath-timer-reading-label" }, body));
}

function TimerSettingEntry({ element, catalogue }) {
  const injector = useService("injector");
  const bo = getBusinessObject(element);
  const def = timerDefinition(bo);
  const { text } = timerText(def);
  const match = SETTING_RE.exec(text);
  const usable = catalogue.settings.filter((s) => settingTimer(s));
  return h(SelectEntry, {
    element, id: "carepath-timer-setting", label: "Use a local setting",
    description: "The value comes from processes/config/timescales.json when the case runs, so none is written "
      + "into the diagram. The process must read its settings when a case starts: the process property "
      + "load:settings = local_settings (see \"Read when a case starts\" on the process).",
    getValue: () => (match ? match[1] : ""),
    setValue: (name) => {
      const setting = usable.find((s) => s.name === name);
      const plan = setting && settingTimer(setting);
      if (!plan || !def) { return; }
      const bpmnFactory = injector.get("bpmnFactory");
      const expr = bpmnFactory.create("bpmn:FormalExpression", { body: plan.text });
      expr.$parent = def;
      const props = { timeDate: undefined, timeDuration: undefined, timeCycle: undefined };
      props[plan.prop] = expr;
      injector.get("commandStack").execute("element.updateModdleProperties",
        { element, moddleElement: def, properties: props });
    },
    getOptions: () => [{ value: "", label: match ? "Written in the diagram" : "None (the value is written above)" }]
      .concat(usable.map((s) => ({ value: s.name, label: `${s.name} (${s.value})` }))),
  });
}

// ------------------------------------------------------------------ what the process reads at start
// The process's start inputs, as engine/bpmn_parser.py read_start_inputs reads them from camunda:properties.
export function startInputs(processBo) {
  const ext = processBo && processBo.get("extensionElements");
  const props = ext && (ext.get("values") || []).find((v) => is(v, "camunda:Properties"));
  return (props ? props.get("values") || [] : []).map((p) => {
    const name = p.get("name") || "";
    const at = name.indexOf(":");
    return { kind: at < 0 ? "" : name.slice(0, at).trim(), variable: at < 0 ? "" : name.slice(at + 1).trim(),
      value: (p.get("value") || "").trim() };
  }).filter((s) => s.kind === "load" || s.kind === "default");
}

function processOf(element) {
  const bo = getBusinessObject(element);
  return is(element, "bpmn:Participant") ? bo.get("processRef") : bo;
}

function StartInputsEntry({ element }) {
  const inputs = startInputs(processOf(element));
  const lines = inputs.length ? inputs.map((s) => (s.kind === "load"
    ? `${s.variable}: what the handler ${s.value} gives (recorded in the case's history)`
    : `${s.variable}: ${s.value}, when the start data does not give it`))
    : ["Nothing: the process starts with its start data only."];
  return h("div", { class: "bio-properties-panel-entry", "data-entry-id": "carepath-start-inputs" },
    h("div", { class: "bio-properties-panel-label", id: "carepath-start-inputs-label" }, "Read when a case starts"),
    h("ul", { class: "bio-properties-panel-description carepath-start-inputs",
      "aria-labelledby": "carepath-start-inputs-label" }, lines.map((line) => h("li", null, line))),
    h("div", { class: "bio-properties-panel-description" },
      "Process properties load:NAME (a handler, called with no parameters) and default:NAME (an expression); "
      + "no step is drawn for them. See docs/engine.md \"Start inputs\"."));
}

// ------------------------------------------------------------------ what an element keeps on the case
// Its case outputs, as engine/bpmn_parser.py read_case_outputs reads them: case:KEY properties, in order.
export function caseOutputs(bo) {
  const ext = bo && bo.get("extensionElements");
  const props = ext && (ext.get("values") || []).find((v) => is(v, "camunda:Properties"));
  return (props ? props.get("values") || [] : []).map((p) => {
    const name = p.get("name") || "";
    const at = name.indexOf(":");
    return { prefix: at < 0 ? "" : name.slice(0, at).trim(), key: at < 0 ? "" : name.slice(at + 1).trim(),
      value: (p.get("value") || "").trim() };
  }).filter((o) => o.prefix === "case");
}

const KEEPS_OUTPUTS = ["bpmn:Task", "bpmn:CallActivity", "bpmn:SubProcess", "bpmn:IntermediateCatchEvent",
  "bpmn:IntermediateThrowEvent", "bpmn:EndEvent"];

function CaseOutputsEntry({ element }) {
  const outputs = caseOutputs(getBusinessObject(element));
  const lines = outputs.length ? outputs.map((o) => `${o.key}: ${o.value}`)
    : ["Nothing: add a property case:NAME = an expression to keep a value on the case."];
  return h("div", { class: "bio-properties-panel-entry", "data-entry-id": "carepath-case-outputs" },
    h("div", { class: "bio-properties-panel-label", id: "carepath-case-outputs-label" },
      "Kept on the case when it completes"),
    h("ul", { class: "bio-properties-panel-description carepath-case-outputs",
      "aria-labelledby": "carepath-case-outputs-label" }, lines.map((line) => h("li", null, line))),
    h("div", { class: "bio-properties-panel-description" },
      "Element properties case:NAME (an expression, evaluated as the element completes); no step is drawn "
      + "for them. See docs/engine.md \"Case outputs\"."));
}

// ------------------------------------------------------------------ the group
function entries(element, config) {
  const { catalogue, api } = config;
  const bo = getBusinessObject(element);
  const list = [];
  // the entry's own props reach its component (the panel spreads the entry into it): passing the
  // component itself, not a new wrapper on every render, keeps a field (and keyboard focus) in place
  const add = (id, component, isEdited, extra) => list.push({ id, element, component, isEdited, catalogue, api,
    ...extra });
  if (is(element, "bpmn:UserTask")) {
    add("carepath-team", TeamEntry, isSelectEntryEdited);
    add("carepath-form", FormEntry, isSelectEntryEdited);
  }
  if (is(element, "bpmn:Lane")) { add("carepath-lane-team", LaneTeamEntry, isSelectEntryEdited); }
  if (is(element, "bpmn:ServiceTask")) {
    add("carepath-handler", HandlerEntry, isSelectEntryEdited);
    const handler = catalogue.handlers.find((x) => x.name === handlerName(bo));
    const declared = handler ? handler.params.map((p) => ({ ...p, declared: true })) : [];
    const extra = inputParameters(bo).map((p) => p.get("name")).filter((n) => n && !declared.some((d) => d.name === n))
      .map((n) => ({ name: n, type: "any", required: false, declared: false }));
    declared.concat(extra).forEach((param) => {
      const id = "carepath-param-" + param.name;
      add(id, ParameterEntry, isTextFieldEntryEdited, { param, id });
    });
    add("carepath-result-variable", ResultVariableEntry, isTextFieldEntryEdited);
  }
  if (is(element, "bpmn:ScriptTask")) { add("carepath-script", ScriptEntry, isTextAreaEntryEdited); }
  if (is(element, "bpmn:SequenceFlow") && bo.sourceRef
      && (is(bo.sourceRef, "bpmn:ExclusiveGateway") || is(bo.sourceRef, "bpmn:InclusiveGateway"))) {
    add("carepath-condition", ConditionEntry, isTextAreaEntryEdited);
  }
  if (timerDefinition(bo)) {
    add("carepath-timer-reading", TimerReadingEntry, () => false);
    add("carepath-timer-setting", TimerSettingEntry, isSelectEntryEdited);
  }
  if (is(element, "bpmn:Process") || (is(element, "bpmn:Participant") && bo.get("processRef"))) {
    add("carepath-start-inputs", StartInputsEntry, () => false);
  }
  if (KEEPS_OUTPUTS.some((type) => is(element, type)) && !bo.get("triggeredByEvent")) {
    add("carepath-case-outputs", CaseOutputsEntry, () => false);
  }
  return list;
}

export default function CarepathPropertiesProvider(propertiesPanel, config) {
  this.getGroups = function (element) {
    return function (groups) {
      const list = entries(element, config);
      if (list.length) {
        // first, before the general group: it is what carepath runs
        groups.unshift({ id: "carepath", label: "What carepath reads", component: Group, entries: list });
      }
      return groups;
    };
  };
  propertiesPanel.registerProvider(LOW_PRIORITY, this);
}
CarepathPropertiesProvider.$inject = ["propertiesPanel", "config.carepath"];

export const CarepathPropertiesModule = {
  __init__: ["carepathPropertiesProvider"],
  carepathPropertiesProvider: ["type", CarepathPropertiesProvider],
};
