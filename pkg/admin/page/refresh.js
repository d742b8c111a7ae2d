// Refreshes the page every 2 s in place: the next page is fetched and
// its <main> swapped in, so the tables update without a flash. Without
// script, a <meta http-equiv="refresh"> in <noscript> reloads instead.
(function () {
  "use strict";
  var every = 2000;
  // Says that the script runs, which the CSP could forbid: tests check it.
  document.documentElement.dataset.refresh = "script";
  var stale = document.getElementById("stale");
  var updated = new Date();
  function tick() {
    if (document.hidden) {
      setTimeout(tick, every);
      return;
    }
    fetch(location.href, {cache: "no-store", credentials: "same-origin"})
      .then(function (r) {
        if (!r.ok) { throw new Error("HTTP " + r.status); }
        return r.text();
      })
      .then(function (text) {
        var next = new DOMParser().parseFromString(text, "text/html").querySelector("main");
        if (!next) { throw new Error("the answer has no status"); }
        document.querySelector("main").replaceWith(document.adoptNode(next));
        updated = new Date();
        stale.hidden = true;
      })
      .catch(function (err) {
        stale.textContent = "Not updated since " + updated.toLocaleTimeString() + ": " + err.message;
        stale.hidden = false;
      })
      .finally(function () { setTimeout(tick, every); });
  }
  setTimeout(tick, every);
})();
