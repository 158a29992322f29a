// runbook dashboard: updates a job page until the job ends. No inline script anywhere (the
// Content-Security-Policy allows only this file).
"use strict";
(function () {
  const box = document.querySelector("[data-job]");
  if (!box) return;
  const id = box.getAttribute("data-job");
  const state = box.querySelector(".state");
  const elapsed = box.querySelector(".elapsed");
  const error = box.querySelector(".error");
  function show(j) {
    state.textContent = j.state;
    box.setAttribute("data-state", j.state);
    if (j.started_at) {
      const end = j.finished_at || j.now;
      elapsed.textContent = "(" + Math.round((end - j.started_at) / 1000) + " s)";
    }
    error.textContent = j.error || "";
  }
  function poll() {
    fetch("/ui/jobs/" + encodeURIComponent(id), { credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (j) {
        if (!j) return;
        show(j);
        if (j.state === "queued" || j.state === "running") setTimeout(poll, 1000);
      })
      .catch(function () { setTimeout(poll, 3000); });
  }
  poll();
})();
