// Data health: ingest rate (from two readings of the log's end offsets), quarantine, lag.
"use strict";

(() => {
  let previous = null;

  async function refresh() {
    const data = await hub.json("/ui/api/health");
    const total = Object.values(data.records).reduce((a, b) => a + b, 0);
    if (previous) {
      const rate = (total - previous.total) / Math.max(0.001, data.at - previous.at);
      hub.text("rate", rate.toFixed(1));
    }
    previous = { total, at: data.at };
    hub.text("accepted", String(data.accepted));
    hub.text("rejected", String(data.rejected));
    hub.table(document.getElementById("topics"), ["topic", "records"],
      Object.entries(data.records).map(([topic, records]) => ({ topic, records })));
    const rules = data.by_rule;
    hub.table(document.getElementById("rules"), ["topic", "rule", "count"], rules);
    hub.table(document.getElementById("lag"), ["projection", "lag", "batch_seq"], data.projections);
  }

  async function alerts() {
    const data = await hub.json("/ui/api/alerts");
    hub.table(document.getElementById("alerts"),
      ["event_type", "rule", "severity", "value", "threshold", "fired_at", "resolved_at", "alert_id"],
      data.events.map((e) => ({ ...e, event_type: e.event_type.replace("hub.Alert", "") })));
    hub.table(document.getElementById("alert-rules"),
      ["name", "severity", "kind", "threshold", "measures", "summary"], data.rules);
  }

  const tick = () => {
    refresh().catch((e) => hub.text("rate", e.message));
    alerts().catch(() => {});
  };
  tick();
  setInterval(tick, 2000);
})();
