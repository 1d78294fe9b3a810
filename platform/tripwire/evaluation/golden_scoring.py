"""Scoring a golden set: verify it, score it with the scan (kept under the job's output, keyed by model, policy
and set content, so running again resumes or reuses it) and join its labels with the results. Evaluation,
threshold tuning and checkpoint comparison all start here."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import time
from typing import Any

from tripwire.common.config import to_dict
from tripwire.common.progress import Say
from tripwire.evaluation.config import EvalJob
from tripwire.evaluation.data import join, read_labels, read_scored
from tripwire.evaluation.golden import GoldenSet, resolve, verify
from tripwire.evaluation.metrics import EvalArrays
from tripwire.model.checkpoint import CheckpointManifest
from tripwire.policy import SEVERE_ACTIONS, Policy
from tripwire.scan.config import ScanJob
from tripwire.scan.job import execute as execute_scan
from tripwire.scan.job import validate as validate_scan

logger = logging.getLogger(__name__)


def scan_key(checkpoint: CheckpointManifest, policy: Policy, golden: GoldenSet) -> str:
    """What a scoring scan depends on: a different model, policy or set content scans anew."""
    text = json.dumps([checkpoint.version, checkpoint.uri, to_dict(policy), golden.sha256], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def policy_thresholds(policy: Policy, categories: list[str]) -> dict[str, dict[str, float | None]]:
    return {c: {a.label: getattr(policy.categories[c], a.label) for a in SEVERE_ACTIONS}
            for c in categories if c in policy.categories}


def score_golden(job: EvalJob, say: Say = logger.info) -> tuple[dict[str, Any], EvalArrays, list[str], Policy]:
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
    say(f"[evaluate] {golden.ref}: {len(labels.ids)} labelled items ({', '.join(golden.categories)}); "
        f"model {checkpoint.version}, policy {policy.version}")
    started = time.perf_counter()
    scan = execute_scan(scan_job, checkpoint, policy, say)
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
