/* Live lending value on the application form, and live review progress. No dependencies. */
(function () {
  "use strict";
  function dec(v) { var n = parseFloat(v); return isFinite(n) ? n : 0; }
  function fmt(n) { return n.toLocaleString("en-HK", { minimumFractionDigits: 2, maximumFractionDigits: 2 }); }

  // --- application form: compute from the policy numbers embedded in the page ---
  var form = document.getElementById("application-form");
  if (form) {
    var policy = JSON.parse(document.getElementById("policy-data").textContent);
    var prices = JSON.parse(document.getElementById("price-data").textContent);
    var tbody = document.getElementById("lines");
    var template = document.getElementById("line-template");
    function addLine(kind) {
      var row = template.content.firstElementChild.cloneNode(true);
      row.querySelector("[name=line_kind]").value = kind;
      row.classList.add(kind);
      tbody.appendChild(row);
      recompute();
    }
    document.getElementById("add-securities").addEventListener("click", function () { addLine("securities"); });
    document.getElementById("add-va").addEventListener("click", function () { addLine("virtual_asset"); });
    tbody.addEventListener("click", function (e) {
      if (e.target.matches(".remove-line")) { e.target.closest("tr").remove(); recompute(); }
    });
    function recompute() {
      if (!policy) { return; }
      var secMv = 0, secLv = 0, vaMv = 0, vaLv = 0;
      tbody.querySelectorAll("tr").forEach(function (row) {
        var kind = row.querySelector("[name=line_kind]").value;
        var lv = 0, mv = 0;
        if (kind === "securities") {
          var cls = row.querySelector("[name=line_haircut_class]").value;
          var h = policy.securities_haircuts[cls];
          mv = dec(row.querySelector("[name=line_market_value]").value);
          if (h !== undefined) { lv = mv * (1 - dec(h)); }
          secMv += mv; secLv += lv;
        } else {
          var asset = row.querySelector("[name=line_asset]").value;
          var price = dec(prices[asset]);
          var haircut = dec(asset === "BTC" ? policy.btc_haircut : policy.eth_haircut);
          mv = dec(row.querySelector("[name=line_quantity]").value) * price;
          lv = mv * (1 - haircut);
          vaMv += mv; vaLv += lv;
        }
        row.querySelector(".line-lv").textContent = fmt(lv);
      });
      var share = dec(policy.va_max_share);
      var vaAllowed = share >= 1 ? vaLv : Math.min(vaLv, share > 0 ? secLv * share / (1 - share) : 0);
      var total = secLv + vaAllowed;
      document.getElementById("out-mv").textContent = fmt(secMv + vaMv);
      document.getElementById("out-sec-lv").textContent = fmt(secLv);
      document.getElementById("out-va-lv").textContent = fmt(vaAllowed);
      document.getElementById("out-lv").textContent = fmt(total);
      document.getElementById("out-va-capped").hidden = !(vaAllowed < vaLv - 0.005);
      var requested = dec(document.getElementById("id_requested_limit").value);
      document.getElementById("out-over").hidden = !(requested > total);
    }
    form.addEventListener("input", recompute);
    form.addEventListener("change", recompute);
    if (!tbody.querySelector("tr")) { addLine("securities"); }
    recompute();
  }

  // --- review progress: poll the small JSON endpoint until the review finishes ---
  var progress = document.getElementById("review-progress");
  if (progress && progress.dataset.poll === "1") {
    var url = progress.dataset.url;
    var tick = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.json(); })
        .then(function (data) {
          data.steps.forEach(function (s) {
            var row = progress.querySelector('[data-step="' + s.code + '"]');
            if (!row) { return; }
            row.querySelector(".step-status").textContent = s.outcome_label || s.status_label;
            row.querySelector(".step-status").className = "status step-status " + (s.outcome === "pass" ? "ok" : s.outcome === "refer" ? "warn" : s.outcome === "fail" ? "bad" : "");
            row.querySelector(".step-attempts").textContent = s.attempts;
          });
          document.getElementById("app-state").textContent = data.state_label;
          if (data.review_finished || (data.state !== "submitted" && data.state !== "in_review")) {
            progress.dataset.poll = "0";
            progress.setAttribute("data-finished", "1");
            window.location.reload();
          } else { setTimeout(tick, 800); }
        })
        .catch(function () { setTimeout(tick, 2000); });
    };
    setTimeout(tick, 500);
  }
})();
