// Enrolments: the open ones of this tenant, with Approve on those waiting for a second person.
"use strict";

(() => {
  const COLUMNS = ["enrolment_id", "owner", "roles", "tenant", "kind", "state", "requested_by",
    "requested_at", "approved_by", "approval_reason", "expires_at"];

  function showHalf(done) {
    hub.text("enrolment-id", done.enrolment_id);
    hub.text("enrolment-owner", done.owner);
    hub.text("enrolment-half", done.second_half);
    document.getElementById("enrolment-second").hidden = false;
  }

  function approveButton(row, tr) {
    const td = tr.insertCell();
    if (row.state !== "pending_approval") return;
    const reason = document.createElement("input");
    reason.placeholder = "why approve";
    reason.className = "enrolment-reason";
    reason.size = 14;
    const b = document.createElement("button");
    b.textContent = "Approve";
    b.className = "enrolment-approve";
    b.addEventListener("click", async () => {
      hub.text("enrolment-error", "");
      hub.text("enrolment-result", "");
      if (!reason.value.trim()) { hub.text("enrolment-error", "Give a reason to approve."); return; }
      try {
        // The same governance method as POST /v1/enrolments/{id}/approve: its refusals
        // (two-person rule, roles, tenant) come back with the API's message.
        const done = await hub.json(
          `/ui/api/enrolments/${encodeURIComponent(row.enrolment_id)}/approve`,
          { method: "POST", json: { reason: reason.value.trim() } });
        showHalf(done);
        hub.text("enrolment-result", `${done.enrolment_id} of ${done.owner}: approved`);
      } catch (e) { hub.text("enrolment-error", e.message); }
      await load();
    });
    td.append(reason, b);
  }

  const all = document.getElementById("enrolments-all");

  async function load() {
    const path = "/ui/api/enrolments" + (all.checked ? "?all=true" : "");
    try {
      const data = await hub.newest("enrolments", path);
      if (!data) return;
      hub.table(document.getElementById("enrolments"), COLUMNS, data.enrolments, approveButton);
    } catch (e) {
      hub.table(document.getElementById("enrolments"), ["refused"], [{ refused: e.message }]);
    }
  }

  all.addEventListener("change", load);
  load();
})();
