// Security: the active policy's text, changes to approve (second person), keys, decision log.
"use strict";

(() => {
  async function policy() {
    const data = await hub.newest("policy", "/ui/api/security/policy");
    if (!data) return;
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
              // the version shown with the diff: refused if the change is no longer that one
              { method: "POST", json: { reason: reason.value.trim(), expected_version: row.bundle_version } });
            hub.text("approve-result", `${done.change_id}: ${done.status}`);
            await policy();
          } catch (e) { hub.text("approve-error", e.message); }
        });
        const td = tr.insertCell();
        // what is approved: the change's diff, as text (a <pre>'s textContent, never markup)
        const d = document.createElement("details");
        const s = document.createElement("summary");
        s.textContent = row.diff === null ? "diff withheld (policy.read hub-wide)"
          : `diff (bundle ${row.bundle_version.slice(0, 12)})`;
        const pre = document.createElement("pre");
        pre.className = "change-diff";
        pre.textContent = row.diff === null ? "" : hub.visibleLines(row.diff);  // controls escaped
        d.append(s, pre);
        td.append(d, reason, b);
      });
  }

  function showSecret(issued) {
    // A role that may approve is never handed over: the answer is an enrolment token that
    // its owner redeems (`hub enrol TOKEN`), after a second approver when one is needed.
    const enrolment = issued.enrolment_token !== undefined;
    hub.text("key-new-id", enrolment ? issued.enrolment_id : issued.key_id);
    hub.text("key-new-owner", `${issued.owner} (${issued.roles.join(", ")})`);
    hub.text("key-token", enrolment ? issued.enrolment_token : issued.token);
    if (enrolment) {
      const second = issued.status === "pending_approval"
        ? ` A second approver approves it on the Enrolments page (or runs \`hub principals approve ${issued.enrolment_id}\`) and gives ${issued.owner} the second half.`
        : "";
      hub.text("key-result", `Enrolment token for ${issued.owner}, not a key: give it to them; ` +
        `they run \`hub enrol TOKEN\` or open /ui/enrol on their own machine.${second}`);
    }
    document.getElementById("key-secret").hidden = false;
  }

  async function keyAction(path, body, done) {
    hub.text("key-error", "");
    hub.text("key-result", "");
    try {
      const answer = await hub.json(path, { method: "POST", json: body });
      done(answer);
    } catch (e) { hub.text("key-error", e.message); }
    await keys();
  }

  function keyButtons(row, tr) {
    const td = tr.insertCell();
    if (row.state !== "active") return;
    const reason = document.createElement("input");
    reason.placeholder = "reason";
    reason.className = "key-reason";
    reason.size = 12;
    const revoke = document.createElement("button");
    revoke.textContent = "Revoke";
    revoke.className = "key-revoke";
    revoke.addEventListener("click", () => {
      if (!reason.value.trim()) { hub.text("key-error", "Give a reason to revoke the key."); return; }
      keyAction(`/ui/api/security/keys/${encodeURIComponent(row.key_id)}/revoke`,
        { reason: reason.value.trim() },
        (a) => hub.text("key-result", `Revoked: ${a.revoked.join(", ")}`));
    });
    const rotate = document.createElement("button");
    rotate.textContent = "Rotate";
    rotate.className = "key-rotate";
    rotate.addEventListener("click", () => {
      keyAction(`/ui/api/security/keys/${encodeURIComponent(row.key_id)}/rotate`,
        { reason: reason.value.trim() },
        (a) => {
          showSecret(a);  // another person's approver key: a reset, its owner enrols again
          if (a.enrolment_token === undefined) hub.text("key-result", `${a.replaces} rotated to ${a.key_id}`);
        });
    });
    td.append(reason, revoke, rotate);
  }

  async function keys() {
    try {
      const data = await hub.newest("keys", "/ui/api/security/keys");
      if (!data) return;
      hub.table(document.getElementById("keys"),
        ["key_id", "owner", "roles", "state", "issued_by", "expires_at"], data.keys, keyButtons);
    } catch (e) {
      hub.table(document.getElementById("keys"), ["refused"], [{ refused: e.message }]);
    }
  }

  document.getElementById("key-create").addEventListener("submit", (e) => {
    e.preventDefault();
    const f = e.target.elements;
    const roles = f.roles.value.split(",").map((r) => r.trim()).filter(Boolean);
    const body = { owner: f.owner.value.trim(), roles };
    if (f.expires_in.value.trim()) body.expires_in = f.expires_in.value.trim();
    if (!body.owner || !roles.length) {
      hub.text("key-error", "Give the key's owner and at least one role.");
      return;
    }
    keyAction("/ui/api/security/keys", body, showSecret);
  });

  async function decisions(form) {
    const params = new URLSearchParams({ topic: "hub.decisions", limit: "100" });
    const since = new Date(Date.now() - 15 * 60 * 1000).toISOString();
    params.set("from", since);
    const actor = form.elements.actor.value.trim();
    if (actor) params.set("actor", actor);
    try {
      const data = await hub.newest("decisions", "/ui/api/ledger/entries?" + params);
      if (!data) return;
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
