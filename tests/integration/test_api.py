"""The HTTP API beyond single-item scoring: OpenAI-compatible endpoint (real openai SDK), batch,
Prometheus metrics, live policy updates through user_config, and fuzzed bad input."""

from __future__ import annotations

import base64
import json

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import good_samples
from tripwire.sample import manifest_base, request_body, read_media


def test_openai_sdk_switches_by_base_url(trained, served):
    cfg, _ = trained
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    response = client.moderations.create(input="we will find you and make you pay")
    assert response.id.startswith("modr-") and len(response.results) == 1
    result = response.results[0]
    assert 0.0 <= result.category_scores.harassment_threatening <= 1.0
    assert result.category_scores.hate_threatening == 0.0  # not scored by Tripwire: mapped to null
    assert result.category_applied_input_types.harassment in (["text"], [])

    many = client.moderations.create(input=["hello there", "nice weather"])
    assert len(many.results) == 2

    image_item = next(s for s in good_samples(cfg) if s.image and s.text)
    data = base64.b64encode(read_media("image", image_item.image, manifest_base(cfg.data.manifest))).decode()
    parts = client.moderations.create(input=[{"type": "text", "text": image_item.text},
                                             {"type": "image_url", "image_url": {"url": f"data:image/png;base64,{data}"}}])
    assert len(parts.results) == 1
    applied = {t for types in parts.results[0].category_applied_input_types.model_dump().values() for t in types}
    assert applied <= {"text", "image"}


def test_openai_endpoint_never_fetches_remote_urls(served):
    url, _ = served
    response = httpx.post(f"{url}/v1/moderations", json={
        "input": [{"type": "image_url", "image_url": {"url": "http://example.com/x.png"}}]})
    assert response.status_code == 422
    assert response.json()["error"]["reason"] == "disallowed_uri"


def test_batch_endpoint_scores_items_and_isolates_bad_ones(trained, served):
    cfg, _ = trained
    url, _ = served
    base = manifest_base(cfg.data.manifest)
    items = [request_body(s, base) for s in list(good_samples(cfg))[:3]] + [{"id": "broken", "image": "@@@"}]
    response = httpx.post(f"{url}/v1/moderate/batch", json={"items": items}, timeout=60)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [r["id"] for r in results] == [i["id"] for i in items]
    assert all("scores" in r for r in results[:3]) and results[3]["error"]["field"] == "image"
    too_many = httpx.post(f"{url}/v1/moderate/batch", json={"items": [{"text": "x"}] * 33})
    assert too_many.status_code == 422 and too_many.json()["error"]["field"] == "items"


def test_prometheus_metrics(served):
    url, _ = served
    httpx.post(f"{url}/v1/moderate", json={"text": "metrics please"}, timeout=30)
    httpx.post(f"{url}/v1/moderate", json={"image": "@@@"}, timeout=30)
    text = httpx.get(f"{url}/metrics").text
    assert 'tripwire_requests_total{endpoint="moderate"}' in text
    assert 'tripwire_errors_total{endpoint="moderate",reason="invalid_base64"}' in text
    assert 'tripwire_stage_latency_seconds_bucket{le="0.005",stage="encoders"}' in text
    assert 'tripwire_category_score_count{category="hate"}' in text
    assert "tripwire_decisions_total" in text


def test_policy_update_through_user_config_changes_live_decisions(trained, served):
    from ray import serve

    from deployments.app import build_app
    from tripwire.config import read_yaml
    from tripwire.policy import default_resource

    url, model_dir = served
    before = httpx.post(f"{url}/v1/moderate", json={"text": "hello"}, timeout=30).json()
    policy = read_yaml(default_resource("policy.yaml"))
    policy["version"] = "strict-test"
    policy["categories"] = {c: {"review": 0.0} for c in policy["categories"]}  # everything goes to review
    policy["markets"] = {}
    serve.run(build_app({"checkpoint": model_dir, "policy": policy}), name="tripwire", route_prefix="/")
    after = httpx.post(f"{url}/v1/moderate", json={"text": "hello"}, timeout=30).json()
    assert before["policy_version"] == "2026.11.0" and after["policy_version"] == "strict-test"
    assert after["decision"]["action"] == "review"
    assert after["scores"] == pytest.approx(before["scores"], abs=1e-6)  # same model, new policy
    serve.run(build_app({"checkpoint": model_dir}), name="tripwire", route_prefix="/")


json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                           lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
                           max_leaves=8)
fields = st.sampled_from(["id", "text", "image", "audio", "video", "market", "language", "content_type", "extra"])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(payload=st.dictionaries(fields, json_values, max_size=4) | json_values,
       mutate=st.binary(max_size=64))
def test_fuzzed_payloads_never_break_the_service(served, payload, mutate):
    url, _ = served
    if isinstance(payload, dict) and "image" in payload and isinstance(payload["image"], str):
        payload["image"] = base64.b64encode(b"\x89PNG\r\n\x1a\n" + mutate).decode()
    response = httpx.post(f"{url}/v1/moderate", content=json.dumps(payload), timeout=60,
                          headers={"content-type": "application/json"})
    assert response.status_code in (200, 413, 422), response.text
    if response.status_code != 200:
        assert "error" in response.json()
    assert httpx.post(f"{url}/v1/moderate", json={"text": "ok"}, timeout=60).status_code == 200


def test_uris_are_refused_unless_allow_listed(trained, served):
    from ray import serve

    from deployments.app import build_app

    cfg, _ = trained
    url, model_dir = served
    refused = httpx.post(f"{url}/v1/moderate", json={"image": "file:///etc/passwd"}, timeout=30)
    assert refused.status_code == 422 and refused.json()["error"]["reason"] == "disallowed_uri"

    sample = next(s for s in good_samples(cfg) if s.image)
    base = manifest_base(cfg.data.manifest)
    uri = f"file://{base}/{sample.image}"
    serve.run(build_app({"checkpoint": model_dir, "uri_allow_list": [f"file://{base}/image/"]}),
              name="tripwire", route_prefix="/")
    try:
        by_uri = httpx.post(f"{url}/v1/moderate", json={"image": uri}, timeout=30)
        by_bytes = httpx.post(f"{url}/v1/moderate", json={"image": request_body(sample, base)["image"]}, timeout=30)
        assert by_uri.status_code == 200 and by_uri.json()["scores"] == by_bytes.json()["scores"]
        outside = httpx.post(f"{url}/v1/moderate", json={"image": f"file://{base}/manifest.jsonl"}, timeout=30)
        assert outside.status_code == 422
    finally:
        serve.run(build_app({"checkpoint": model_dir}), name="tripwire", route_prefix="/")


def test_request_id_is_idempotent(served):
    url, _ = served
    first = httpx.post(f"{url}/v1/moderate", json={"text": "first text", "request_id": "req-1"}, timeout=30).json()
    again = httpx.post(f"{url}/v1/moderate", json={"text": "something else", "request_id": "req-1"}, timeout=30).json()
    assert again == first and first["request_id"] == "req-1"
