// GOV.UK Frontend's components (error summary focus, radios, notification banner...).
import { initAll } from "/static/govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();

// Conditional reveal for radios (data-app-reveal names the block shown under that option). GOV.UK
// Frontend's own reveal sets aria-expanded on radio inputs, which ARIA does not allow on a radio
// (axe: aria-allowed-attr), so the page does it here. Without JavaScript every block is shown.
for (const group of document.querySelectorAll(".govuk-radios")) {
  const inputs = [...group.querySelectorAll("input[type=radio]")];
  if (!inputs.some((i) => i.dataset.appReveal)) continue;
  const sync = () => {
    for (const input of inputs) {
      const block = input.dataset.appReveal && document.getElementById(input.dataset.appReveal);
      if (block) block.classList.toggle("govuk-radios__conditional--hidden", !input.checked);
    }
  };
  for (const input of inputs) input.addEventListener("change", sync);
  sync();
}
