// bpmnlint rule carepath/server-warnings: the warnings of carepath's server (engine.lint's
// layout rules of severity "warning") at their elements.
import { serverProblems } from "../server-problems.js";

export const category = "warn";

export default function serverWarningsRule() {
  function check(node, reporter) {
    if (node.$type !== "bpmn:Definitions") { return; }
    for (const p of serverProblems("warning")) {
      reporter.report(p.element_id || node.id, p.message);
    }
  }
  return { check };
}
