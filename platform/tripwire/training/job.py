"""The training job: a manifest -> Ray Data (decode + preprocess, streamed or cached) -> Ray Train's
TorchTrainer running :func:`tripwire.training.loop.train_loop_per_worker` -> the best checkpoint, exported with
its split and a summary. ``pipelines/train.py`` runs it from a config; the improvement loop retrains with it.
It joins the running cluster when ``RAY_ADDRESS`` is set.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tripwire.common.config import ConfigError, to_dict
from tripwire.common.progress import Say
from tripwire.data.dataset import LIGHT_TASK_CPUS, quiet_data_progress, read_manifest_dataset
from tripwire.data.quarantine import check_quarantine, quarantine_reasons
from tripwire.data.sample import fingerprint_file, manifest_base
from tripwire.data.splits import assign_splits, in_split, split_columns, split_keys, write_splits
from tripwire.model.checkpoint import CheckpointManifest
from tripwire.policy import Policy, Taxonomy
from tripwire.training.cache import bytes_per_row, decide_cache
from tripwire.training.config import TrainConfig, TrainLoopConfig
from tripwire.training.ingest import PreprocessBatch
from tripwire.training.loop import label_pos_weight, train_loop_per_worker
from tripwire.training.pictures import read_text_in_pictures

logger = logging.getLogger(__name__)


def ensure_corpus(cfg: TrainConfig, taxonomy: Taxonomy, say: Say = logger.info) -> None:
    """Generates the synthetic corpus at the configured manifest path when asked to and missing."""
    if Path(cfg.data.manifest).exists() or cfg.data.synthetic is None:
        return
    from tripwire.data.synthetic import CorpusSpec, generate_corpus

    started = time.perf_counter()
    # The corpus marks this share of its items as held out (meta.split = val: unseen signature variants).
    spec = CorpusSpec(num_items=cfg.data.synthetic.num_items, seed=cfg.data.synthetic.seed,
                      heldout_fraction=cfg.data.validation_fraction)
    say(f"[corpus] generating {spec.num_items} synthetic items at {Path(cfg.data.manifest).parent}")

    def progress(done: int, total: int) -> None:
        if done % 500 == 0 or done == total:
            elapsed = time.perf_counter() - started
            say(f"[corpus] {done}/{total} items, {elapsed:.0f}s"
                + (f", about {elapsed * (total - done) / done:.0f}s to go" if done < total else ""))

    generate_corpus(Path(cfg.data.manifest).parent, spec, taxonomy, manifest_name=Path(cfg.data.manifest).name,
                    progress=progress)
    say(f"[corpus] done in {time.perf_counter() - started:.1f}s")


def plan_splits(raw, taxonomy: Taxonomy, cfg: TrainConfig) -> tuple[dict[str, str], np.ndarray, int]:
    """One light pass over ids, group keys and labels (no media).

    Returns:
        The split of every row, the label matrix of the training rows (for ``pos_weight``) and the number
        of manifest rows (unparseable ones included).
    """
    names, group_by, split_by = taxonomy.names, cfg.data.group_by, cfg.data.split_by
    columns = raw.map_batches(lambda batch: split_columns(list(batch["record"]), names, group_by, split_by),
                              batch_format="numpy", num_cpus=LIGHT_TASK_CPUS).take_all()
    assignment, train_labels = assign_rows(columns, len(names), cfg.data.split_fractions(), cfg.data.split_seed)
    return assignment, train_labels, len(columns)


def assign_rows(columns: list[dict], num_categories: int, fractions: dict[str, float],
                seed: int) -> tuple[dict[str, str], np.ndarray]:
    """Splits the rows :func:`~tripwire.data.splits.split_columns` described: a row that names its split
    (``data.split_by``) keeps it, the others are split by the fractions.

    Returns:
        id -> split, and the label matrix of every training row (for ``pos_weight``).
    """
    parsed = [r for r in columns if r["parsed"]]
    assignment = {str(r["id"]): str(r["preset"]) for r in parsed if r.get("preset")}
    rows = [(str(r["id"]), str(r["group"]), np.asarray(r["labels"])) for r in parsed if not r.get("preset")]
    assignment.update(assign_splits(rows, fractions, seed))
    train_labels = np.asarray([r["labels"] for r in parsed if assignment.get(str(r["id"])) == "train"],
                              dtype=np.float32).reshape(-1, num_categories)
    return assignment, train_labels


def build_datasets(raw, cfg: TrainConfig, taxonomy: Taxonomy, assignment: dict[str, str], quarantine_dir: str):
    """The train/validation datasets: rows filtered by their planned split, then decoded + preprocessed in
    ``map_batches`` (bounded actor pool)."""
    import ray
    from ray.data import ActorPoolStrategy

    # Membership tables go through the object store once, not inside every task's closure.
    val_keys, test_keys = ray.put(split_keys(assignment, "val")), ray.put(split_keys(assignment, "test"))
    udf_kwargs = {"preprocessing": to_dict(cfg.model.preprocessing), "modalities": list(cfg.model.encoders),
                  "categories": taxonomy.names, "base_uri": manifest_base(cfg.data.manifest),
                  "quarantine_dir": quarantine_dir}

    def keep(batch, name, val_ref, test_ref):
        ids = list(batch["id"])
        in_val, in_test = in_split(ids, ray.get(val_ref)), in_split(ids, ray.get(test_ref))
        mask = {"val": in_val, "test": in_test, "train": ~(in_val | in_test)}[name]
        return {column: values[mask] for column, values in batch.items()}

    def split(name):
        rows = raw.map_batches(keep, fn_kwargs={"name": name, "val_ref": val_keys, "test_ref": test_keys},
                               batch_format="numpy", num_cpus=LIGHT_TASK_CPUS)
        return rows.map_batches(
            PreprocessBatch, fn_constructor_kwargs=udf_kwargs, batch_size=cfg.data.preprocess_batch_size,
            batch_format="numpy", num_cpus=cfg.data.preprocess_cpus, memory=cfg.data.preprocess_memory_mb * 2**20,
            compute=ActorPoolStrategy(min_size=1, max_size=cfg.data.preprocess_actors))

    return split("train"), split("val")


def ingest_options(ordered: bool):
    """Ray Train's ingest defaults, with ordered execution when asked (no reordering between workers)."""
    import warnings

    from ray.train import DataConfig

    with warnings.catch_warnings():  # Ray's own defaults pass an option Ray deprecates
        warnings.filterwarnings("ignore", message=".*exclude_resources.*deprecated")
        options = DataConfig.default_ingest_options()
    options.preserve_order = ordered
    return options


def materialize(dataset, ordered: bool, say: Say = logger.info):
    """Preprocesses ``dataset`` once into Ray's object store (see :mod:`tripwire.training.cache`); in block order
    when ingest is ordered, so a cached run is as reproducible as a streaming one."""
    dataset.context.execution_options.preserve_order = ordered
    started = time.perf_counter()
    cached = dataset.materialize()
    say(f"[data] cached {cached.count()} preprocessed rows ({cached.size_bytes() / 2**20:.1f} MiB) in "
        f"{time.perf_counter() - started:.1f}s")
    return cached


def run(cfg: TrainConfig, callbacks: Sequence[Any] = (), say: Say = logger.info) -> dict:
    """Runs the job; returns the summary (also written as ``summary.json`` beside the exported model).

    ``callbacks``: ``ray.train.UserCallback`` instances for the run's controller (they see each report).
    """
    import ray
    from ray.train import CheckpointConfig, DataConfig, FailureConfig, LoggingConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    taxonomy = Taxonomy.load(cfg.taxonomy)
    policy = Policy.load(cfg.policy)
    policy.check_taxonomy(taxonomy)
    if cfg.fit.init_from:  # a warm start must score the same categories (the weights' shapes are checked on load)
        previous = CheckpointManifest.read(cfg.fit.init_from)
        if previous.categories != taxonomy.names:
            raise ConfigError(f"fit.init_from: {cfg.fit.init_from} scores {previous.categories}, "
                              f"this job's taxonomy {taxonomy.names}")
    ensure_corpus(cfg, taxonomy, say)
    if not ray.is_initialized():
        ray.init(address=os.environ.get("RAY_ADDRESS"), log_to_driver=True)
    quiet_data_progress()
    started = time.perf_counter()
    quarantine_dir = f"{cfg.storage_path}/{cfg.run_name}/quarantine"
    raw = read_manifest_dataset(cfg.data.manifest)
    assignment, train_labels, num_rows = plan_splits(raw, taxonomy, cfg)
    splits_uri = f"{cfg.storage_path}/{cfg.run_name}/splits.parquet"
    write_splits(assignment, splits_uri)
    counts = {name: sum(1 for s in assignment.values() if s == name) for name in ("train", "val", "test")}
    say(f"[data] {num_rows} rows -> {counts} (group_by={cfg.data.group_by}"
        + (f", split_by={cfg.data.split_by}" if cfg.data.split_by else "") + f"); split -> {splits_uri}")
    read_from_pictures = None
    if cfg.data.text_in_pictures is not None:  # OCR once, before the splits are preprocessed (every epoch)
        raw, read_from_pictures = read_text_in_pictures(raw, cfg, manifest_base(cfg.data.manifest), quarantine_dir,
                                                        num_rows, say)
    train_ds, val_ds = build_datasets(raw, cfg, taxonomy, assignment, quarantine_dir)
    cache = decide_cache(cfg.data.cache_preprocessed, counts["train"] + counts["val"], bytes_per_row(cfg.model),
                         cfg.data.cache_budget_mb)
    say(f"[data] {'caching preprocessed rows in the object store' if cache.cache else 'streaming preprocessing'}"
        f" ({cache.reason})")
    if cache.cache:
        train_ds, val_ds = materialize(train_ds, cfg.data.ordered, say), materialize(val_ds, cfg.data.ordered, say)
        check_quarantine(quarantine_dir, num_rows, cfg.data.max_quarantine_fraction)  # fail before training
    loop_config = TrainLoopConfig(
        train=cfg, taxonomy=taxonomy, policy_version=policy.version,
        data_fingerprint=fingerprint_file(cfg.data.manifest),
        pos_weight=label_pos_weight(train_labels) if cfg.fit.pos_weight else None,
        quarantine_dir=quarantine_dir, num_rows=num_rows)
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config=to_dict(loop_config),  # plain data to the workers; they parse it back (from_dict)
        scaling_config=ScalingConfig(num_workers=cfg.fit.num_workers, use_gpu=cfg.fit.use_gpu,
                                     resources_per_worker={"CPU": cfg.fit.cpus_per_worker}),
        run_config=RunConfig(
            name=cfg.run_name, storage_path=cfg.storage_path,
            failure_config=FailureConfig(max_failures=cfg.fit.max_failures), callbacks=list(callbacks),
            # Ray Train's own INFO lines (worker group start, process group, DDP wrapping) stay in its log
            # files; the console gets its warnings and errors, and the job's "[train]" lines.
            logging_config=LoggingConfig(log_level="WARNING"),
            checkpoint_config=CheckpointConfig(num_to_keep=cfg.fit.num_to_keep,
                                               checkpoint_score_attribute="val/macro/roc_auc",
                                               checkpoint_score_order="max"),
        ),
        datasets={"train": train_ds, "val": val_ds},
        # Ordered execution makes each worker's shard and batch order a function of the data alone, so
        # two runs with the same seed give the same metrics.
        dataset_config=DataConfig(execution_options=ingest_options(cfg.data.ordered)),
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    quarantined = check_quarantine(quarantine_dir, num_rows, cfg.data.max_quarantine_fraction)
    best_checkpoint, best_metrics = max(result.best_checkpoints, key=lambda pair: pair[1].get("val/macro/roc_auc", -1))
    export = Path(cfg.export_dir)
    if export.exists():
        shutil.rmtree(export)
    with best_checkpoint.as_directory() as directory:
        shutil.copytree(directory, export, ignore=shutil.ignore_patterns("train_state*"))
    write_splits(assignment, str(export / "splits.parquet"))
    manifest = CheckpointManifest.read(export)
    summary = {
        "run_name": cfg.run_name,
        "model_dir": str(export),
        "best_epoch": manifest.training.epoch,
        "resumed_from_epoch": manifest.training.resumed_from_epoch,
        "wall_seconds": round(time.perf_counter() - started, 1),
        "train_samples_per_s": round(float((result.metrics or {}).get("samples_per_s", 0.0)), 2),  # last epoch
        "val_metrics": manifest.metrics,
        "quarantined": len(quarantined),
        "quarantine_reasons": quarantine_reasons(quarantined),
        "quarantine_dir": quarantine_dir,
        **({"read_from_pictures": read_from_pictures} if read_from_pictures is not None else {}),
    }
    (export / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary
