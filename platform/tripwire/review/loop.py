"""The improvement loop's settings (``pipelines/configs/loop.yaml``): scan -> sample -> review -> export ->
retrain -> evaluate -> gate. Validated here, before Ray starts."""

from __future__ import annotations

from dataclasses import dataclass, field

from tripwire.common.config import ConfigError
from tripwire.review.config import DEFAULT_STORE
from tripwire.review.sampling import SamplingConfig
from tripwire.scan.config import MANIFEST_SUFFIXES, ScanConfig

WAIT_MODES = ("wait", "stop")


@dataclass(frozen=True)
class LoopConfig:
    """One round of the loop.

    Attributes:
        checkpoint: the model to improve; it scans the pool and is the gate's baseline.
        train_config: the training YAML the model came from (model and fit settings for the retrain).
        seed_manifest: the labelled data the model was trained on; the retrain uses it plus the feedback.
        pool_manifest: the unlabelled catalogue to scan and sample from (labels in it are ignored).
        golden: golden sets (``name@version``) the gate compares the two models on.
        work_dir: where this round's scan, snapshot, model and comparison go (a rerun resumes).
        round: the round's name: the review batch and the new model's run name.
        store: the review store (SQLite path or postgresql:// URL).
        sampling: how many items to send to review and how to choose them.
        reviews: ``wait`` polls the store until the round's items are resolved; ``stop`` exits after
            queueing (run the same command again when the reviews are in).
        wait_timeout_s: how long ``wait`` waits before failing with what is still open.
        poll_s: how often ``wait`` looks.
        retrain_epochs: epochs of the retrain (default: the training YAML's).
        gate: the promotion gate YAML.
        catalogue: the golden-set catalogue (default: ``$TRIPWIRE_GOLDEN_CATALOGUE`` or the repository's).
        eval_config: the evaluation settings YAML (bootstrap, slices; default: the built-in ones).
        scan: how the scan scales.
        second_checkpoint: a second model for ``sampling.strategy: disagreement`` (required by it, used by
            nothing else): it scans the pool too (``<round>/scan-second``) and the items whose scores the two
            models disagree on most are sampled.
    """

    checkpoint: str
    train_config: str
    seed_manifest: str
    pool_manifest: str
    golden: list[str]
    sampling: SamplingConfig
    work_dir: str = "runs/loop"
    round: str = "round-1"
    store: str = DEFAULT_STORE
    reviews: str = "wait"
    wait_timeout_s: float = 7 * 86400.0
    poll_s: float = 10.0
    retrain_epochs: int | None = None
    gate: str | None = "pipelines/configs/gate.yaml"
    catalogue: str | None = None
    eval_config: str | None = None
    scan: ScanConfig = field(default_factory=ScanConfig)
    second_checkpoint: str | None = None

    def __post_init__(self):
        for name in ("seed_manifest", "pool_manifest"):
            if not str(getattr(self, name)).endswith(MANIFEST_SUFFIXES):
                raise ConfigError(f"{name}: {getattr(self, name)} is not a manifest ({list(MANIFEST_SUFFIXES)})")
        if not self.golden:
            raise ConfigError("golden: name at least one golden set for the gate")
        if not self.round or "/" in self.round:
            raise ConfigError(f"round: {self.round!r} must be a non-empty name without '/'")
        if self.reviews not in WAIT_MODES:
            raise ConfigError(f"reviews: {self.reviews!r} must be one of {list(WAIT_MODES)}")
        if self.wait_timeout_s <= 0 or self.poll_s <= 0:
            raise ConfigError("wait_timeout_s and poll_s must be positive")
        if self.retrain_epochs is not None and self.retrain_epochs < 1:
            raise ConfigError(f"retrain_epochs: must be at least 1, got {self.retrain_epochs}")
        if self.sampling.strategy == "disagreement" and not self.second_checkpoint:
            raise ConfigError("second_checkpoint: sampling.strategy 'disagreement' needs a second model to "
                              "disagree with: name its checkpoint")
        if self.second_checkpoint and self.sampling.strategy != "disagreement":
            raise ConfigError(f"second_checkpoint: only sampling.strategy 'disagreement' uses a second model "
                              f"(the strategy is {self.sampling.strategy!r})")
