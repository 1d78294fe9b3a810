"""The API's Prometheus metrics as a replica renders them at /metrics."""

from __future__ import annotations

from tripwire.serving.metrics import ApiMetrics
from tripwire.moderation.result import ModerationResult


def sample_value(text: str, prefix: str) -> float:
    [line] = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(line.split()[-1])


def test_requests_errors_latency_scores_and_decisions_are_counted():
    metrics = ApiMetrics()
    result = ModerationResult.from_json({
        "id": "x", "latency_ms": {"preprocess": 2.0, "total": 30.0}, "scores": {"hate": 0.93, "sexual": 0.05},
        "flagged": ["hate"], "attribution": {}, "evidence": {}, "modalities": ["text"], "model_version": "m",
        "decision": {"action": "block", "reasons": [], "flagged": ["hate"], "policy_version": "2026.11.0", "market": None}})
    for _ in range(3):
        metrics.request("moderate")
        metrics.observe_result(result)
    metrics.error("moderate", "invalid_base64")
    text = metrics.render().decode()
    assert sample_value(text, 'tripwire_requests_total{endpoint="moderate"}') == 3
    assert sample_value(text, 'tripwire_errors_total{endpoint="moderate",reason="invalid_base64"}') == 1
    assert sample_value(text, 'tripwire_decisions_total{action="block",policy_version="2026.11.0"}') == 3
    # 30 ms falls in the 0.05 s bucket, not the 0.025 s one.
    assert sample_value(text, 'tripwire_stage_latency_seconds_bucket{le="0.025",stage="total"}') == 0
    assert sample_value(text, 'tripwire_stage_latency_seconds_bucket{le="0.05",stage="total"}') == 3
    assert sample_value(text, 'tripwire_category_score_bucket{category="hate",le="0.9"}') == 0
    assert sample_value(text, 'tripwire_category_score_bucket{category="hate",le="1.0"}') == 3


def test_each_replica_has_its_own_registry():
    first, second = ApiMetrics(), ApiMetrics()
    first.request("moderate")
    assert 'tripwire_requests_total{endpoint="moderate"}' not in second.render().decode()
