"""Choose per-category (and per-market) thresholds on a validation golden set for stated targets, and write
them as a new policy version with the evidence inside it (the old policy file is left untouched).

    tripwire thresholds --checkpoint runs/demo/model --golden synthetic-heldout --out policy.tuned.yaml \\
                        [--policy FILE] [--target restrict:precision=0.9 ...] [--per-market] [--version V]

Scores come from the same scoring scan as ``tripwire evaluate`` (kept under ``--work``). Review thresholds
are held to the evaluation config's ``review_capacity`` (a share of items), and the policy's evidence records
the review load they imply; market overrides keep their relation to the tuned base thresholds. The new policy
loads into a running Serve app through its live reconfiguration (``user_config: {policy_path: ...}``).
"""

from __future__ import annotations

import os
from typing import Any

from tripwire.common.config import ConfigError, load_yaml, to_dict
from tripwire.evaluation.config import EvalConfig, EvalJob, ThresholdsJob
from tripwire.evaluation.golden_scoring import score_golden
from tripwire.evaluation.thresholds import (parse_targets, policy_yaml,
                                            recommend, skipped_categories)


def say(line: str) -> None:
    print(line, flush=True)


def make_job(checkpoint: str, golden: str, out: str, work: str, policy: str | None = None,
             targets: list[str] | None = None, per_market: bool = False, version: str | None = None,
             min_positives: int | None = None, catalogue: str | None = None,
             config: str | None = None) -> ThresholdsJob:
    """The job the command line describes (defaults: :mod:`tripwire.evaluation.thresholds`' own, the ones
    training uses); ``config``: an evaluation config YAML."""
    defaults = {k: v for k, v in (("targets", targets), ("min_positives", min_positives)) if v}
    return ThresholdsJob(checkpoint=checkpoint, golden=golden, out=out, work=work, policy=policy, per_market=per_market,
                         version=version, catalogue=catalogue,
                         config=load_yaml(EvalConfig, config) if config else EvalConfig(), **defaults)


def run(job: ThresholdsJob) -> dict[str, Any]:
    """Writes the tuned policy to ``out``; returns ``{"policy": out, "version", "evidence"}``."""
    parsed = parse_targets(job.targets)
    out, config = job.out, job.config
    if os.path.exists(out):
        raise ConfigError(f"--out: {out} exists; a tuned policy is a new file (the old one stays as it was)")
    header, arrays, categories, base = score_golden(EvalJob(checkpoint=job.checkpoint, golden=job.golden, out=job.work,
                                                            policy=job.policy, catalogue=job.catalogue, config=config),
                                                    say)
    if "market" not in arrays.fields and job.per_market:
        raise ConfigError("--per-market: the evaluation config's slices do not read the market field")
    source = {"chosen_on": f"golden set {header['golden']['name']}@{header['golden']['version']}",
              "golden_sha256": header["golden"]["sha256"], "model_version": header["model_version"],
              "items": len(arrays)}
    tuned = recommend(base, arrays.labels, arrays.scores, categories, parsed, source, version=job.version,
                      min_positives=job.min_positives, markets=arrays.fields["market"] if job.per_market else None,
                      bootstrap=config.bootstrap, review_capacity=config.review_capacity)
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        handle.write(policy_yaml(tuned))
    print(f"[thresholds] policy {tuned.version} (based on {base.version}) -> {out}", flush=True)
    for category, entry in tuned.evidence["categories"].items():
        for action, result in entry.get("actions", {}).items():
            if "threshold" in result:
                a = result["achieved"]
                print(f"[thresholds]   {category}.{action} = {result['threshold']:.4f} ({result['target']}): "
                      f"precision {a['precision']['value']} {a['precision']['ci']}, recall {a['recall']['value']} "
                      f"{a['recall']['ci']}", flush=True)
    for where, why in skipped_categories(tuned).items():
        print(f"[thresholds]   not chosen as targeted: {where}: {why}", flush=True)
    load = tuned.evidence["review_load"]
    capacity = "" if config.review_capacity is None else f" (capacity {100 * config.review_capacity:g}%)"
    print(f"[thresholds]   review load {100 * load['overall']:.1f}% of items{capacity}: "
          + ", ".join(f"{c} {100 * share:.1f}%" for c, share in load["categories"].items() if share), flush=True)
    return {"policy": out, "version": tuned.version, "evidence": to_dict(tuned)["evidence"]}
