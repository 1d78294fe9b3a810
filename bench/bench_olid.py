"""Real quality: OLID sub-task A through the platform (ingest -> Ray Data -> Ray Train -> checkpoint with its
recommended policy), evaluated with ``tripwire evaluate`` on the registered ``olid-test`` golden set (the
official 860-tweet test set) with bootstrap 95% intervals, OffensEval's metric (macro-F1 of the two classes)
included.

    .venv/bin/python -m bench.bench_olid [--olid ../shared/datasets/olid] [--config pipelines/configs/olid.yaml]
                                         [--checkpoint runs/olid/model]   # evaluate an existing one, no training

The decision threshold (the policy's restrict threshold for ``harassment``, OLID's OFF) is chosen by
training on its own validation split, never on the test set. Writes bench/results/olid.json and the
evaluation report under runs/olid/eval/.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
CATEGORY = "harassment"  # OLID's OFF maps here (resources/mappings/olid.yaml)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--olid", default=str(REPO.parent / "shared" / "datasets" / "olid"))
    parser.add_argument("--config", default=str(REPO / "pipelines" / "configs" / "olid.yaml"))
    parser.add_argument("--checkpoint", help="evaluate this checkpoint instead of training one")
    args = parser.parse_args(argv)

    import ray

    from pipelines.evaluate import make_job, run as evaluate
    from pipelines.golden_sets import register_olid
    from pipelines.train import run as train
    from tripwire.data.adapters import ingest
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.common.config import load_yaml
    from tripwire.training.config import TrainConfig

    started = time.perf_counter()
    cfg = load_yaml(TrainConfig, args.config).resolved(REPO)
    golden, _ = register_olid(args.olid)
    ray.init(num_cpus=2, log_to_driver=True)
    try:
        training_wall = None
        model_dir = args.checkpoint
        if model_dir is None:
            print(json.dumps({"train": ingest("olid", str(Path(args.olid) / "olid-training-v1.0.tsv"),
                                              cfg.data.manifest)}, indent=2))
            summary = train(cfg)
            model_dir, training_wall = summary["model_dir"], summary["wall_seconds"]
        out = str(Path(model_dir).parent / "eval")
        report = evaluate(make_job(model_dir, golden.ref, out, config=str(REPO / "pipelines/configs/evaluate.yaml")))
    finally:
        ray.shutdown()
    checkpoint = CheckpointManifest.read(model_dir)
    metrics = report["overall"]["categories"][CATEGORY]["metrics"]
    result = {
        "dataset": "OLID sub-task A (OffensEval 2019), official test set", "golden": golden.ref,
        "golden_sha256": golden.sha256, "test_size": report["scored"],
        "test_offensive": report["overall"]["categories"][CATEGORY]["positives"],
        "policy_version": report["policy_version"],
        "restrict_threshold_from_validation": report["overall"]["categories"][CATEGORY]["thresholds"]["restrict"],
        "validation_roc_auc": checkpoint.metrics.get(CATEGORY, {}).get("roc_auc"),
        "test_macro_f1": metrics["class_macro_f1"], "test_f1_offensive": metrics["f1"],
        "test_roc_auc": metrics["roc_auc"], "test_pr_auc": metrics["pr_auc"],
        "test_recall_at_precision_0.9": metrics["recall_at_precision"], "test_ece": metrics["ece"],
        "bootstrap": report["bootstrap"],
        "reference": {"paper_cnn_baseline": 0.80, "offenseval_2019_winner": 0.829},
        "training_wall_s": training_wall, "total_wall_s": round(time.perf_counter() - started, 1),
        "config": str(Path(args.config).relative_to(REPO)) if args.config.startswith(str(REPO)) else args.config,
        "report": f"{out}/report.html",
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "olid.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
