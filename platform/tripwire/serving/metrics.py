"""Prometheus metrics of the HTTP API.

Each ingress replica serves its own counts at ``/metrics`` (complete when there is one replica). With
several replicas behind a load balancer, a scrape of ``/metrics`` sees one random replica, so the same
metrics can also be recorded through Ray's metrics pipeline (``export_to_ray``): every Ray node exports
them on its metrics port, tagged with deployment, replica and application, and Prometheus sums them
across replicas (Ray prefixes the names with ``ray_``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest

from tripwire.moderation.result import ModerationResult

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 11))

# name, description, label names, histogram buckets (None: a counter). Written once for both exporters.
_METRICS = {
    "requests": ("tripwire_requests", "HTTP requests by endpoint", ("endpoint",), None),
    "errors": ("tripwire_errors", "Rejected or failed requests", ("endpoint", "reason"), None),
    "latency": ("tripwire_stage_latency_seconds", "Latency per stage", ("stage",), LATENCY_BUCKETS),
    "scores": ("tripwire_category_score", "Scores per category", ("category",), SCORE_BUCKETS),
    "decisions": ("tripwire_decisions", "Decisions per action and policy version", ("action", "policy_version"), None),
    "decision_log": ("tripwire_decision_log_records", "Answers by what became of their decision log record: logged "
                     "(committed before the answer), unconfirmed (sent before the commit), dropped (no room), rejected "
                     "(not loggable JSON)",
                     ("outcome",), None),
}


class ApiMetrics:
    """Requests, errors by type, per-stage latency, per-category score, decisions per action and policy version.

    Args:
        export_to_ray: also record every value through Ray's metrics (``ray.serve.metrics``), for
            cluster-wide aggregation. Needs to run inside a Serve replica.
    """

    def __init__(self, export_to_ray: bool = False):
        self.registry = CollectorRegistry()
        self._local = {}
        for key, (name, description, labels, buckets) in _METRICS.items():
            if buckets is None:
                self._local[key] = Counter(name, description, labels, registry=self.registry)
            else:
                self._local[key] = Histogram(name, description, labels, buckets=buckets, registry=self.registry)
        self._ray = _ray_metrics() if export_to_ray else None

    def _record(self, key: str, label_values: tuple[str, ...], value: float = 1.0) -> None:
        _, _, labels, buckets = _METRICS[key]
        local = self._local[key].labels(*label_values)
        if buckets is None:
            local.inc(value)
        else:
            local.observe(value)
        if self._ray is None:
            return
        remote, tags = self._ray[key], dict(zip(labels, label_values))
        if buckets is None:
            remote.inc(value, tags=tags)
        else:
            remote.observe(value, tags=tags)

    def request(self, endpoint: str) -> None:
        self._record("requests", (endpoint,))

    def error(self, endpoint: str, reason: str) -> None:
        self._record("errors", (endpoint, reason))

    def observe_result(self, result: ModerationResult) -> None:
        for stage, ms in (result.latency_ms or {}).items():
            self._record("latency", (stage,), ms / 1000.0)
        for category, score in result.scores.items():
            self._record("scores", (category,), score)
        self._record("decisions", (result.action, result.policy_version))

    def decision_log(self, outcome: str) -> None:
        self._record("decision_log", (outcome,))

    def render(self) -> bytes:
        return generate_latest(self.registry)


def _ray_metrics() -> dict:
    from ray.serve import metrics

    out = {}
    for key, (name, description, labels, buckets) in _METRICS.items():
        if buckets is None:
            out[key] = metrics.Counter(name, description=description, tag_keys=labels)
        else:
            out[key] = metrics.Histogram(name, description=description, boundaries=list(buckets), tag_keys=labels)
    return out
