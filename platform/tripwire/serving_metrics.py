"""Prometheus metrics of the HTTP API (served at ``/metrics`` by each ingress replica)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))


class ApiMetrics:
    """Requests, errors by type, per-stage latency, per-category score and per-action decision counts."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("tripwire_requests", "HTTP requests by endpoint", ["endpoint"], registry=self.registry)
        self.errors = Counter("tripwire_errors", "Rejected or failed requests", ["endpoint", "reason"],
                              registry=self.registry)
        self.latency = Histogram("tripwire_stage_latency_seconds", "Latency per stage", ["stage"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.scores = Histogram("tripwire_category_score", "Scores per category", ["category"],
                                buckets=SCORE_BUCKETS, registry=self.registry)
        self.decisions = Counter("tripwire_decisions", "Decisions per action", ["action"], registry=self.registry)

    def observe_result(self, result: dict) -> None:
        for stage, ms in result["latency_ms"].items():
            self.latency.labels(stage).observe(ms / 1000.0)
        for category, score in result["scores"].items():
            self.scores.labels(category).observe(score)
        self.decisions.labels(result["decision"]["action"]).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
