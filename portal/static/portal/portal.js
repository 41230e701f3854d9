/* Small behaviours shared by every page, as a static file so the Content-Security-Policy needs no inline script. */
document.documentElement.classList.add("js");

document.addEventListener("click", function (event) {
  const print = event.target.closest("[data-print]");
  if (print) {
    event.preventDefault();
    window.print();
  }
  const toggle = event.target.closest(".menu-toggle");
  if (toggle) {
    const open = toggle.getAttribute("aria-expanded") !== "true";
    toggle.setAttribute("aria-expanded", String(open));
    toggle.closest(".topbar").classList.toggle("open", open);
  }
});

document.addEventListener("keydown", function (event) {
  if (event.key !== "Escape") return;
  const toggle = document.querySelector(".menu-toggle[aria-expanded=true]");
  if (toggle) {
    toggle.setAttribute("aria-expanded", "false");
    toggle.closest(".topbar").classList.remove("open");
    toggle.focus();
  }
});

/* Tables: a simple one (one header row, no merged cells) becomes stacked cards on a phone, each
   cell labelled with its column's heading. Any table still wider than its box is wrapped in a
   region that scrolls sideways and takes focus, so a keyboard user can scroll it as well. */
function portalTables() {
  for (const table of document.querySelectorAll("table.data")) {
    const head = table.tHead;
    const simple = head && head.rows.length === 1 && !table.querySelector("[colspan], [rowspan]") && !table.classList.contains("no-stack");
    if (simple) {
      const labels = Array.from(head.rows[0].cells, (cell) => cell.textContent.trim());
      for (const body of table.tBodies) {
        for (const row of body.rows) {
          Array.from(row.cells).forEach((cell, i) => {
            if (!cell.hasAttribute("data-label")) cell.setAttribute("data-label", labels[i] || "");
          });
        }
      }
      table.classList.add("stack");
    }
  }
  portalScrollers();
}

function portalScrollers() {
  for (const table of document.querySelectorAll("table")) {
    if (table.closest(".table-scroll") || !table.parentElement) continue;
    const room = table.parentElement.clientWidth;
    if (table.offsetWidth <= room + 1) continue;
    const box = document.createElement("div");
    box.className = "table-scroll";
    box.tabIndex = 0;
    box.setAttribute("role", "region");
    const heading = table.caption || table.closest("section, .card, .panel, main")?.querySelector("h1, h2, h3");
    if (heading) box.setAttribute("aria-label", heading.textContent.trim());
    table.parentElement.insertBefore(box, table);
    box.appendChild(table);
  }
}

function portalMenu() {
  const toggle = document.querySelector(".menu-toggle");
  if (toggle) toggle.hidden = false;
}

let portalResize;
window.addEventListener("resize", () => { clearTimeout(portalResize); portalResize = setTimeout(portalScrollers, 150); });

if (document.readyState === "loading") {
  document.addEventListener("DOMContentLoaded", () => { portalMenu(); portalTables(); });
} else {
  portalMenu();
  portalTables();
}
