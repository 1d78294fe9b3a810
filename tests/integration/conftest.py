"""Ray starts once per test session (2 logical CPUs, as on the CI machine); one tiny model is trained
and served per session and shared by the integration tests."""

from __future__ import annotations

import json
import os
import pickle
import socket
import time
from pathlib import Path

import pytest
import yaml

from helpers import OWN_CLUSTER, QUIET_SERVE, WITHOUT_RAY, deploy, free_session_app
from tripwire.common.config import load_yaml
from tripwire.training.config import TrainConfig

REPO = Path(__file__).resolve().parents[2]


def pytest_collection_modifyitems(items):
    for item in items:
        if "integration" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            # Under ``make test`` these files run on the worker without the session's Ray (tests/helpers.py).
            name = Path(str(item.fspath)).name
            if name in WITHOUT_RAY | OWN_CLUSTER and "ray_session" in getattr(item, "fixturenames", ()):
                raise pytest.UsageError(f"{item.nodeid} uses the session's Ray: take its file out of "
                                        "tests/helpers.py WITHOUT_RAY and OWN_CLUSTER")
    # Tests that take the session app's cores (training runs) go last, so the app is deployed once for all
    # the tests that call it, not redeployed after each of them (~30 s a time); the separate cluster's tests
    # (on the other worker under ``make test``) after them when one process runs everything.
    # Tests that replace the session app (another policy, a decision log, a review store) go after every test
    # that calls the default app, so it is deployed once, not again after each of them.
    def order(item) -> int:
        fixtures = set(getattr(item, "fixturenames", ()))
        if "separate_cluster" in fixtures:
            return 3
        if "cores_for_training" in fixtures:
            return 2
        return 1 if item.get_closest_marker("replaces_session_app") else 0

    items.sort(key=order)


@pytest.fixture(scope="session")
def ray_session():
    import ray

    ray.init(num_cpus=2, log_to_driver=True)
    from ray.data import DataContext

    DataContext.get_current().enable_progress_bars = False
    yield ray
    try:
        from ray import serve

        serve.shutdown()
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def dashboard(ray_session):
    """The session's Ray dashboard address (``serve deploy`` and ``ray job submit`` talk to it)."""
    url = ray_session._private.worker.global_worker.node.address_info.get("webui_url")
    assert url, "the Ray dashboard did not start (is ray[default] installed?)"
    return f"http://{url}"


@pytest.fixture(scope="session")
def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# The session's model is trained once, on the worker with the session's Ray, and shared through files with
# the other worker (``session_model``): a claim when training starts, then the result or the failure.
SHARED_MODEL = {"claim": "session-model.claim", "result": "session-model.pkl", "failed": "session-model.failed"}
CLAIM_WAIT_S, MODEL_WAIT_S = 120.0, 1800.0


def shared_dir(tmp_path_factory) -> Path:
    """A folder every xdist worker of this run sees (each has its own base temp folder under it)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def trained(ray_session, tmp_path_factory):
    """The session's model: ``pipelines/configs/tiny.yaml`` on two workers, with one worker killed right
    after the first epoch's checkpoint (Ray Train restarts the group from it; test_train_faults.py reads the
    run's record, test_cluster.py compares it with an uninterrupted run). Every checkpoint is kept."""
    import dataclasses

    from fault_injection import KillOneWorkerAfterFirstCheckpoint
    from pipelines.train import ensure_corpus, run
    from tripwire.policy import Taxonomy

    shared = shared_dir(tmp_path_factory)
    (shared / SHARED_MODEL["claim"]).write_text(os.environ.get("PYTEST_XDIST_WORKER", "main"))
    try:
        root = tmp_path_factory.mktemp("e2e")
        cfg = load_yaml(TrainConfig, REPO / "pipelines/configs/tiny.yaml").resolved(root)
        cfg = dataclasses.replace(cfg, fit=dataclasses.replace(cfg.fit, max_failures=1, num_to_keep=cfg.fit.epochs))
        ensure_corpus(cfg, Taxonomy.load())
        # One broken row and one corrupt file: quarantined with reasons, the job still finishes.
        manifest = Path(cfg.data.manifest)
        (manifest.parent / "image" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
        with manifest.open("a") as handle:
            handle.write(json.dumps({"id": "bad-image", "image": "image/broken.png", "labels": {"hate": 1}}) + "\n")
            handle.write(json.dumps({"id": "bad-label", "text": "hello", "labels": {"not_a_category": 1}}) + "\n")
            handle.write("{this is not json\n")
        summary = run(cfg, callbacks=[KillOneWorkerAfterFirstCheckpoint()])
    except BaseException as error:
        (shared / SHARED_MODEL["failed"]).write_text(repr(error))
        raise
    partial = shared / f"{SHARED_MODEL['result']}.partial"
    partial.write_bytes(pickle.dumps((cfg, summary)))
    partial.rename(shared / SHARED_MODEL["result"])
    return cfg, summary


@pytest.fixture(scope="session")
def session_model(request, tmp_path_factory):
    """The session's model, ``(cfg, summary)``, for tests on a cluster of their own (they need no session Ray):
    read from the worker that trains it, or trained here where no other worker claims it within
    ``CLAIM_WAIT_S`` (a run of these tests alone)."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return request.getfixturevalue("trained")
    shared = shared_dir(tmp_path_factory)
    claim, result, failed = (shared / SHARED_MODEL[k] for k in ("claim", "result", "failed"))
    started = time.monotonic()
    while not claim.exists():
        if time.monotonic() - started > CLAIM_WAIT_S:
            return request.getfixturevalue("trained")
        time.sleep(1.0)
    while not result.exists():
        if failed.exists():
            pytest.fail(f"the session's model failed to train on worker {claim.read_text()}: {failed.read_text()}")
        if time.monotonic() - started > MODEL_WAIT_S:
            pytest.fail(f"the session's model was not trained in {MODEL_WAIT_S:.0f}s")
        time.sleep(1.0)
    return pickle.loads(result.read_bytes())


@pytest.fixture(scope="session")
def serve_endpoint(trained, free_port, tmp_path_factory):
    """Serve's HTTP proxy for the session; the app itself is (re)deployed on demand by ``served``."""
    from ray import serve

    from tripwire.data.sample import manifest_base

    cfg, summary = trained
    serve.start(http_options={"host": "127.0.0.1", "port": free_port}, logging_config=QUIET_SERVE)
    # Requests may reference the corpus's images by file:// URI (URIs are off unless allow-listed; the
    # default is tested on the Serve config's app in test_api).
    # Long media by URI through the job API (test_jobs.py): a job store and a folder of long files.
    long_media = tmp_path_factory.mktemp("long-media")
    args = {"checkpoint": summary["model_dir"],
            "uri_allow_list": [f"file://{manifest_base(cfg.data.manifest)}/image/", f"file://{long_media}/"],
            "jobs_store": str(long_media / "jobs.db"), "jobs_lease_s": 5.0}
    state = {"url": f"http://127.0.0.1:{free_port}", "model_dir": summary["model_dir"], "app_args": args,
             "deployed": False, "long_media": long_media}
    yield state
    if state["deployed"]:
        serve.delete("tripwire")


@pytest.fixture
def served(serve_endpoint):
    """The session's tiny model behind the Serve graph over HTTP: ``(url, model_dir)``."""
    if not serve_endpoint["deployed"]:
        deploy(serve_endpoint["app_args"])
        serve_endpoint["deployed"] = True
    return serve_endpoint["url"], serve_endpoint["model_dir"]


@pytest.fixture
def cores_for_training(serve_endpoint):
    """Two cores cannot hold the session's Serve app and a 2-worker training run at once: the app yields
    its CPUs; the next test that needs it redeploys it (training tests run back to back, so once)."""
    free_session_app(serve_endpoint)
    yield


@pytest.fixture(scope="session")
def separate_cluster(tmp_path_factory):
    """A cluster of its own (``ray start``: a head and a worker node, one CPU each) beside the session's Ray,
    shared by the ``ray job submit`` tests (tests/integration/test_cluster.py): ``(dashboard_url, env)``."""
    from ray_nodes import local_cluster

    with local_cluster(tmp_path_factory.mktemp("cluster"), head_cpus=1, worker_cpus=(1,)) as (address, _, env):
        yield address, env


# -- the evaluation framework on the session's model (tests/integration/test_evaluate.py, test_report_browser.py)
# Sized for 2 cores beside the session's Serve app (which holds 1 CPU).
EVAL_SMALL = {"bootstrap": {"replicates": 200, "seed": 1}, "min_slice_items": 5,
         "scan": {"batch_size": 8, "actors": 1, "cpus_per_actor": 0.25, "preprocess_batch_size": 16,
                  "preprocess_cpus": 0.25, "progress_every_s": 5.0}}


@pytest.fixture(scope="session")
def heldout(trained, tmp_path_factory):
    from pipelines.golden_sets import register_heldout

    _, summary = trained
    catalogue = str(tmp_path_factory.mktemp("golden") / "catalogue.yaml")
    golden, new = register_heldout(summary["model_dir"], catalogue=catalogue)
    assert new and golden.name == "tiny-heldout"
    return golden, catalogue


@pytest.fixture(scope="session")
def eval_config(tmp_path_factory):
    path = tmp_path_factory.mktemp("eval-config") / "evaluate.yaml"
    path.write_text(yaml.safe_dump(EVAL_SMALL))
    return str(path)


@pytest.fixture(scope="session")
def evaluated(trained, heldout, eval_config, tmp_path_factory):
    from pipelines.evaluate import make_job, run

    _, summary = trained
    golden, catalogue = heldout
    out = str(tmp_path_factory.mktemp("eval") / "out")
    return run(make_job(summary["model_dir"], golden.name, out, catalogue=catalogue, config=eval_config)), out
