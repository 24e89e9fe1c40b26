/* An issue's live progress bar: polls its counts every two seconds while it sends (or
   waits for the provider), and reloads the page when it ends, to show the report. */
(function () {
  "use strict";

  var LIVE = { sending: true, paused: true };

  function start() {
    var box = document.getElementById("issue-progress");
    if (!box || !window.fetch) return;
    if (!LIVE[box.getAttribute("data-status")]) return;
    var url = box.getAttribute("data-progress-url");
    var shown = box.getAttribute("data-status");

    function set(name, value) {
      var el = box.querySelector('[data-issue="' + name + '"]');
      if (!el) return;
      if (name === "percent") {
        el.value = value;
        el.textContent = value + "%";
      } else {
        el.textContent = typeof value === "number" ? value.toLocaleString() : value;
      }
    }

    function poll() {
      window
        .fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) { return response.ok ? response.json() : null; })
        .then(function (progress) {
          if (!progress) return;
          ["percent", "audience", "sent", "queued", "left", "skipped", "failed",
           "sent_more_than_once", "status_label"].forEach(function (name) { set(name, progress[name]); });
          var error = box.querySelector('[data-issue="last_error"]');
          if (error && progress.last_error && progress.waiting) {
            error.hidden = false;
            error.textContent = progress.last_error;
          }
          if (progress.status !== shown) {
            window.location.reload();
            return;
          }
          window.setTimeout(poll, 2000);
        })
        .catch(function () { window.setTimeout(poll, 5000); });
    }
    window.setTimeout(poll, 2000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
