// What the case record's diagrams (case_diagram.js) and the replay page's (case_replay.js) share: fetch a
// diagram, open it in the bpmn-js NavigatedViewer, name the viewer's focusable canvas for screen readers,
// and say in the container's status line when it cannot be drawn. Loaded before either (defer keeps order).
(function () {
  "use strict";

  function ids(value) {
    return (value || "").split(" ").filter(function (x) { return x; });
  }

  function say(container, text) {
    var status = document.getElementById(container.id + "-status");
    if (status) { status.textContent = text; }
  }

  // where the page's list in words is, from the diagram's place: data-list-at="below" (the replay), else above
  function listAt(container) {
    return container.getAttribute("data-list-at") === "below" ? "below" : "above";
  }

  // `where` ends the messages: where the page lists the same facts ("where things stand"). `drawn(viewer,
  // canvas)` runs once the diagram is in; the container is named, and marked failed on any error.
  function show(container, where, drawn) {
    if (typeof window.BpmnJS !== "function") {
      say(container, "The diagram cannot be drawn in this browser; the list " + listAt(container) + " says " + where + ".");
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
          drawn(viewer, viewer.get("canvas"));
          // the viewer's canvas takes keyboard focus (arrow keys move it): name it for screen readers
          Array.prototype.forEach.call(container.querySelectorAll("[tabindex]"), function (el) {
            el.setAttribute("role", "group");
            el.setAttribute("aria-label", container.getAttribute("data-label") || "Process diagram");
          });
        });
      })
      .catch(function (err) {
        container.setAttribute("data-rendered", "failed");
        say(container, "The diagram could not be drawn: " + err.message + ". The list " + listAt(container) + " says " +
          where + ".");
      });
  }

  window.carepathDiagramView = { ids: ids, say: say, show: show };
})();
