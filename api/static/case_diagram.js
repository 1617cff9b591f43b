// Draws each process diagram on the case page with the bpmn-js NavigatedViewer and marks where
// the process stands: data-active (open tasks, waiting timers) and data-completed (finished steps).
// No inline script (the pages' CSP forbids it): the page only carries data attributes.
(function () {
  "use strict";

  function ids(value) {
    return (value || "").split(" ").filter(function (x) { return x; });
  }

  function say(container, text) {
    var status = document.getElementById(container.id + "-status");
    if (status) { status.textContent = text; }
  }

  function draw(container) {
    if (typeof window.BpmnJS !== "function") {
      say(container, "The diagram cannot be drawn in this browser; the list above says where things stand.");
      container.setAttribute("data-rendered", "failed");
      return Promise.resolve();
    }
    return fetch(container.getAttribute("data-diagram-url"), { credentials: "same-origin" })
      .then(function (response) {
        if (!response.ok) { throw new Error("the diagram could not be loaded (" + response.status + ")"); }
        return response.text();
      })
      .then(function (xml) {
        var viewer = new window.BpmnJS({ container: container });
        return viewer.importXML(xml).then(function () {
          var canvas = viewer.get("canvas");
          var registry = viewer.get("elementRegistry");
          canvas.zoom("fit-viewport");
          ids(container.getAttribute("data-completed")).forEach(function (id) {
            if (registry.get(id)) { canvas.addMarker(id, "app-marker-done"); }
          });
          ids(container.getAttribute("data-active")).forEach(function (id) {
            if (registry.get(id)) { canvas.addMarker(id, "app-marker-active"); }
          });
          // the viewer's canvas takes keyboard focus (arrow keys move it): name it for screen readers
          Array.prototype.forEach.call(container.querySelectorAll("[tabindex]"), function (el) {
            el.setAttribute("role", "group");
            el.setAttribute("aria-label", container.getAttribute("data-label") || "Process diagram");
          });
          container.setAttribute("data-rendered", "true");
        });
      })
      .catch(function (err) {
        container.setAttribute("data-rendered", "failed");
        say(container, "The diagram could not be drawn: " + err.message + ". The list above says where things stand.");
      });
  }

  var containers = document.querySelectorAll(".app-diagram[data-diagram-url]");
  Array.prototype.forEach.call(containers, function (container) {
    var details = container.closest("details");
    if (details && !details.open) {
      // draw when first opened: the viewer needs a visible container to fit the diagram
      details.addEventListener("toggle", function once() {
        details.removeEventListener("toggle", once);
        draw(container);
      });
    } else {
      draw(container);
    }
  });
})();
