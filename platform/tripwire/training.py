"""Training logic: configs, the Ray Data preprocessing UDF, and the Ray Train per-worker loop.

``pipelines/train.py`` wires these into a Ray Data + ``TorchTrainer`` job; everything testable lives here.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tripwire.calibration import PlattCalibration, calibration_report
from tripwire.config import ConfigError, from_dict
from tripwire.media import MediaError
from tripwire.metrics import category_metrics, flatten_metrics
from tripwire.model.encoders import minilm_dir
from tripwire.model.safety_model import ModelConfig, SafetyModel, build_model
from tripwire.preprocess import PreprocessingConfig, Preprocessor, batch_to_model_inputs
from tripwire.sample import Sample

TRAIN_STATE = "train_state.safetensors"
PROGRESS_EVERY_S = 30.0  # long epochs print a progress line this often
TRAIN_STATE_JSON = "train_state.json"


@dataclass(frozen=True)
class SyntheticSpec:
    """Generate the synthetic corpus at ``DataConfig.manifest`` when it does not exist yet."""

    num_items: int = 2400
    seed: int = 7


@dataclass(frozen=True)
class DataConfig:
    """Where the corpus is and how it is split and preprocessed."""

    manifest: str = "data/synthetic/manifest.jsonl"
    synthetic: SyntheticSpec | None = None
    validation_fraction: float = 0.2
    test_fraction: float = 0.0  # held out: never trained or validated on; ids in splits.parquet
    split_seed: int = 0
    group_by: str | None = None  # None, "text" (near-duplicates) or "meta.<field>" (author, source, ...)
    max_quarantine_fraction: float = 0.1  # fail the job when more of the rows than this are bad
    ordered: bool = True  # ordered ingest: reproducible batches (same seed + data -> same metrics)
    preprocess_batch_size: int = 32
    preprocess_actors: int = 1
    preprocess_cpus: float = 0.5
    preprocess_memory_mb: int = 1024  # per actor (tokenizer + mel filters + decoders: ~700 MB measured)
    # Preprocess once and keep the result in Ray's object store for every epoch (spilled to disk when it
    # does not fit) instead of decoding the corpus again each epoch. For corpora whose preprocessed form is
    # small (text, small media); bad rows are then known, and over-limit jobs fail, before training starts.
    cache_preprocessed: bool = False

    def __post_init__(self):
        if not 0.0 < self.validation_fraction < 1.0:
            raise ConfigError(f"validation_fraction: {self.validation_fraction} must be in (0, 1)")
        if not 0.0 <= self.test_fraction < 1.0 - self.validation_fraction:
            raise ConfigError(f"test_fraction: {self.test_fraction} must be in [0, 1 - validation_fraction)")
        if self.group_by not in (None, "text") and not str(self.group_by).startswith("meta."):
            raise ConfigError(f"group_by: {self.group_by!r} must be null, 'text' or 'meta.<field>'")
        if not 0.0 <= self.max_quarantine_fraction <= 1.0:
            raise ConfigError(f"max_quarantine_fraction: {self.max_quarantine_fraction} must be in [0, 1]")
        if self.preprocess_actors < 1 or self.preprocess_batch_size < 1:
            raise ConfigError("preprocess_actors and preprocess_batch_size must be at least 1")

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

    def __post_init__(self):
        if self.mixed_precision not in ("no", "bf16", "fp16"):
            raise ConfigError(f"mixed_precision: {self.mixed_precision!r} must be 'no', 'bf16' or 'fp16'")
        if self.lr_schedule not in ("constant", "cosine"):
            raise ConfigError(f"lr_schedule: {self.lr_schedule!r} must be 'constant' or 'cosine'")
        if self.num_workers < 1 or self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("num_workers, epochs and batch_size must be at least 1")
        if self.lr <= 0 or any(v <= 0 for v in self.encoder_lr.values()):
            raise ConfigError(f"lr and encoder_lr: must be positive, got {self.lr}, {self.encoder_lr}")


def autocast_dtype(fit: FitConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for this device, or None to train in float32 (always on CPU)."""
    if device.type != "cuda" or fit.mixed_precision == "no":
        return None
    return torch.bfloat16 if fit.mixed_precision == "bf16" else torch.float16


def should_stop(history: list[float], patience: int) -> bool:
    """True when the last ``patience`` epochs brought no improvement over the best before them."""
    if patience <= 0 or len(history) <= patience:
        return False
    return max(history[-patience:]) <= max(history[:-patience])


def lr_factor(fit: FitConfig, epoch: int, step_in_run: int) -> float:
    """Learning-rate multiplier: linear warm-up over ``warmup_steps``, then constant or cosine over epochs.

    The cosine steps once per epoch: a streamed dataset's length is not known before its first pass.
    """
    warmup = min(1.0, (step_in_run + 1) / fit.warmup_steps) if fit.warmup_steps else 1.0
    if fit.lr_schedule == "cosine":
        import math

        return warmup * 0.5 * (1.0 + math.cos(math.pi * epoch / fit.epochs))
    return warmup


def param_groups(model: SafetyModel, fit: FitConfig) -> list[dict]:
    """Optimizer groups: each encoder named in ``fit.encoder_lr`` gets its own learning rate (e.g. a small
    one to fine-tune a pretrained text encoder), everything else ``fit.lr``. Frozen parameters are left out;
    a parameter shared by two components (the image encoder inside the video encoder) appears once."""
    unknown = sorted(set(fit.encoder_lr) - set(model.encoders))
    if unknown:
        raise ConfigError(f"fit.encoder_lr: no encoders for {unknown}")
    seen: set[int] = set()
    groups = []
    for modality, lr in fit.encoder_lr.items():
        params = [p for p in model.encoders[modality].parameters() if p.requires_grad and id(p) not in seen]
        seen.update(id(p) for p in params)
        if params:
            groups.append({"params": params, "lr": lr, "name": modality})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in seen]
    groups.append({"params": rest, "lr": fit.lr, "name": "default"})
    return [g for g in groups if g["params"]]


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

    def __post_init__(self):
        if not self.run_name or "/" in self.run_name:
            raise ConfigError(f"run_name: {self.run_name!r} must be a non-empty name without '/'")

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
            data=dataclasses.replace(self.data, manifest=absolute(self.data.manifest)))


class PreprocessBatch:
    """Ray Data ``map_batches`` UDF: manifest rows -> model-ready columns.

    Bad rows (unreadable, corrupt, over a limit, labels outside the taxonomy) never stop the job: they are
    dropped from the stream and written with their reason to a Parquet file under ``quarantine_dir``.

    Args:
        preprocessing: a :class:`PreprocessingConfig` as a dict (plain data ships cheaply to actors).
        modalities: the modalities the model has encoders for.
        categories: taxonomy category names, in label-column order.
        base_uri: the manifest's folder, for relative media URIs.
        quarantine_dir: where bad rows go; None to only drop them.
    """

    def __init__(self, preprocessing: dict, modalities: list[str], categories: list[str], base_uri: str,
                 quarantine_dir: str | None = None):
        torch.set_num_threads(1)
        self.preprocessor = Preprocessor(from_dict(PreprocessingConfig, preprocessing), modalities)
        self.categories = list(categories)
        self.base_uri = base_uri
        self.quarantine_dir = quarantine_dir

    def labels_vector(self, labels: dict[str, int]) -> np.ndarray:
        unknown = sorted(set(labels) - set(self.categories))
        if unknown:
            raise ValueError(f"labels: categories {unknown} are not in the taxonomy")
        return np.asarray([labels.get(c, -1) for c in self.categories], dtype=np.float32)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        items, ids, labels, bad = [], [], [], []
        for row_id, record in zip(batch["id"], batch["record"]):
            try:
                try:
                    row = json.loads(record)
                except json.JSONDecodeError as exc:
                    raise ValueError(f"record: not valid JSON: {exc}") from exc
                sample = Sample.from_row(row)
                label_vec = self.labels_vector(sample.labels)
                items.append(self.preprocessor.sample(sample, self.base_uri))
                ids.append(sample.id)
                labels.append(label_vec)
            except (MediaError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, MediaError) else "invalid_row"
                # A line that is not JSON has no id: name it by its content so each one counts once.
                row_id = str(row_id) or "line-sha256:" + hashlib.sha256(str(record).encode()).hexdigest()[:16]
                bad.append({"id": row_id, "reason": reason, "detail": str(exc)})
        if bad:
            self._quarantine(bad)
        batch_out = self.preprocessor.collate(items) if items else {
            k: np.zeros((0, *v.shape[1:]), v.dtype) for k, v in self.preprocessor.collate([{}]).items()}
        batch_out["id"] = np.asarray(ids, dtype=object)
        batch_out["labels"] = np.stack(labels) if labels else np.zeros((0, len(self.categories)), np.float32)
        return batch_out

    def _quarantine(self, bad: list[dict]) -> None:
        if not self.quarantine_dir:
            return
        import fsspec
        import pyarrow as pa
        import pyarrow.parquet as pq

        fs, path = fsspec.core.url_to_fs(self.quarantine_dir)
        fs.makedirs(path, exist_ok=True)
        with fs.open(f"{path}/part-{uuid.uuid4().hex}.parquet", "wb") as handle:
            pq.write_table(pa.Table.from_pylist(bad), handle)


class QuarantineLimitExceeded(RuntimeError):
    """More of a job's rows were bad than ``data.max_quarantine_fraction`` allows."""


def check_quarantine(quarantine_dir: str, num_rows: int, max_fraction: float) -> list[dict]:
    """The quarantined rows; raises :class:`QuarantineLimitExceeded` when they are too many.

    Raises:
        QuarantineLimitExceeded: the message gives the count, the limit, the reasons and where the rows are.
    """
    rows = read_quarantine(quarantine_dir)
    if num_rows and len(rows) / num_rows > max_fraction:
        raise QuarantineLimitExceeded(
            f"{len(rows)} of {num_rows} rows ({len(rows) / num_rows:.1%}) were quarantined, over "
            f"data.max_quarantine_fraction={max_fraction:.1%}; reasons {quarantine_reasons(rows)}; "
            f"rows and details in {quarantine_dir}")
    return rows


def quarantine_reasons(rows: list[dict]) -> dict[str, int]:
    """Quarantined rows counted by reason, reasons in name order."""
    reasons: dict[str, int] = {}
    for row in rows:
        reasons[row["reason"]] = reasons.get(row["reason"], 0) + 1
    return dict(sorted(reasons.items()))


def read_quarantine(quarantine_dir: str) -> list[dict]:
    """All quarantined rows, one per id (streaming re-reads each epoch, so duplicates are dropped)."""
    import fsspec
    import pyarrow.parquet as pq

    fs, path = fsspec.core.url_to_fs(quarantine_dir)
    if not fs.exists(path):
        return []
    seen = {}
    for file in sorted(fs.glob(f"{path}/*.parquet")):
        with fs.open(file, "rb") as handle:
            for row in pq.read_table(handle).to_pylist():
                seen.setdefault(row["id"], row)
    return list(seen.values())


# -- checkpoint I/O for resuming (safetensors + JSON, never pickle) -------------------------------
def save_train_state(directory: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in _unique_state(model).items()}
    opt = optimizer.state_dict()
    for index, values in opt["state"].items():
        for name, value in values.items():
            tensors[f"optim.{index}.{name}"] = torch.as_tensor(value).detach().cpu().contiguous()
    save_file(tensors, os.path.join(directory, TRAIN_STATE))
    Path(directory, TRAIN_STATE_JSON).write_text(json.dumps({**state, "param_groups": opt["param_groups"]}))


def load_train_state(directory: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> dict:
    from safetensors.torch import load_file

    tensors = load_file(os.path.join(directory, TRAIN_STATE))
    state = json.loads(Path(directory, TRAIN_STATE_JSON).read_text())
    model_state = {k[len("model."):]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(model_state, strict=False)
    opt_state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith("optim."):
            _, index, name = key.split(".", 2)
            opt_state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": opt_state, "param_groups": state.pop("param_groups")})
    return state


def _unique_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The state dict without second names for shared tensors (the video encoder shares the image encoder)."""
    seen, out = set(), {}
    for key, value in model.state_dict().items():
        if value.data_ptr() in seen and value.numel() > 0:
            continue
        seen.add(value.data_ptr())
        out[key] = value
    return out


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None) -> torch.Tensor:
    """Binary cross-entropy over known labels only (label -1 = unknown contributes nothing)."""
    known = labels >= 0
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, labels.clamp(min=0), pos_weight=pos_weight, reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


def _unwrap(model: torch.nn.Module) -> SafetyModel:
    return model.module if hasattr(model, "module") else model


def predict(model: torch.nn.Module, batches) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Runs ``model`` over preprocessed batches; returns ids, labels (N, C) and logits (N, C)."""
    ids, labels, scores = [], [], []
    model.eval()
    with torch.no_grad():
        for batch in batches:
            inputs, present = batch_to_model_inputs(batch)
            scores.append(model(inputs, present).float().cpu().numpy())
            labels.append(np.asarray(batch["labels"]))
            ids.extend(str(i) for i in batch["id"])
    categories = _unwrap(model).categories
    empty = np.zeros((0, len(categories)), np.float32)
    return ids, np.concatenate(labels) if labels else empty, np.concatenate(scores) if scores else empty


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train loop: fit, validate each epoch, report metrics and a Tripwire checkpoint.

    ``loop_config`` holds ``train`` (a :class:`TrainConfig` as a dict), ``categories``, ``taxonomy``
    (dict), ``data_fingerprint`` and ``pos_weight`` (list or None).
    """
    import ray.train
    import ray.train.torch
    from ray.train import Checkpoint

    from tripwire.checkpoint import save_checkpoint
    from tripwire.policy import Category, Taxonomy

    _quiet_report_logs()
    cfg = from_dict(TrainConfig, loop_config["train"])
    fit = cfg.fit
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(fit.torch_threads)
    torch.manual_seed(fit.seed)
    np.random.seed(fit.seed)
    taxonomy = Taxonomy(loop_config["taxonomy"]["version"], [Category(**c) for c in loop_config["taxonomy"]["categories"]])

    model = build_model(cfg.model, taxonomy.names)
    optimizer = torch.optim.AdamW(param_groups(model, fit), lr=fit.lr, weight_decay=fit.weight_decay)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    start_epoch, history, resumed_from = 0, [], None
    resume = ray.train.get_checkpoint()
    if resume:
        with resume.as_directory() as directory:
            state = load_train_state(directory, model, optimizer)
        start_epoch, history = state["epoch"] + 1, state.get("history", [])
        resumed_from = state["epoch"]
        if rank == 0:
            print(f"[train] resuming from epoch {state['epoch']} checkpoint", flush=True)
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": True})
    device = ray.train.torch.get_device()
    pos_weight = torch.tensor(loop_config["pos_weight"], device=device) if loop_config.get("pos_weight") else None
    amp_dtype = autocast_dtype(fit, device)
    # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    tokenizer = None

    global_step = 0
    for epoch in range(start_epoch, fit.epochs):
        model.train()
        started, seen, loss_sum, steps = time.perf_counter(), 0, 0.0, 0
        last_progress = started
        for batch in train_shard.iter_batches(batch_size=fit.batch_size, batch_format="numpy"):
            inputs, present = batch_to_model_inputs(batch)
            inputs = _to_device(inputs, device)
            present = {k: v.to(device) for k, v in present.items()}
            labels = torch.as_tensor(batch["labels"], device=device)
            for group in optimizer.param_groups:
                group["lr"] = group["base_lr"] * lr_factor(fit, epoch, global_step)
            global_step += 1
            with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
                logits = model(inputs, present)
            loss = masked_bce(logits.float(), labels, pos_weight)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            seen += len(labels)
            loss_sum += loss.detach().item()
            steps += 1
            if rank == 0 and time.perf_counter() - last_progress > PROGRESS_EVERY_S:
                last_progress = time.perf_counter()
                print(f"[train] epoch {epoch + 1}/{fit.epochs} step {steps} loss={loss_sum / steps:.4f} "
                      f"samples/s={seen * world / (last_progress - started):.1f}", flush=True)
        elapsed = time.perf_counter() - started
        ids, labels, logits = predict(model, val_shard.iter_batches(batch_size=64, batch_format="numpy"))
        gathered = _all_gather((ids, labels, logits), world)
        all_labels = np.concatenate([g[1] for g in gathered])
        all_logits = np.concatenate([g[2] for g in gathered])
        # Calibration is fitted on validation and saved with the checkpoint; metrics are those of the
        # calibrated scores every scorer will serve (ranking metrics are the same either way).
        calibration = PlattCalibration.fit(all_logits, all_labels) if fit.calibrate else \
            PlattCalibration.identity(len(taxonomy.names))
        all_scores = calibration.probabilities(torch.as_tensor(all_logits)).numpy()
        metrics = category_metrics(all_labels, all_scores, taxonomy.names)
        report = {"epoch": epoch, "train_loss": loss_sum / max(steps, 1), "samples_per_s": seen * world / max(elapsed, 1e-9),
                  "val_size": int(len(all_labels)), **flatten_metrics(metrics)}
        score = metrics["macro"]["roc_auc"]
        history.append(score)
        if rank == 0:
            print(f"[train] epoch {epoch + 1}/{fit.epochs} steps={steps} loss={report['train_loss']:.4f} "
                  f"samples/s={report['samples_per_s']:.1f} val macro ROC-AUC={score:.4f} "
                  f"PR-AUC={metrics['macro']['pr_auc']:.4f} F1={metrics['macro']['f1']:.4f}", flush=True)
            if tokenizer is None and "text" in cfg.model.encoders:
                from transformers import AutoTokenizer

                tokenizer = AutoTokenizer.from_pretrained(cfg.model.preprocessing.text.tokenizer)
            with tempfile.TemporaryDirectory() as directory:
                save_checkpoint(_unwrap(model), directory, cfg.model.preprocessing, taxonomy, tokenizer=tokenizer,
                                policy_version=loop_config.get("policy_version"),
                                training={"run_name": cfg.run_name, "epoch": epoch, "seed": fit.seed,
                                          "resumed_from_epoch": resumed_from,
                                          "data_fingerprint": loop_config["data_fingerprint"],
                                          "num_workers": world, "config": loop_config["train"]},
                                metrics=metrics,
                                calibration={**calibration.to_dict(), "fitted_on": "validation",
                                             "ece": calibration_report(all_labels, all_logits, calibration,
                                                                       taxonomy.names)})
                save_train_state(directory, _unwrap(model), optimizer, {"epoch": epoch, "history": history})
                ray.train.report(report, checkpoint=Checkpoint.from_directory(directory))
        else:
            ray.train.report(report)
        # Too many bad rows: stop now rather than after every epoch; the driver raises with the reasons.
        over_limit = rank == 0 and _over_quarantine_limit(loop_config, cfg.data.max_quarantine_fraction)
        if _all_gather(over_limit, world)[0]:
            if rank == 0:
                print("[train] stopping: too many quarantined rows (see the job's error)", flush=True)
            break
        # Every rank sees the same gathered metrics, so all stop together (no rank left waiting in DDP).
        if should_stop(history, fit.early_stopping_patience):
            if rank == 0:
                print(f"[train] early stop: no improvement for {fit.early_stopping_patience} epochs", flush=True)
            break


def _quiet_report_logs() -> None:
    """Ray Train logs every report's full metrics dict at INFO (dozens of lines per epoch per worker); our
    one-line progress replaces it. Its logger is named after its file path, hence the module lookup."""
    logging.getLogger("ray.train.v2._internal.execution").setLevel(logging.WARNING)
    try:
        from ray.train.v2._internal.execution import context
    except ImportError:
        return
    getattr(context, "logger", logging.getLogger(context.__file__)).setLevel(logging.WARNING)


def _over_quarantine_limit(loop_config: dict[str, Any], max_fraction: float) -> bool:
    if not loop_config.get("quarantine_dir") or not loop_config.get("num_rows"):
        return False
    try:
        check_quarantine(loop_config["quarantine_dir"], loop_config["num_rows"], max_fraction)
    except QuarantineLimitExceeded:
        return True
    return False


def _to_device(inputs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: ({kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v.to(device))
            for k, v in inputs.items()}


def _all_gather(obj: Any, world: int) -> list[Any]:
    if world == 1 or not torch.distributed.is_initialized():
        return [obj]
    out = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out


def label_pos_weight(labels: np.ndarray, cap: float = 10.0) -> list[float]:
    """``negatives / positives`` per category (known labels only), capped: BCE's answer to class imbalance."""
    weights = []
    for j in range(labels.shape[1]):
        known = labels[:, j] >= 0
        pos = float((labels[known, j] == 1).sum())
        neg = float((labels[known, j] == 0).sum())
        weights.append(float(min(cap, neg / pos)) if pos else 1.0)
    return weights

