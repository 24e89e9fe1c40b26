/* Keeps every membership banner on the page live: polls the goal API (a short-cached
   GET that costs the server no SQL) and updates the count, the progress bar and the
   wording. Polling rather than server-sent events: it works through any cache or CDN
   and holds no connection open on the web workers. Paused while the tab is hidden. */
(function () {
  "use strict";

  // The banner's own language (an embed's may differ from its host page's).
  function locale(banner) {
    var holder = banner.closest("[lang]");
    return (holder && holder.getAttribute("lang")) || "en";
  }

  // The server wrote the word for each plural category of the banner's language
  // (Ukrainian has three: 1 учасник, 2 учасники, 5 учасників).
  function membersWord(banner, members) {
    var category = "other";
    try {
      category = new Intl.PluralRules(locale(banner)).select(members);
    } catch (e) {
      /* An old browser: the "other" form. */
    }
    return (
      banner.getAttribute("data-members-word-" + category) ||
      banner.getAttribute("data-members-word-other") ||
      ""
    );
  }

  function setText(banner, field, text) {
    var el = banner.querySelector('[data-goal-field="' + field + '"]');
    if (el && el.textContent !== text) el.textContent = text;
  }

  function render(banner, goal) {
    var members = Number(goal.members);
    var target = Number(goal.target);
    if (!isFinite(members) || !isFinite(target) || target <= 0) return;
    var progress = banner.querySelector('[data-goal-field="progress"]');
    if (progress) {
      progress.max = target;
      progress.value = Math.min(members, target);
      progress.textContent = goal.percent + "%";
    }
    setText(banner, "members", members.toLocaleString(locale(banner)));
    var word = membersWord(banner, members);
    if (word) setText(banner, "members-word", word);
    setText(banner, "target", target.toLocaleString(locale(banner)));
    if (goal.headline) setText(banner, "headline", goal.headline);
    if (goal.question) setText(banner, "question", goal.question);
    banner.setAttribute("data-goal-members", String(members));
  }

  function watch(banner) {
    var api = banner.getAttribute("data-goal-api");
    var seconds = Number(banner.getAttribute("data-poll-seconds")) || 30;
    if (!api || !window.fetch) return;
    var timer = null;

    function poll() {
      window
        .fetch(api, { credentials: "omit", headers: { Accept: "application/json" } })
        .then(function (response) {
          return response.ok ? response.json() : null;
        })
        .then(function (goal) {
          if (goal) render(banner, goal);
        })
        .catch(function () {
          /* Offline or the API is down: keep showing the last count. */
        });
    }

    function schedule() {
      window.clearInterval(timer);
      timer = document.hidden ? null : window.setInterval(poll, seconds * 1000);
    }

    document.addEventListener("visibilitychange", function () {
      if (!document.hidden) poll();
      schedule();
    });
    schedule();
  }

  function embed(container) {
    // On another site: fetch the banner's markup from us, then keep it live.
    var url = container.getAttribute("data-newsroom-goal");
    if (!url || !window.fetch) return;
    window
      .fetch(url, { credentials: "omit", headers: { Accept: "text/html" } })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (!html || !html.trim()) return;
        container.innerHTML = html;
        var banner = container.querySelector(".membership-banner[data-goal-api]");
        if (banner) watch(banner);
      })
      .catch(function () {
        /* Keep the link the snippet shows without us. */
      });
  }

  function start() {
    var banners = document.querySelectorAll(".membership-banner[data-goal-api]");
    for (var i = 0; i < banners.length; i += 1) watch(banners[i]);
    var embeds = document.querySelectorAll("[data-newsroom-goal]");
    for (var j = 0; j < embeds.length; j += 1) embed(embeds[j]);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
