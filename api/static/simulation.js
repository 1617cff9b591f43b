// A simulation's waiting page (api/templates/simulation_running.html): without scripts the user follows
// "Check if the simulation has finished"; with them, this asks every few seconds how far it has got, says so in
// the status line, and once it has finished (or failed) loads the same page, which then shows the report.
const status = document.getElementById("simulation-status");
if (status) {
  const every = Math.max(2, Number(status.dataset.every) || 5) * 1000;
  const check = async () => {
    try {
      const r = await fetch(status.dataset.status, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const state = r.ok ? await r.json() : { status: r.status === 404 ? "unknown" : "running" };
      if (state.status !== "running") {
        status.textContent = state.status === "ready" ? "The simulation has finished. Opening the report now." : "Opening the result now.";
        window.location.replace(status.dataset.ready);
        return;
      }
      const text = `${state.done} of ${state.total} run${state.total === 1 ? "" : "s"} finished.`;
      if (status.textContent !== text) status.textContent = text; // a status region: say only what changed
    } catch (e) {
      // the server could not be reached this time: try again later
    }
    window.setTimeout(check, every);
  };
  window.setTimeout(check, 1000);
}
