// GOV.UK Frontend's components (error summary focus, radios, notification banner...).
import { initAll } from "/static/govuk-frontend.min.js";

document.body.classList.add("js-enabled", "govuk-frontend-supported");
initAll();
