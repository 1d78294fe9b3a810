"""One round of the improvement loop: scan -> sample -> queue -> (reviews) -> export -> retrain -> evaluate -> gate.

    tripwire loop --config pipelines/configs/loop.yaml

Every stage leaves its output under ``<work_dir>/<round>/`` and is skipped when it is already there, so
the command can stop after queueing (``reviews: stop``) and be run again once reviewers are done, or be
killed anywhere and resumed. Submitted as a RayJob it runs the same way (``cluster/rayjob-loop.yaml``).

* **scan**: the current model over the pool (``tripwire scan``'s pipeline), fused embeddings kept;
* **sample**: active learning (:mod:`tripwire.review.sampling`) over the scan, items already in the
  store left out; the picks enter the review queue as batch ``<round>``. ``sampling.reach_field`` reads
  each item's reach from the pool manifest's ``meta``; ``strategy: disagreement`` has ``second_checkpoint``
  scan the pool too (``<round>/scan-second``) and samples where the two models' scores differ most;
* **reviews**: people (or, in tests, scripted reviewers over HTTP) work the queue; ``wait`` polls;
* **export**: every reviewed item in the store -> the next feedback snapshot (:mod:`tripwire.review.export`);
* **retrain**: the training YAML over seed + feedback, starting from the current model's weights;
* **gate**: :mod:`pipelines.compare` on the golden sets; the verdict decides promotion.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any

import fsspec

from tripwire.model.checkpoint import CheckpointManifest
from tripwire.common.config import ConfigError, from_dict, load_yaml, read_yaml
from tripwire.evaluation.checkpoint_comparison import compare_checkpoints
from tripwire.evaluation.config import CompareJob, EvalConfig
from tripwire.evaluation.gate import GateConfig
from tripwire.evaluation.golden import resolve, verify
from tripwire.review.loop import LoopConfig
from tripwire.policy import Policy
from tripwire.review.export import export_feedback
from tripwire.review.intake import manifest_meta, picked_items
from tripwire.review.sampling import sample, second_model_scores
from tripwire.review.store import ReviewStore, open_store
from tripwire.storage.sql import redacted_url
from tripwire.data.sample import MEDIA_FIELDS, manifest_base, read_manifest, resolve_uri
from tripwire.scan.config import ScanJob
from tripwire.scan.job import execute as execute_scan
from tripwire.scan.job import validate as validate_scan
from tripwire.scan.output import read_results
from tripwire.training.config import TrainConfig
from tripwire.training.job import run as run_training


def say(line: str) -> None:
    print(line, flush=True)


PATH_FIELDS = ("checkpoint", "train_config", "seed_manifest", "pool_manifest", "work_dir", "store", "gate",
               "catalogue", "eval_config", "second_checkpoint")


def load(path: str, overrides: dict[str, Any] | None = None) -> LoopConfig:
    """The loop config at ``path``, relative paths in it taken from the current directory (and made absolute:
    manifests written under ``work_dir`` reference the seed's and the pool's media from elsewhere)."""
    data = read_yaml(path) or {}
    data.update({k: v for k, v in (overrides or {}).items() if v is not None})
    return resolved(from_dict(LoopConfig, data, "loop"))


def resolved(cfg: LoopConfig) -> LoopConfig:
    """``cfg`` with its local paths absolute (URIs and ``postgresql://`` stores pass through)."""
    def absolute(value: str | None) -> str | None:
        return value if value is None or "://" in value else os.path.abspath(value)

    return dataclasses.replace(cfg, **{name: absolute(getattr(cfg, name)) for name in PATH_FIELDS})


def round_dir(cfg: LoopConfig) -> Path:
    return Path(cfg.work_dir).resolve() / cfg.round


def validate(cfg: LoopConfig) -> tuple[CheckpointManifest, Policy, TrainConfig]:
    """Everything that can be checked before Ray starts: model, manifests, training YAML, golden sets, gate."""
    scan_job = ScanJob(checkpoint=cfg.checkpoint, manifest=cfg.pool_manifest, out=str(round_dir(cfg) / "scan"),
                       scan=cfg.scan)
    checkpoint, policy = validate_scan(scan_job)
    if cfg.second_checkpoint:
        second, _ = validate_scan(dataclasses.replace(scan_job, checkpoint=cfg.second_checkpoint))
        if not set(second.categories) & set(policy.categories):
            raise ConfigError(f"second_checkpoint: {cfg.second_checkpoint} scores none of the policy's categories "
                              f"({second.categories}): there is nothing to disagree on")
    if not os.path.exists(cfg.seed_manifest):
        raise ConfigError(f"seed_manifest: {cfg.seed_manifest} does not exist")
    train = load_yaml(TrainConfig, cfg.train_config).resolved(Path.cwd())
    for golden in cfg.golden:
        verify(resolve(golden, cfg.catalogue), cfg.catalogue)
    if cfg.gate:
        load_yaml(GateConfig, cfg.gate)
    if cfg.eval_config:
        load_yaml(EvalConfig, cfg.eval_config)
    return checkpoint, policy, train


def queue_round(cfg: LoopConfig, store: ReviewStore, policy: Policy, scan_out: str,
                second_out: str | None = None) -> dict[str, Any]:
    """Samples the scan and queues the picks as batch ``cfg.round`` (once: a rerun finds them queued).

    ``second_out``: the second model's scan of the pool (``strategy: disagreement``). With
    ``sampling.reach_field`` the items' reach comes from the pool manifest's ``meta``.
    """
    queued = store.items(batch=cfg.round)
    if queued:
        return {"queued": len(queued), "new": 0}
    rows = read_results(scan_out)
    config = dataclasses.replace(cfg.sampling, exclude=frozenset(cfg.sampling.exclude) | store.queued_ids())
    second = second_model_scores(read_results(second_out)) if second_out else None
    meta = manifest_meta(cfg.pool_manifest, (r["id"] for r in rows)) if config.reach_field else None
    picks = sample(rows, policy, config, second_scores=second, meta=meta)
    items = picked_items(rows, picks, cfg.pool_manifest, cfg.round)
    new = store.enqueue(items)
    by_category: dict[str, int] = {}
    for pick in picks:
        by_category[pick.category] = by_category.get(pick.category, 0) + 1
    print(f"[loop] queued {new} item(s) for review as batch {cfg.round} ({cfg.sampling.strategy}): {by_category}",
          flush=True)
    return {"queued": len(items), "new": new, "by_category": by_category}


def open_items(store: ReviewStore, batch: str) -> int:
    return sum(1 for i in store.items(batch=batch) if i.status in ("pending", "adjudication"))


def wait_for_reviews(cfg: LoopConfig, store: ReviewStore) -> bool:
    """True once every item of the round is resolved; False when ``reviews: stop`` and some are open."""
    started, last = time.monotonic(), None
    while True:
        remaining = open_items(store, cfg.round)
        if remaining == 0:
            return True
        if cfg.reviews == "stop":
            print(f"[loop] {remaining} item(s) of {cfg.round} await review in {store.url}; run this command "
                  "again when they are reviewed", flush=True)
            return False
        if time.monotonic() - started > cfg.wait_timeout_s:
            raise TimeoutError(f"{remaining} item(s) of {cfg.round} still unreviewed after {cfg.wait_timeout_s:.0f}s; "
                               "run the command again to keep waiting")
        if remaining != last:
            print(f"[loop] waiting for reviews: {remaining} item(s) of {cfg.round} open", flush=True)
            last = remaining
        time.sleep(cfg.poll_s)


def combined_manifest(seed_manifest: str, feedback_manifest: str, out: Path) -> tuple[str, int, int]:
    """Seed rows (media made absolute) + feedback rows; feedback wins on a shared id. Returns path and counts.

    A seed row that does not parse is copied as it is: training quarantines it with its reason, as it did
    when the seed model was trained.
    """
    base = manifest_base(seed_manifest if "://" in seed_manifest else os.path.abspath(seed_manifest))
    feedback = {s.id: s.to_row() for s in read_manifest(feedback_manifest)}
    seed = 0
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "w", encoding="utf-8") as handle:
        for line in _seed_lines(seed_manifest):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                row = None
            if isinstance(row, dict):
                if str(row.get("id")) in feedback:
                    continue
                for field in MEDIA_FIELDS:
                    if isinstance(row.get(field), str) and row[field] and not row[field].startswith("data:"):
                        row[field] = resolve_uri(row[field], base)
                line = json.dumps(row)
            handle.write(line.rstrip("\n") + "\n")
            seed += 1
        for row in feedback.values():
            handle.write(json.dumps(row) + "\n")
    return str(out), seed, len(feedback)


def _seed_lines(manifest: str):
    if manifest.endswith(".parquet"):  # rows as JSON: inline media bytes as data: URIs
        for row in (s.to_row() for s in read_manifest(manifest)):
            yield json.dumps({k: f"data:application/octet-stream;base64,{base64.b64encode(v).decode()}"
                              if isinstance(v, bytes) else v for k, v in row.items()})
        return
    with fsspec.open(manifest, "r", encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                yield line


def retrain(cfg: LoopConfig, train: TrainConfig, manifest: str) -> str:
    """The training job over ``manifest`` from the current model's weights; returns the new checkpoint."""
    folder = round_dir(cfg)
    export = folder / "model"
    if (export / "manifest.json").exists() and (folder / "train-summary.json").exists():
        print(f"[loop] retrained model already at {export}", flush=True)
        return str(export)
    fit = dataclasses.replace(train.fit, init_from=os.path.abspath(cfg.checkpoint),
                              epochs=cfg.retrain_epochs or train.fit.epochs)
    data = dataclasses.replace(train.data, manifest=manifest, synthetic=None)
    job = dataclasses.replace(train, run_name=f"loop-{cfg.round}", export_dir=str(export), data=data, fit=fit,
                              storage_path=str(folder / "ray"))
    summary = run_training(job, say=say)
    say(f"[loop] retrained: best epoch {summary['best_epoch'] + 1}, {summary['wall_seconds']}s; model -> {export}")
    (folder / "train-summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return str(export)


def run(cfg: LoopConfig) -> dict[str, Any]:
    """Runs (or resumes) the round; returns its summary, also written to ``<work_dir>/<round>/loop.json``.

    ``summary["stage"]`` is ``awaiting_reviews`` when it stopped for reviewers, else ``done`` with the
    gate's verdict in ``summary["promoted"]``.
    """
    cfg = resolved(cfg)
    checkpoint, policy, train = validate(cfg)
    folder = round_dir(cfg)
    folder.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    store = open_store(cfg.store, checkpoint.categories)
    try:
        scan_out = str(folder / "scan")
        execute_scan(ScanJob(checkpoint=cfg.checkpoint, manifest=cfg.pool_manifest, out=scan_out, scan=cfg.scan),
                     checkpoint, policy, say)
        second_out = None
        if cfg.second_checkpoint:  # strategy disagreement: the second model scans the pool too
            second_out = str(folder / "scan-second")
            second = CheckpointManifest.read(cfg.second_checkpoint)
            execute_scan(ScanJob(checkpoint=cfg.second_checkpoint, manifest=cfg.pool_manifest, out=second_out,
                                 scan=cfg.scan), second, second.policy(), say)
        summary: dict[str, Any] = {"round": cfg.round, "checkpoint": cfg.checkpoint, "store": cfg.store,
                                   "queue": queue_round(cfg, store, policy, scan_out, second_out)}
        if not wait_for_reviews(cfg, store):
            summary["stage"] = "awaiting_reviews"
            return summary
        snapshot = export_feedback(store.items(), store.reviews(), checkpoint.categories, folder.parent / "feedback",
                                   redacted_url(cfg.store), cfg.catalogue)
        print(f"[loop] feedback snapshot v{snapshot['version']}: {snapshot['items']} item(s) "
              f"(left out: {snapshot['left_out'] or 'none'}) -> {snapshot['path']}", flush=True)
        manifest, seed_rows, feedback_rows = combined_manifest(cfg.seed_manifest, snapshot["path"],
                                                               folder / "train-manifest.jsonl")
        print(f"[loop] retraining on {seed_rows} seed + {feedback_rows} feedback item(s) from {cfg.checkpoint}",
              flush=True)
        candidate = retrain(cfg, train, manifest)
        config = load_yaml(EvalConfig, cfg.eval_config) if cfg.eval_config else EvalConfig()
        report = compare_checkpoints(CompareJob(baseline=cfg.checkpoint, candidate=candidate, goldens=list(cfg.golden),
                                                out=str(folder / "compare"), gate=cfg.gate, catalogue=cfg.catalogue,
                                                config=config), say)
        summary.update({"stage": "done", "snapshot": {k: snapshot[k] for k in ("version", "items", "path", "left_out")},
                        "train_rows": {"seed": seed_rows, "feedback": feedback_rows}, "candidate": candidate,
                        "comparison": str(folder / "compare" / "metrics.json"),
                        "macro": {name: {m: s["macro"][m] for m in ("pr_auc", "f1", "recall_at_precision") if m in s["macro"]}
                                  for name, s in report["sets"].items()},
                        "promoted": None if report["gate"] is None else report["gate"]["passed"]})
        summary["wall_s"] = round(time.perf_counter() - started, 1)
        (folder / "loop.json").write_text(json.dumps(summary, indent=2, default=str))
        verdict = {None: "no gate", True: "PROMOTED", False: "NOT promoted"}[summary["promoted"]]
        print(f"[loop] {cfg.round} done in {summary['wall_s']}s: {verdict}; summary -> {folder / 'loop.json'}", flush=True)
        return summary
    finally:
        store.close()

