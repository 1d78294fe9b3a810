"""The improvement loop on the synthetic corpus: active learning vs random, and one round of the loop.

1. A corpus with one deliberately rare category (``--rare``, its signature ``--rare-weight`` times as
   common as the others'), split into a small labelled seed set, an unlabelled pool and a golden set.
2. A weak model trained on the seed set only (few items, few epochs).
3. The seed model scans the pool; then, side by side on the same scan, **random sampling** vs
   **uncertainty+diversity** active learning: true positives of the rare category per 100 reviews, with the
   whole budget spent on that category (``tripwire.review.sampling.compare_strategies``).
4. One round of ``tripwire loop`` per arm (active learning, and random as the control), each with its own
   review store: scripted reviewers over real HTTP label the picks from the ground truth, the feedback is
   exported, the model is retrained from the seed model's weights on seed + feedback, and compared with the
   seed model on the golden set (paired bootstrap intervals) through the promotion gate.

    .venv/bin/python -m bench.bench_loop [--items 3000] [--seed-items 300] [--budget 200] [--no-control]

Writes ``bench/results/loop.json``; work files under ``runs/bench-loop`` (each run starts afresh; the
generated corpus is kept for the next run with the same spec).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import time
from pathlib import Path

import numpy as np

from bench.reviewers import ScriptedReviewers, review_app_server

RESULTS = Path(__file__).parent / "results"
WORK = Path("runs/bench-loop")


def fresh_work() -> None:
    """Removes what an earlier run derived (models, scans, stores); the generated corpora are kept."""
    import shutil

    WORK.mkdir(parents=True, exist_ok=True)
    for path in WORK.iterdir():
        if not path.name.startswith("corpus-"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()


def split_corpus(manifest: Path, seed_items: int, golden_fraction: float, seed: int) -> dict[str, Path]:
    """Seed / pool / golden manifests beside the corpus's media (ids shuffled with ``seed``)."""
    from tripwire.data.sample import read_manifest, write_manifest

    samples = list(read_manifest(str(manifest)))
    order = np.random.default_rng(seed).permutation(len(samples))
    golden_n = int(golden_fraction * len(samples))
    parts = {"golden": order[:golden_n], "seed": order[golden_n:golden_n + seed_items],
             "pool": order[golden_n + seed_items:]}
    out = {}
    for name, indices in parts.items():
        out[name] = manifest.parent / f"{name}.jsonl"
        write_manifest([samples[i] for i in sorted(indices)], str(out[name]))
    return out


def labels_of(manifest: Path) -> dict[str, dict[str, int]]:
    from tripwire.data.sample import read_manifest

    return {s.id: dict(s.labels) for s in read_manifest(str(manifest))}


def train_seed_model(seed_manifest: Path, epochs: int) -> tuple[str, Path]:
    """The weak model: the demo architecture trained on the seed set alone."""
    import yaml

    from pipelines.train import run
    from tripwire.common.config import load_yaml, to_dict
    from tripwire.training.config import TrainConfig

    base = load_yaml(TrainConfig, "pipelines/configs/demo.yaml")
    cfg = dataclasses.replace(base, run_name="bench-loop-seed", storage_path=str(WORK / "ray"),
                              export_dir=str(WORK / "seed-model"),
                              data=dataclasses.replace(base.data, manifest=str(seed_manifest), synthetic=None),
                              fit=dataclasses.replace(base.fit, epochs=epochs))
    config_path = WORK / "seed-train.yaml"
    config_path.write_text(yaml.safe_dump(to_dict(cfg), sort_keys=False))
    run(cfg.resolved(Path.cwd()))
    return str((WORK / "seed-model").resolve()), config_path


def loop_round(name: str, strategy: str, args, checkpoint: str, train_config: Path, parts: dict[str, Path],
               catalogue: str, truth: dict) -> dict:
    """One round of the loop with its own store, scripted reviewers answering from ``truth``."""
    from pipelines.loop import run
    from tripwire.common.config import from_dict
    from tripwire.review.loop import LoopConfig
    from tripwire.policy import Taxonomy
    from tripwire.review.store import open_store

    store_path = WORK / f"review-{name}.db"
    cfg = from_dict(LoopConfig, {
        "checkpoint": checkpoint, "train_config": str(train_config), "seed_manifest": str(parts["seed"]),
        "pool_manifest": str(parts["pool"]), "golden": ["bench-loop-golden"], "work_dir": str(WORK / "loop"),
        "round": name, "store": str(store_path), "reviews": "wait", "poll_s": 1.0, "retrain_epochs": args.retrain_epochs,
        "catalogue": catalogue, "eval_config": "pipelines/configs/evaluate.yaml",
        "sampling": {"total": args.budget, "strategy": strategy, "seed": 0},
        "scan": {"batch_size": 32, "actors": 1, "cpus_per_actor": 1.0, "preprocess_batch_size": 32,
                 "preprocess_cpus": 0.5, "progress_every_s": 30.0}}, "loop")
    store = open_store(str(store_path), Taxonomy.load().names, required_reviews=2, golden_every=0)
    tokens = [store.add_reviewer(f"scripted-{i}") for i in range(2)]
    with review_app_server(store) as url:
        reviewers = ScriptedReviewers(url, tokens, truth).start()
        try:
            summary = run(cfg)
        finally:
            reviewers.stop()
    problems = store.check_consistency()
    store.close()
    return {"summary": summary, "reviews_submitted": len(reviewers.submitted), "review_errors": reviewers.errors[:5],
            "store_problems": problems}


def golden_figures(comparison: dict, rare: str) -> dict:
    """Macro and rare-category figures, baseline and candidate, with their intervals."""
    [result] = comparison["sets"].values()
    pick = {}
    for scope, metrics in (("macro", result["macro"]), (rare, result["categories"][rare])):
        pick[scope] = {m: {side: metrics[m][side] for side in ("baseline", "candidate", "delta", "ci")
                           if side in metrics[m]} for m in ("pr_auc", "roc_auc", "recall_at_precision", "f1")
                       if m in metrics}
    return pick


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--items", type=int, default=3000)
    parser.add_argument("--seed-items", type=int, default=400)
    parser.add_argument("--budget", type=int, default=200, help="reviews per loop round (and per strategy arm)")
    parser.add_argument("--rare", default="self_harm")
    parser.add_argument("--rare-weight", type=float, default=0.3)
    parser.add_argument("--seed-epochs", type=int, default=4)
    parser.add_argument("--retrain-epochs", type=int, default=4)
    parser.add_argument("--no-control", action="store_true", help="skip the random-sampling loop round")
    args = parser.parse_args()

    import ray

    from pipelines.scan import make_job, run as run_scan
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.evaluation.golden import register
    from tripwire.policy import Taxonomy
    from tripwire.review.sampling import compare_strategies
    from tripwire.scan.output import read_results
    from tripwire.data.synthetic import CorpusSpec, generate_corpus

    started = time.perf_counter()
    fresh_work()
    spec = CorpusSpec(num_items=args.items, seed=17, signature_weights=((args.rare, args.rare_weight),))
    corpus = WORK / f"corpus-{args.items}-{args.rare}-{args.rare_weight}"
    manifest = corpus / "manifest.jsonl"
    if not manifest.exists():
        print(f"[bench-loop] generating {args.items} items ({args.rare} x{args.rare_weight})", flush=True)
        generate_corpus(corpus, spec, progress=True)
    parts = split_corpus(manifest, args.seed_items, 0.2, seed=5)
    truth = labels_of(parts["pool"])
    counts = {name: sum(labels.get(args.rare, 0) for labels in labels_of(path).values()) for name, path in parts.items()}
    print(f"[bench-loop] {args.rare} positives: {counts}", flush=True)
    catalogue = str(WORK / "catalogue.yaml")
    register("bench-loop-golden", str(parts["golden"]), Taxonomy.load().names, "synthetic", "CC0", "generator",
             catalogue=catalogue)
    ray.init(include_dashboard=False, logging_level=logging.WARNING)
    checkpoint, train_config = train_seed_model(parts["seed"], args.seed_epochs)

    scan_out = WORK / "pool-scan"
    run_scan(make_job(checkpoint, str(parts["pool"]), str(scan_out)))
    rows = read_results(str(scan_out))
    policy = CheckpointManifest.read(checkpoint).policy()
    strategies = {}
    for budget in (100, args.budget):
        strategies[budget] = compare_strategies(rows, policy, truth, args.rare, budget, seed=0)
    print(f"[bench-loop] {args.rare} positives per 100 reviews: " + "; ".join(
        f"budget {b}: " + ", ".join(f"{name} {r['per_100']:.1f}" for name, r in s["strategies"].items())
        + f" (ratio {s['ratio']})" for b, s in strategies.items()), flush=True)

    rounds = {"active": loop_round("active", "uncertainty+diversity", args, checkpoint, train_config, parts,
                                   catalogue, truth)}
    if not args.no_control:
        rounds["random"] = loop_round("random", "random", args, checkpoint, train_config, parts, catalogue, truth)
    figures = {}
    for name, outcome in rounds.items():
        comparison = json.loads(Path(outcome["summary"]["comparison"]).read_text())
        figures[name] = {"golden": golden_figures(comparison, args.rare), "promoted": outcome["summary"]["promoted"],
                         "feedback_items": outcome["summary"]["snapshot"]["items"],
                         "queued": outcome["summary"]["queue"], "reviews": outcome["reviews_submitted"],
                         "review_errors": outcome["review_errors"], "store_problems": outcome["store_problems"]}
    result = {"items": args.items, "seed_items": args.seed_items, "budget": args.budget, "rare": args.rare,
              "rare_weight": args.rare_weight, "rare_positives": counts, "seed_epochs": args.seed_epochs,
              "retrain_epochs": args.retrain_epochs, "strategies": {str(b): s for b, s in strategies.items()},
              "rounds": figures, "wall_s": round(time.perf_counter() - started, 1)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "loop.json").write_text(json.dumps(result, indent=2, default=str))
    for name, fig in figures.items():
        macro, rare = fig["golden"]["macro"]["pr_auc"], fig["golden"][args.rare]["pr_auc"]
        print(f"[bench-loop] {name}: macro PR-AUC {macro['baseline']:.3f} -> {macro['candidate']:.3f} "
              f"(delta {macro['delta']:+.3f}, 95% CI {macro['ci']}); {args.rare} PR-AUC {rare['baseline']:.3f} -> "
              f"{rare['candidate']:.3f} (delta {rare['delta']:+.3f}, CI {rare['ci']}); promoted {fig['promoted']}",
              flush=True)
    print(f"[bench-loop] done in {result['wall_s']:.0f}s -> {RESULTS / 'loop.json'}", flush=True)


if __name__ == "__main__":
    main()
