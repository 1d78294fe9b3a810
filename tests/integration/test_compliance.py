"""Compliance end to end on real Ray Serve, Ray Data, HTTP and the store.

One Serve deployment from the Serve config (deployments/configs/dev.yaml) with two ingress replicas and the
decision log on, as in production, and no per-replica answer cache (``idempotency_cache_size: 0``), so a
repeated ``request_id`` can only be answered from the log:

* retries, sequential and concurrent, get the first answer from either replica, and are logged once; the
  same ``request_id`` with other content is refused (409) by either replica, from the log;
* killing an ingress replica under load: every answered request has its record, and the chain verifies;
* the round trip: served and scanned decisions -> reviews and appeals through the reviewer app -> the log
  -> statements of reasons -> the transparency report, with the counts reconciling exactly.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import REPO, free_session_app, good_samples, serve_deploy, wait_for

pytestmark = [pytest.mark.integration, pytest.mark.replaces_session_app]

APP = "compliance"
REQUEST_TIMEOUT_S = 60.0


def _policy(path: Path) -> Path:
    """Nothing acts anywhere except: DE restricts on hate (an illegal-content ground), FR sends harassment to
    review, US blocks violence. The market decides the action, whatever the tiny model scores."""
    from tripwire.policy import Policy
    from tripwire.evaluation.thresholds import policy_yaml

    base = Policy.load()
    policy = yaml.safe_load(policy_yaml(base))
    policy.update({"version": "compliance-test", "categories": {c: {} for c in base.categories},
                   "markets": {"DE": {"hate": {"restrict": 0.0, "ground": "illegal_content"}},
                               "FR": {"harassment": {"review": 0.0}},
                               "US": {"violence": {"block": 0.0}}}})
    path.write_text(yaml.safe_dump(policy))
    return path


@pytest.fixture(scope="module")
def logged_app(ray_session, trained, serve_endpoint, dashboard, tmp_path_factory):
    from ray import serve

    free_session_app(serve_endpoint)  # two cores: the session's app yields its CPUs to this one
    root = tmp_path_factory.mktemp("compliance")
    db, policy = root / "tripwire.db", _policy(root / "policy.yaml")
    config = yaml.safe_load((REPO / "deployments/configs/dev.yaml").read_text())
    config["http_options"] = {"host": "127.0.0.1", "port": int(serve_endpoint["url"].rsplit(":", 1)[1])}
    app = config["applications"][0]
    app["name"] = APP
    app["args"].update({"checkpoint": serve_endpoint["model_dir"], "decision_log": str(db), "review_store": str(db),
                        "idempotency_cache_size": 0, "decision_log_wait_s": 10.0})
    [ingress] = [d for d in app["deployments"] if d["name"] == "Ingress"]
    ingress["num_replicas"] = 2
    ingress["user_config"] = {"policy_path": str(policy)}
    serve_deploy(config, root / "serve.yaml", dashboard)
    url = serve_endpoint["url"]
    wait_for(lambda: httpx.get(f"{url}/v1/health", timeout=5).status_code == 200)
    wait_for(lambda: len(_ingress_replicas()) == 2)
    yield {"url": url, "db": str(db), "policy": str(policy), "root": root}
    serve.delete(APP)


def _ingress_replicas() -> list[dict]:
    import ray

    return [a for a in ray.util.list_named_actors(all_namespaces=True) if f"{APP}#Ingress#" in a["name"]]


def _post(url: str, body: dict) -> dict:
    response = httpx.post(f"{url}/v1/moderate", json=body, timeout=REQUEST_TIMEOUT_S)
    assert response.status_code == 200, response.text
    return response.json()


def _without_latency(answer: dict) -> dict:
    return {k: v for k, v in answer.items() if k != "latency_ms"}


def test_a_repeated_request_id_gets_the_logged_answer_from_any_replica(logged_app):
    from tripwire.compliance.records import DECISION, serving_puid
    from tripwire.compliance.decision_log import DecisionLog

    url = logged_app["url"]
    first = {i: _post(url, {"text": f"retry {i}", "market": "DE", "request_id": f"retry-{i}"}) for i in range(8)}

    async def retries():
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
            sent = [client.post(f"{url}/v1/moderate", json={"text": f"retry {i}", "market": "DE",
                                                              "request_id": f"retry-{i}"})
                    for i in range(8) for _ in range(3)]
            # A request_id never seen before, sent five times at once: both replicas may score it; one answer wins.
            sent += [client.post(f"{url}/v1/moderate", json={"text": "race", "request_id": "race-1"}) for _ in range(5)]
            return [r.json() for r in await asyncio.gather(*sent)]

    answers = asyncio.run(retries())
    for n, answer in enumerate(answers[:24]):
        i = n // 3
        assert "latency_ms" not in answer, "a retry was scored again instead of answered from the log"
        assert answer == _without_latency(first[i])
        assert answer["puid"] == serving_puid(f"retry-{i}") and answer["request_id"] == f"retry-{i}"
    race = [_without_latency(a) for a in answers[24:]]
    assert all(a == race[0] for a in race) and race[0]["puid"] == serving_puid("race-1")

    async def reused():  # a logged request_id with other content, at both replicas: refused, never answered
        async with httpx.AsyncClient(timeout=REQUEST_TIMEOUT_S) as client:
            return await asyncio.gather(*(client.post(f"{url}/v1/moderate", json={"text": f"not retry {n}",
                                                                                  "market": "DE",
                                                                                  "request_id": "retry-0"})
                                          for n in range(6)))

    for response in asyncio.run(reused()):
        assert response.status_code == 409 and response.json()["error"]["reason"] == "request_id_reused", response.text
    log = DecisionLog(logged_app["db"])
    assert all(log.find(DECISION, serving_puid(f"retry-{i}")) is not None for i in range(8))
    assert sum(1 for r in log.records() if r.puid in {serving_puid(f"retry-{i}") for i in range(8)} | {serving_puid("race-1")}) == 9
    assert log.verify().ok
    log.close()


def test_killing_an_ingress_replica_under_load_loses_no_answered_decision(logged_app):
    import ray

    from tripwire.compliance.records import DECISION
    from tripwire.compliance.decision_log import DecisionLog

    url = logged_app["url"]
    answered: list[str] = []
    failures: list[object] = []
    stop = threading.Event()

    def load(worker: int):
        n = 0
        with httpx.Client(timeout=REQUEST_TIMEOUT_S) as client:
            while not stop.is_set():
                n += 1
                try:
                    response = client.post(f"{url}/v1/moderate", json={"text": f"load {worker} {n}",
                                                                       "request_id": f"load-{worker}-{n}"})
                except httpx.HTTPError as exc:
                    failures.append(type(exc).__name__)
                    continue
                if response.status_code == 200:
                    answered.append(response.json()["puid"])
                else:
                    failures.append(response.status_code)

    threads = [threading.Thread(target=load, args=(w,), daemon=True) for w in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(3)
    victim = _ingress_replicas()[0]
    before_kill = len(answered)
    ray.kill(ray.get_actor(victim["name"], namespace=victim["namespace"]), no_restart=False)
    time.sleep(6)
    stop.set()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S + 5)
    assert before_kill > 0 and len(answered) > before_kill, (before_kill, len(answered), failures[:5])
    log = DecisionLog(logged_app["db"])
    missing = [puid for puid in answered if log.find(DECISION, puid) is None]
    assert not missing, f"{len(missing)} of {len(answered)} answered decisions have no record (first: {missing[0]})"
    assert log.verify().ok
    log.close()
    wait_for(lambda: len(_ingress_replicas()) == 2)  # Serve replaced the replica


def _scan_manifest(cfg, path: Path) -> Path:
    """A small catalogue from the session corpus, its items spread over the policy's markets."""
    markets = ["DE", "FR", "US", None]
    rows = []
    for i, sample in enumerate(s for s in good_samples(cfg) if s.text and not (s.image or s.audio or s.video)):
        if i == 12:
            break
        meta = {"language": "de" if i % 2 else "en", "market": markets[i % 4]}
        rows.append({"id": f"cat-{i}", "text": sample.text, "meta": {k: v for k, v in meta.items() if v}})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _review_everything(client, tokens: list[str], verdict) -> int:
    """Scripted reviewers over the reviewer app's HTTP API: claim and decide until the queue is empty."""
    from tripwire.policy import Taxonomy

    categories = Taxonomy.load().names
    done = 0
    for _ in range(200):
        progressed = False
        for token in tokens:
            headers = {"Authorization": f"Bearer {token}"}
            claimed = client.post("/api/claim", json={}, headers=headers)
            if claimed.status_code != 200 or not claimed.json().get("item"):
                continue
            item = claimed.json()["item"]
            action, labels = verdict(item)
            response = client.post("/api/reviews", headers=headers, json={
                "item_id": item["item_id"], "labels": {c: int(c in labels) for c in categories}, "action": action,
                "policy_clause": min(labels) if labels else None, "rationale": "scripted", "time_spent_ms": 1000, "idempotency_key": f"{token[:8]}-{item['item_id']}"})
            assert response.status_code in (200, 201), response.text
            done += 1
            progressed = True
        if not progressed:
            return done
    return done


def test_round_trip_decisions_reviews_appeals_statements_and_report_reconcile(logged_app, trained, tmp_path):
    from fastapi.testclient import TestClient

    from entrypoints.cli import main
    from pipelines.scan import make_job, run
    from tripwire.compliance.cases import all_cases, in_period, period
    from tripwire.compliance.records import APPEAL_OUTCOME, DECISION, RESTRICTIVE, REVIEW_OUTCOME
    from tripwire.compliance.decision_log import DecisionLog
    from tripwire.review.app import create_app
    from tripwire.review.config import ReviewConfig
    from tripwire.review.intake import queue_items
    from tripwire.review.store import open_configured_store
    from tripwire.scan.output import read_review_candidates

    cfg, _ = trained
    url, db = logged_app["url"], logged_app["db"]
    served = {}
    for i, market in enumerate(["DE"] * 4 + ["FR"] * 3 + ["US"] * 2 + [None] * 3):
        served[f"rt-{i}"] = _post(url, {"id": f"rt-{i}", "text": f"round trip {i}", "language": "en",
                                        **({"market": market} if market else {})})
    assert [a["decision"]["action"] for a in served.values()] == ["restrict"] * 4 + ["review"] * 3 + ["block"] * 2 + ["allow"] * 3

    # A proactive scan of the catalogue, logged when it finishes; its review band goes to the queue too.
    scan_config = tmp_path / "scan.yaml"
    scan_config.write_text(yaml.safe_dump({"batch_size": 8, "actors": 1, "cpus_per_actor": 0.25,
                                           "preprocess_batch_size": 16, "preprocess_cpus": 0.25}))
    manifest, out = _scan_manifest(cfg, tmp_path / "catalogue.jsonl"), str(tmp_path / "scan")
    summary = run(make_job(trained[1]["model_dir"],
                           str(manifest), out, logged_app["policy"], None, str(scan_config), db))
    assert summary["decisions_logged"] == 9  # 12 items, a quarter in no market: allowed, not logged

    config = ReviewConfig(store=db, required_reviews=2, golden_every=0, decision_log=db)
    store = open_configured_store(config)
    store.enqueue(queue_items(read_review_candidates(out), str(manifest), "scan", scan_out=out))
    wait_for(lambda: len(store.items()) >= 3 + 3, timeout_s=30)  # the served review band arrives in the background
    log = DecisionLog(db)
    client = TestClient(create_app(store, config, log))
    tokens = [store.add_reviewer(name, "admin") for name in ("ana", "ben")]

    def verdict(item):  # the first review-band item of each source is allowed, the rest restricted
        first = item["item_id"] in ("rt-4", "cat-1")
        return ("allow", set()) if first else ("restrict", {"harassment"})

    assert _review_everything(client, tokens, verdict) == 2 * 6
    # Appeals of two restrictive served decisions: one overturned, one upheld.
    admin = {"Authorization": f"Bearer {tokens[0]}"}
    appealed = [served["rt-0"]["puid"], served["rt-7"]["puid"]]
    for puid in appealed:
        response = client.post("/api/appeals", headers=admin, json={"puid": puid, "statement": "I disagree"})
        assert response.status_code == 201, response.text
    assert client.post("/api/appeals", headers=admin, json={"puid": served["rt-9"]["puid"],
                                                             "statement": "x"}).status_code == 409  # allowed
    assert _review_everything(client, tokens[:1], lambda item: ("allow", set()) if item["item_id"].endswith(appealed[0])
                              else ("block", {"violence"})) == 2

    # The log: independent counts straight from its records.
    records = list(log.records())
    assert log.verify().ok
    today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
    start, end = period(today, today)
    decisions = [r for r in records if r.kind == DECISION and start <= r.body["decided_at"] < end]
    outcomes = {r.puid: r.body for r in records if r.kind == REVIEW_OUTCOME}
    enforced = {r.puid for r in decisions if r.body["action"] in RESTRICTIVE
                or (r.body["action"] == "review" and outcomes.get(r.puid, {}).get("action") in RESTRICTIVE)}
    assert len(outcomes) == 6 and sum(r.kind == APPEAL_OUTCOME for r in records) == 2
    cases = [c for c in all_cases(records).values() if in_period(c, start, end)]
    assert {c.puid for c in cases if c.enforced} == enforced and len(cases) == len(decisions)

    # Statements of reasons (twice: the second export adds nothing), then the report.
    sor_out, report_out = tmp_path / "sor", tmp_path / "report"
    for _ in range(2):
        assert main(["compliance", "sor", "--store", db, "--from", today, "--to", today, "--out", str(sor_out)]) == 0
    statements = [s for f in sorted(sor_out.glob("statements-*.json")) for s in json.loads(f.read_text())["statements"]]
    assert len(statements) == len({s["puid"] for s in statements}) == len(enforced)
    assert {s["puid"] for s in statements} == enforced
    partial = {s["puid"] for s in statements if s["automated_decision"] == "AUTOMATED_DECISION_PARTIALLY"}
    assert partial == {p for p in enforced if p in outcomes}
    assert main(["compliance", "report", "--store", db, "--from", today, "--to", today, "--out", str(report_out)]) == 0
    figures = json.loads((report_out / "report.json").read_text())
    assert figures["decisions"] == len(decisions) and figures["statements_reconcile"] is True
    assert figures["enforced"] == len(enforced) == figures["statements_issued"]
    assert sum(figures["by_action"].values()) == len(decisions)
    assert figures["by_source"] == {"serving": sum(r.body["source"] == "serving" for r in decisions), "scan": 9}
    assert figures["appeals"]["overturned"] == 1 and figures["appeals"]["upheld"] == 1
    assert figures["appeals"]["enforcements_reversed"] == 1
    assert (report_out / "index.html").exists()
    log.close()
    store.close()


def test_review_band_decisions_of_the_served_graph_enter_the_queue(logged_app):
    """With ``review_store`` set, answers whose action is ``review`` are queued (with their whole result) and
    others are not; the answer itself does not wait for the store. (After the round trip, whose counts are
    exact: these items are added to the same store after it.)"""
    from tripwire.policy import Taxonomy
    from tripwire.review.store import open_store

    url = logged_app["url"]
    # FR sends harassment to review (at 0.0: everything); a request in no market is allowed.
    answers = {f"band-{i}": _post(url, {"id": f"band-{i}", "text": f"message {i}", **({"market": "FR"} if i % 2 == 0 else {})})
               for i in range(6)}
    image = _post(url, {"id": "band-img", "image": _png_b64(), "market": "FR"})
    expected = {"band-0", "band-2", "band-4", "band-img"}
    assert {i for i, a in answers.items() if a["decision"]["action"] == "review"} | {"band-img"} == expected
    assert image["decision"]["action"] == "review"
    store = open_store(logged_app["db"], Taxonomy.load().names)
    try:
        wait_for(lambda: len([i for i in store.items() if i.item_id.startswith("band-")]) >= len(expected), timeout_s=30)
        queued = {i.item_id: i for i in store.items() if i.item_id.startswith("band-")}
        assert set(queued) == expected
        first = queued["band-0"]
        assert first.source == "serving" and first.sample["text"] == "message 0" and first.item.market == "FR"
        assert first.result.scores == answers["band-0"]["scores"] and first.result.policy_version == "compliance-test"
        # Inline media is kept as a data: URI, so a reviewer sees what was sent.
        assert queued["band-img"].sample["image"].startswith("data:")
    finally:
        store.close()


def _png_b64() -> str:
    import base64
    import io

    import numpy as np
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((32, 32, 3), 128, np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()
