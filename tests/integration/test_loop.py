"""The improvement loop end to end on real Ray: scan -> sample -> queue -> reviews over HTTP -> export ->
retrain from the session model -> evaluate -> gate, with scripted reviewers answering from the ground truth.

The round first stops for its reviews (``reviews: stop``) and resumes where it stopped. (Review-band decisions
of the served graph entering the queue: test_compliance.py, on its app with a review store.)
"""

from __future__ import annotations

import json

import httpx
import pytest
import yaml

from bench.reviewers import ScriptedReviewers, review_app_server
from helpers import REPO, result_json
from tripwire.policy import Taxonomy

pytestmark = pytest.mark.integration

CATEGORIES = Taxonomy.load().names
SMALL_SCAN = {"batch_size": 8, "actors": 1, "cpus_per_actor": 0.5, "preprocess_batch_size": 16, "preprocess_cpus": 0.25,
              "progress_every_s": 5.0}


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """An unlabelled catalogue for the loop to scan (its labels are the scripted reviewers' ground truth)."""
    from tripwire.data.sample import read_manifest
    from tripwire.data.synthetic import CorpusSpec, generate_corpus

    manifest = generate_corpus(tmp_path_factory.mktemp("pool"), CorpusSpec(num_items=40, seed=23, image_size=32,
                                                                            video_frames=8))
    return manifest, {s.id: dict(s.labels) for s in read_manifest(str(manifest))}


def loop_config(trained, heldout, pool, tmp_path, **overrides):
    from tripwire.common.config import from_dict
    from tripwire.review.loop import LoopConfig

    cfg, summary = trained
    golden, catalogue = heldout
    # The retrain is the tiny job on one worker (its DDP run is the session's; here the round is tested).
    train_config = yaml.safe_load((REPO / "pipelines/configs/tiny.yaml").read_text())
    train_config["fit"]["num_workers"] = 1
    (tmp_path / "train.yaml").write_text(yaml.safe_dump(train_config))
    data = {"checkpoint": summary["model_dir"], "train_config": str(tmp_path / "train.yaml"),
            "seed_manifest": cfg.data.manifest, "pool_manifest": str(pool[0]), "golden": [golden.ref],
            "work_dir": str(tmp_path / "loop"), "round": "r1", "store": str(tmp_path / "review.db"),
            "reviews": "wait", "poll_s": 0.5, "wait_timeout_s": 300, "retrain_epochs": 1, "catalogue": catalogue,
            "eval_config": str(tmp_path / "eval.yaml"), "sampling": {"total": 12, "strategy": "uncertainty+diversity"},
            "scan": SMALL_SCAN, **overrides}
    (tmp_path / "eval.yaml").write_text(yaml.safe_dump({"bootstrap": {"replicates": 100, "seed": 0}, "min_slice_items": 5,
                                                         "scan": SMALL_SCAN}))
    return from_dict(LoopConfig, data, "loop")


def test_one_round_stopped_for_reviews_then_finished_by_scripted_reviewers_over_http(trained, heldout, pool, tmp_path,
                                                                                     cores_for_training):
    """First with ``reviews: stop``: the round queues its batch and stops; run again, it reuses the scan and
    queues nothing twice. Then with ``reviews: wait`` and scripted reviewers working the queue over HTTP, the
    same round goes on from its queue to the end."""
    import dataclasses

    from pipelines.loop import run
    from tripwire.review.store import open_store
    from tripwire.data.sample import read_manifest

    cfg = loop_config(trained, heldout, pool, tmp_path, reviews="stop")
    store = open_store(cfg.store, CATEGORIES, required_reviews=2, golden_every=0)
    tokens = [store.add_reviewer(name) for name in ("ana", "ben")]
    first = run(cfg)
    assert first["stage"] == "awaiting_reviews" and first["queue"]["new"] == 12
    again = run(cfg)  # the scan is reused and the batch is already queued
    assert again["stage"] == "awaiting_reviews" and again["queue"] == {"queued": 12, "new": 0}
    assert len(store.items(batch="r1")) == 12

    with review_app_server(store) as url:
        reviewers = ScriptedReviewers(url, tokens, pool[1]).start()
        try:
            summary = run(dataclasses.replace(cfg, reviews="wait"))
        finally:
            reviewers.stop()
    assert reviewers.errors == []
    assert summary["stage"] == "done" and summary["queue"] == {"queued": 12, "new": 0}
    batch = store.items(batch="r1")
    assert len(batch) == 12 and all(i.status == "resolved" and i.resolved_by == "unanimous" for i in batch)
    assert len(store.reviews()) == 24 and store.check_consistency() == []
    # The snapshot holds the reviewers' labels (the ground truth) and nothing of the golden set.
    exported = {s.id: s.labels for s in read_manifest(summary["snapshot"]["path"])}
    assert set(exported) == {i.item_id for i in batch}
    assert all(exported[i] == {c: pool[1][i].get(c, 0) for c in CATEGORIES} for i in exported)
    assert summary["train_rows"]["feedback"] == 12
    # The new model started from the old one's weights and went through the gate on the golden set.
    comparison = json.loads(open(summary["comparison"]).read())
    assert comparison["candidate"]["checkpoint"] == summary["candidate"] != comparison["baseline"]["checkpoint"]
    gate = comparison["gate"]
    assert gate["bars"] and gate["passed"] == all(bar["passed"] for bar in gate["bars"])
    assert summary["promoted"] is gate["passed"]  # the loop reports the gate's own verdict
    assert "macro" in summary and summary["macro"]
    store.close()


def test_the_reviewer_app_runs_as_a_serve_app_under_a_route_prefix(serve_endpoint, tmp_path):
    """The same FastAPI app, deployed by Ray Serve under /review: sign-in redirects stay under the prefix
    and the pages' relative URLs reach the API."""
    from ray import serve

    from deployments.review_app import build_review_app
    from helpers import QUIET_SERVE
    from tripwire.review.store import open_store

    store_path = tmp_path / "serve-review.db"
    store = open_store(str(store_path), CATEGORIES)
    token = store.add_reviewer("ana")
    store.enqueue([{"item_id": "x1", "source": "scan", "sample": {"id": "x1", "text": "hello"},
                    "result": result_json("x1", {c: 0.1 for c in CATEGORIES})}])
    store.close()
    serve.run(build_review_app({"store": str(store_path)}), name="review", route_prefix="/review",
              logging_config=QUIET_SERVE)
    try:
        base = f"{serve_endpoint['url']}/review"
        with httpx.Client(timeout=30) as client:
            signed_out = client.get(f"{base}/")
            assert signed_out.status_code == 303 and signed_out.headers["location"] == "/review/login"
            signed_in = client.post(f"{base}/login", data={"token": token})
            assert signed_in.status_code == 303 and signed_in.headers["location"] == "/review/"
            assert 'src="static/review.js"' in client.get(f"{base}/").text
            assert client.get(f"{base}/static/review.js").status_code == 200
            claimed = client.post(f"{base}/api/claim", json={}).json()
            assert claimed["item"]["item_id"] == "x1" and claimed["item"]["text"] == "hello"
    finally:
        serve.delete("review")
