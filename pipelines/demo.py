"""The main job end to end on the embedded default: corpus -> train -> serve -> real HTTP requests -> shutdown.

``make demo`` runs this. Everything is local: a Ray instance in this process, the synthetic corpus,
checkpoints under ``runs/``, and the Serve HTTP proxy on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from tripwire.config import load_yaml
from tripwire.policy import Taxonomy
from tripwire.sample import manifest_base, read_manifest, request_body
from tripwire.scoring import InProcessScorer
from tripwire.splits import read_splits
from tripwire.training import TrainConfig


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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", default="pipelines/configs/demo.yaml")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--min-auc", type=float, default=0.95, help="fail unless every category reaches this")
    args = parser.parse_args(argv)

    import ray
    from ray import serve

    from deployments.app import build_app
    from pipelines.train import run as run_training

    started = time.perf_counter()
    cfg = load_yaml(TrainConfig, args.config).resolved(Path.cwd())
    ray.init(num_cpus=os.cpu_count(), log_to_driver=True)
    try:
        summary = run_training(cfg)
        trained_at = time.perf_counter()
        taxonomy = Taxonomy.load(cfg.taxonomy)
        aucs = {c: summary["val_metrics"][c]["roc_auc"] for c in taxonomy.names}

        print(f"\n[serve] deploying {summary['model_dir']} on http://127.0.0.1:{args.port}", flush=True)
        serve.start(http_options={"host": "127.0.0.1", "port": args.port})
        serve.run(build_app({"checkpoint": summary["model_dir"]}), name="tripwire", route_prefix="/")
        url = f"http://127.0.0.1:{args.port}"
        wait_healthy(url)
        served_at = time.perf_counter()

        base = manifest_base(cfg.data.manifest)
        samples = pick_items(cfg, summary["model_dir"])
        reference = InProcessScorer(summary["model_dir"]).score(samples, base)
        worst = 0.0
        print(f"\n{'id':<11}{'modalities':<24}{'true labels':<34}{'top score':<32}{'decision':<10}driven by")
        with httpx.Client(timeout=60) as client:
            for sample, expected in zip(samples, reference):
                response = client.post(f"{url}/v1/moderate", json=request_body(sample, base))
                response.raise_for_status()
                body = response.json()
                scores = np.array([body["scores"][c] for c in taxonomy.names])
                worst = max(worst, float(np.abs(scores - expected).max()))
                top = int(np.argmax(scores))
                top_name = taxonomy.names[top]
                truth = ",".join(c for c, v in sample.labels.items() if v) or "-"
                driver = body["attribution"][top_name]["driven_by"]
                print(f"{sample.id:<11}{'+'.join(body['modalities']):<24}{truth:<34}"
                      f"{top_name + f'={scores[top]:.3f}':<32}{body['decision']['action']:<10}{driver}")
        print(f"\n[serve] {len(samples)} HTTP requests; max |HTTP - in-process| score difference: {worst:.2e}")
        serve.shutdown()
        done = time.perf_counter()
        print(f"[demo] train {trained_at - started:.0f}s, deploy {served_at - trained_at:.0f}s, "
              f"total {done - started:.0f}s")
        failing = {c: a for c, a in aucs.items() if not a >= args.min_auc}
        if failing:
            print(f"[demo] FAIL: categories below ROC-AUC {args.min_auc}: {failing}", file=sys.stderr)
            return 1
        if worst > 1e-5:
            print(f"[demo] FAIL: HTTP scores differ from in-process scores by {worst:.2e}", file=sys.stderr)
            return 1
        print(f"[demo] OK: every category ROC-AUC >= {args.min_auc} (min {min(aucs.values()):.4f}); "
              "HTTP matches in-process scores")
        return 0
    finally:
        ray.shutdown()


if __name__ == "__main__":
    sys.exit(main())
