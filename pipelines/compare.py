"""Candidate vs. baseline on the same golden sets and items, and the promotion gate.

    tripwire compare --baseline runs/prod/model --candidate runs/demo/model --golden synthetic-heldout \\
                     [--golden olid-test] [--baseline-policy P] [--candidate-policy P] \\
                     [--gate pipelines/configs/gate.yaml] --out runs/compare/demo

Each side is scored by the same code as ``tripwire evaluate`` (scans kept under ``<out>/<side>/<set>/``);
deltas carry paired-bootstrap intervals; ``<out>/metrics.json`` and ``report.html`` hold the comparison
and the gate's verdict. The command exits 1 when the gate fails, naming the failing bars.
"""

from __future__ import annotations

import os
import time
from typing import Any

from pipelines.evaluate import score_golden, write_report
from tripwire.evaluation.comparison import align, compare_arrays, compare_slices
from tripwire.common.config import ConfigError, load_yaml, to_dict
from tripwire.evaluation.config import EvalConfig, EvalJob
from tripwire.evaluation.gate import GateConfig, apply_gate


def run(baseline: str, candidate: str, goldens: list[str], out: str, baseline_policy: str | None = None,
        candidate_policy: str | None = None, gate_path: str | None = None, catalogue: str | None = None,
        config: EvalConfig | None = None) -> dict[str, Any]:
    """Compares the two sides on every golden set; returns the report (with the gate's verdict when given)."""
    config = config or EvalConfig()
    gate = load_yaml(GateConfig, gate_path) if gate_path else None  # a bad gate fails before anything runs
    if not goldens:
        raise ConfigError("--golden: name at least one golden set")
    started = time.perf_counter()
    sides: dict[str, dict] = {}
    sets = {}
    for golden in goldens:
        scored = {}
        for side, checkpoint, policy in (("baseline", baseline, baseline_policy), ("candidate", candidate, candidate_policy)):
            job = EvalJob(checkpoint=checkpoint, golden=golden, out=os.path.join(out, side, golden.replace("@", "-")),
                          policy=policy, catalogue=catalogue, config=config)
            header, arrays, categories, _ = score_golden(job)
            sides[side] = {"checkpoint": header["checkpoint"], "model_version": header["model_version"],
                           "policy_version": header["policy_version"]}
            scored[side] = (header, arrays, categories)
        (header, a, categories), (_, b, categories_b) = scored["baseline"], scored["candidate"]
        if categories != categories_b:
            raise ConfigError(f"the two checkpoints score different categories ({categories} vs {categories_b})")
        a, b = align(a, b)
        args = (categories, config.positive_level, config.target_precision, config.bootstrap)
        print(f"[compare] {golden}: {len(a)} items scored by both; paired bootstrap "
              f"({config.bootstrap.replicates} resamples)", flush=True)
        sets[header["golden"]["name"]] = {
            "golden": header["golden"], **compare_arrays(a, b, *args),
            "slices": compare_slices(a, b, *args, config.slices, config.min_slice_items, config.max_slice_values,
                                     config.min_slice_positives, config.min_slice_negatives)}
    report = {"kind": "comparison", "schema_version": 1, **sides, "bootstrap": to_dict(config.bootstrap),
              "target_precision": config.target_precision, "positive_action": config.positive_action,
              "sets": sets, "gate": None}
    if gate is not None:
        report["gate"] = {**apply_gate(gate, report), "config": gate_path}
    report["wall_s"] = round(time.perf_counter() - started, 2)
    metrics_path, html_path = write_report(out, report)
    print_summary(report)
    print(f"[compare] done in {report['wall_s']:.1f}s: {metrics_path}, report {html_path}", flush=True)
    return report


def print_summary(report: dict[str, Any]) -> None:
    for name, result in report["sets"].items():
        regressions = [f"{c}.{m}" for c, metrics in result["categories"].items()
                       for m, e in metrics.items() if e["regression"]]
        macro = result["macro"]["pr_auc"]
        delta = "n/a" if macro["delta"] is None else f"{macro['delta']:+.4f}"
        print(f"[compare]   {name}: macro PR-AUC delta {delta} {macro['ci']}; "
              f"regressions: {', '.join(regressions) or 'none'}", flush=True)
    gate = report["gate"]
    if gate is not None:
        verdict = "PASSED" if gate["passed"] else "FAILED"
        print(f"[compare] gate {verdict}", flush=True)
        for bar in gate["bars"]:
            if not bar["passed"]:
                worst = ", ".join(f"{f['where']} {f['reason']}" if f["value"] is None else
                                  f"{f['where']} {f['value']:+.4f} (limit {f['limit']:+.4f})"
                                  for f in bar["failures"][:5])
                print(f"[compare]   failed: {bar['name']}: {worst}", flush=True)
