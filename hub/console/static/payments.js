// Payments and AML: corridors, near-threshold patterns, limit breaches, and the case list.
"use strict";

(() => {
  async function openCase(accountId) {
    hub.text("case-error", "");
    try {
      await hub.json("/ui/api/cases", {
        method: "POST",
        json: { reason: `near-threshold payments of ${accountId}`, subjects: [accountId] },
      });
      await cases();
    } catch (e) { hub.text("case-error", e.message); }
  }

  async function closeCase(caseId) {
    hub.text("case-error", "");
    try {
      await hub.json(`/ui/api/cases/${encodeURIComponent(caseId)}/close`,
        { method: "POST", json: { reason: "reviewed in the console" } });
      await cases();
    } catch (e) { hub.text("case-error", e.message); }
  }

  function button(label, className, action) {
    const b = document.createElement("button");
    b.textContent = label;
    b.className = className;
    b.addEventListener("click", action);
    return b;
  }

  async function cases() {
    try {
      const data = await hub.newest("cases", "/ui/api/cases");
      if (!data) return;
      hub.table(document.getElementById("cases"),
        ["case_id", "status", "reason", "subjects", "opened_by", "opened_at"], data.cases, (row, tr) => {
          if (row.status === "open") {
            tr.insertCell().appendChild(button("Close", "close-case", () => closeCase(row.case_id)));
          }
        });
    } catch (e) {
      hub.table(document.getElementById("cases"), ["refused"], [{ refused: e.message }]);
    }
  }

  async function summary() {
    const data = await hub.json("/ui/api/payments/summary");
    hub.table(document.getElementById("corridors"), data.corridors.columns, data.corridors.rows);
    hub.table(document.getElementById("near"), data.near_threshold.columns, data.near_threshold.rows,
      (row, tr) => tr.insertCell().appendChild(
        button("Open case", "open-case", () => openCase(row.account_id))));
    hub.table(document.getElementById("breaches"), data.breaches.columns, data.breaches.rows);
  }

  summary().catch((e) => hub.text("case-error", e.message));
  cases();
})();
