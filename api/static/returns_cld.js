// The Client Level Data return's waiting page (api/templates/returns_cld_preparing.html): without scripts the
// user follows "Check if your return is ready"; with them, this asks every few seconds whether the return is
// ready and, once it is (or failed), loads the same page, which then shows the report (or why not).
const status = document.getElementById("preparing-status");
if (status) {
  const every = Math.max(2, Number(status.dataset.every) || 5) * 1000;
  const check = async () => {
    try {
      const r = await fetch(status.dataset.status, { headers: { Accept: "application/json" }, credentials: "same-origin" });
      const state = r.ok ? (await r.json()).status : "preparing";
      if (state !== "preparing") {
        status.textContent = state === "ready" ? "Your return is ready. Opening it now." : "Opening the result now.";
        window.location.replace(status.dataset.ready);
        return;
      }
    } catch (e) {
      // the server could not be reached this time: try again later
    }
    window.setTimeout(check, every);
  };
  window.setTimeout(check, 1000); // a short return is ready at once: the first look is soon
}
