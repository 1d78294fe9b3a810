"""Evaluate a checkpoint (and policy) on a registered golden set: the scan's Ray Data pipeline scores it
through the moderation core, then metrics with bootstrap intervals, per category, slice, macro and micro.

    tripwire evaluate --checkpoint runs/demo/model --golden synthetic-heldout [--policy FILE] --out runs/eval/demo

Writes ``<out>/metrics.json`` (stable keys), ``<out>/report.html`` (plots embedded) and keeps the scoring
scan under ``<out>/scan-<key>/`` (keyed by model, policy and set content), so running again resumes or
reuses it instead of scoring again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import time
from typing import Any

from pipelines.scan import execute as execute_scan
from pipelines.scan import validate as validate_scan
from tripwire.model.checkpoint import CheckpointManifest
from tripwire.common.config import ConfigError, from_dict, load_yaml, to_dict
from tripwire.evaluation.config import EvalConfig, EvalJob
from tripwire.evaluation.data import join, read_labels, read_scored
from tripwire.evaluation.metrics import EvalArrays, curves
from tripwire.evaluation.slices import measure
from tripwire.evaluation.golden import GoldenSet, resolve, verify
from tripwire.policy import SEVERE_ACTIONS, Policy
from tripwire.scan.config import ScanJob


def make_job(checkpoint: str, golden: str, out: str, policy: str | None = None, catalogue: str | None = None,
             config: str | None = None) -> EvalJob:
    """The job the command line describes, validated (``config``: an evaluation config YAML)."""
    settings = load_yaml(EvalConfig, config) if config else EvalConfig()
    return from_dict(EvalJob, {"checkpoint": checkpoint, "golden": golden, "out": out, "policy": policy,
                               "catalogue": catalogue, "config": to_dict(settings)}, "evaluate")


def scan_key(checkpoint: CheckpointManifest, policy: Policy, golden: GoldenSet) -> str:
    """What a scoring scan depends on: a different model, policy or set content scans anew."""
    text = json.dumps([checkpoint.version, checkpoint.uri, to_dict(policy), golden.sha256], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def policy_thresholds(policy: Policy, categories: list[str]) -> dict[str, dict[str, float | None]]:
    return {c: {a.label: getattr(policy.categories[c], a.label) for a in SEVERE_ACTIONS}
            for c in categories if c in policy.categories}


def score_golden(job: EvalJob) -> tuple[dict[str, Any], EvalArrays, list[str], Policy]:
    """Verifies the set, scores it with the scan (resuming one already there) and joins labels and results.

    Returns:
        The report's header fields, the aligned arrays, the model's categories and the policy applied.
    """
    golden = resolve(job.golden, job.catalogue)
    manifest = verify(golden, job.catalogue)
    scan_job = ScanJob(checkpoint=job.checkpoint, manifest=manifest, out="", policy=job.policy, scan=job.config.scan)
    checkpoint, policy = validate_scan(scan_job)
    categories = checkpoint.categories
    labels = read_labels(manifest, categories, job.config.slice_fields)
    scan_out = os.path.join(job.out, f"scan-{scan_key(checkpoint, policy, golden)}")
    scan_job = dataclasses.replace(scan_job, out=scan_out)
    print(f"[evaluate] {golden.ref}: {len(labels.ids)} labelled items ({', '.join(golden.categories)}); "
          f"model {checkpoint.version}, policy {policy.version}", flush=True)
    started = time.perf_counter()
    scan = execute_scan(scan_job, checkpoint, policy)
    arrays, missing = join(labels, read_scored(scan_out, categories), categories)
    header = {
        "kind": "evaluation", "schema_version": 1, "golden": to_dict(golden), "checkpoint": checkpoint.uri,
        "model_version": checkpoint.version, "policy_version": policy.version,
        "positive_action": job.config.positive_action, "target_precision": job.config.target_precision,
        "bootstrap": to_dict(job.config.bootstrap), "review_capacity": job.config.review_capacity,
        "slice_minimums": {"items": job.config.min_slice_items, "positives": job.config.min_slice_positives,
                           "negatives": job.config.min_slice_negatives},
        "scored": len(arrays), "quarantined": len(missing) + labels.unreadable,
        "quarantine_reasons": scan["quarantine_reasons"], "scoring_wall_s": round(time.perf_counter() - started, 2),
        "scan": scan_out}
    return header, arrays, categories, policy


def write_report(out: str, report: dict[str, Any]) -> tuple[str, str]:
    """``metrics.json`` and ``report.html`` under ``out``; returns their paths."""
    from tripwire.evaluation.report import render_comparison_html, render_evaluation_html

    os.makedirs(out, exist_ok=True)
    metrics_path, html_path = os.path.join(out, "metrics.json"), os.path.join(out, "report.html")
    with open(metrics_path, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1, allow_nan=False)
    render = render_comparison_html if report["kind"] == "comparison" else render_evaluation_html
    with open(html_path, "w", encoding="utf-8") as handle:
        handle.write(render(report))
    return metrics_path, html_path


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
    header, arrays, categories, policy = score_golden(job)
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
