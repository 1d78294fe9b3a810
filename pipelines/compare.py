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
from typing import Any

from tripwire.common.config import load_yaml
from tripwire.evaluation.checkpoint_comparison import compare_checkpoints
from tripwire.evaluation.config import CompareJob, EvalConfig


def say(line: str) -> None:
    print(line, flush=True)


def make_job(baseline: str, candidate: str, goldens: list[str], out: str, baseline_policy: str | None = None,
             candidate_policy: str | None = None, gate: str | None = None, catalogue: str | None = None,
             config: str | None = None) -> CompareJob:
    """The job the command line describes, validated (``config``: an evaluation config YAML)."""
    settings = load_yaml(EvalConfig, config) if config else EvalConfig()
    return CompareJob(baseline=baseline, candidate=candidate, goldens=list(goldens), out=out,
                      baseline_policy=baseline_policy, candidate_policy=candidate_policy, gate=gate,
                      catalogue=catalogue, config=settings)


def run(job: CompareJob) -> dict[str, Any]:
    """Compares the two sides on every golden set, printing the summary; returns the report (with the gate's
    verdict when given)."""
    report = compare_checkpoints(job, say)
    print_summary(report)
    say(f"[compare] done in {report['wall_s']:.1f}s: {os.path.join(job.out, 'metrics.json')}, "
        f"report {os.path.join(job.out, 'report.html')}")
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
