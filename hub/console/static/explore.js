// Explore: SQL over the views through the guarded query path, catalog beside, CSV export, signed CSV/Parquet exports.
"use strict";

(() => {
  const sql = document.getElementById("sql");
  const store = document.getElementById("store");
  const status = document.getElementById("status");
  const error = document.getElementById("error");

  async function loadCatalog() {
    const data = await hub.json("/ui/api/catalog");
    const saved = document.getElementById("saved");
    saved.replaceChildren();
    for (const q of data.queries) {
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "saved-query";
      b.dataset.name = q.name;
      b.textContent = q.name;
      b.title = q.description;
      b.addEventListener("click", () => { sql.value = q.sql; store.value = q.store; run(); });
      li.appendChild(b);
      saved.appendChild(li);
    }
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

  // A bar chart of the first numeric column by the first other column (first 30 rows), when
  // the result has both; nothing otherwise.
  function chart(columns, rows) {
    const root = document.getElementById("result-chart");
    root.replaceChildren();
    const isNum = (v) => typeof v === "number" || (typeof v === "string" && /^-?\d+(\.\d+)?$/.test(v));
    const value = columns.find((c) => rows.length && rows.every((r) => isNum(r[c])));
    const label = columns.find((c) => c !== value);
    if (!value || !label) return;
    const shown = rows.slice(0, 30);
    const max = Math.max(...shown.map((r) => Math.abs(Number(r[value])))) || 1;
    const NS = "http://www.w3.org/2000/svg", H = 18, W = 900, L = 180;
    const svg = document.createElementNS(NS, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${shown.length * H + 24}`);
    svg.setAttribute("class", "bars");
    shown.forEach((r, i) => {
      const w = ((W - L - 90) * Math.abs(Number(r[value]))) / max;
      const text = document.createElementNS(NS, "text");
      text.setAttribute("x", L - 6); text.setAttribute("y", i * H + 13);
      text.setAttribute("text-anchor", "end"); text.setAttribute("class", "axis");
      text.textContent = String(r[label]).slice(0, 28);
      const rect = document.createElementNS(NS, "rect");
      rect.setAttribute("x", L); rect.setAttribute("y", i * H + 3);
      rect.setAttribute("width", Math.max(1, w)); rect.setAttribute("height", H - 6);
      const num = document.createElementNS(NS, "text");
      num.setAttribute("x", L + w + 4); num.setAttribute("y", i * H + 13);
      num.setAttribute("class", "axis"); num.textContent = String(r[value]);
      svg.append(text, rect, num);
    });
    const caption = document.createElementNS(NS, "text");
    caption.setAttribute("x", L); caption.setAttribute("y", shown.length * H + 18);
    caption.setAttribute("class", "axis");
    caption.textContent = `${value} by ${label}` + (rows.length > 30 ? " (first 30 rows)" : "");
    svg.appendChild(caption);
    root.appendChild(svg);
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
      chart(data.columns, data.rows);
      status.textContent = `${data.rows.length} rows in ${response.headers.get("x-hub-elapsed-ms")} ms`;
      status.dataset.rows = data.rows.length;
    } catch (e) {
      status.textContent = "";
      error.textContent = e.message;
    }
  }

  async function exportFile(format, signed) {
    error.textContent = "";
    try {
      const response = await hub.call("/ui/api/query", {
        method: "POST", json: { sql: sql.value, store: store.value, format, signed },
      });
      const blob = await response.blob();
      const name = signed ? `query-${format}-signed.zip` : `query.${format}`;
      const a = document.createElement("a");
      a.href = URL.createObjectURL(blob);
      a.download = name;
      document.body.appendChild(a);
      a.click();
      a.remove();
      status.textContent = `exported ${blob.size} bytes as ${name}`;
    } catch (e) {
      error.textContent = e.message;
    }
  }

  document.getElementById("run").addEventListener("click", run);
  document.getElementById("csv").addEventListener("click", () => exportFile("csv", false));
  document.getElementById("signed-csv").addEventListener("click", () => exportFile("csv", true));
  document.getElementById("signed-parquet").addEventListener("click", () => exportFile("parquet", true));
  sql.addEventListener("keydown", (e) => { if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) run(); });
  loadCatalog().catch((e) => { document.getElementById("catalog").textContent = e.message; });
})();
