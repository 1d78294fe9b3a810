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
from tripwire.evaluation.config import CompareJob, EvalJob
from tripwire.evaluation.gate import GateConfig, apply_gate
from tripwire.evaluation.golden_scoring import score_golden
from tripwire.evaluation.report import write_report

logger = logging.getLogger(__name__)


def compare_checkpoints(job: CompareJob, say: Say = logger.info) -> dict[str, Any]:
    """Compares the two sides on every golden set; writes ``metrics.json`` and ``report.html`` under ``out`` and
    returns the report (with the gate's verdict when given)."""
    config = job.config
    gate = load_yaml(GateConfig, job.gate) if job.gate else None  # a bad gate fails before anything runs
    started = time.perf_counter()
    sides: dict[str, dict] = {}
    sets = {}
    for golden in job.goldens:
        scored = {}
        for side, checkpoint, policy in (("baseline", job.baseline, job.baseline_policy),
                                         ("candidate", job.candidate, job.candidate_policy)):
            side_job = EvalJob(checkpoint=checkpoint, golden=golden, policy=policy, catalogue=job.catalogue,
                               out=os.path.join(job.out, side, golden.replace("@", "-")), config=config)
            header, arrays, categories, _ = score_golden(side_job, say)
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
        report["gate"] = {**apply_gate(gate, report), "config": job.gate}
    report["wall_s"] = round(time.perf_counter() - started, 2)
    write_report(job.out, report)
    return report
