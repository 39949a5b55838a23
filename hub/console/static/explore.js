// Explore: SQL over the views through the guarded query path, catalog beside, CSV export.
"use strict";

(() => {
  const sql = document.getElementById("sql");
  const store = document.getElementById("store");
  const status = document.getElementById("status");
  const error = document.getElementById("error");

  async function loadCatalog() {
    const data = await hub.json("/ui/api/catalog");
    const root = document.getElementById("catalog");
    root.replaceChildren();
    for (const p of data.projections) {
      for (const t of p.tables) {
        const d = document.createElement("details");
        const s = document.createElement("summary");
        s.textContent = `${t.name} `;
        const small = document.createElement("small");
        small.textContent = `${p.store}`;
        s.appendChild(small);
        s.title = t.description;
        d.appendChild(s);
        const use = document.createElement("button");
        use.type = "button";
        use.className = "small";
        use.textContent = "query";
        use.addEventListener("click", () => {
          sql.value = `SELECT * FROM ${t.name} LIMIT 100`;
          store.value = p.store;
        });
        d.appendChild(use);
        const ul = document.createElement("ul");
        for (const c of t.columns) {
          const li = document.createElement("li");
          li.textContent = `${c.name} `;
          const type = document.createElement("code");
          type.textContent = c.type + (c.pii ? " · PII" : "");
          li.appendChild(type);
          li.title = c.description;
          ul.appendChild(li);
        }
        d.appendChild(ul);
        root.appendChild(d);
      }
    }
  }

  async function run() {
    error.textContent = "";
    status.textContent = "running…";
    try {
      const response = await hub.call("/ui/api/query", {
        method: "POST", json: { sql: sql.value, store: store.value, format: "json" },
      });
      const data = await response.json();
      hub.table(document.getElementById("results"), data.columns, data.rows);
      status.textContent = `${data.rows.length} rows in ${response.headers.get("x-hub-elapsed-ms")} ms`;
      status.dataset.rows = data.rows.length;
    } catch (e) {
      status.textContent = "";
      error.textContent = e.message;
    }
  }

  async function exportCsv() {
    error.textContent = "";
    try {
      const response = await hub.call("/ui/api/query", {
        method: "POST", json: { sql: sql.value, store: store.value, format: "csv" },
      });
      const blob = await response.blob();
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = "query.csv";
      document.body.appendChild(a);
      a.click();
      a.remove();
      status.textContent = `exported ${blob.size} bytes as query.csv`;
    } catch (e) {
      error.textContent = e.message;
    }
  }

  document.getElementById("run").addEventListener("click", run);
  document.getElementById("csv").addEventListener("click", exportCsv);
  sql.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
  loadCatalog().catch((e) => { document.getElementById("catalog").textContent = e.message; });
})();
