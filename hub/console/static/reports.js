// Reports: run a signed report on demand, list the recorded ones, download, verify.
"use strict";

(() => {
  const status = document.getElementById("status");
  const error = document.getElementById("error");
  const verified = document.getElementById("verified");

  function summaryText(s) {
    if (!s) return "";
    if (s.accuracy_percent) {
      return `accuracy ${s.accuracy_percent} (goal ${s.goal_percent}), ${(s.discrepancies || []).length} discrepancies`;
    }
    return `AML hits ${s.aml_hits}, limit breaches ${s.limit_breaches}, cases ${s.cases}, policy changes ${s.policy_changes}`;
  }

  function link(href, label) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = label;
    a.setAttribute("download", "");
    return a;
  }

  async function verify(id) {
    verified.textContent = "verifying…";
    try {
      const out = await hub.json(`/ui/api/reports/${id}/verify`, { method: "POST" });
      verified.textContent = out.message;
      verified.className = out.ok ? "ok" : "error";
      verified.dataset.ok = String(out.ok);
    } catch (e) {
      verified.textContent = e.message;
      verified.className = "error";
    }
  }

  async function load() {
    const data = await hub.newest("reports", "/ui/api/reports");
    if (!data) return;
    const rows = data.reports.map((r) => ({
      report: r.report_id, files: "", kind: r.kind, day: r.day, created: r.created_at,
      by: r.created_by, checkpoint: r.checkpoint_size, summary: summaryText(r.summary),
    }));
    // The downloads and the verify button sit next to the report id, and the summary wraps, so
    // a long summary or owner never pushes them out of sight behind a horizontal scroll.
    hub.table(document.getElementById("reports"), ["report", "files", "kind", "day", "created", "by", "checkpoint", "summary"], rows, (row, tr) => {
      tr.cells[tr.cells.length - 1].classList.add("wrap");
      const td = tr.cells[1];
      td.replaceChildren(
        link(`/ui/api/reports/${row.report}/pdf`, "PDF"), document.createTextNode(" · "),
        link(`/ui/api/reports/${row.report}/html`, "HTML"), document.createTextNode(" · "),
        link(`/ui/api/reports/${row.report}/pack`, "signed pack"), document.createTextNode(" · "),
      );
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "verify";
      b.className = "verify";
      b.addEventListener("click", () => verify(row.report));
      td.appendChild(b);
      tr.dataset.report = row.report;
    });
  }

  async function run() {
    error.textContent = "";
    status.textContent = "running…";
    const body = { kind: document.getElementById("kind").value };
    const day = document.getElementById("day").value;
    if (day && body.kind !== "data-quality") body.day = day;
    try {
      const made = await hub.json("/ui/api/reports", { method: "POST", json: body });
      status.textContent = "";
      const last = document.getElementById("last");
      last.textContent = `report ${made.report_id}: ${summaryText(made.summary)}`;
      last.dataset.report = made.report_id;
      await load();
    } catch (e) {
      status.textContent = "";
      error.textContent = e.message;
    }
  }

  document.getElementById("run-report").addEventListener("click", run);
  load().catch((e) => { error.textContent = e.message; });
})();
