"""Evaluate a checkpoint (and policy) on a registered golden set: the scan's Ray Data pipeline scores it
through the moderation core, then metrics with bootstrap intervals, per category, slice, macro and micro.

    tripwire evaluate --checkpoint runs/demo/model --golden synthetic-heldout [--policy FILE] --out runs/eval/demo

Writes ``<out>/metrics.json`` (stable keys), ``<out>/report.html`` (plots embedded) and keeps the scoring
scan under ``<out>/scan-<key>/`` (keyed by model, policy and set content), so running again resumes or
reuses it instead of scoring again.
"""

from __future__ import annotations

import time
from typing import Any

from tripwire.common.config import ConfigError, from_dict, load_yaml, to_dict
from tripwire.evaluation.config import EvalConfig, EvalJob
from tripwire.evaluation.golden_scoring import policy_thresholds, score_golden
from tripwire.evaluation.metrics import curves
from tripwire.evaluation.report import write_report
from tripwire.evaluation.slices import measure


def say(line: str) -> None:
    print(line, flush=True)


def make_job(checkpoint: str, golden: str, out: str, policy: str | None = None, catalogue: str | None = None,
             config: str | None = None) -> EvalJob:
    """The job the command line describes, validated (``config``: an evaluation config YAML)."""
    settings = load_yaml(EvalConfig, config) if config else EvalConfig()
    return from_dict(EvalJob, {"checkpoint": checkpoint, "golden": golden, "out": out, "policy": policy,
                               "catalogue": catalogue, "config": to_dict(settings)}, "evaluate")


def _fmt(estimate: dict) -> str:
    value, (lo, hi) = estimate["value"], estimate["ci"]
    if value is None:
        return "n/a"
    if estimate.get("method") == "not estimable":
        return f"{value:.3f} [not estimable]"
    return f"{value:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{value:.3f}"


def print_summary(report: dict[str, Any]) -> None:
    overall = report["overall"]
    target = report["target_precision"]
    for category, entry in overall["categories"].items():
        m = entry["metrics"]
        print(f"[evaluate]   {category:24s} n={entry['labelled']:<6d} pos={entry['positives']:<5d} "
              f"F1@policy {_fmt(m['f1'])}  2-class macro-F1 {_fmt(m['class_macro_f1'])}  "
              f"recall@P{target:g} {_fmt(m['recall_at_precision'])}  PR-AUC {_fmt(m['pr_auc'])}", flush=True)
    if overall["unlabelled_categories"]:
        print(f"[evaluate]   not labelled by this set: {', '.join(overall['unlabelled_categories'])}", flush=True)
    small = [name for name, s in report["slices"].items() if s["too_small"]]
    cells = sum(1 for s in report["slices"].values() if not s["too_small"]
                for e in s["categories"].values() if e.get("too_small"))
    print(f"[evaluate]   macro F1 {_fmt(overall['macro']['f1'])}, macro PR-AUC {_fmt(overall['macro']['pr_auc'])}; "
          f"{len(report['slices']) - len(small)} slices measured, {len(small)} too small "
          f"(and {cells} slice categories short of positives or negatives)", flush=True)
    load, capacity = overall["review_load"]["overall"], report.get("review_capacity")
    within = "" if capacity is None else (f" (capacity {100 * capacity:g}%: "
                                          f"{'OVER' if load['value'] > capacity else 'within'})")
    lo, hi = load["ci"]
    interval = f" [{100 * lo:.1f}%, {100 * hi:.1f}%]" if lo is not None else ""
    print(f"[evaluate]   review load {100 * load['value']:.1f}%{interval} of items{within}", flush=True)


def run(job: EvalJob) -> dict[str, Any]:
    """Runs the evaluation; returns the report (also written to ``<out>/metrics.json`` and ``report.html``)."""
    started = time.perf_counter()
    header, arrays, categories, policy = score_golden(job, say)
    if not len(arrays):
        raise ConfigError(f"golden set {job.golden}: no item could be scored ({header['quarantined']} quarantined: "
                          f"{header['quarantine_reasons']})")
    print(f"[evaluate] metrics with {job.config.bootstrap.replicates} bootstrap resamples "
          f"({len(job.config.slices)} slice specs)", flush=True)
    report = {**header, **measure(arrays, categories, job.config, policy_thresholds(policy, categories)), "curves": curves(arrays, categories),
              "gate": None}
    report["wall_s"] = round(time.perf_counter() - started, 2)
    metrics_path, html_path = write_report(job.out, report)
    print_summary(report)
    print(f"[evaluate] done in {report['wall_s']:.1f}s: {metrics_path}, report {html_path}", flush=True)
    return report
