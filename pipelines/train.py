"""Training job: manifest -> Ray Data (decode + preprocess, streamed) -> Ray Train TorchTrainer -> checkpoint.

Run locally with ``tripwire train --config pipelines/configs/demo.yaml``; the same command runs under
``ray job submit`` against a cluster (it joins the running cluster when ``RAY_ADDRESS`` is set).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any, Sequence

from tripwire.common.config import load_yaml
from tripwire.policy import Policy, Taxonomy
from tripwire.training import job as training_job
from tripwire.training.config import TrainConfig


def say(line: str) -> None:
    print(line, flush=True)


def ensure_corpus(cfg: TrainConfig, taxonomy: Taxonomy) -> None:
    """Generates the synthetic corpus at the configured manifest path when asked to and missing."""
    training_job.ensure_corpus(cfg, taxonomy, say)


def run(cfg: TrainConfig, callbacks: Sequence[Any] = ()) -> dict:
    """Runs the job, printing its progress and summary; returns the summary (also written as ``summary.json``
    beside the exported model). ``callbacks``: ``ray.train.UserCallback`` instances for the run's controller."""
    summary = training_job.run(cfg, callbacks, say)
    print_summary(summary, Taxonomy.load(cfg.taxonomy))
    return summary


def recommended_policy_line(model_dir: str) -> str | None:
    """One line on the exported checkpoint's recommended policy: the targets it could not apply as such."""
    from tripwire.model.checkpoint import RECOMMENDED_POLICY
    from tripwire.evaluation.thresholds import skipped_categories

    path = Path(model_dir) / RECOMMENDED_POLICY
    if not path.exists():
        return None
    policy = Policy.load(str(path))
    skipped = skipped_categories(policy)
    if not skipped:
        return f"[train] recommended policy {policy.version}: every threshold target met on validation"
    return (f"[train] recommended policy {policy.version}: {len(skipped)} target(s) not applied as such "
            f"({', '.join(sorted(skipped))}): too few labelled validation positives, an unmet target, or a review "
            "threshold raised to fit the review capacity; the reasons are in its evidence")


def print_summary(summary: dict, taxonomy: Taxonomy) -> None:
    metrics = summary["val_metrics"]
    print(f"\n[train] best epoch {summary['best_epoch'] + 1}, {summary['wall_seconds']}s; model -> {summary['model_dir']}")
    print(f"[train] quarantined rows: {summary['quarantined']} {summary['quarantine_reasons'] or ''}")
    line = recommended_policy_line(summary["model_dir"])
    if line:
        print(line)
    print(f"{'category':<26}{'ROC-AUC':>9}{'PR-AUC':>9}{'F1@0.5':>9}{'pos':>6}{'n':>6}")
    for name in [*taxonomy.names, "macro"]:
        row = metrics[name]
        print(f"{name:<26}{row['roc_auc']:>9.4f}{row['pr_auc']:>9.4f}{row['f1']:>9.4f}"
              f"{row.get('positives', ''):>6}{row.get('support', ''):>6}")


def main(argv: list[str] | None = None) -> dict:
    """``python -m pipelines.train --config ...``; ``tripwire train`` is the same with one-line user errors."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--config", required=True, help="training config YAML (pipelines/configs/*.yaml)")
    args = parser.parse_args(argv)
    cfg = load_yaml(TrainConfig, args.config).resolved(Path.cwd())
    return run(cfg)


if __name__ == "__main__":
    main()
