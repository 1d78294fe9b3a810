"""An evaluation's settings (a YAML file, ``pipelines/configs/evaluate.yaml``) and its job (what to evaluate).

Validated here, before Ray starts: a wrong action name, a slice over nothing or a bad bootstrap setting is
one clear error naming the field.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tripwire.common.config import ConfigError
from tripwire.evaluation.metrics import BootstrapConfig
from tripwire.policy import Action
from tripwire.scan.config import ScanConfig
from tripwire.evaluation.thresholds import (DEFAULT_MIN_POSITIVES, DEFAULT_REVIEW_CAPACITY, DEFAULT_TARGETS,
                                            check_review_capacity)

DEFAULT_SLICES = ("language", "market", "content_type", "source", "modalities", "language&market")
SLICE_FIELDS = ("language", "market", "content_type", "source", "modalities")


@dataclass(frozen=True)
class EvalConfig:
    """How an evaluation measures.

    Attributes:
        positive_action: the category action that counts as "flagged" for precision/recall/F1 at the
            policy (that action or stricter): ``restrict`` (enforcement) or ``review`` / ``block``.
        target_precision: the precision for ``recall_at_precision``.
        bootstrap: confidence intervals (replicates, seed, coverage).
        slices: the slice specs: a field (``language``, ``market``, ``content_type``, ``source``,
            ``modalities`` or ``meta.<key>``) or fields joined by ``&`` (their combinations).
        min_slice_items: a slice with fewer items is reported as too small, not as numbers.
        min_slice_positives, min_slice_negatives: within a slice, a category with fewer labelled positives
            (or negatives) is reported as too small, not as numbers (three positives, all caught, are no
            evidence of recall 1.000).
        review_capacity: the share of items the review team can take (0.05: one item in twenty); the
            report sets the review load against it, and ``tripwire thresholds`` never chooses review
            thresholds that send more (null: no limit).
        max_slice_values: at most this many values per slice spec (the largest), so a free-text field
            cannot make thousands of slices.
        scan: how the scoring scan scales (the same settings as ``tripwire scan``).
    """

    positive_action: str = "restrict"
    target_precision: float = 0.9
    bootstrap: BootstrapConfig = field(default_factory=BootstrapConfig)
    slices: list[str] = field(default_factory=lambda: list(DEFAULT_SLICES))
    min_slice_items: int = 30
    min_slice_positives: int = 10
    min_slice_negatives: int = 10
    review_capacity: float | None = DEFAULT_REVIEW_CAPACITY
    max_slice_values: int = 20
    scan: ScanConfig = field(default_factory=ScanConfig)

    def __post_init__(self):
        names = [a.label for a in Action if a is not Action.ALLOW]
        if self.positive_action not in names:
            raise ConfigError(f"positive_action: {self.positive_action!r} is not one of {names}")
        if not 0.0 < self.target_precision <= 1.0:
            raise ConfigError(f"target_precision: must be in (0, 1], got {self.target_precision}")
        for spec in self.slices:
            for name in spec.split("&"):
                if name not in SLICE_FIELDS and not (name.startswith("meta.") and len(name) > 5):
                    raise ConfigError(f"slices: {name!r} in {spec!r} is not a slice field "
                                      f"({list(SLICE_FIELDS)} or meta.<key>)")
        if self.min_slice_items < 1 or self.max_slice_values < 1:
            raise ConfigError("min_slice_items and max_slice_values must be at least 1")
        if self.min_slice_positives < 0 or self.min_slice_negatives < 0:
            raise ConfigError("min_slice_positives and min_slice_negatives must be at least 0")
        check_review_capacity(self.review_capacity, "review_capacity")

    @property
    def positive_level(self) -> int:
        return int(Action[self.positive_action.upper()])

    @property
    def slice_fields(self) -> list[str]:
        return sorted({name for spec in self.slices for name in spec.split("&")})


@dataclass(frozen=True)
class EvalJob:
    """One evaluation: a checkpoint (and policy) on a registered golden set, outputs to ``out``.

    Attributes:
        checkpoint: the model.
        golden: ``NAME`` or ``NAME@VERSION`` in the catalogue.
        out: folder for ``metrics.json``, ``report.html`` and the scoring scan (which resumes).
        policy: a policy YAML (default: the checkpoint's recommended policy, else the bundled one).
        catalogue: the golden-set catalogue (default: ``TRIPWIRE_GOLDEN_CATALOGUE`` or data/golden/catalogue.yaml).
        config: the measuring settings.
    """

    checkpoint: str
    golden: str
    out: str
    policy: str | None = None
    catalogue: str | None = None
    config: EvalConfig = field(default_factory=EvalConfig)


@dataclass(frozen=True)
class CompareJob:
    """A candidate checkpoint against a baseline on the same golden sets and items, with an optional gate.

    Attributes:
        baseline / candidate: the two checkpoints.
        goldens: registered golden sets (``NAME`` or ``NAME@VERSION``), at least one.
        out: folder for ``metrics.json``, ``report.html`` and each side's scoring scans.
        baseline_policy / candidate_policy: policy YAMLs (default: each checkpoint's).
        gate: a promotion gate YAML (:class:`tripwire.evaluation.gate.GateConfig`); none: no verdict.
        catalogue: the golden-set catalogue.
        config: the measuring settings.
    """

    baseline: str
    candidate: str
    goldens: list[str]
    out: str
    baseline_policy: str | None = None
    candidate_policy: str | None = None
    gate: str | None = None
    catalogue: str | None = None
    config: EvalConfig = field(default_factory=EvalConfig)

    def __post_init__(self):
        if not self.goldens:
            raise ConfigError("--golden: name at least one golden set")


@dataclass(frozen=True)
class ThresholdsJob:
    """Thresholds chosen on a golden set for stated targets, written as a new policy file.

    Attributes:
        checkpoint / golden / policy / catalogue / config: as for :class:`EvalJob`.
        out: the new policy's path (must not exist: a tuned policy is a new file).
        work: folder for the scoring scan (an evaluation's ``out`` reuses its scores).
        targets: ``action:metric=value`` targets (default: :data:`tripwire.evaluation.thresholds.DEFAULT_TARGETS`).
        per_market: also tune each market's overrides.
        version: the new policy's version (default: derived from the base policy's).
        min_positives: the labelled positives a category needs for its thresholds to be chosen.
    """

    checkpoint: str
    golden: str
    out: str
    work: str
    policy: str | None = None
    targets: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))
    per_market: bool = False
    version: str | None = None
    min_positives: int = DEFAULT_MIN_POSITIVES
    catalogue: str | None = None
    config: EvalConfig = field(default_factory=EvalConfig)
