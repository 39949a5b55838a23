"""Prometheus metrics of one hub process, on a registry of its own (not the global one).

A registry per ``Hub`` keeps tests independent; ``/metrics`` renders it.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest


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

    def render(self) -> bytes:
        return generate_latest(self.registry)
