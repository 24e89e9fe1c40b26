/* The import page's progress bar: polls the import's status once a second while it
   runs, and reloads the page when it ends (to show the summary and the report link). */
(function () {
  "use strict";

  function start() {
    var box = document.getElementById("import-progress");
    if (!box || !window.fetch) return;
    var state = box.getAttribute("data-state");
    if (state === "done" || state === "failed") return;
    var url = box.getAttribute("data-status-url");

    function set(name, value) {
      var el = box.querySelector('[data-import="' + name + '"]');
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
        .then(function (status) {
          if (!status) return;
          ["percent", "rows_read", "added", "upgraded", "already_subscribed", "skipped",
           "confirmations_queued", "phase"].forEach(function (name) { set(name, status[name]); });
          set("state", status.state_label);
          if (status.state === "done" || status.state === "failed") {
            window.location.reload();
            return;
          }
          window.setTimeout(poll, 1000);
        })
        .catch(function () { window.setTimeout(poll, 3000); });
    }
    window.setTimeout(poll, 1000);
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
