"""Classification metrics per policy category, in numpy (no dependency on a metrics package).

Labels use 1/0 for known and -1 for unknown; unknown entries are left out per category.
"""

from __future__ import annotations

import numpy as np


def _ranks(values: np.ndarray) -> np.ndarray:
    """1-based ranks with ties sharing their average rank."""
    order = np.argsort(values, kind="mergesort")
    sorted_vals = values[order]
    ranks = np.empty(len(values), dtype=np.float64)
    boundaries = np.flatnonzero(np.diff(sorted_vals)) + 1
    starts = np.concatenate([[0], boundaries])
    ends = np.concatenate([boundaries, [len(values)]])
    for start, end in zip(starts, ends):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    return ranks


def roc_auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U); NaN when only one class is present."""
    labels = np.asarray(labels).astype(bool)
    pos, neg = labels.sum(), (~labels).sum()
    if pos == 0 or neg == 0:
        return float("nan")
    ranks = _ranks(np.asarray(scores, dtype=np.float64))
    return float((ranks[labels].sum() - pos * (pos + 1) / 2) / (pos * neg))


def average_precision(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the precision-recall curve as the mean precision at each positive (step-wise, no interpolation)."""
    labels = np.asarray(labels).astype(bool)
    if labels.sum() == 0:
        return float("nan")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="mergesort")
    hits = labels[order]
    precision_at_k = np.cumsum(hits) / np.arange(1, len(hits) + 1)
    return float(precision_at_k[hits].mean())


def f1_at(labels: np.ndarray, scores: np.ndarray, threshold: float = 0.5) -> float:
    labels = np.asarray(labels).astype(bool)
    predicted = np.asarray(scores) >= threshold
    tp = float((predicted & labels).sum())
    denominator = predicted.sum() + labels.sum()
    return 2 * tp / denominator if denominator else float("nan")


def category_metrics(labels: np.ndarray, scores: np.ndarray, categories: list[str]) -> dict[str, dict[str, float]]:
    """Per-category ROC-AUC, PR-AUC, F1@0.5, support, plus their macro means under ``macro``.

    Args:
        labels: (N, C) with 1, 0 or -1 (unknown).
        scores: (N, C) probabilities.
        categories: the C category names.
    """
    labels, scores = np.asarray(labels), np.asarray(scores)
    out: dict[str, dict[str, float]] = {}
    for j, name in enumerate(categories):
        known = labels[:, j] >= 0
        y, s = labels[known, j], scores[known, j]
        out[name] = {"roc_auc": roc_auc(y, s), "pr_auc": average_precision(y, s), "f1": f1_at(y, s),
                     "positives": int((y == 1).sum()), "support": int(known.sum())}
    keys = ("roc_auc", "pr_auc", "f1")
    out["macro"] = {k: float(np.nanmean([out[c][k] for c in categories])) if categories else float("nan") for k in keys}
    return out


def flatten_metrics(metrics: dict[str, dict[str, float]], prefix: str = "val") -> dict[str, float]:
    """``{"val/macro/roc_auc": ..., "val/hate/roc_auc": ...}`` for reporting to Ray Train."""
    return {f"{prefix}/{cat}/{k}": v for cat, values in metrics.items() for k, v in values.items()}


def binary_macro_f1(labels: np.ndarray, predicted: np.ndarray) -> float:
    """Mean of the F1 of the positive and of the negative class (OffensEval's official metric)."""
    labels, predicted = np.asarray(labels).astype(bool), np.asarray(predicted).astype(bool)
    scores = []
    for positive in (True, False):
        y, p = labels == positive, predicted == positive
        denominator = y.sum() + p.sum()
        scores.append(2.0 * (y & p).sum() / denominator if denominator else 0.0)
    return float(np.mean(scores))
