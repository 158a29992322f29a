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
  const bar = box.querySelector(".bar");
  const step = box.querySelector(".step");
  function size(n, bytes) {
    if (!bytes) return String(n);
    const u = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
    return n.toFixed(i ? 1 : 0) + " " + u[i];
  }
  function show(j) {
    state.textContent = j.state;
    box.setAttribute("data-state", j.state);
    if (j.started_at) {
      const end = j.finished_at || j.now;
      elapsed.textContent = "(" + Math.round((end - j.started_at) / 1000) + " s)";
    }
    error.textContent = j.error || "";
    const p = j.progress;
    if (p && j.state === "running") {
      bar.hidden = false;
      if (p.total) { bar.max = p.total; bar.value = Math.min(p.done, p.total); } else { bar.removeAttribute("value"); }
      step.textContent = p.step + ": " + size(p.done, p.bytes) + (p.total ? " of " + size(p.total, p.bytes) : "");
    } else {
      bar.hidden = true;
      step.textContent = "";
    }
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
