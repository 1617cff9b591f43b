// A simulation's waiting page (api/templates/simulation_running.html): without scripts the user follows
// "Check if the simulation has finished"; with them, this asks every few seconds how far it has got, says so in
// the status line, and once it has finished (or failed), or a comparison's first results can be read, loads the
// same page, which then shows the report (or the first results).
// On the first results' page (simulation_report.html, data-first="1") the page is not replaced under the reader:
// when the simulation has finished the status line says so, with a link to the full report.
const status = document.getElementById("simulation-status");
if (status) {
  const every = Math.max(2, Number(status.dataset.every) || 5) * 1000;
  const firstPage = status.dataset.first === "1";
  const finished = (ready) => {
    const link = document.createElement("a");
    link.className = "govuk-link";
    link.href = status.dataset.ready;
    link.id = "full-report";
    link.textContent = ready ? "Open the full report" : "See why";
    status.replaceChildren(ready ? "The simulation has finished. " : "The simulation stopped before it finished. ", link);
  };
  // signed out (the status answers with the sign-in page) or no longer allowed: say so and stop asking
  const shut = (words) => {
    const link = document.createElement("a");
    link.className = "govuk-link";
    link.href = status.dataset.ready;
    link.id = "reload-page";
    link.textContent = "Reload this page";
    status.replaceChildren(`${words} `, link);
  };
  const check = async () => {
    try {
      const r = await fetch(status.dataset.status, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const json = (r.headers.get("content-type") || "").includes("application/json");
      if (r.status === 401 || (r.ok && !json) || (r.redirected && !json)) {
        shut("Your session has ended, so this page cannot check the simulation: sign in again to see it.");
        return;
      }
      if (r.status === 403) {
        shut("You cannot see this simulation any more (you may have signed in as someone else).");
        return;
      }
      if (!r.ok && r.status !== 404) throw new Error(`status ${r.status}`); // the server's trouble: try again later
      const state = r.ok ? await r.json() : { status: "unknown" };
      if (state.status !== "running") {
        if (firstPage) {
          finished(state.status === "ready");
          return;
        }
        status.textContent = state.status === "ready" ? "The simulation has finished. Opening the report now." : "Opening the result now.";
        window.location.replace(status.dataset.ready);
        return;
      }
      if (state.first_results && !firstPage) {
        status.textContent = "The first results are ready. Opening them now.";
        window.location.replace(status.dataset.ready);
        return;
      }
      if (typeof state.done !== "number" || typeof state.total !== "number") throw new Error("no counts");
      let text = `${state.done} of ${state.total} run${state.total === 1 ? "" : "s"} finished.`;
      if (state.progress) text += ` ${state.progress}`; // how far the runs being made have come
      if (state.waiting) text += ` ${state.waiting}`; // a run made ahead, waited for rather than made again
      if (status.textContent !== text) status.textContent = text; // a status region: say only what changed
    } catch (e) {
      // the server could not be reached this time: try again later
    }
    window.setTimeout(check, every);
  };
  window.setTimeout(check, 1000);
}
