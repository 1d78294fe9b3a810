"""Real quality: OLID sub-task A through the platform (ingest -> Ray Data -> Ray Train -> checkpoint ->
scoring), evaluated on the official 860-tweet test set with OffensEval's metric (macro-F1).

    .venv/bin/python -m bench.bench_olid [--olid ../shared/datasets/olid]

The decision threshold is chosen on the validation split (from the training file), never on the test
set. Writes bench/results/olid.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"


def score_column(moderator, samples, category: str, batch: int = 64) -> np.ndarray:
    """One category's calibrated scores, through the moderation core in this process."""
    out = []
    for start in range(0, len(samples), batch):
        out += [r["scores"][category] for r in moderator.moderate_sync(samples[start:start + batch])]
    return np.asarray(out)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--olid", default=str(REPO.parent / "shared" / "datasets" / "olid"))
    parser.add_argument("--config", default=str(REPO / "pipelines" / "configs" / "olid.yaml"))
    args = parser.parse_args(argv)

    import ray

    from pipelines.train import run
    from tripwire.adapters import ingest
    from tripwire.config import load_yaml
    from tripwire.metrics import best_threshold, binary_macro_f1, roc_auc
    from tripwire.sample import read_manifest
    from tripwire.moderation import Moderator
    from tripwire.splits import read_splits
    from tripwire.train_config import TrainConfig

    started = time.perf_counter()
    cfg = load_yaml(TrainConfig, args.config).resolved(REPO)
    olid = Path(args.olid)
    train_ingest = ingest("olid", str(olid / "olid-training-v1.0.tsv"), cfg.data.manifest)
    test_manifest = str(Path(cfg.data.manifest).with_name("test.jsonl"))
    test_ingest = ingest("olid", str(olid / "testset-levela.tsv"), test_manifest,
                         labels_file=str(olid / "labels-levela.csv"), dedupe=False)
    print(json.dumps({"train": train_ingest, "test": test_ingest}, indent=2))

    ray.init(num_cpus=2, log_to_driver=True)
    try:
        summary = run(cfg)
    finally:
        ray.shutdown()

    scorer = Moderator.local(summary["model_dir"])
    category = "harassment"  # OLID's OFF maps here (resources/mappings/olid.yaml)
    splits = read_splits(f"{summary['model_dir']}/splits.parquet")
    val = [s for s in read_manifest(cfg.data.manifest) if splits.get(s.id) == "val"]
    test = list(read_manifest(test_manifest))
    val_labels = np.array([s.labels[category] for s in val])
    test_labels = np.array([s.labels[category] for s in test])
    val_scores, test_scores = score_column(scorer, val, category), score_column(scorer, test, category)
    threshold, val_f1 = best_threshold(val_labels, val_scores)
    result = {
        "dataset": "OLID sub-task A (OffensEval 2019), official test set",
        "test_size": int(len(test)), "test_offensive": int(test_labels.sum()),
        "threshold_from_validation": threshold, "validation_macro_f1": round(val_f1, 4),
        "test_macro_f1": round(binary_macro_f1(test_labels, test_scores >= threshold), 4),
        "test_macro_f1_at_0.5": round(binary_macro_f1(test_labels, test_scores >= 0.5), 4),
        "test_roc_auc": round(roc_auc(test_labels, test_scores), 4),
        "reference": {"paper_cnn_baseline": 0.80, "offenseval_2019_winner": 0.829},
        "training_wall_s": summary["wall_seconds"], "total_wall_s": round(time.perf_counter() - started, 1),
        "config": str(Path(args.config).relative_to(REPO)) if args.config.startswith(str(REPO)) else args.config,
    }
    print(json.dumps(result, indent=2))
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "olid.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
