// Security: the active policy's text, changes to approve (second person), keys, decision log.
"use strict";

(() => {
  async function policy() {
    const data = await hub.json("/ui/api/security/policy");
    hub.text("policy-version", `${data.version} (${data.engine})`);
    const root = document.getElementById("policy-files");
    root.replaceChildren();
    for (const [name, text] of Object.entries(data.files)) {
      const d = document.createElement("details");
      const s = document.createElement("summary");
      s.textContent = name;
      const pre = document.createElement("pre");
      pre.textContent = text;
      d.append(s, pre);
      root.appendChild(d);
    }
    hub.table(document.getElementById("pending"),
      ["change_id", "proposed_by", "reason", "proposed_at", "approvals"], data.pending, (row, tr) => {
        const reason = document.createElement("input");
        reason.placeholder = "why approve";
        reason.className = "approve-reason";
        const b = document.createElement("button");
        b.textContent = "Approve";
        b.className = "approve";
        b.addEventListener("click", async () => {
          hub.text("approve-error", "");
          if (!reason.value.trim()) { hub.text("approve-error", "Give a reason to approve."); return; }
          try {
            const done = await hub.json(
              `/ui/api/security/policy/changes/${encodeURIComponent(row.change_id)}/approve`,
              { method: "POST", json: { reason: reason.value.trim() } });
            hub.text("approve-result", `${done.change_id}: ${done.status}`);
            await policy();
          } catch (e) { hub.text("approve-error", e.message); }
        });
        const td = tr.insertCell();
        td.append(reason, b);
      });
  }

  async function keys() {
    try {
      const data = await hub.json("/ui/api/security/keys");
      hub.table(document.getElementById("keys"),
        ["key_id", "owner", "roles", "state", "issued_by", "expires_at"], data.keys);
    } catch (e) {
      hub.table(document.getElementById("keys"), ["refused"], [{ refused: e.message }]);
    }
  }

  async function decisions(form) {
    const params = new URLSearchParams({ topic: "hub.decisions", limit: "100" });
    const since = new Date(Date.now() - 15 * 60 * 1000).toISOString();
    params.set("from", since);
    const actor = form.elements.actor.value.trim();
    if (actor) params.set("actor", actor);
    try {
      const data = await hub.json("/ui/api/ledger/entries?" + params);
      hub.table(document.getElementById("decisions"),
        ["index", "time", "actor", "action", "resource"], data.entries.reverse());
    } catch (e) {
      hub.table(document.getElementById("decisions"), ["refused"], [{ refused: e.message }]);
    }
  }

  const form = document.getElementById("decisions-filter");
  form.addEventListener("submit", (e) => { e.preventDefault(); decisions(form); });
  policy().catch((e) => hub.text("policy-version", e.message));
  keys();
  decisions(form);
})();
