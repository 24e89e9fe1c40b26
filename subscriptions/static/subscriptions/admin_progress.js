/* A live progress box in the admin (an import's, an issue's). While the work goes on
   (data-progress-live="true") it polls the box's JSON (data-progress-url), writes each
   value into the element that names it (data-value="sent"), shows the note it carries
   (data-note="note"), and reloads the page once the work's state differs from the one
   the page was drawn in (data-progress-state), to show the summary or report. */
(function () {
  "use strict";

  function watch(box) {
    if (box.getAttribute("data-progress-live") !== "true") return;
    var url = box.getAttribute("data-progress-url");
    var shown = box.getAttribute("data-progress-state");
    var every = Number(box.getAttribute("data-progress-every")) || 2000;

    function set(el, value) {
      if (el.tagName === "PROGRESS") {
        el.value = value;
        el.textContent = value + "%";
      } else {
        el.textContent = typeof value === "number" ? value.toLocaleString() : value;
      }
    }

    function show(progress) {
      Array.prototype.forEach.call(box.querySelectorAll("[data-value]"), function (el) {
        var name = el.getAttribute("data-value");
        if (name in progress) set(el, progress[name]);
      });
      Array.prototype.forEach.call(box.querySelectorAll("[data-note]"), function (el) {
        var text = progress[el.getAttribute("data-note")] || "";
        el.hidden = !text;
        el.textContent = text;
      });
    }

    function poll() {
      window
        .fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) throw new Error("HTTP " + response.status);  // a deploy, say
          return response.json();
        })
        .then(function (progress) {
          show(progress);
          if (progress.state !== shown) {
            window.location.reload();
            return;
          }
          window.setTimeout(poll, every);
        })
        .catch(function () { window.setTimeout(poll, every * 2); });
    }
    window.setTimeout(poll, every);
  }

  function start() {
    if (!window.fetch) return;
    Array.prototype.forEach.call(document.querySelectorAll("[data-progress-url]"), watch);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
