"""The HTTP API beyond single-item scoring: OpenAI-compatible endpoint (real openai SDK), batch,
Prometheus metrics, live policy updates and queue bounds through the Serve config (``serve deploy``), and
fuzzed bad input."""

from __future__ import annotations

import base64
import json

import httpx
import openai
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from helpers import good_samples, serve_deploy, wait_for
from tripwire.data.sample import manifest_base, request_body, read_media
from tripwire.policy import Policy


def test_openai_sdk_switches_by_base_url(trained, served):
    cfg, _ = trained
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0)
    response = client.moderations.create(input="we will find you and make you pay")
    assert response.id.startswith("modr-") and len(response.results) == 1
    result = response.results[0]
    assert 0.0 <= result.category_scores.harassment_threatening <= 1.0
    # Not scored by Tripwire (mapped to null): not checked, which is not a score of 0 or "clean".
    assert result.category_scores.hate_threatening is None and result.category_scores.sexual_minors is None
    assert {"hate/threatening", "sexual/minors"} <= set(result.tripwire["unscored_categories"])
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
    # A full batch of items with media: the fusion head also scores each one's text alone (the evaluated
    # signal), twice the requests the ingress batches; the parts are called in chunks they accept.
    mixed = next(s for s in good_samples(cfg) if "text" in s.modalities and len(s.modalities) > 1)
    full = httpx.post(f"{url}/v1/moderate/batch", timeout=120,
                      json={"items": [{**request_body(mixed, base), "id": f"full-{i}"} for i in range(32)]})
    assert full.status_code == 200, full.text
    first, *rest = full.json()["results"]
    assert all(r["scores"] == pytest.approx(first["scores"], abs=1e-5) for r in rest)


def test_openapi_document_describes_the_real_answers(trained, served):
    from deployments.api import BatchResponse, ErrorResponse, ModerateResponse, OpenAIModerationResponse

    cfg, _ = trained
    url, _ = served
    paths = httpx.get(f"{url}/openapi.json").json()["paths"]
    assert {"/v1/health", "/v1/model", "/metrics"} <= set(paths)
    for path, model in (("/v1/moderate", ModerateResponse), ("/v1/moderate/batch", BatchResponse),
                        ("/v1/moderations", OpenAIModerationResponse)):
        responses = paths[path]["post"]["responses"]
        assert responses["200"]["content"]["application/json"]["schema"]["$ref"].endswith(f"/{model.__name__}")
        assert responses["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorResponse")

    # Real answers validate against the documented schemas, which forbid undocumented fields.
    base = manifest_base(cfg.data.manifest)
    richest = max(good_samples(cfg), key=lambda s: len(s.modalities))
    item = {**request_body(richest, base), "market": "DE", "request_id": "openapi-check"}
    answer = ModerateResponse.model_validate(httpx.post(f"{url}/v1/moderate", json=item, timeout=60).json())
    assert set(answer.modalities) == set(richest.modalities) and answer.request_id == "openapi-check"
    BatchResponse.model_validate(httpx.post(f"{url}/v1/moderate/batch", timeout=60,
                                            json={"items": [{"text": "fine"}, {"image": "@@@"}]}).json())
    OpenAIModerationResponse.model_validate(httpx.post(f"{url}/v1/moderations", json={"input": "hello"}, timeout=60).json())
    ErrorResponse.model_validate(httpx.post(f"{url}/v1/moderate", json={"image": "@@@"}).json())


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


def assert_uri_refused(url: str, uri: str) -> None:
    """``POST /v1/moderate`` with ``uri`` as the image answers 422 ``disallowed_uri`` (nothing is read)."""
    refused = httpx.post(f"{url}/v1/moderate", json={"image": uri}, timeout=30)
    assert refused.status_code == 422 and refused.json()["error"]["reason"] == "disallowed_uri", uri


def requests_counted(url: str) -> float:
    """The ingress replica's own request counter (resets if the replica restarts)."""
    for line in httpx.get(f"{url}/metrics", timeout=30).text.splitlines():
        if line.startswith('tripwire_requests_total{endpoint="moderate"}'):
            return float(line.split()[-1])
    return 0.0


def burst(url: str, count: int) -> list[httpx.Response]:
    """``count`` scoring requests sent at once."""
    import asyncio

    async def send():
        async with httpx.AsyncClient(timeout=60) as client:
            return await asyncio.gather(*(client.post(f"{url}/v1/moderate", json={"text": f"burst {i}"})
                                          for i in range(count)))

    return asyncio.run(send())


def test_serve_config_edits_reach_live_replicas(ray_session, trained, cores_for_training, serve_endpoint,
                                                dashboard, tmp_path):
    """The Serve config (deployments/configs/dev.yaml) deployed with ``serve deploy``; the platform owner
    publishes a new policy file, points the Ingress user_config at it and deploys again: live replicas
    reconfigure without a restart, no request in flight fails, responses carry the new policy_version.
    Then the owner bounds the ingress's queue in the same file: a burst over the bound is turned away at
    once with 503 and Retry-After (no unbounded queue), the rest is served, and the service carries on."""
    import threading

    import yaml
    from ray import serve

    from helpers import REPO
    from tripwire.common.config import read_yaml
    from tripwire.policy import default_resource

    url, model_dir = serve_endpoint["url"], serve_endpoint["model_dir"]
    port = int(url.rsplit(":", 1)[1])
    config = yaml.safe_load((REPO / "deployments/configs/dev.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": port}  # the session's running Serve
    app = config["applications"][0]
    app["name"] = "policy-live"
    app["args"]["checkpoint"] = model_dir
    app["args"]["ray_metrics"] = True  # as in the production config
    [ingress] = [d for d in app["deployments"] if d["name"] == "Ingress"]
    ingress["user_config"]["policy_path"] = str(default_resource("policy.yaml"))
    serve_deploy(config, tmp_path / "serve.yaml", dashboard)
    try:
        wait_for(lambda: httpx.get(f"{url}/v1/health", timeout=5).status_code == 200)
        # The Serve config names no URI allow-list: a file the session's app may read is refused here.
        cfg, _ = trained
        image = next(s for s in good_samples(cfg) if s.image).image
        assert_uri_refused(url, f"file://{manifest_base(cfg.data.manifest)}/{image}")

        before = httpx.post(f"{url}/v1/moderate", json={"text": "hello"}, timeout=30).json()
        counted_before = requests_counted(url)

        policy = read_yaml(default_resource("policy.yaml"))
        policy["version"] = "strict-test"
        policy["categories"] = {c: {"review": 0.0} for c in policy["categories"]}  # everything goes to review
        policy["markets"] = {}
        (tmp_path / "policy-strict-test.yaml").write_text(yaml.safe_dump(policy))
        ingress["user_config"]["policy_path"] = str(tmp_path / "policy-strict-test.yaml")

        statuses, stop = [], threading.Event()

        def traffic():  # requests in flight while the config changes: none may fail
            with httpx.Client(timeout=30) as client:
                while not stop.is_set():
                    statuses.append(client.post(f"{url}/v1/moderate", json={"text": "during update"}).status_code)

        sender = threading.Thread(target=traffic)
        sender.start()
        try:
            serve_deploy(config, tmp_path / "serve.yaml", dashboard)
            after = wait_for(lambda: (r := httpx.post(f"{url}/v1/moderate", json={"text": "hello"}, timeout=30).json())
                             and r["policy_version"] == "strict-test" and r)
        finally:
            stop.set()
            sender.join()
        assert before["policy_version"] == Policy.load().version
        assert after["decision"]["action"] == "review"
        assert after["scores"] == pytest.approx(before["scores"], abs=1e-6)  # same model, new policy
        assert statuses and set(statuses) == {200}, statuses
        # Reconfigured in place: the same replica kept counting (a restart would have reset its counter).
        assert requests_counted(url) >= counted_before + len(statuses) + 1

        # The same counts reach Ray's metrics pipeline (what Prometheus scrapes on every node), tagged by app.
        node_metrics = f"http://127.0.0.1:{ray_session._private.worker.global_worker.node.metrics_export_port}/metrics"
        exported = wait_for(lambda: [line for line in httpx.get(node_metrics, timeout=10).text.splitlines()
                                     if line.startswith("ray_tripwire_requests")
                                     and 'application="policy-live"' in line and 'endpoint="moderate"' in line],
                            timeout_s=60)
        assert float(exported[0].split()[-1]) > 0

        ingress.update(max_ongoing_requests=1, max_queued_requests=1)
        serve_deploy(config, tmp_path / "serve.yaml", dashboard)
        answers = wait_for(lambda: (sent := burst(url, 12)) and any(r.status_code == 503 for r in sent) and sent,
                           timeout_s=90)
        statuses = [r.status_code for r in answers]
        assert set(statuses) == {200, 503}, statuses
        rejected = [r for r in answers if r.status_code == 503]
        assert all(r.headers.get("retry-after") == "1" for r in rejected)
        assert "max_queued_requests=1" in rejected[0].text  # Serve's reason names the bound
        assert httpx.post(f"{url}/v1/moderate", json={"text": "after the burst"}, timeout=30).status_code == 200
    finally:
        serve.delete("policy-live")


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


def test_uris_are_read_only_under_an_allow_listed_prefix(trained, served):
    """The session's app allow-lists the corpus's image folder (the default, nothing, is checked on the
    Serve config's app in the live-policy test)."""
    cfg, _ = trained
    url, _ = served
    assert_uri_refused(url, "file:///etc/passwd")

    sample = next(s for s in good_samples(cfg) if s.image)
    base = manifest_base(cfg.data.manifest)
    by_uri = httpx.post(f"{url}/v1/moderate", json={"image": f"file://{base}/{sample.image}"}, timeout=30)
    by_bytes = httpx.post(f"{url}/v1/moderate", json={"image": request_body(sample, base)["image"]}, timeout=30)
    assert by_uri.status_code == 200 and by_uri.json()["scores"] == by_bytes.json()["scores"]
    for outside in (f"file://{base}/manifest.jsonl", f"file://{base}/image/../manifest.jsonl"):
        assert_uri_refused(url, outside)


def test_request_id_is_idempotent_for_the_same_request_only(served):
    """A retry gets the first answer; the same request_id with other content is refused (409), never answered
    with the first request's decision (benign text first, then anything "allowed" under its id)."""
    url, _ = served
    first = httpx.post(f"{url}/v1/moderate", json={"text": "first text", "request_id": "req-1"}, timeout=30).json()
    again = httpx.post(f"{url}/v1/moderate", json={"text": "first text", "request_id": "req-1"}, timeout=30).json()
    assert again == first and first["request_id"] == "req-1"  # this app has no log: from the replica's cache
    for other in ({"text": "something else"}, {"text": "first text", "market": "DE"}):
        refused = httpx.post(f"{url}/v1/moderate", json={**other, "request_id": "req-1"}, timeout=30)
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"] == {"field": "request_id", "reason": "request_id_reused", "message": (
            "request_id 'req-1' was already used with a different request body; use a new request_id for a "
            "different request")}
    batch = httpx.post(f"{url}/v1/moderate/batch", timeout=30, json={"items": [
        {"text": "first text", "request_id": "req-1"}, {"id": "b", "text": "first text", "request_id": "req-1"}]})
    assert [r.get("error", {}).get("reason") for r in batch.json()["results"]] == [None, "request_id_reused"]


def test_a_body_over_the_limit_is_refused_from_its_content_length(served):
    """A client announcing a gigabyte is answered 413 at once, before it has sent (or the ingress read) it."""
    import socket

    url, _ = served
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(b"POST /v1/moderate HTTP/1.1\r\nHost: tripwire\r\nContent-Type: application/json\r\n"
                     b"Content-Length: 1000000000\r\n\r\n{\"text\": \"")
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 413"), answer[:500]
    error = json.loads(body[body.index(b"{"):body.rindex(b"}") + 1])["error"]
    assert (error["field"], error["reason"]) == ("body", "too_large")
    assert "1000000000 bytes (Content-Length)" in error["message"] and "limit of" in error["message"]
