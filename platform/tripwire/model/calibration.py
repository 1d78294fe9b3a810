"""Score calibration: the head's logits -> probabilities that mean what they say.

Training with ``pos_weight`` (class imbalance) and early stopping leaves raw sigmoids systematically too
high for rare categories, so a policy threshold of 0.9 would not mean "90% likely". Per-category Platt
scaling, ``p = sigmoid(scale * logit + bias)`` with ``scale > 0``, is fitted on the validation split at each
checkpoint and saved in its manifest; training metrics, Ray Serve and the in-process scorer all apply it
through :meth:`PlattCalibration.probabilities`, so they agree. A positive scale keeps every ranking metric
(ROC-AUC, PR-AUC) unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

# Fewer known positives or negatives than this in validation: the category keeps the identity map.
MIN_CLASS_COUNT = 5


@dataclass(frozen=True)
class PlattCalibration:
    """Per-category ``sigmoid(scale * logit + bias)``.

    Attributes:
        scale: one positive slope per category.
        bias: one offset per category.
    """

    scale: tuple[float, ...]
    bias: tuple[float, ...]

    def __post_init__(self):
        if len(self.scale) != len(self.bias):
            raise ValueError(f"calibration has {len(self.scale)} scales for {len(self.bias)} biases")
        if any(s <= 0 for s in self.scale):
            raise ValueError("calibration scales must be positive (a calibration may not reorder scores)")

    @classmethod
    def identity(cls, num_categories: int) -> "PlattCalibration":
        return cls((1.0,) * num_categories, (0.0,) * num_categories)

    @classmethod
    def fit(cls, logits: np.ndarray, labels: np.ndarray, iterations: int = 200) -> "PlattCalibration":
        """Fits each category on its known labels (label -1 = unknown) by minimising log loss.

        Args:
            logits: (N, C) raw head outputs.
            labels: (N, C) with 1, 0 or -1.
            iterations: L-BFGS iterations per category.
        """
        logits, labels = np.asarray(logits, np.float64), np.asarray(labels)
        scales, biases = [], []
        for j in range(logits.shape[1]):
            known = labels[:, j] >= 0
            y = labels[known, j].astype(np.float64)
            if min(int(y.sum()), int(len(y) - y.sum())) < MIN_CLASS_COUNT:
                scales.append(1.0)
                biases.append(0.0)
                continue
            scale, bias = _fit_one(logits[known, j], y, iterations)
            scales.append(scale)
            biases.append(bias)
        return cls(tuple(scales), tuple(biases))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """(N, C) logits -> calibrated probabilities (same dtype and device)."""
        scale = torch.as_tensor(self.scale, dtype=logits.dtype, device=logits.device)
        bias = torch.as_tensor(self.bias, dtype=logits.dtype, device=logits.device)
        return torch.sigmoid(logits * scale + bias)

    def to_dict(self) -> dict[str, Any]:
        return {"method": "platt", "scale": list(self.scale), "bias": list(self.bias)}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, num_categories: int) -> "PlattCalibration":
        """Reads :meth:`to_dict` output; a checkpoint without calibration gets the identity (raw sigmoid)."""
        if not data:
            return cls.identity(num_categories)
        if data.get("method") != "platt":
            raise ValueError(f"calibration.method: {data.get('method')!r} is not supported (expected 'platt')")
        calibration = cls(tuple(float(s) for s in data["scale"]), tuple(float(b) for b in data["bias"]))
        if len(calibration.scale) != num_categories:
            raise ValueError(f"calibration has {len(calibration.scale)} categories, the model {num_categories}")
        return calibration


def _fit_one(z: np.ndarray, y: np.ndarray, iterations: int) -> tuple[float, float]:
    # Platt's smoothed targets: a validation set the head separates perfectly would otherwise drive the
    # slope to infinity (every score 0 or 1); these keep it finite and shrink with more data.
    positives, negatives = float(y.sum()), float(len(y) - y.sum())
    y = np.where(y == 1, (positives + 1) / (positives + 2), 1 / (negatives + 2))
    z_t, y_t = torch.as_tensor(z), torch.as_tensor(y)
    log_scale = torch.zeros((), dtype=torch.float64, requires_grad=True)  # scale = exp(.) stays positive
    bias = torch.zeros((), dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.LBFGS([log_scale, bias], lr=0.5, max_iter=iterations, line_search_fn="strong_wolfe")

    def closure():
        optimizer.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(z_t * log_scale.exp() + bias, y_t)
        loss.backward()
        return loss

    optimizer.step(closure)
    return float(log_scale.detach().exp()), float(bias.detach())


def expected_calibration_error(labels: np.ndarray, scores: np.ndarray, bins: int = 10) -> float:
    """Mean |observed rate - mean score| over equal-width score bins, weighted by bin size (known labels).

    This is the plug-in estimate, biased upward on small sets (the noise in each bin only adds to the
    difference); the evaluation report's ECE is the same statistic bias-corrected with the bootstrap
    (:data:`tripwire.evaluation.metrics.BIAS_CORRECTED`), its plug-in kept beside it."""
    labels, scores = np.asarray(labels, np.float64), np.asarray(scores, np.float64)
    known = labels >= 0
    labels, scores = labels[known], scores[known]
    if labels.size == 0:
        return float("nan")
    which = np.minimum((scores * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            error += members.sum() / labels.size * abs(labels[members].mean() - scores[members].mean())
    return float(error)


def calibration_report(labels: np.ndarray, logits: np.ndarray, calibration: PlattCalibration,
                       categories: Sequence[str]) -> dict[str, dict[str, float]]:
    """Per category (and macro over the categories that have labels): ECE of raw and calibrated scores."""
    raw = torch.sigmoid(torch.as_tensor(logits)).numpy()
    calibrated = calibration.probabilities(torch.as_tensor(logits)).numpy()
    report = {}
    for j, category in enumerate(categories):
        report[category] = {"ece_raw": expected_calibration_error(labels[:, j], raw[:, j]),
                            "ece_calibrated": expected_calibration_error(labels[:, j], calibrated[:, j])}
    scored = [r for r in report.values() if not np.isnan(r["ece_raw"])]
    report["macro"] = {key: float(np.mean([r[key] for r in scored])) if scored else float("nan")
                       for key in ("ece_raw", "ece_calibrated")}
    # JSON has no NaN: a category without known labels reports null.
    return {c: {k: (None if np.isnan(v) else round(v, 6)) for k, v in r.items()} for c, r in report.items()}
