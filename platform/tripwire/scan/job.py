"""The scan job: a manifest -> Ray Data (decode + preprocess in CPU tasks) -> the moderation core in a model
actor pool -> Parquet results partitioned by action, review candidates, quarantine and a summary.

Nothing is materialised whole: the manifest streams through both stages and the driver holds at most
``rows_per_file`` results before writing them. A scan started again with the same output skips what it
already wrote (:mod:`tripwire.scan.output`); an output written with another checkpoint, policy, manifest or
market is refused unless the job restarts it. ``pipelines/scan.py`` runs it from the command line; the
evaluation and the improvement loop run it as part of theirs.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import numpy as np

from tripwire.common.config import ConfigError, to_dict
from tripwire.common.progress import Say
from tripwire.data.dataset import LIGHT_TASK_CPUS, quiet_data_progress, read_manifest_dataset
from tripwire.data.sample import manifest_base
from tripwire.data.splits import id_keys, in_split
from tripwire.experts import picture_kinds
from tripwire.model.checkpoint import CheckpointManifest
from tripwire.policy import Policy
from tripwire.scan.config import ScanConfig, ScanJob
from tripwire.scan.output import (QUARANTINE, ScanSummary, ScanWriter, completed_ids, count_pending, prepare_output,
                                  write_summary)
from tripwire.scan.progress import ProgressWatch
from tripwire.scan.stages import ModerateBatch, prepare_batch

logger = logging.getLogger(__name__)

def count_rows(manifest: str) -> int:
    """The manifest's rows, read cheaply (Parquet metadata; JSONL lines streamed), for progress."""
    import fsspec

    if manifest.endswith(".parquet"):
        import pyarrow.parquet as pq

        fs, path = fsspec.core.url_to_fs(manifest)
        return sum(pq.ParquetFile(fs.open(f, "rb")).metadata.num_rows
                   for f in (fs.glob(f"{path}/**/*.parquet") if fs.isdir(path) else [path]))
    with fsspec.open(manifest, "r", encoding="utf-8") as handle:
        return sum(1 for line in handle if line.strip())


def written_with(job: ScanJob, checkpoint: CheckpointManifest, policy: Policy) -> dict:
    """What a scan's output records it was written with (:func:`tripwire.scan.output.prepare_output`)."""
    def sha256(data) -> str:
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()

    manifest = job.manifest if "://" in job.manifest else os.path.abspath(job.manifest)
    return {"checkpoint": {"version": checkpoint.version, "sha256": sha256(checkpoint.raw), "uri": checkpoint.uri},
            "policy": {"version": policy.version, "sha256": sha256(to_dict(policy))},
            "manifest": manifest, "market": job.market}


def check_manifest(manifest: str) -> None:
    """Fails fast, naming the problem, when ``manifest`` is missing or plainly not a manifest."""
    import fsspec

    fs, path = fsspec.core.url_to_fs(manifest)
    if not fs.exists(path):
        raise ConfigError(f"manifest: {manifest} does not exist")
    if manifest.endswith(".parquet"):
        import pyarrow.parquet as pq

        files = fs.glob(f"{path}/**/*.parquet") if fs.isdir(path) else [path]
        try:
            names = pq.ParquetFile(fs.open(files[0], "rb")).schema_arrow.names if files else []
        except Exception as exc:
            raise ConfigError(f"manifest: {manifest} is not a Parquet manifest: {exc}") from None
        if "id" not in names:
            raise ConfigError(f"manifest: {manifest} has no 'id' column (columns: {names})")
        return
    with fsspec.open(manifest, "r", encoding="utf-8", errors="replace") as handle:
        first = next((line for line in handle if line.strip()), None)
    try:
        row = json.loads(first) if first is not None else None
    except json.JSONDecodeError:
        row = None
    if not isinstance(row, dict) or "id" not in row:
        raise ConfigError(f"manifest: {manifest} is not a JSONL manifest (its first row is not an object with an 'id')")


def validate(job: ScanJob) -> tuple[CheckpointManifest, Policy]:
    """Everything that can be checked before Ray starts: the checkpoint, the manifest, the policy."""
    checkpoint = CheckpointManifest.read(job.checkpoint)
    check_manifest(job.manifest)
    return checkpoint, checkpoint.policy(job.policy)


def drop_done(batch: dict[str, np.ndarray], done_ref) -> dict[str, np.ndarray]:
    """Keeps the rows whose id a previous run of this scan did not finish (``done_ref``: their :func:`id_keys`)."""
    import ray

    keep = ~in_split(batch["id"], ray.get(done_ref))
    return {column: values[keep] for column, values in batch.items()}


def gpus_per_actor(config: ScanConfig) -> float:
    """The configured GPUs per model actor, or one when the cluster has GPUs and the config leaves it open."""
    import ray

    if config.gpus_per_actor is not None:
        return config.gpus_per_actor
    return 1.0 if ray.cluster_resources().get("GPU", 0) > 0 else 0.0


def build_dataset(job: ScanJob, checkpoint: CheckpointManifest, done: set[str]):
    """The lazy pipeline: read -> skip done -> decode + preprocess (tasks) -> moderate (actor pool)."""
    import ray

    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=False, logging_level="WARNING")
    quiet_data_progress()
    from ray.data import ActorPoolStrategy

    config = job.scan
    done_ref = ray.put(id_keys(done))
    rows = read_manifest_dataset(job.manifest).map_batches(
        drop_done, fn_kwargs={"done_ref": done_ref}, batch_format="numpy", num_cpus=LIGHT_TASK_CPUS)
    prepared = rows.map_batches(
        prepare_batch, batch_size=config.preprocess_batch_size, batch_format="numpy", num_cpus=config.preprocess_cpus,
        fn_kwargs={"preprocessing_json": json.dumps(to_dict(checkpoint.preprocessing())),
                   "modalities": tuple(checkpoint.modalities), "speech": "speech" in checkpoint.experts,
                   "pictures": bool(picture_kinds(checkpoint.experts)),
                   "base_uri": manifest_base(job.manifest),
                   "quarantine_dir": f"{job.out.rstrip('/')}/{QUARANTINE}", "market": job.market})
    return prepared.map_batches(
        ModerateBatch, fn_constructor_kwargs={"checkpoint": checkpoint.uri, "policy": job.policy, "out": job.out},
        batch_size=config.batch_size, batch_format="numpy", compute=ActorPoolStrategy(size=config.actors),
        num_cpus=config.cpus_per_actor, num_gpus=gpus_per_actor(config))


def scan_rows(tables, writer: ScanWriter, summary: ScanSummary, say: Say, job: ScanJob, total: int, already: int,
              started: float) -> None:
    """Writes and counts the results as they come, saying how far the scan has got every ``progress_every_s``."""
    last_progress = time.perf_counter()
    for table in tables:
        rows = table.to_pylist()
        writer.add(rows)
        summary.add(rows)
        now = time.perf_counter()
        if now - last_progress >= job.scan.progress_every_s:
            last_progress = now
            finished = already + summary.items
            rate = summary.items / (now - started)
            speed = f"{rate:.1f} items/s" if rate >= 1 else f"{60 * rate:.1f} items/min"  # long media: minutes each
            say(f"[scan] {finished}/{total} items ({100 * finished / max(total, 1):.1f}%), {speed}")


def execute(job: ScanJob, checkpoint: CheckpointManifest, policy: Policy, say: Say = logger.info) -> dict:
    """Runs a scan already checked by :func:`validate` (callers that validated it need not do so twice); its
    progress lines go to ``say``. Returns the summary (also written to ``<out>/summary.json``); the decision
    log, where the job names one, is written by the caller (:func:`tripwire.compliance.scan_log.log_scan`)."""
    started = time.perf_counter()
    prepare_output(job.out, written_with(job, checkpoint, policy), job.restart)
    done = completed_ids(job.out)
    if done:
        total, pending = count_pending(job.manifest, done)
    else:
        total = pending = count_rows(job.manifest)
    already = total - pending
    say(f"[scan] {total} items in {job.manifest}; {already} already done in {job.out}; "
        f"{job.scan.actors} model actor(s), batch {job.scan.batch_size}")
    writer = ScanWriter(job.out, checkpoint.categories, job.scan.rows_per_file)
    summary = ScanSummary(checkpoint.categories)
    # Every row already done (a finished scan run again): nothing to start the pipeline and its actors for.
    tables = build_dataset(job, checkpoint, done).iter_batches(batch_size=None, batch_format="pyarrow") \
        if pending else []
    watch = ProgressWatch(job.out, say, job.scan.progress_every_s) if pending else None
    try:
        scan_rows(tables, writer, summary, say, job, total, already, started)
    finally:
        if watch is not None:
            watch.close()
    writer.flush()
    wall = time.perf_counter() - started
    report = summary.report(job.out, total, already, wall, {
        "model_version": checkpoint.version, "policy_version": policy.version,
        "market": job.market, "out": job.out, "manifest": job.manifest, "config": to_dict(job.scan)})
    path = write_summary(job.out, report)
    reasons = f" {report['quarantine_reasons']}" if report["quarantine_reasons"] else ""
    say(f"[scan] done: {report['scored']} scored, {report['already_done']} already done, "
        f"{report['quarantined']} quarantined{reasons} in {wall:.1f}s ({report['items_per_s']} items/s); "
        f"actions {report['actions']}; summary -> {path}")
    return report
