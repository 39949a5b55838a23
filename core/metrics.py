"""Prometheus metrics of one hub process, on a registry of its own (not the global one).

A registry per ``Hub`` keeps tests independent; ``/metrics`` renders it.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.registry import Collector

from core import clock


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.events_appended = Counter(
            "hub_events_appended_total",
            "Events appended to the log.",
            ["topic"],
            registry=self.registry,
        )
        self.events_rejected = Counter(
            "hub_events_rejected_total",
            "Events rejected at publish.",
            ["topic", "reason"],
            registry=self.registry,
        )
        self.append_seconds = Histogram(
            "hub_append_batch_seconds",
            "Time to append one batch to the log.",
            ["topic"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0),
            registry=self.registry,
        )
        self.http_requests = Counter(
            "hub_http_requests_total",
            "HTTP requests answered.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_seconds = Histogram(
            "hub_http_request_seconds",
            "HTTP request latency.",
            ["method", "route"],
            registry=self.registry,
        )
        self.http_body_bytes_in_flight = Gauge(
            "hub_http_body_bytes_in_flight",
            "Bytes of HTTP request bodies admitted and not yet answered "
            "(at most HUB_MAX_REQUEST_BYTES_IN_FLIGHT).",
            registry=self.registry,
        )
        self.http_bodies_refused = Counter(
            "hub_http_bodies_refused_total",
            "HTTP requests answered 503 because their body would pass "
            "HUB_MAX_REQUEST_BYTES_IN_FLIGHT.",
            registry=self.registry,
        )
        self.query_refusals = Counter(
            "hub_query_refusals_total",
            "Analyst queries refused (HTTP 429) by a rate or concurrency limit, by limit "
            "(query_concurrency, query_tenant_concurrency, query_rate, query_tenant_rate).",
            ["limit"],
            registry=self.registry,
        )
        self.tenant_refusals = Counter(
            "hub_tenant_refusals_total",
            "Requests refused by a per-tenant limit (core.tenant_quota), by tenant and limit "
            "(ingest_records, ingest_bytes, quarantine_bytes, registry_subjects, "
            "registry_versions).",
            ["tenant", "limit"],
            registry=self.registry,
        )
        self.auth_failures = Counter(
            "hub_auth_failures_total",
            "Requests refused for missing or bad credentials.",
            registry=self.registry,
        )
        self.policy_denials = Counter(
            "hub_policy_denials_total",
            "Requests denied by the policy engine.",
            ["action"],
            registry=self.registry,
        )
        self.policy_eval_timeouts = Counter(
            "hub_policy_eval_timeouts_total",
            "Decisions denied because the engine did not decide within "
            "HUB_POLICY_DECISION_BOUND_MS of CPU time or HUB_POLICY_DECISION_WALL_MS of wall "
            "time (policy_eval_timeout), by engine.",
            ["engine"],
            registry=self.registry,
        )
        # route is the route template (/v1/topics/{topic}/events), never the raw path.
        self.policy_decisions = Counter(
            "hub_policy_decisions_total",
            "Policy decisions of HTTP requests, by action, result (allow, deny, error) and route.",
            ["action", "result", "route"],
            registry=self.registry,
        )
        self._decisions: dict[tuple[str, str, str], Any] = {}  # count_decision's children
        self.ledger_verifications = Counter(
            "hub_ledger_verifications_total",
            "Ledger verifications run by this process, by result (ok, failed).",
            ["result"],
            registry=self.registry,
        )
        self._watched: Collector | None = None

        # Ingest accuracy (issue 3): outcome is accepted | rejected | duplicate.
        self.ingest_records = Counter(
            "hub_ingest_records_total",
            "Records ingested, by source, topic and outcome.",
            ["source", "topic", "outcome"],
            registry=self.registry,
        )
        self.ingest_rule_failures = Counter(
            "hub_ingest_rule_failures_total",
            "Records rejected, by source, topic and rule id (or reason code).",
            ["source", "topic", "rule"],
            registry=self.registry,
        )

        # Projections (issue 6).
        self.projection_events = Counter(
            "hub_projection_events_total",
            "Events folded into views, by projection.",
            ["projection"],
            registry=self.registry,
        )
        self.projection_errors = Counter(
            "hub_projection_errors_total",
            "Projection errors (quarantined events, failed batches), by projection and reason.",
            ["projection", "reason"],
            registry=self.registry,
        )
        self.projection_lag = Gauge(
            "hub_projection_lag_records",
            "Records in the log not yet reflected in the projection's views.",
            ["projection"],
            registry=self.registry,
        )
        self.projection_batch_seconds = Histogram(
            "hub_projection_batch_seconds",
            "Time to read, fold and commit one projection batch.",
            ["projection"],
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0),
            registry=self.registry,
        )
        # Pattern detection (issue 17): the embedded CEP engine's state and late events.
        self.pattern_state_events = Gauge(
            "hub_pattern_state_events",
            "Events the embedded pattern engine holds (settled state and tails), by pattern.",
            ["pattern"],
            registry=self.registry,
        )
        self.pattern_late_events = Counter(
            "hub_pattern_late_events_total",
            "Events the embedded pattern engine dropped behind its watermark, by pattern.",
            ["pattern"],
            registry=self.registry,
        )
        # Machine learning (ml/): predictions by version and decision, scoring time, drift.
        self.ml_predictions = Counter(
            "hub_ml_predictions_total",
            "Predictions made, by model, version, variant (champion/challenger) and decision.",
            ["model", "version", "variant", "decision"],
            registry=self.registry,
        )
        self.feature_rows_refused = Counter(
            "hub_feature_rows_refused_total",
            "Feature rows read from Feast (online store or offline table) or the embedded "
            "feature table refused: MAC missing or wrong, or older than the row the hub last "
            "wrote; nothing was scored on them.",
            ["view", "reason"],
            registry=self.registry,
        )
        self.clock_behind = Gauge(
            "hub_clock_behind_seconds",
            "How far the system clock reads behind the latest time the hub knows has passed "
            "(its start plus monotonic time, the newest signed checkpoint): expiry, approvals "
            "and retention use that later time (core.clock); 0 when the clock is not behind.",
            registry=self.registry,
        )
        self.clock_behind.set_function(clock.behind_seconds)
        self.log_replays_skipped = Counter(
            "hub_log_replays_skipped_total",
            "Kafka records the hub's readers skipped as replays: a genuine record copied again "
            "into its partition (its hub sequence not above its writer's last), by topic.",
            ["topic"],
            registry=self.registry,
        )
        self.views_set_aside = Counter(
            "hub_views_set_aside_total",
            "View stores found unreadable at start (an empty or damaged chDB metadata file, a "
            "truncated SQLite views file), moved aside into a dated folder beside them and "
            "folded again from the log, by store (analytics, transactional).",
            ["store"],
            registry=self.registry,
        )
        self.consumer_offsets_moved = Counter(
            "hub_consumer_offsets_moved_total",
            "Consumer-group offsets found moved away from the hub's own positions, by group and "
            "direction (rewind: skipped back to the hub's position; forward: refused; accepted: "
            "taken by an operator's recorded accept-offsets).",
            ["group", "direction"],
            registry=self.registry,
        )
        self.ml_scoring_seconds = Histogram(
            "hub_ml_scoring_seconds",
            "Time to fetch features and score one call (one event or one batch).",
            ["model"],
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.1, 0.5, 2.0),
            registry=self.registry,
        )
        self.ml_drift_psi = Gauge(
            "hub_ml_drift_psi",
            "Population Stability Index of the last drift check, per model and feature.",
            ["model", "feature"],
            registry=self.registry,
        )

    def count_decision(self, action: str, result: str, route: str) -> None:
        """``policy_decisions.labels(action, result, route).inc()``, each label set's child
        looked up once (every request counts its decision: the lookup, with its lock and label
        checks, cost more than the increment). Bounded: actions, results and route templates."""
        key = (action, result, route)
        child = self._decisions.get(key)
        if child is None:  # labels() is idempotent: two threads racing here get one child
            child = self._decisions[key] = self.policy_decisions.labels(action, result, route)
        child.inc()

    def watch(self, collector: Collector) -> None:
        """Add a collector read at scrape time (one at a time: a new one replaces the last).
        Its ``refresh()``, if any, runs before each render (to update gauges declared here)."""
        if self._watched is not None:
            self.registry.unregister(self._watched)
        self.registry.register(collector)
        self._watched = collector

    def render(self) -> bytes:
        refresh: Any = getattr(self._watched, "refresh", None)
        if callable(refresh):
            refresh()
        return generate_latest(self.registry)
