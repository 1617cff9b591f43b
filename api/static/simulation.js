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
  const check = async () => {
    try {
      const r = await fetch(status.dataset.status, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const state = r.ok ? await r.json() : { status: r.status === 404 ? "unknown" : "running" };
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
