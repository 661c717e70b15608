// The start page: refresh the consoles table every few seconds (state, last output, bytes…).
"use strict";
(function () {
  const table = document.querySelector("table.consoles");
  if (!table) return;
  async function refresh() {
    try {
      const response = await fetch("/fragment/consoles", { credentials: "same-origin" });
      if (response.ok) {
        const current = document.querySelector("table.consoles");
        if (current) current.outerHTML = await response.text();
      }
    } catch (error) { /* the next round tries again */ }
  }
  setInterval(refresh, 3000);
})();
