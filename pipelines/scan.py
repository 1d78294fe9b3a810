"""Proactive catalogue scan: manifest -> Ray Data (decode + preprocess in CPU tasks) -> the moderation core in
a model actor pool -> Parquet results partitioned by action, review candidates, quarantine and a summary.

    tripwire scan --checkpoint runs/demo/model --manifest data/catalogue.jsonl --out runs/scan/catalogue \\
                  [--policy policy.yaml] [--market DE] [--config pipelines/configs/scan.yaml]

(``tripwire`` is :mod:`entrypoints.cli`; under ``ray job submit`` use ``python -m entrypoints.cli scan ...``.)

Nothing is materialised whole: the manifest streams through both stages and the driver holds at most
``rows_per_file`` results before writing them. A scan killed at any point and started again with the same
``--out`` skips what it already wrote (see :mod:`tripwire.scan.output`): the manifest's items whose ids are
not in the output are scored, so a grown catalogue scanned again into its output scores just the new ones.
An output written with another checkpoint, policy, manifest or market is refused (``--restart`` starts it
over). The same entrypoint runs under ``ray job submit`` (it joins the cluster named by ``RAY_ADDRESS``).
"""

from __future__ import annotations

from tripwire.common.config import from_dict, load_yaml, to_dict
from tripwire.compliance.logs import open_log
from tripwire.compliance.scan_log import log_scan
from tripwire.model.checkpoint import CheckpointManifest
from tripwire.policy import Policy
from tripwire.scan import job as scan_job
from tripwire.scan.config import ScanConfig, ScanJob
from tripwire.scan.output import write_summary
from tripwire.storage.sql import redacted_url


def say(line: str) -> None:
    print(line, flush=True)


def make_job(checkpoint: str, manifest: str, out: str, policy: str | None = None, market: str | None = None,
             config: str | None = None, decision_log: str | None = None, restart: bool = False) -> ScanJob:
    """The job the command line describes, validated (``config``: a scan config YAML, default settings if None)."""
    scan = load_yaml(ScanConfig, config) if config else ScanConfig()
    return from_dict(ScanJob, {"checkpoint": checkpoint, "manifest": manifest, "out": out, "policy": policy,
                               "market": market.upper() if market else None, "scan": to_dict(scan),
                               "decision_log": decision_log, "restart": restart}, "scan")


def validate(job: ScanJob) -> tuple[CheckpointManifest, Policy]:
    """Everything that can be checked before Ray starts: the checkpoint, the manifest, the policy."""
    return scan_job.validate(job)


def execute(job: ScanJob, checkpoint: CheckpointManifest, policy: Policy) -> dict:
    """Runs a scan already checked by :func:`validate`, printing its progress; then logs its enforcement
    decisions when the job names a decision log."""
    report = scan_job.execute(job, checkpoint, policy, say=say)
    if job.decision_log:
        log = open_log(job.decision_log)
        try:
            report["decisions_logged"] = log_scan(job.out, log, policy)
        finally:
            log.close()
        write_summary(job.out, report)
        say(f"[scan] {report['decisions_logged']} new enforcement decision(s) logged to {redacted_url(job.decision_log)}")
    return report


def run(job: ScanJob) -> dict:
    """Runs the scan; returns its summary (also written to ``<out>/summary.json``)."""
    return execute(job, *validate(job))
