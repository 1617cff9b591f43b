// The latest problems the server found in the draft (POST /api/modeller/validate), for the lint
// rules in lint-rules/ to report at their elements. Set by modeller.js after each check.
let current = { file: null, problems: [] };

export function setServerProblems(file, problems) {
  current = { file, problems: problems || [] };
}

// Problems of the diagram being drawn (its file), of one severity ("error" or "warning").
export function serverProblems(severity) {
  return current.problems.filter((p) => p.file === current.file && (p.severity || "error") === severity);
}
