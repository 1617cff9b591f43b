// bpmnlint rule carepath/server: every error carepath's server found in the draft (the deploy
// validation: engine.bpmn.parse_bundle with the registered handlers and the form library, and
// engine.lint's layout rules), reported at its element so it shows on the canvas.
import { serverProblems } from "../server-problems.js";

export const category = "error";

export default function serverRule() {
  function check(node, reporter) {
    if (node.$type !== "bpmn:Definitions") { return; }
    for (const p of serverProblems("error")) {
      reporter.report(p.element_id || node.id, p.message);
    }
  }
  return { check };
}
