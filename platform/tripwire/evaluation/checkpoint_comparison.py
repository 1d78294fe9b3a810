"""Candidate vs. baseline checkpoint on the same golden sets and items: paired-bootstrap deltas per category,
macro and slice, and the promotion gate's verdict. Each side is scored as an evaluation scores it."""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from tripwire.common.config import ConfigError, load_yaml, to_dict
from tripwire.common.progress import Say
from tripwire.evaluation.comparison import align, compare_arrays, compare_slices
from tripwire.evaluation.config import EvalConfig, EvalJob
from tripwire.evaluation.gate import GateConfig, apply_gate
from tripwire.evaluation.golden_scoring import score_golden
from tripwire.evaluation.report import write_report

logger = logging.getLogger(__name__)


def compare_checkpoints(baseline: str, candidate: str, goldens: list[str], out: str, baseline_policy: str | None = None,
        candidate_policy: str | None = None, gate_path: str | None = None, catalogue: str | None = None,
        config: EvalConfig | None = None, say: Say = logger.info) -> dict[str, Any]:
    """Compares the two sides on every golden set; writes ``metrics.json`` and ``report.html`` under ``out`` and
    returns the report (with the gate's verdict when given)."""
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
            header, arrays, categories, _ = score_golden(job, say)
            sides[side] = {"checkpoint": header["checkpoint"], "model_version": header["model_version"],
                           "policy_version": header["policy_version"]}
            scored[side] = (header, arrays, categories)
        (header, a, categories), (_, b, categories_b) = scored["baseline"], scored["candidate"]
        if categories != categories_b:
            raise ConfigError(f"the two checkpoints score different categories ({categories} vs {categories_b})")
        a, b = align(a, b)
        args = (categories, config.positive_level, config.target_precision, config.bootstrap)
        say(f"[compare] {golden}: {len(a)} items scored by both; paired bootstrap "
            f"({config.bootstrap.replicates} resamples)")
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
    write_report(out, report)
    return report
