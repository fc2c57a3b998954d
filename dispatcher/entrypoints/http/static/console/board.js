// The board refreshes itself: every data-every seconds its panel is fetched again from
// the server (rendered there, from the same board as GET /api/v1/board) and put in
// place. The server decides everything shown; this only fetches. A failed fetch keeps
// the last panel and marks it stale.
"use strict";
(function () {
  const panel = document.getElementById("board-panel");
  if (!panel) return;
  const every = Number(panel.dataset.every || 30) * 1000;
  const stale = document.getElementById("board-stale");
  const state = { refreshed: 0 };
  window.eldercallBoard = state; // for the browser tests

  async function refresh() {
    try {
      const answer = await fetch(panel.dataset.refresh, { credentials: "same-origin", cache: "no-store" });
      if (answer.status === 401) { window.location.assign("/console/login"); return; }
      if (!answer.ok) throw new Error(answer.statusText);
      panel.innerHTML = await answer.text(); // the server's autoescaped HTML
      state.refreshed += 1;
      if (stale) stale.hidden = true;
    } catch (e) {
      if (stale) stale.hidden = false;
    }
  }
  setInterval(refresh, every);
})();
