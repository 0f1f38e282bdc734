// Refreshes the dashboard's figures in place, every data-refresh
// milliseconds of <main> (10 s by default). Without
// JavaScript the page's "Refresh now" link does the same by hand.
(function () {
  "use strict";
  var main = document.getElementById("main");
  if (!main || !window.fetch || !window.DOMParser) return;
  function refresh() {
    fetch(location.href, {credentials: "same-origin", cache: "no-store"})
      .then(function (r) { if (!r.ok) throw new Error(r.status); return r.text(); })
      .then(function (text) {
        var doc = new DOMParser().parseFromString(text, "text/html");
        var next = doc.getElementById("main");
        if (!next) return;
        // Keep open <details> open across the swap.
        var open = Array.prototype.map.call(main.querySelectorAll("details[open] summary"), function (s) { return s.textContent; });
        main.innerHTML = next.innerHTML;
        Array.prototype.forEach.call(main.querySelectorAll("details summary"), function (s) {
          if (open.indexOf(s.textContent) >= 0) s.parentNode.open = true;
        });
        main.dataset.refreshed = String((Number(main.dataset.refreshed) || 0) + 1);
      })
      .catch(function () {
        var u = document.getElementById("updated");
        if (u) u.textContent = "Could not refresh: the site did not answer. The figures below may be old; try Refresh now.";
      });
  }
  setInterval(refresh, Number(main.dataset.refresh) || 10000);
})();
