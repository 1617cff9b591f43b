// Draws each process diagram on the case page with the bpmn-js NavigatedViewer and marks where
// the process stands: data-active (open tasks, waiting timers) and data-completed (finished steps).
// No inline script (the pages' CSP forbids it): the page only carries data attributes.
(function () {
  "use strict";

  var view = window.carepathDiagramView;  // diagram_view.js

  function draw(container) {
    return view.show(container, "where things stand", function (viewer, canvas) {
      var registry = viewer.get("elementRegistry");
      canvas.zoom("fit-viewport");
      view.ids(container.getAttribute("data-completed")).forEach(function (id) {
        if (registry.get(id)) { canvas.addMarker(id, "app-marker-done"); }
      });
      view.ids(container.getAttribute("data-active")).forEach(function (id) {
        if (registry.get(id)) { canvas.addMarker(id, "app-marker-active"); }
      });
      container.setAttribute("data-rendered", "true");
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
