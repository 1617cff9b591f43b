// The replay page (api/replay_pages.py): draws each instance's diagram with the bpmn-js
// NavigatedViewer and marks the path taken up to the step (finished elements, ways taken, the
// branch chosen, where it stood). Previous/next are plain links; this script turns them, the
// timeline's step links, the left/right arrow keys and j/k into in-page steps: it fetches the
// next step's page, swaps its content, keeps the diagrams already drawn (only their markers
// change) and announces the new step in a live region. No inline script (the CSP forbids it).
(function () {
  "use strict";

  var viewers = {}; // container id -> {viewer, container}
  var loading = null;

  var view = window.carepathDiagramView;  // diagram_view.js
  var ids = view.ids;

  function badge(text, cls) {
    var el = document.createElement("span");
    el.className = "app-replay-badge " + cls;
    el.setAttribute("aria-hidden", "true");
    el.textContent = text;
    return el;
  }

  // markers and badges from the container's data attributes (what the step's page says)
  function mark(entry) {
    var viewer = entry.viewer, container = entry.container;
    var canvas = viewer.get("canvas"), registry = viewer.get("elementRegistry"), overlays = viewer.get("overlays");
    (entry.marked || []).forEach(function (m) { canvas.removeMarker(m[0], m[1]); });
    overlays.remove({ type: "replay" });
    var marked = [];
    function add(id, cls, text, where) {
      if (!registry.get(id)) { return; }
      canvas.addMarker(id, cls);
      marked.push([id, cls]);
      if (text) {
        overlays.add(id, "replay", { position: where || { top: -12, right: 12 }, html: badge(text, cls + "-badge") });
      }
    }
    ids(container.getAttribute("data-flows")).forEach(function (id) { add(id, "app-marker-flow"); });
    ids(container.getAttribute("data-branches")).forEach(function (id) { add(id, "app-marker-branch"); });
    ids(container.getAttribute("data-completed")).forEach(function (id) { add(id, "app-marker-done", "\u2713"); });
    ids(container.getAttribute("data-active")).forEach(function (id) { add(id, "app-marker-active", "Now", { top: -14, left: -6 }); });
    ids(container.getAttribute("data-failed")).forEach(function (id) { add(id, "app-marker-failed", "!", { top: -14, left: -6 }); });
    entry.marked = marked;
    container.setAttribute("data-marked", String(marked.length));
    zoomToStep(entry);
    container.setAttribute("data-rendered", "true");
  }

  // Readable by default: a whole diagram fitted into the column is too small to read (task names a
  // few pixels high), so the view opens at READABLE scale (tasks 80px high, names at their drawn size)
  // centred on where the process stood (else the last finished element); a diagram that fits at a
  // larger scale is shown whole. The buttons switch between that and the whole diagram.
  var READABLE = 1;

  function stepElement(entry) {
    var registry = entry.viewer.get("elementRegistry"), c = entry.container;
    var wanted = ids(c.getAttribute("data-active")).concat(ids(c.getAttribute("data-failed")),
      ids(c.getAttribute("data-completed")).reverse());
    for (var i = 0; i < wanted.length; i++) {
      var el = registry.get(wanted[i]);
      if (el && el.width) { return el; }
    }
    return null;
  }

  function zoomToStep(entry) {
    var canvas = entry.viewer.get("canvas"), container = entry.container;
    canvas.zoom("fit-viewport");
    var el = stepElement(entry), fitted = canvas.zoom();
    if (el && fitted < READABLE) {
      var w = container.clientWidth / READABLE, h = container.clientHeight / READABLE;
      canvas.viewbox({ x: el.x + el.width / 2 - w / 2, y: el.y + el.height / 2 - h / 2, width: w, height: h });
    }
    container.setAttribute("data-zoom", canvas.zoom().toFixed(2));
    container.setAttribute("data-view", el && fitted < READABLE ? "step" : "whole");
  }

  function controls(entry) {
    var bar = document.createElement("div");
    bar.className = "app-replay-zoom";
    [["Zoom to where it stood", function () { zoomToStep(entry); }],
     ["Show the whole diagram", function () {
       entry.viewer.get("canvas").zoom("fit-viewport");
       entry.container.setAttribute("data-zoom", entry.viewer.get("canvas").zoom().toFixed(2));
       entry.container.setAttribute("data-view", "whole");
     }]].forEach(function (b) {
      var button = document.createElement("button");
      button.type = "button";
      button.className = "govuk-button govuk-button--secondary govuk-!-margin-bottom-0";
      button.textContent = b[0];
      button.addEventListener("click", b[1]);
      bar.appendChild(button);
    });
    entry.container.appendChild(bar);
  }

  function draw(container) {
    return view.show(container, "where things stood", function (viewer, canvas) {
      // as tall as the diagram needs at the readable scale (within limits), then zoomed to the step
      var box = canvas.viewbox().inner;
      if (box.width > 0) {
        var height = Math.round(Math.min(box.height * READABLE, container.clientWidth * box.height / box.width)) + 60;
        container.style.height = Math.max(240, Math.min(560, height)) + "px";
        canvas.resized();
      }
      var entry = { viewer: viewer, container: container, marked: [] };
      viewers[container.id] = entry;
      controls(entry);
      mark(entry);
    });
  }

  function drawAll(root) {
    var work = [];
    Array.prototype.forEach.call(root.querySelectorAll(".app-replay-diagram[data-diagram-url]"), function (c) {
      var entry = viewers[c.id];
      if (entry && entry.container !== c) {
        // the same instance on the same version: keep the drawn diagram, take the new step's markers
        ["data-completed", "data-flows", "data-branches", "data-active", "data-failed"].forEach(function (a) {
          entry.container.setAttribute(a, c.getAttribute(a) || "");
        });
        c.parentNode.replaceChild(entry.container, c);
        mark(entry);
      } else if (!entry) {
        work.push(draw(c));
      }
    });
    return Promise.all(work);
  }

  function announce(main) {
    var live = document.getElementById("replay-announce");
    var first = main.querySelector(".app-replay-event strong");
    var title = main.querySelector("#replay-title");
    if (live) {
      live.textContent = (title ? title.textContent : "") + (first ? ": " + first.textContent : "");
    }
  }

  function swapTimeline(href, page) {
    var timeline = document.getElementById("replay-timeline");
    if (!timeline) { return Promise.resolve(); }
    if (timeline.getAttribute("data-page") === page) {
      var step = document.getElementById("replay-main").getAttribute("data-step");
      Array.prototype.forEach.call(timeline.querySelectorAll("tr[data-step]"), function (row) {
        var current = row.getAttribute("data-step") === step;
        row.classList.toggle("app-replay-current", current);
        var link = row.querySelector("a[data-step-link]");
        if (current) { link.setAttribute("aria-current", "step"); } else { link.removeAttribute("aria-current"); }
      });
      return Promise.resolve();
    }
    // the step's events are on another page of the timeline: take that page
    return fetch(href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html").getElementById("replay-timeline");
        if (fresh) { timeline.parentNode.replaceChild(fresh, timeline); }
      });
  }

  function go(href, push, focusId) {
    if (loading) { return; }
    var started = performance.now();
    var part = href + (href.indexOf("?") >= 0 ? "&" : "?") + "part=step";
    loading = fetch(part, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { window.location.href = href; throw new Error("page " + response.status); }
        return response.text();
      })
      .then(function (html) {
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("replay-main");
        var main = document.getElementById("replay-main");
        if (!fresh || !main) { window.location.href = href; return; }
        // keep drawn diagrams out of the way while the content is swapped
        Object.keys(viewers).forEach(function (id) {
          var c = viewers[id].container;
          if (c.parentNode) { c.parentNode.removeChild(c); }
        });
        main.parentNode.replaceChild(fresh, main);
        document.title = doc.title;
        if (push) { window.history.pushState({ replay: true }, "", href); }
        return drawAll(fresh).then(function () {
          fresh.setAttribute("data-step-ms", String(Math.round(performance.now() - started)));
          announce(fresh);
          var target = (focusId && document.getElementById(focusId)) || document.getElementById("replay-title");
          if (focusId || !document.activeElement || document.activeElement === document.body ||
              !document.body.contains(document.activeElement)) {
            if (target) { target.focus(); }
          }
          return swapTimeline(href, fresh.getAttribute("data-timeline-page"));
        });
      })
      .catch(function () { /* the plain link is followed instead */ })
      .then(function () { loading = null; });
  }

  function inField(el) {
    if (!el) { return false; }
    var tag = el.tagName;
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || el.isContentEditable;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest && event.target.closest("a[data-step-link]");
    if (!link || event.ctrlKey || event.metaKey || event.shiftKey || event.altKey || event.button !== 0) { return; }
    var timeline = document.getElementById("replay-timeline");
    if (!document.getElementById("replay-main").contains(link) && !(timeline && timeline.contains(link))) { return; }
    event.preventDefault();
    go(link.getAttribute("href"), true, link.id || null);
  });

  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey || inField(event.target)) { return; }
    var inDiagram = event.target.closest && event.target.closest(".app-diagram");
    var key = event.key, link = null;
    if ((key === "ArrowRight" && !inDiagram) || key === "j") { link = document.getElementById("replay-next"); }
    if ((key === "ArrowLeft" && !inDiagram) || key === "k") { link = document.getElementById("replay-prev"); }
    if (key === "ArrowRight" || key === "ArrowLeft" || key === "j" || key === "k") {
      if (inDiagram && (key === "ArrowRight" || key === "ArrowLeft")) { return; }
      event.preventDefault();
      if (link) { go(link.getAttribute("href"), true, null); }
    }
  });

  window.addEventListener("popstate", function () { go(window.location.href, false, null); });

  var main = document.getElementById("replay-main");
  if (main) {
    var t0 = performance.now();
    drawAll(main).then(function () {
      main.setAttribute("data-first-paint-ms", String(Math.round(performance.now() - t0)));
    });
  }
})();
