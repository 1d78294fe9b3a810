"""The Ray Train per-worker loop: set up, then per epoch train, evaluate, save + report, decide to stop.

``pipelines/train.py`` builds the datasets and the :class:`~tripwire.training.config.TrainLoopConfig` and runs
:func:`train_loop_per_worker` in a ``TorchTrainer``. The pieces around the loop have their own modules:
configs (:mod:`tripwire.training.config`), the ingest UDF (:mod:`tripwire.training.ingest`), bad rows
(:mod:`tripwire.data.quarantine`) and resume state (:mod:`tripwire.training.state`).
"""

from __future__ import annotations

import logging
import math
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from tripwire.model.calibration import PlattCalibration, calibration_report
from tripwire.model.checkpoint import load_model
from tripwire.common.config import ConfigError, from_dict, to_dict
from tripwire.evaluation.classification import category_metrics, flatten_metrics
from tripwire.model.safety_model import SafetyModel, build_model
from tripwire.data.preprocess import batch_to_model_inputs
from tripwire.data.quarantine import over_quarantine_limit
from tripwire.training.config import FitConfig, TrainConfig, TrainLoopConfig
from tripwire.training.state import load_train_state, save_train_state

logger = logging.getLogger(__name__)  # on a Ray Train worker its lines reach the driver's console once

PROGRESS_EVERY_S = 30.0  # long epochs log a progress line this often
VAL_BATCH_SIZE = 64


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


def masked_bce(logits: torch.Tensor, labels: torch.Tensor, pos_weight: torch.Tensor | None) -> torch.Tensor:
    """Binary cross-entropy over known labels only (label -1 = unknown contributes nothing)."""
    known = labels >= 0
    loss = torch.nn.functional.binary_cross_entropy_with_logits(
        logits, labels.clamp(min=0), pos_weight=pos_weight, reduction="none")
    return (loss * known).sum() / known.sum().clamp(min=1)


def label_pos_weight(labels: np.ndarray, cap: float = 10.0) -> list[float]:
    """``negatives / positives`` per category (known labels only), capped: BCE's answer to class imbalance."""
    weights = []
    for j in range(labels.shape[1]):
        known = labels[:, j] >= 0
        pos = float((labels[known, j] == 1).sum())
        neg = float((labels[known, j] == 0).sum())
        weights.append(float(min(cap, neg / pos)) if pos else 1.0)
    return weights


def unused_parameters(model: SafetyModel, preprocessing) -> list[str]:
    """Trainable parameters that one forward + backward pass with every modality present does not reach
    (e.g. a transformer's pooler when the encoder mean-pools): DDP then needs ``find_unused_parameters``.

    Runs on zero inputs of the preprocessing's shapes, two rows, in eval mode (no running statistics change);
    gradients are cleared afterwards.
    """
    size, audio, n = preprocessing.image.size, preprocessing.audio, 2
    shapes = {"image": (n, 3, size, size), "audio": (n, 1, audio.n_mels, audio.num_frames),
              "video": (n, preprocessing.video.num_frames, 3, size, size)}
    inputs: dict[str, Any] = {}
    for modality in model.modalities:
        if modality == "text":
            length = preprocessing.text.max_length
            inputs["text"] = {"input_ids": torch.zeros(n, length, dtype=torch.long),
                              "attention_mask": torch.ones(n, length, dtype=torch.long)}
        else:
            inputs[modality] = torch.zeros(shapes[modality])
    present = {m: torch.ones(n, dtype=torch.bool) for m in model.modalities}
    was_training = model.training
    model.eval()
    try:
        with torch.enable_grad():
            model(inputs, present).sum().backward()
        unused = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    finally:
        model.zero_grad(set_to_none=True)
        model.train(was_training)
    return unused


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


# -- the loop --------------------------------------------------------------------------------------
@dataclass
class WorkerRun:
    """One worker's training state, carried from epoch to epoch."""

    loop: TrainLoopConfig
    model: torch.nn.Module  # wrapped for DDP by Ray Train; _unwrap() gives the SafetyModel
    optimizer: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    device: torch.device
    amp_dtype: torch.dtype | None
    pos_weight: torch.Tensor | None
    rank: int
    world: int
    start_epoch: int = 0
    resumed_from: int | None = None
    history: list[float] = field(default_factory=list)  # val macro ROC-AUC per epoch, resumed ones included
    global_step: int = 0
    tokenizer: Any = None  # loaded on rank 0 at the first save

    @property
    def cfg(self) -> TrainConfig:
        return self.loop.train

    @property
    def fit(self) -> FitConfig:
        return self.loop.train.fit


@dataclass(frozen=True)
class EpochStats:
    steps: int
    seen: int  # rows this worker trained on
    loss_sum: float
    elapsed_s: float


@dataclass(frozen=True)
class Evaluation:
    """Validation over every worker's shard (gathered, so identical on all ranks)."""

    labels: np.ndarray
    logits: np.ndarray
    calibration: PlattCalibration
    metrics: dict[str, Any]

    @property
    def score(self) -> float:
        """What model selection and early stopping compare: the macro ROC-AUC."""
        return self.metrics["macro"]["roc_auc"]


def warm_start(model: SafetyModel, checkpoint: str) -> None:
    """Loads a Tripwire checkpoint's weights into ``model`` (built from the same model config)."""
    previous = load_model(checkpoint).state_dict()
    missing, unexpected = model.load_state_dict(previous, strict=False)
    if missing or unexpected:
        raise ConfigError(f"fit.init_from: {checkpoint} is a different model (missing {sorted(missing)[:5]}, "
                          f"unexpected {sorted(unexpected)[:5]}); its model config must match this job's")


def setup(loop: TrainLoopConfig) -> WorkerRun:
    """Seeds, builds the model and optimizer, resumes from Ray Train's checkpoint if any, wraps for DDP."""
    import ray.train
    import ray.train.torch

    fit = loop.train.fit
    context = ray.train.get_context()
    rank, world = context.get_world_rank(), context.get_world_size()
    torch.set_num_threads(fit.torch_threads)
    torch.manual_seed(fit.seed)
    np.random.seed(fit.seed)
    model = build_model(loop.train.model, loop.taxonomy.names)
    if fit.init_from and not ray.train.get_checkpoint():
        warm_start(model, fit.init_from)
        if rank == 0:
            logger.info("[train] starting from the weights of %s", fit.init_from)
    optimizer = torch.optim.AdamW(param_groups(model, fit), lr=fit.lr, weight_decay=fit.weight_decay)
    for group in optimizer.param_groups:
        group["base_lr"] = group["lr"]
    start_epoch, history, resumed_from, global_step = 0, [], None, 0
    resume = ray.train.get_checkpoint()
    if resume:
        with resume.as_directory() as directory:
            state = load_train_state(directory, model, optimizer)
        start_epoch, history, resumed_from = state["epoch"] + 1, state.get("history", []), state["epoch"]
        global_step = state.get("global_step", 0)
        if rank == 0:
            logger.info("[train] resuming from epoch %s checkpoint", state["epoch"])
    unused = unused_parameters(model, loop.train.model.preprocessing)
    if rank == 0 and world > 1:
        logger.info("[train] DDP find_unused_parameters=%s (%s)", bool(unused),
                    f"{len(unused)} trainable parameter(s) the forward pass never reaches, e.g. {unused[0]}" if unused
                    else "every trainable parameter is reached")
    # DDP traverses the graph for unused parameters every step only when some exist: a modality missing from a
    # batch is no reason, since SafetyModel keeps its encoder in the graph (see SafetyModel.encode).
    model = ray.train.torch.prepare_model(model, parallel_strategy_kwargs={"find_unused_parameters": bool(unused)})
    device = ray.train.torch.get_device()
    pos_weight = torch.tensor(loop.pos_weight, device=device) if loop.pos_weight else None
    amp_dtype = autocast_dtype(fit, device)
    # fp16 gradients underflow without loss scaling; bf16 has float32's range and needs none.
    scaler = torch.amp.GradScaler("cuda", enabled=amp_dtype == torch.float16)
    return WorkerRun(loop, model, optimizer, scaler, device, amp_dtype, pos_weight, rank, world,
                     start_epoch=start_epoch, resumed_from=resumed_from, history=history, global_step=global_step)


def seed_epoch(seed: int, epoch: int) -> None:
    """Seeds the random draws of one epoch (dropout) from the run's seed and the epoch alone, so a run
    resumed from a checkpoint trains its remaining epochs exactly as an uninterrupted one would."""
    torch.manual_seed(int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0]))


def train_epoch(run: WorkerRun, epoch: int, shard) -> EpochStats:
    """One pass over this worker's training shard."""
    fit = run.fit
    seed_epoch(fit.seed, epoch)
    run.model.train()
    started, seen, loss_sum, steps = time.perf_counter(), 0, 0.0, 0
    last_progress = started
    for batch in shard.iter_batches(batch_size=fit.batch_size, batch_format="numpy"):
        inputs, present = batch_to_model_inputs(batch)
        inputs = _to_device(inputs, run.device)
        present = {k: v.to(run.device) for k, v in present.items()}
        labels = torch.as_tensor(batch["labels"], device=run.device)
        for group in run.optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(fit, epoch, run.global_step)
        run.global_step += 1
        with torch.autocast(run.device.type, dtype=run.amp_dtype, enabled=run.amp_dtype is not None):
            logits = run.model(inputs, present)
        loss = masked_bce(logits.float(), labels, run.pos_weight)
        run.optimizer.zero_grad(set_to_none=True)
        run.scaler.scale(loss).backward()
        run.scaler.step(run.optimizer)
        run.scaler.update()
        seen += len(labels)
        loss_sum += loss.detach().item()
        steps += 1
        if run.rank == 0 and time.perf_counter() - last_progress > PROGRESS_EVERY_S:
            last_progress = time.perf_counter()
            logger.info("[train] epoch %d/%d step %d loss=%.4f samples/s=%.1f", epoch + 1, fit.epochs, steps,
                        loss_sum / steps, seen * run.world / (last_progress - started))
    return EpochStats(steps, seen, loss_sum, time.perf_counter() - started)


def evaluate(run: WorkerRun, shard) -> Evaluation:
    """Validation metrics of the calibrated scores, over all workers' shards."""
    ids, labels, logits = predict(run.model, shard.iter_batches(batch_size=VAL_BATCH_SIZE, batch_format="numpy"))
    gathered = _all_gather((ids, labels, logits), run.world)
    all_labels = np.concatenate([g[1] for g in gathered])
    all_logits = np.concatenate([g[2] for g in gathered])
    names = run.loop.taxonomy.names
    # Calibration is fitted on validation and saved with the checkpoint; metrics are those of the
    # calibrated scores every scorer will serve (ranking metrics are the same either way).
    calibration = PlattCalibration.fit(all_logits, all_labels) if run.fit.calibrate else \
        PlattCalibration.identity(len(names))
    all_scores = calibration.probabilities(torch.as_tensor(all_logits)).numpy()
    return Evaluation(all_labels, all_logits, calibration, category_metrics(all_labels, all_scores, names))


def epoch_report(epoch: int, stats: EpochStats, evaluation: Evaluation, world: int) -> dict[str, Any]:
    """The metrics reported to Ray Train (``val/macro/roc_auc`` picks the best checkpoint)."""
    return {"epoch": epoch, "train_loss": stats.loss_sum / max(stats.steps, 1),
            "samples_per_s": stats.seen * world / max(stats.elapsed_s, 1e-9),
            "val_size": int(len(evaluation.labels)), **flatten_metrics(evaluation.metrics)}


def save_and_report(run: WorkerRun, epoch: int, report: dict[str, Any], evaluation: Evaluation) -> None:
    """Rank 0: writes the Tripwire checkpoint plus resume state and reports both; other ranks report metrics."""
    import ray.train
    from ray.train import Checkpoint

    from tripwire.model.checkpoint import save_checkpoint

    if run.rank != 0:
        ray.train.report(report)
        return
    cfg, names = run.cfg, run.loop.taxonomy.names
    if run.tokenizer is None and "text" in cfg.model.encoders:
        from transformers import AutoTokenizer

        run.tokenizer = AutoTokenizer.from_pretrained(cfg.model.preprocessing.text.tokenizer)
    training = {"run_name": cfg.run_name, "epoch": epoch, "seed": cfg.fit.seed,
                "resumed_from_epoch": run.resumed_from, "data_fingerprint": run.loop.data_fingerprint,
                "num_workers": run.world, "config": to_dict(cfg)}
    calibration = {**evaluation.calibration.to_dict(), "fitted_on": "validation",
                   "ece": calibration_report(evaluation.labels, evaluation.logits, evaluation.calibration, names)}
    with tempfile.TemporaryDirectory() as directory:
        save_checkpoint(_unwrap(run.model), directory, cfg.model.preprocessing, run.loop.taxonomy,
                        tokenizer=run.tokenizer, policy_version=run.loop.policy_version, training=training,
                        metrics=evaluation.metrics, calibration=calibration, experts=cfg.model.experts)
        write_recommended_policy(run, epoch, evaluation, directory)
        save_train_state(directory, _unwrap(run.model), run.optimizer,
                         {"epoch": epoch, "history": run.history, "global_step": run.global_step})
        ray.train.report(report, checkpoint=Checkpoint.from_directory(directory))


TRAINING_BOOTSTRAP_REPLICATES = 200


def write_recommended_policy(run: WorkerRun, epoch: int, evaluation: Evaluation, directory: str) -> None:
    """Thresholds chosen on this epoch's validation scores, as a policy beside the checkpoint
    (:data:`tripwire.model.checkpoint.RECOMMENDED_POLICY`; serving and scanning use it unless told otherwise)."""
    from tripwire.model.checkpoint import RECOMMENDED_POLICY
    from tripwire.evaluation.metrics import BootstrapConfig
    from tripwire.policy import Policy
    from tripwire.evaluation.thresholds import parse_targets, policy_yaml, recommend, skipped_categories

    cfg = run.cfg
    scores = evaluation.calibration.probabilities(torch.as_tensor(evaluation.logits)).numpy()
    source = {"chosen_on": "validation split", "run_name": cfg.run_name, "epoch": epoch,
              "data_fingerprint": run.loop.data_fingerprint, "validation_items": int(len(evaluation.labels))}
    base = Policy.load(cfg.policy)
    policy = recommend(base, evaluation.labels, scores, run.loop.taxonomy.names,
                       parse_targets(cfg.thresholds.targets), source, version=f"{base.version}+{cfg.run_name}.e{epoch}",
                       min_positives=cfg.thresholds.min_positives, review_capacity=cfg.thresholds.review_capacity,
                       # Every epoch's checkpoint gets one; fewer resamples keep that to a fraction of a second.
                       bootstrap=BootstrapConfig(replicates=TRAINING_BOOTSTRAP_REPLICATES))
    with open(os.path.join(directory, RECOMMENDED_POLICY), "w", encoding="utf-8") as handle:
        handle.write(policy_yaml(policy))
    skipped = skipped_categories(policy)
    if skipped:  # every epoch's; the job's summary names the exported (best) checkpoint's once
        logger.debug("[train] recommended policy %s: targets not applied as such for %s (too few labelled validation "
                    "positives, an unmet target, or a review threshold raised to fit the review capacity; the "
                    "reasons are in its evidence)", policy.version, ", ".join(skipped))


def stop_reason(run: WorkerRun) -> str | None:
    """Why every rank stops after this epoch (a log line), or None to go on. Ranks decide alike (no rank is left
    waiting in DDP): the quarantine verdict is rank 0's, gathered; early stopping reads gathered metrics."""
    loop = run.loop
    over_limit = run.rank == 0 and over_quarantine_limit(loop.quarantine_dir, loop.num_rows,
                                                         run.cfg.data.max_quarantine_fraction)
    if _all_gather(over_limit, run.world)[0]:
        # Too many bad rows: stop now rather than after every epoch; the driver raises with the reasons.
        return "stopping: too many quarantined rows (see the job's error)"
    if should_stop(run.history, run.fit.early_stopping_patience):
        return f"early stop: no improvement for {run.fit.early_stopping_patience} epochs"
    return None


def train_loop_per_worker(loop_config: dict[str, Any]) -> None:
    """The Ray Train loop: fit, validate each epoch, report metrics and a Tripwire checkpoint.

    Args:
        loop_config: ``to_dict`` of a :class:`TrainLoopConfig` (Ray Train ships plain data to workers).
    """
    import ray.train

    _quiet_report_logs()
    loop = from_dict(TrainLoopConfig, loop_config)
    run = setup(loop)
    fit = loop.train.fit
    train_shard = ray.train.get_dataset_shard("train")
    val_shard = ray.train.get_dataset_shard("val")
    for epoch in range(run.start_epoch, fit.epochs):
        stats = train_epoch(run, epoch, train_shard)
        evaluation = evaluate(run, val_shard)
        run.history.append(evaluation.score)
        report = epoch_report(epoch, stats, evaluation, run.world)
        if run.rank == 0:
            macro = evaluation.metrics["macro"]
            logger.info("[train] epoch %d/%d steps=%d loss=%.4f samples/s=%.1f %.0fs val macro ROC-AUC=%.4f "
                        "PR-AUC=%.4f F1=%.4f", epoch + 1, fit.epochs, stats.steps, report["train_loss"],
                        report["samples_per_s"], stats.elapsed_s, evaluation.score, macro["pr_auc"], macro["f1"])
        save_and_report(run, epoch, report, evaluation)
        reason = stop_reason(run)
        if reason:
            if run.rank == 0:
                logger.info("[train] %s", reason)
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


def _to_device(inputs: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: ({kk: vv.to(device) for kk, vv in v.items()} if isinstance(v, dict) else v.to(device))
            for k, v in inputs.items()}


def _all_gather(obj: Any, world: int) -> list[Any]:
    if world == 1 or not torch.distributed.is_initialized():
        return [obj]
    out = [None] * world
    torch.distributed.all_gather_object(out, obj)
    return out
