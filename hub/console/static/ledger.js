// Ledger: search entries; open one and verify, in this browser with WebCrypto, that
//   1. its leaf hash is SHA-256(0x00 || leaf input) of the fields shown (audit/leaf.py, v1),
//   2. its inclusion proof leads to the root of the signed checkpoint (RFC 9162, 2.1.3.2),
//   3. the checkpoint note is signed by the ledger's Ed25519 key (c2sp.org/signed-note).
"use strict";

(() => {
  const enc = new TextEncoder();
  const hex = (bytes) => Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
  const unhex = (text) => Uint8Array.from(text.match(/../g) || [], (h) => parseInt(h, 16));
  const unb64 = (text) => Uint8Array.from(atob(text), (c) => c.charCodeAt(0));
  const sha256 = async (bytes) => new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const concat = (...parts) => {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of parts) { out.set(p, at); at += p.length; }
    return out;
  };
  const equal = (a, b) => a.length === b.length && a.every((x, i) => x === b[i]);

  function leafInput(e) {
    const topic = enc.encode(e.topic);
    const head = new DataView(new ArrayBuffer(3 + topic.length + 4 + 8 + 8));
    head.setUint8(0, 1);
    head.setUint16(1, topic.length);
    new Uint8Array(head.buffer).set(topic, 3);
    let at = 3 + topic.length;
    head.setUint32(at, e.partition); at += 4;
    head.setBigUint64(at, BigInt(e.offset)); at += 8;
    head.setBigInt64(at, BigInt(e.timestamp_ms));
    const digest = (h) => (h === null || h === undefined ? new Uint8Array([0]) : concat(new Uint8Array([1]), unhex(h)));
    const u32 = (n) => { const d = new DataView(new ArrayBuffer(4)); d.setUint32(0, n); return new Uint8Array(d.buffer); };
    const u16 = (n) => { const d = new DataView(new ArrayBuffer(2)); d.setUint16(0, n); return new Uint8Array(d.buffer); };
    const headers = e.headers.map(([k, v]) => {
      const name = enc.encode(k), value = unb64(v);
      return concat(u16(name.length), name, u32(value.length), value);
    });
    return concat(new Uint8Array(head.buffer), digest(e.key_sha256), u32(e.headers.length),
      ...headers, digest(e.value_sha256));
  }

  async function rootFromProof(leaf, index, size, proof) {
    if (size <= 0 || index < 0 || index >= size) throw new Error(`index ${index} is outside a tree of ${size}`);
    let fn = BigInt(index), sn = BigInt(size - 1), r = leaf;
    for (const p of proof) {
      if (sn === 0n) throw new Error("the proof is longer than the tree needs");
      if ((fn & 1n) === 1n || fn === sn) {
        r = await sha256(concat(new Uint8Array([1]), p, r));
        if ((fn & 1n) === 0n) {
          while (fn !== 0n && (fn & 1n) === 0n) { fn >>= 1n; sn >>= 1n; }
        }
      } else {
        r = await sha256(concat(new Uint8Array([1]), r, p));
      }
      fn >>= 1n; sn >>= 1n;
    }
    if (sn !== 0n) throw new Error("the proof is shorter than the tree needs");
    return r;
  }

  async function verifyNote(note, verifierKey) {
    // name+hexid+base64: the name has no "+", but base64 may
    const [name, keyHex, ...rest] = verifierKey.trim().split("+");
    const keyB64 = rest.join("+");
    const raw = unb64(keyB64);
    if (raw[0] !== 1 || raw.length !== 33) throw new Error("the verifier key is not an Ed25519 key");
    const publicKey = raw.slice(1);
    const split = note.indexOf("\n\n");
    if (split < 0) throw new Error("the checkpoint note has no signature block");
    const text = note.slice(0, split + 1);
    const key = await crypto.subtle.importKey("raw", publicKey, { name: "Ed25519" }, false, ["verify"]);
    for (const line of note.slice(split + 2).split("\n")) {
      const m = /^\u2014 (\S+) (\S+)$/.exec(line);
      if (!m || m[1] !== name) continue;
      const sig = unb64(m[2]);
      if (hex(sig.slice(0, 4)) !== keyHex) continue;
      if (await crypto.subtle.verify({ name: "Ed25519" }, key, sig.slice(4), enc.encode(text))) {
        return text;
      }
      throw new Error(`the signature of ${name} does not verify`);
    }
    throw new Error(`no signature by ${name} (key ${keyHex}) on the checkpoint`);
  }

  function check(list, ok, label) {
    const li = document.createElement("li");
    li.className = ok ? "ok" : "bad";
    li.textContent = (ok ? "✔ " : "✘ ") + label;
    list.appendChild(li);
    return ok;
  }

  async function open(index) {
    const card = document.getElementById("entry-card");
    const checks = document.getElementById("checks");
    const verdict = document.getElementById("verdict");
    checks.replaceChildren();
    verdict.textContent = "verifying…";
    verdict.className = "verdict";
    card.hidden = false;
    const [e, key] = await Promise.all([
      hub.json(`/ui/api/ledger/entries/${index}`),
      hub.json("/ui/api/ledger/key"),
    ]);
    hub.text("entry-title", `Entry ${e.index}: ${e.topic}/${e.partition}@${e.offset}`);
    const fields = ["index", "topic", "partition", "offset", "time", "actor", "action", "resource",
      "tenant", "leaf_hash", "key_sha256", "value_sha256"];
    const kv = document.getElementById("entry");
    kv.replaceChildren();
    for (const f of fields) {
      const tr = kv.insertRow();
      tr.insertCell().textContent = f;
      tr.insertCell().textContent = e[f] === null || e[f] === undefined ? "" : String(e[f]);
    }
    for (const [k, v] of e.headers || []) {
      const tr = kv.insertRow();
      tr.insertCell().textContent = "header " + k;
      tr.insertCell().textContent = new TextDecoder().decode(unb64(v));
    }
    document.getElementById("note").textContent = e.checkpoint.note;
    let ok = true;
    try {
      const leaf = unhex(e.leaf_hash);
      if (e.headers) {
        const computed = await sha256(concat(new Uint8Array([0]), leafInput(e)));
        ok = check(checks, equal(computed, leaf),
          `leaf hash recomputed from the entry's fields: ${hex(computed).slice(0, 16)}…`) && ok;
      } else {
        check(checks, true, "the record's bytes are gone (retention): the stored leaf hash is used");
      }
      const lines = e.checkpoint.note.split("\n");
      const noteRoot = unb64(lines[2]);
      ok = check(checks, Number(lines[1]) === e.checkpoint.size,
        `checkpoint note states tree size ${lines[1]}`) && ok;
      const root = await rootFromProof(leaf, e.index, e.checkpoint.size, e.proof.map(unhex));
      ok = check(checks, equal(root, noteRoot),
        `${e.proof.length} proof hashes lead to root ${hex(root).slice(0, 16)}…, the signed root`) && ok;
      await verifyNote(e.checkpoint.note, key.verifier_key);
      ok = check(checks, true, `checkpoint signed by ${key.verifier_key.split("+")[0]} (Ed25519)`) && ok;
    } catch (error) {
      ok = check(checks, false, error.message) && false;
    }
    verdict.textContent = ok ? "Verified: this entry is in the signed ledger." : "NOT verified.";
    verdict.className = "verdict " + (ok ? "ok" : "bad");
    verdict.id = "verdict";
    verdict.dataset.ok = String(ok);
  }

  async function search(form) {
    const params = new URLSearchParams();
    for (const [k, v] of new FormData(form)) if (v && k !== "event_id") params.set(k, v);
    const eventId = form.elements.event_id.value.trim();
    if (eventId) {
      const found = await hub.json("/ui/api/ledger/lookup?" + new URLSearchParams({ event_id: eventId }));
      return open(found.index);
    }
    const data = await hub.newest("entries", "/ui/api/ledger/entries?" + params);
    if (!data) return;
    hub.table(document.getElementById("entries"),
      ["index", "time", "topic", "partition", "offset", "actor", "action", "resource"], data.entries,
      (row, tr) => {
        tr.className = "link";
        tr.dataset.index = row.index;
        tr.addEventListener("click", () => open(row.index).catch(showError));
      });
  }

  function showError(error) {
    const verdict = document.getElementById("verdict");
    document.getElementById("entry-card").hidden = false;
    verdict.textContent = error.message;
    verdict.className = "verdict bad";
  }

  window.hubLedger = { leafInput, rootFromProof, verifyNote, sha256, unhex, hex };  // for tests

  const form = document.getElementById("search");
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    search(form).catch(showError);
  });
  const wanted = new URLSearchParams(location.search);
  if (wanted.get("topic")) form.elements.topic.value = wanted.get("topic");
  if (wanted.get("event_id")) form.elements.event_id.value = wanted.get("event_id");
  search(form).catch(showError);

  async function checkpoints() {
    const data = await hub.json("/ui/api/ledger/checkpoints?limit=10");
    hub.table(document.getElementById("checkpoints"), ["size", "time", "root"], data.checkpoints);
  }

  const evidence = document.getElementById("evidence");
  const day = new Date(Date.now() - 24 * 3600 * 1000).toISOString();
  evidence.elements.from.value = day.slice(0, 19) + "Z";
  evidence.elements.to.value = new Date(Date.now() + 60 * 1000).toISOString().slice(0, 19) + "Z";
  evidence.addEventListener("submit", async (event) => {
    event.preventDefault();
    const status = document.getElementById("evidence-status");
    status.textContent = "exporting…";
    try {
      const body = Object.fromEntries(new FormData(evidence));
      const response = await hub.call("/ui/api/evidence", { method: "POST", json: body });
      const name = /filename="([^"]+)"/.exec(response.headers.get("content-disposition") || "");
      const blob = await response.blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name ? name[1] : "evidence.zip";
      document.body.appendChild(a);
      a.click();
      a.remove();
      status.textContent = `${a.download}: ${blob.size} bytes (verify it with hub-verify)`;
    } catch (e) {
      status.textContent = e.message;
    }
  });
  checkpoints().catch((e) => hub.table(document.getElementById("checkpoints"), ["refused"],
    [{ refused: e.message }]));
})();
