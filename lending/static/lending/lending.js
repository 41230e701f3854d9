/* Live lending value on the application form, and live review progress. No dependencies. */
(function () {
  "use strict";
  function dec(v) { var n = parseFloat(v); return isFinite(n) ? n : 0; }
  function fmt(n) { return n.toLocaleString("en-HK", { minimumFractionDigits: 2, maximumFractionDigits: 2 }); }

  // --- application form: the client's holdings, valued at the embedded prices and haircuts ---
  // (display only: the server values the pledge again with lending.valuation)
  var form = document.getElementById("application-form");
  if (form) {
    var policy = JSON.parse(document.getElementById("policy-data").textContent);
    var tbody = document.getElementById("lines");
    function recompute() {
      if (!policy) { return; }
      var secMv = 0, secLv = 0, vaMv = 0, vaLv = 0;
      (tbody ? tbody.querySelectorAll("tr") : []).forEach(function (row) {
        var kind = row.querySelector("[name=line_kind]").value;
        var qty = dec(row.querySelector("[name=line_quantity]").value);
        var mv = qty * dec(row.dataset.price);
        var lv = mv * (1 - dec(row.dataset.haircut));
        if (kind === "securities") { secMv += mv; secLv += lv; } else { vaMv += mv; vaLv += lv; }
        row.querySelector(".line-lv").textContent = fmt(lv);
      });
      var share = dec(policy.va_max_share);
      var vaAllowed = share >= 1 ? vaLv : (vaLv * (1 - share) <= secLv * share ? vaLv : (share > 0 ? secLv * share / (1 - share) : 0));
      var total = secLv + vaAllowed;
      document.getElementById("out-mv").textContent = fmt(secMv + vaMv);
      document.getElementById("out-sec-lv").textContent = fmt(secLv);
      document.getElementById("out-va-lv").textContent = fmt(vaAllowed);
      document.getElementById("out-lv").textContent = fmt(total);
      document.getElementById("out-va-capped").hidden = !(vaAllowed < vaLv - 0.005);
      var requested = dec(document.getElementById("id_requested_limit").value);
      document.getElementById("out-over").hidden = !(requested > total);
    }
    if (tbody) {
      tbody.addEventListener("click", function (e) {
        if (e.target.matches(".pledge-all")) {
          var row = e.target.closest("tr");
          row.querySelector("[name=line_quantity]").value = row.dataset.free.replace(/\.?0+$/, "");
          recompute();
        }
      });
    }
    form.addEventListener("input", recompute);
    form.addEventListener("change", recompute);
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
