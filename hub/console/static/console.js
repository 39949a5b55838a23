// Shared helpers of the console's pages: data calls with the session's CSRF token, tables.
"use strict";

const hub = (() => {
  const csrf = () => document.querySelector('meta[name="csrf-token"]').content;

  // A 503 body_budget_full (the server's HUB_MAX_REQUEST_BYTES_IN_FLIGHT) comes before any of
  // the body was read: nothing ran, so sending it again cannot do it twice. Sent again after
  // Retry-After (at least the backoff, doubling from 0.5 s, each wait at most 30 s), at most
  // BUDGET_ATTEMPTS times in all. Any other 503 may follow work done: not retried.
  const BUDGET_ATTEMPTS = 6;
  async function sendWithinBudget(path, opts) {
    let backoff = 500;
    for (let attempt = 1; ; attempt++) {
      const response = await fetch(path, opts);
      if (response.status !== 503 || attempt >= BUDGET_ATTEMPTS) return response;
      let reason = null;
      try { reason = (await response.clone().json()).reason; } catch (e) { /* not JSON */ }
      if (reason !== "body_budget_full") return response;
      const after = Number(response.headers.get("Retry-After"));
      const wait = Math.min(30000, Math.max(backoff, Number.isFinite(after) ? after * 1000 : 0));
      await new Promise((resolve) => setTimeout(resolve, wait));
      backoff *= 2;
    }
  }

  async function call(path, options = {}) {
    const opts = { credentials: "same-origin", headers: {}, ...options };
    if (opts.method && opts.method !== "GET") {
      opts.headers = { ...opts.headers, "X-CSRF-Token": csrf() };
    }
    if (opts.json !== undefined) {
      opts.body = JSON.stringify(opts.json);
      opts.headers["Content-Type"] = "application/json";
      delete opts.json;
    }
    const response = await sendWithinBudget(path, opts);
    if (response.status === 401) {
      window.location = "/ui/login?next=" + encodeURIComponent(location.pathname + location.search);
      throw new Error("Your session has ended: log in again.");
    }
    if (!response.ok) {
      let message = response.status + " " + response.statusText;
      try { message = (await response.json()).message || message; } catch (e) { /* not JSON */ }
      const error = new Error(message);
      error.status = response.status;
      throw error;
    }
    return response;
  }

  async function json(path, options) {
    return (await call(path, options)).json();
  }

  // The answer to the newest request named `name`, or null when a newer one was sent meanwhile.
  // A list loaded at page start and again after a change would otherwise be redrawn with the
  // older answer whenever that one arrives last (the server answers in any order).
  const newestTicket = {};
  async function newest(name, path, options) {
    const ticket = (newestTicket[name] = (newestTicket[name] || 0) + 1);
    try {
      const data = await json(path, options);
      return ticket === newestTicket[name] ? data : null;
    } catch (e) {
      if (ticket !== newestTicket[name]) return null;
      throw e;
    }
  }

  // Text from outside shown visibly escaped, as the CLI prints it (audit/printable.py): a
  // control (C0, DEL, C1), a line or paragraph separator or a bidirectional embedding,
  // override or isolate could reorder or hide the text of a cell ("Trojan Source").
  const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;
  function visible(text) {
    return String(text).replace(UNSAFE, (c) => {
      const n = c.charCodeAt(0);
      return n < 0x100 ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
    });
  }
  // Each line of `text` visible, its line breaks kept (a diff).
  function visibleLines(text) {
    return String(text).split("\n").map(visible).join("\n");
  }

  function cell(value) {
    if (value === null || value === undefined) return "";
    if (typeof value === "object") return visible(JSON.stringify(value));
    return visible(String(value));
  }

  // Fill <table> `el` with `rows` (objects) under `columns`; `onRow(row, tr)` may add behaviour.
  function table(el, columns, rows, onRow) {
    el.replaceChildren();
    const head = el.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement("th");
      th.textContent = c;
      head.appendChild(th);
    }
    const body = el.createTBody();
    for (const row of rows) {
      const tr = body.insertRow();
      for (const c of columns) {
        const td = tr.insertCell();
        td.textContent = cell(row[c]);
        if (typeof row[c] === "number" || /^-?\d+(\.\d+)?$/.test(cell(row[c]))) td.className = "num";
      }
      if (onRow) onRow(row, tr);
    }
    if (!rows.length) {
      const td = body.insertRow().insertCell();
      td.colSpan = columns.length || 1;
      td.textContent = "no rows";
      td.className = "muted";
    }
  }

  function text(id, value) {
    document.getElementById(id).textContent = value;
  }

  document.getElementById("logout")?.addEventListener("click", async () => {
    try { await call("/ui/logout", { method: "POST" }); } finally { window.location = "/ui/login"; }
  });

  return { call, json, newest, table, text, csrf, cell, visible, visibleLines };
})();
