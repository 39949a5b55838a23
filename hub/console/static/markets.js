// Markets: candles + VWAP of one instrument (SVG drawn here), live over Server-Sent Events.
"use strict";

(() => {
  const SVG = "http://www.w3.org/2000/svg";
  const chart = document.getElementById("chart");
  const select = document.getElementById("instrument");
  const live = document.getElementById("live");
  let source = null;

  function el(name, attrs, parent) {
    const node = document.createElementNS(SVG, name);
    for (const [k, v] of Object.entries(attrs)) node.setAttribute(k, v);
    if (parent) parent.appendChild(node);
    return node;
  }

  function draw(data) {
    const rows = data.rows;
    const W = 960, H = 300, V = 70, PAD = 56;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H + V + 24}`, role: "img", class: "candles" });
    svg.appendChild(document.createElementNS(SVG, "title")).textContent =
      `${data.instrument} ${data.currency}: ${rows.length} one-minute bars`;
    if (!rows.length) {
      el("text", { x: W / 2, y: H / 2, "text-anchor": "middle", class: "axis" }, svg).textContent =
        "no trades yet";
    } else {
      const num = (v) => (v === null ? NaN : Number(v));
      const lows = rows.map((r) => num(r.low)), highs = rows.map((r) => num(r.high));
      let lo = Math.min(...lows), hi = Math.max(...highs);
      if (hi === lo) { hi += 1; lo -= 1; }
      const vmax = Math.max(...rows.map((r) => num(r.volume))) || 1;
      const step = (W - PAD - 8) / Math.max(rows.length, 30);  // a few bars stay candle-sized
      const x = (i) => PAD + i * step + step / 2;
      const y = (p) => 8 + (H - 16) * (1 - (p - lo) / (hi - lo));
      for (let k = 0; k <= 4; k++) {
        const p = lo + ((hi - lo) * k) / 4;
        el("line", { x1: PAD, x2: W, y1: y(p), y2: y(p), class: "grid" }, svg);
        el("text", { x: PAD - 4, y: y(p) + 4, "text-anchor": "end", class: "axis" }, svg)
          .textContent = p.toFixed(2);
      }
      const vwap = [];
      rows.forEach((r, i) => {
        const o = num(r.open), c = num(r.close), up = c >= o;
        const g = el("g", { class: up ? "up" : "down", "data-start": r.window_start }, svg);
        el("line", { x1: x(i), x2: x(i), y1: y(num(r.high)), y2: y(num(r.low)), class: "wick" }, g);
        const top = y(Math.max(o, c)), h = Math.max(1, Math.abs(y(o) - y(c)));
        el("rect", { x: x(i) - step * 0.35, y: top, width: Math.max(1, step * 0.7), height: h }, g);
        const vh = (V - 6) * (num(r.volume) / vmax);
        el("rect", { x: x(i) - step * 0.35, y: H + V - vh, width: Math.max(1, step * 0.7),
          height: vh, class: "vol" }, g);
        const tip = document.createElementNS(SVG, "title");
        tip.textContent = `${r.window_start}  O ${r.open} H ${r.high} L ${r.low} C ${r.close}  ` +
          `V ${r.volume}  VWAP ${r.vwap}  trades ${r.events}`;
        g.appendChild(tip);
        if (r.vwap !== null) vwap.push(`${x(i).toFixed(1)},${y(num(r.vwap)).toFixed(1)}`);
      });
      el("polyline", { points: vwap.join(" "), class: "vwap" }, svg);
      const first = rows[0].window_start, last = rows[rows.length - 1].window_start;
      el("text", { x: PAD, y: H + V + 20, class: "axis" }, svg).textContent = first;
      el("text", { x: W, y: H + V + 20, "text-anchor": "end", class: "axis" }, svg).textContent = last;
    }
    chart.replaceChildren(svg);
    const last = rows[rows.length - 1] || {};
    chart.dataset.bars = rows.length;
    chart.dataset.trades = rows.reduce((n, r) => n + Number(r.events || 0), 0);
    chart.dataset.lastClose = last.close ?? "";
    chart.dataset.batch = data.batch_seq;
    hub.text("chart-title", `${data.instrument} ${data.currency}: OHLCV, 1-minute bars, with VWAP`);
  }

  function follow(instrument, currency) {
    if (source) source.close();
    const q = new URLSearchParams({ instrument, currency });
    source = new EventSource("/ui/api/markets/stream?" + q);
    source.addEventListener("open", () => { live.textContent = "live"; live.className = "badge on"; });
    source.addEventListener("bars", (event) => {
      const data = JSON.parse(event.data);
      draw(data);
      const lag = Date.now() - Date.parse(data.sent_at);
      hub.text("last-update", `updated ${new Date().toLocaleTimeString()} (batch ${data.batch_seq}, ` +
        `${Math.max(0, lag)} ms in transit)`);
    });
    source.addEventListener("ended", () => { source.close(); live.textContent = "session ended"; });
    source.addEventListener("error", () => { live.textContent = "reconnecting…"; live.className = "badge"; });
  }

  async function loadInstruments() {
    const data = await hub.json("/ui/api/markets/instruments");
    const wanted = new URLSearchParams(location.search).get("instrument");
    select.replaceChildren();
    for (const r of data.rows) {
      const opt = document.createElement("option");
      opt.value = `${r.instrument}|${r.currency}`;
      opt.textContent = `${r.instrument} ${r.currency}`;
      if (r.instrument === wanted) opt.selected = true;
      select.appendChild(opt);
    }
    const rows = data.rows.map((r) => ({
      ...r,
      change_pct: r.first_open && r.last_close
        ? (100 * (Number(r.last_close) / Number(r.first_open) - 1)).toFixed(2) : "",
    }));
    rows.sort((a, b) => Math.abs(Number(b.change_pct)) - Math.abs(Number(a.change_pct)));
    hub.table(document.getElementById("instruments"),
      ["instrument", "currency", "bars", "last_bar", "first_open", "last_close", "change_pct"], rows,
      (row, tr) => tr.addEventListener("click", () => {
        select.value = `${row.instrument}|${row.currency}`;
        select.dispatchEvent(new Event("change"));
      }));
    if (wanted && !data.rows.some((r) => r.instrument === wanted)) {
      const opt = document.createElement("option");
      opt.value = `${wanted}|${new URLSearchParams(location.search).get("currency") || "USD"}`;
      opt.textContent = opt.value.replace("|", " ");
      opt.selected = true;
      select.appendChild(opt);
    }
  }

  async function loadPositions() {
    const data = await hub.json("/ui/api/markets/positions");
    hub.table(document.getElementById("positions"), data.columns, data.rows);
  }

  select.addEventListener("change", () => {
    const [instrument, currency] = select.value.split("|");
    follow(instrument, currency);
  });

  (async () => {
    try {
      await loadInstruments();
      if (select.value) select.dispatchEvent(new Event("change"));
      await loadPositions();
    } catch (error) {
      live.textContent = error.message;
      live.className = "badge error";
    }
  })();
})();
