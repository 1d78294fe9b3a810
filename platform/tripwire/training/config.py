"""Typed configs of a training job: the YAML file (:class:`TrainConfig`) and what each Ray Train worker gets
(:class:`TrainLoopConfig`).

Both are plain frozen dataclasses: :func:`tripwire.common.config.from_dict` validates them (errors name the field)
and :func:`tripwire.common.config.to_dict` turns them into the plain data that ships to Ray workers.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from tripwire.common.config import ConfigError
from tripwire.model.encoders import minilm_dir
from tripwire.model.safety_model import ModelConfig
from tripwire.policy import Taxonomy
from tripwire.evaluation.thresholds import (DEFAULT_MIN_POSITIVES, DEFAULT_REVIEW_CAPACITY, DEFAULT_TARGETS,
                                 check_review_capacity, parse_targets)


@dataclass(frozen=True)
class SyntheticSpec:
    """Generate the synthetic corpus at ``DataConfig.manifest`` when it does not exist yet."""

    num_items: int = 2400
    seed: int = 7


@dataclass(frozen=True)
class TextInPicturesConfig:
    """``data.text_in_pictures``: rows whose labels are about the words drawn in their pictures (screenshots of
    comments, captioned memes, rendered text) train the text model on the text the model's OCR expert reads in
    them, in a Ray Data actor pool before preprocessing (:mod:`tripwire.training.pictures`).

    Attributes:
        rows: which rows: ``all`` (every row with an image or a video) or ``meta.<field>`` (those whose field is
            true; the others train as they are).
        actors: OCR actors, each running the model's OCR engine (``model.experts.ocr``).
        cpus_per_actor: CPUs each reserves (match the engine's ``cpu_threads``).
        batch_size: rows per OCR batch.
    """

    rows: str = "all"
    actors: int = 1
    cpus_per_actor: float = 1.0
    batch_size: int = 8

    def __post_init__(self):
        if self.rows != "all" and not (self.rows.startswith("meta.") and len(self.rows) > 5):
            raise ConfigError(f"text_in_pictures.rows: {self.rows!r} must be 'all' or 'meta.<field>'")
        if self.actors < 1 or self.batch_size < 1 or self.cpus_per_actor <= 0:
            raise ConfigError(f"text_in_pictures: actors and batch_size must be at least 1 and cpus_per_actor "
                              f"positive, got {self.actors}, {self.batch_size}, {self.cpus_per_actor}")


@dataclass(frozen=True)
class DataConfig:
    """Where the corpus is and how it is split and preprocessed."""

    manifest: str = "data/synthetic/manifest.jsonl"
    synthetic: SyntheticSpec | None = None
    validation_fraction: float = 0.2
    test_fraction: float = 0.0  # held out: never trained or validated on; ids in splits.parquet
    split_seed: int = 0
    group_by: str | None = None  # None, "text" (near-duplicates) or "meta.<field>" (author, source, ...)
    # "meta.<field>": a row whose field names a split (train, val, test) goes to that split (a corpus's own
    # held-out set: the synthetic corpus's meta.split keeps unseen signature variants out of training);
    # the other rows are split by the fractions. None: every row is split by the fractions.
    split_by: str | None = None
    max_quarantine_fraction: float = 0.1  # fail the job when more of the rows than this are bad
    ordered: bool = True  # ordered ingest: reproducible batches (same seed + data -> same metrics)
    preprocess_batch_size: int = 32
    preprocess_actors: int = 1
    preprocess_cpus: float = 0.5
    preprocess_memory_mb: int = 1024  # per actor (tokenizer + mel filters + decoders: ~700 MB measured)
    # Preprocess once and keep the result in Ray's object store for every epoch instead of decoding the
    # corpus again each epoch; bad rows are then known, and over-limit jobs fail, before training starts.
    # "auto" caches when the estimated preprocessed size fits cache_budget_mb (see tripwire.training.cache),
    # true/false force it either way.
    cache_preprocessed: bool | Literal["auto"] = "auto"
    cache_budget_mb: int = 4096
    text_in_pictures: TextInPicturesConfig | None = None  # null: pictures train the image/video encoders only

    def __post_init__(self):
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"validation_fraction: {self.validation_fraction} must be in (0, 1)")
        if not 0.0 <= self.test_fraction < 1.0 - self.validation_fraction:
            raise ConfigError(f"test_fraction: {self.test_fraction} must be in [0, 1 - validation_fraction)")
        if self.group_by not in (None, "text") and not str(self.group_by).startswith("meta."):
            raise ConfigError(f"group_by: {self.group_by!r} must be null, 'text' or 'meta.<field>'")
        if self.split_by is not None and not (str(self.split_by).startswith("meta.") and len(self.split_by) > 5):
            raise ConfigError(f"split_by: {self.split_by!r} must be null or 'meta.<field>'")
        if not 0.0 <= self.max_quarantine_fraction <= 1.0:
            raise ConfigError(f"max_quarantine_fraction: {self.max_quarantine_fraction} must be in [0, 1]")
        if self.preprocess_actors < 1 or self.preprocess_batch_size < 1:
            raise ConfigError("preprocess_actors and preprocess_batch_size must be at least 1")
        if self.cache_preprocessed not in (True, False, "auto"):
            raise ConfigError(f"cache_preprocessed: {self.cache_preprocessed!r} must be true, false or 'auto'")
        if self.cache_budget_mb < 0:
            raise ConfigError(f"cache_budget_mb: {self.cache_budget_mb} must not be negative")

    def split_fractions(self) -> dict[str, float]:
        """Split name -> fraction of rows."""
        return {"train": 1.0 - self.validation_fraction - self.test_fraction,
                "val": self.validation_fraction, "test": self.test_fraction}


@dataclass(frozen=True)
class FitConfig:
    """Ray Train scaling and optimisation settings."""

    num_workers: int = 2
    cpus_per_worker: float = 0.5
    torch_threads: int = 1
    epochs: int = 8
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 0.01
    seed: int = 0
    max_failures: int = 0
    num_to_keep: int = 2
    pos_weight: bool = True
    encoder_lr: dict[str, float] = field(default_factory=dict)
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    early_stopping_patience: int = 0  # stop after this many epochs without a better val macro ROC-AUC; 0 = off
    calibrate: bool = True  # fit per-category Platt scaling on validation, saved with each checkpoint
    use_gpu: bool = False  # one GPU per worker; DDP over NCCL instead of gloo
    mixed_precision: str = "no"  # "bf16" or "fp16" autocast on GPU (fp16 adds a gradient scaler); CPU ignores it
    # Start from this Tripwire checkpoint's weights (same model config) instead of a fresh init: retraining
    # on reviewer feedback continues the previous model. A resumed Ray Train run ignores it.
    init_from: str | None = None

    def __post_init__(self):
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision: {self.mixed_precision!r} must be 'no', 'bf16' or 'fp16'")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule: {self.lr_schedule!r} must be 'constant' or 'cosine'")
        if self.num_workers < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("num_workers, epochs and batch_size must be at least 1")
        if self.lr <= 0 or any(v <= 0 for v in self.encoder_lr.values()):
            raise ConfigError(f"lr and encoder_lr: must be positive, got {self.lr}, {self.encoder_lr}")


@dataclass(frozen=True)
class ThresholdConfig:
    """How training chooses the recommended policy exported beside the checkpoint (tripwire.evaluation.thresholds).

    Attributes:
        targets: ``ACTION:METRIC=VALUE`` per action, met on the validation split.
        min_positives: a category with fewer labelled validation positives keeps the base policy's thresholds.
        review_capacity: the share of validation items the review band may take (review thresholds are
            raised until it fits; null: no limit).
    """

    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    min_positives: int = DEFAULT_MIN_POSITIVES
    review_capacity: float | None = DEFAULT_REVIEW_CAPACITY

    def __post_init__(self):
        parse_targets(self.targets)
        check_review_capacity(self.review_capacity, "thresholds.review_capacity")
        if self.min_positives < 1:
            raise ConfigError(f"thresholds.min_positives: must be at least 1, got {self.min_positives}")


@dataclass(frozen=True)
class TrainConfig:
    """A whole training job, loaded from ``pipelines/configs/<name>.yaml``."""

    run_name: str = "tripwire"
    storage_path: str = "runs/ray"
    export_dir: str = "runs/tripwire/model"
    taxonomy: str | None = None
    policy: str | None = None
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    fit: FitConfig = field(default_factory=FitConfig)
    thresholds: ThresholdConfig = field(default_factory=ThresholdConfig)

    def __post_init__(self):
        if not self.run_name or "/" in self.run_name:
            raise ConfigError(f"run_name: {self.run_name!r} must be a non-empty name without '/'")
        if self.data.text_in_pictures is not None and "ocr" not in self.model.experts:
            # (The model's own config refuses an OCR expert without a text encoder to score what it reads.)
            raise ConfigError("data.text_in_pictures: needs model.experts.ocr (the engine that reads the pictures "
                              "for the text model to learn from)")

    def resolved(self, base_dir: str | Path = ".") -> "TrainConfig":
        """Makes local paths absolute (Ray workers run elsewhere) and fills the default tokenizer."""

        def absolute(path: str | None) -> str | None:
            if path is None or "://" in path:
                return path
            return str((Path(base_dir) / path).resolve())

        model = self.model
        text = model.preprocessing.text
        if "text" in model.encoders and not text.tokenizer:
            source = model.encoders["text"].args.get("model_dir") or minilm_dir()
            model = dataclasses.replace(model, preprocessing=dataclasses.replace(
                model.preprocessing, text=dataclasses.replace(text, tokenizer=source)))
        return dataclasses.replace(
            self, storage_path=absolute(self.storage_path), export_dir=absolute(self.export_dir),
            taxonomy=absolute(self.taxonomy), policy=absolute(self.policy), model=model,
            fit=dataclasses.replace(self.fit, init_from=absolute(self.fit.init_from)),
            data=dataclasses.replace(self.data, manifest=absolute(self.data.manifest)))


@dataclass(frozen=True)
class TrainLoopConfig:
    """Everything a Ray Train worker needs besides its dataset shards; the driver builds it once.

    Ray Train hands ``train_loop_config`` to each worker as plain data: the driver sends
    ``to_dict(loop_config)`` and the worker parses it back with ``from_dict`` (validated, named fields).
    """

    train: TrainConfig
    taxonomy: Taxonomy
    data_fingerprint: str
    policy_version: str | None = None
    pos_weight: list[float] | None = None  # per category, in taxonomy order; None = unweighted BCE
    quarantine_dir: str | None = None  # where the ingest UDF puts bad rows; None = not checked by the loop
    num_rows: int = 0  # manifest rows, the denominator of data.max_quarantine_fraction

    def __post_init__(self):
        if self.pos_weight is not None and len(self.pos_weight) != len(self.taxonomy.names):
            raise ConfigError(f"pos_weight: {len(self.pos_weight)} values for {len(self.taxonomy.names)} categories")
        if self.num_rows < 0:
            raise ConfigError(f"num_rows: {self.num_rows} must not be negative")
