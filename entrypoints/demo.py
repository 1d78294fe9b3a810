"""The main job end to end on the embedded default: corpus -> train -> serve -> real HTTP requests ->
evaluation of the held-out split (scored by the scan pipeline), with its HTML report.

``make demo`` (``python -m entrypoints.demo``) and ``tripwire demo`` run this; options and user errors are
handled by :mod:`entrypoints.cli`. Everything is local: a Ray instance in this process, the synthetic
corpus, checkpoints under ``runs/``, and the Serve HTTP proxy on 127.0.0.1.
"""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import httpx

from tripwire.config import load_yaml
from tripwire.moderation import Moderator
from tripwire.parity import result_differences
from tripwire.policy import Taxonomy
from tripwire.sample import manifest_base, read_manifest, request_body
from tripwire.splits import read_splits
from tripwire.train_config import TrainConfig


def pick_items(cfg: TrainConfig, model_dir: str, per_mix: int = 2, limit: int = 16):
    """Validation items covering every modality mix, violating ones first within each mix."""
    splits = read_splits(f"{model_dir}/splits.parquet")
    by_mix: dict[tuple, list] = {}
    for sample in read_manifest(cfg.data.manifest):
        if splits.get(sample.id) != "val":
            continue
        by_mix.setdefault(tuple(sample.modalities), []).append(sample)
    chosen = []
    for mix in sorted(by_mix, key=len):
        items = sorted(by_mix[mix], key=lambda s: -sum(s.labels.values()))
        chosen += items[:1] + [s for s in items if not any(s.labels.values())][:per_mix - 1]
    return chosen[:limit]


def wait_healthy(url: str, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/v1/health", timeout=5).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not become healthy in {timeout_s}s")


SERVE_LOGGING = {"log_level": "WARNING", "enable_access_log": False}  # the demo prints its own lines


def evaluate_heldout(model_dir: str) -> tuple[dict, dict[str, dict]]:
    """The held-out split registered as a golden set and evaluated (``tripwire evaluate``, which scores it
    with ``tripwire scan``'s pipeline); returns the report and the scan's results by id."""
    from pipelines.evaluate import make_job, run as run_evaluation
    from pipelines.golden_sets import register_heldout
    from tripwire.scan_output import read_results, row_to_result

    golden, new = register_heldout(model_dir)
    print(f"\n[evaluate] golden set {golden.ref} ({'registered' if new else 'already registered'}): "
          f"{golden.items} held-out items", flush=True)
    out = str(Path(model_dir).parent / "eval")
    report = run_evaluation(make_job(model_dir, golden.ref, out, config="pipelines/configs/evaluate.yaml"))
    return report, {row["id"]: row_to_result(row) for row in read_results(report["scan"])}


def demo_store(model_dir: str) -> str:
    """The demo's one database: the review queue and the decision log."""
    return str(Path(model_dir).parent / "review.db")


def queue_for_review(model_dir: str, scan_out: str) -> None:
    """The evaluation scan's review-band decisions into a review store, and how to open the reviewer app."""
    from tripwire.checkpoint import CheckpointManifest
    from tripwire.review.intake import queue_items, scan_manifest
    from tripwire.review.store import open_store
    from tripwire.scan_output import read_review_candidates

    store_path = demo_store(model_dir)
    manifest = CheckpointManifest.read(model_dir)
    store = open_store(store_path, manifest.categories, list(manifest.policy().categories))
    try:
        new = store.enqueue(queue_items(read_review_candidates(scan_out), scan_manifest(scan_out), "scan", "demo",
                                        scan_out=scan_out))
        token = store.add_reviewer("demo-admin", "admin")
        counts = store.counts()
    finally:
        store.close()
    print(f"\n[review] {new} review-band decision(s) queued ({counts['pending']} pending) in {store_path}; "
          f"to review them:\n[review]   .venv/bin/tripwire review-ui --store {store_path} --decision-log {store_path}"
          f"   then open "
          f"http://127.0.0.1:8300/ and sign in with token {token}", flush=True)


def compliance_outputs(model_dir: str, scan_out: str) -> None:
    """The evaluation scan's decisions into the decision log (the served ones are there already), then
    today's statements of reasons and transparency report from it."""
    import datetime

    from tripwire.checkpoint import CheckpointManifest
    from tripwire.compliance.cases import period
    from tripwire.compliance.dsa import DsaMapping
    from tripwire.compliance.report import report_from_log, write_report
    from tripwire.compliance.scan_log import log_scan
    from tripwire.compliance.statements import export_statements
    from tripwire.decision_log import DecisionLog

    store_path, out = demo_store(model_dir), Path(model_dir).parent / "compliance"
    log = DecisionLog(store_path)
    try:
        scanned = log_scan(scan_out, log, CheckpointManifest.read(model_dir).policy())
        verified = log.verify()
        today = datetime.datetime.now(datetime.timezone.utc).date().isoformat()
        start, end = period(today, today)
        sor = export_statements(store_path, start, end, out / "sor", DsaMapping.load())
        report = report_from_log(store_path, start, end)
        page = write_report(report, out / "report")
    finally:
        log.close()
    print(f"\n[compliance] decision log {store_path}: {verified.checked} record(s) ({scanned} new from the scan), "
          f"hash chain verified: {verified.ok}; {sor['exported']} new statement(s) of reasons in "
          f"{len(sor['files'])} API batch file(s) -> {out / 'sor'}; transparency report ({report.decisions} decisions, "
          f"{report.enforced} enforced) -> {page}", flush=True)


def run(config: str, port: int, min_auc: float) -> int:
    """Runs the demo; returns the exit status (1 when a check fails).

    Args:
        config: the training config YAML.
        port: the Serve HTTP port on 127.0.0.1.
        min_auc: every category's validation ROC-AUC must reach this.
    """
    cfg = load_yaml(TrainConfig, config).resolved(Path.cwd())  # a bad file fails here, before Ray starts

    import ray
    from ray import serve

    from deployments.app import build_app
    from pipelines.train import run as run_training

    started = time.perf_counter()
    ray.init(num_cpus=os.cpu_count(), log_to_driver=True)
    logging.getLogger("ray.serve").setLevel(logging.WARNING)  # the demo prints what was deployed, and where
    try:
        summary = run_training(cfg)
        trained_at = time.perf_counter()
        taxonomy = Taxonomy.load(cfg.taxonomy)
        aucs = {c: summary["val_metrics"][c]["roc_auc"] for c in taxonomy.names}
        model_dir = summary["model_dir"]

        print(f"\n[serve] deploying {model_dir} on http://127.0.0.1:{port}", flush=True)
        serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=SERVE_LOGGING)
        # Every answer is logged (hash chain) in the demo's store, the same database as its review queue.
        serve.run(build_app({"checkpoint": model_dir,
                             "decision_log": str(Path(demo_store(model_dir)).resolve())}), name="tripwire",
                  route_prefix="/", logging_config=SERVE_LOGGING)
        url = f"http://127.0.0.1:{port}"
        wait_healthy(url)
        served_at = time.perf_counter()

        base = manifest_base(cfg.data.manifest)
        samples = pick_items(cfg, model_dir)
        reference = Moderator.local(model_dir).moderate_sync(samples, base)
        http_differences: list[str] = []
        print(f"\n{'id':<11}{'modalities':<24}{'true labels':<34}{'top score':<32}{'decision':<10}driven by")
        with httpx.Client(timeout=60) as client:
            for sample, expected in zip(samples, reference):
                response = client.post(f"{url}/v1/moderate", json=request_body(sample, base))
                response.raise_for_status()
                body = response.json()
                http_differences += [f"{sample.id}: {d}" for d in result_differences(body, expected)]
                top_name = max(taxonomy.names, key=lambda c: body["scores"][c])
                top = f"{top_name}={body['scores'][top_name]:.3f}"
                truth = ",".join(c for c, v in sample.labels.items() if v) or "-"
                driver = body["attribution"][top_name]["driven_by"]
                print(f"{sample.id:<11}{'+'.join(body['modalities']):<24}{truth:<34}"
                      f"{top:<32}{body['decision']['action']:<10}{driver}")
        print(f"\n[serve] {len(samples)} HTTP requests; whole results equal to the in-process core's "
              f"(scores within 1e-5): {not http_differences}")
        serve.shutdown()
        served_done = time.perf_counter()

        evaluation, scanned = evaluate_heldout(model_dir)
        scan_differences = [f"{s.id}: {d}" for s, expected in zip(samples, reference)
                            for d in result_differences(scanned.get(s.id, {}), expected)]
        print(f"[evaluate] scan results equal to HTTP and in-process for the {len(samples)} items above: "
              f"{not scan_differences}")
        queue_for_review(model_dir, evaluation["scan"])
        compliance_outputs(model_dir, evaluation["scan"])
        done = time.perf_counter()
        print(f"[demo] train {trained_at - started:.0f}s, deploy {served_at - trained_at:.0f}s, "
              f"evaluate {done - served_done:.0f}s, total {done - started:.0f}s")
        failing = {c: a for c, a in aucs.items() if not a >= min_auc}
        if failing:
            print(f"[demo] FAIL: categories below ROC-AUC {min_auc}: {failing}", file=sys.stderr)
            return 1
        for path, differences in (("HTTP", http_differences), ("scan", scan_differences)):
            if differences:
                print(f"[demo] FAIL: {path} results differ from the in-process core's: {differences[:5]}",
                      file=sys.stderr)
                return 1
        print(f"[demo] OK: every category ROC-AUC >= {min_auc} (min {min(aucs.values()):.4f}); "
              "HTTP, scan and in-process give the same results")
        print(f"[demo] evaluation report (open in a browser): {Path(evaluation['scan']).parent / 'report.html'}")
        return 0
    finally:
        ray.shutdown()


if __name__ == "__main__":
    from entrypoints.cli import main

    sys.exit(main(["demo", *sys.argv[1:]]))
