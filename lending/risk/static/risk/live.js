/* Live utilisation and margin-call figures: every element with data-live-url polls that small JSON
   endpoint (the facility valued now from the engine's stored coefficients) and fills its data-live
   children; deadlines with data-deadline count down. No dependencies; loaded once per page. */
(function () {
  "use strict";
  if (window.riskLiveStarted) { return; }
  window.riskLiveStarted = true;

  function fill(root, key, text) {
    if (text === null || text === undefined) { return; }
    root.querySelectorAll('[data-live="' + key + '"]').forEach(function (el) {
      if (el.textContent !== text) { el.textContent = text; }
    });
  }

  function show(root, key, visible) {
    root.querySelectorAll('[data-live-show="' + key + '"]').forEach(function (el) { el.hidden = !visible; });
  }

  function apply(root, d) {
    fill(root, "utilisation", d.utilisation_text);
    fill(root, "band", d.band_label);
    fill(root, "lending-value", d.lending_value);
    fill(root, "market-value", d.market_value);
    if (d.prices) { fill(root, "price-btc", d.prices.BTC); fill(root, "price-eth", d.prices.ETH); }
    root.querySelectorAll("[data-live-band]").forEach(function (el) {
      el.className = el.className.replace(/\bband-\w+/, "band-" + d.band);
    });
    root.querySelectorAll('[data-live="needle"]').forEach(function (el) {
      el.setAttribute("x2", d.needle.x); el.setAttribute("y2", d.needle.y);
    });
    if (root.dataset.call) {
      var call = d.call && d.call.reference === root.dataset.call ? d.call : null;
      if (call) {
        var needed = call.repay !== "0.00";
        fill(root, "repay", "HK$" + call.repay);
        fill(root, "securities", "HK$" + call.securities_lending_value);
        fill(root, "btc", call.btc);
        fill(root, "eth", call.eth);
        show(root, "needed", needed);
        show(root, "cured", !needed);
      } else {
        show(root, "needed", false);
        show(root, "cured", false);
        show(root, "met", true);
      }
    }
    root.setAttribute("data-live-at", d.now);
  }

  // One request per URL, however many blocks of the page show that facility.
  function poll(url, roots) {
    var every = parseInt(roots[0].dataset.liveEvery || "5000", 10);
    function tick() {
      if (document.hidden) { setTimeout(tick, every); return; }
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(r.status); } return r.json(); })
        .then(function (d) { roots.forEach(function (root) { apply(root, d); }); setTimeout(tick, every); })
        .catch(function () { setTimeout(tick, every * 3); });
    }
    setTimeout(tick, every);
  }

  function countdown(el) {
    var deadline = Date.parse(el.dataset.deadline);
    var skew = Date.parse(el.dataset.now) - Date.now();  // the server's clock, not the browser's
    function tick() {
      var left = Math.floor((deadline - (Date.now() + skew)) / 60000);
      if (left < 0) { el.textContent = el.dataset.fmtOver; return; }
      el.textContent = el.dataset.fmt.replace("__D__", Math.floor(left / 1440)).replace("__H__", Math.floor(left % 1440 / 60))
        .replace("__M__", left % 60);
      setTimeout(tick, 15000);
    }
    tick();
  }

  function start() {
    var groups = {};
    document.querySelectorAll("[data-live-url]").forEach(function (root) {
      (groups[root.dataset.liveUrl] = groups[root.dataset.liveUrl] || []).push(root);
    });
    Object.keys(groups).forEach(function (url) { poll(url, groups[url]); });
    document.querySelectorAll("[data-deadline]").forEach(countdown);
  }
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", start); } else { start(); }
})();
