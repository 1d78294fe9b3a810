"""Evaluation metrics with bootstrap confidence intervals, computed from item weights.

A bootstrap replicate resamples the items with replacement, which is the same as giving item ``i`` the
weight "how many times it was drawn". Every metric here is written over weights, so one sort of the
scores per category serves the point estimate (all weights 1) and every replicate (weights drawn once,
seeded), and a paired comparison of two models applies the same weights to both. Replicates are
processed in chunks of at most :data:`MAX_CHUNK_WEIGHTS` weights, so memory stays bounded whatever
the set's size.

Labels are 1 / 0 for known and -1 for unknown; a category's metrics use only the items that label it.
"Predicted positive" at the policy is an item whose category action (from the moderation core's
decision) reaches the evaluation's ``positive_action`` (``restrict`` by default: restrict or block).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist
from typing import Iterator, Mapping, Sequence

import numpy as np

from tripwire.policy import ACTION_NAMES

MAX_CHUNK_WEIGHTS = 2_000_000  # weights per chunk of replicates (16 MB of float64)
RELIABILITY_BINS = 10
HISTOGRAM_BINS = 20
PR_CURVE_POINTS = 200
# class_macro_f1: the mean of the positive and the negative class's F1 at the policy (OffensEval's metric).
CATEGORY_METRICS = ("precision", "recall", "f1", "fpr", "roc_auc", "pr_auc", "recall_at_precision", "ece",
                    "catch_rate", "class_macro_f1")
MICRO_METRICS = ("precision", "recall", "f1")
# Statistics whose plug-in estimate resampling biases (ECE: the noise in each bin only adds to |observed -
# expected|, so every resample sees more miscalibration than the sample): always reported bias-corrected.
BIAS_CORRECTED = frozenset({"ece"})
# Proportions: (successes, trials) from the confusion counts, for Wilson's interval where the bootstrap is
# degenerate ("caught": positives that reached at least review).
PROPORTIONS = {"precision": ("tp", ("tp", "fp")), "recall": ("tp", ("tp", "fn")), "fpr": ("fp", ("fp", "tn")),
               "catch_rate": ("caught", ("tp", "fn"))}


@dataclass(frozen=True)
class BootstrapConfig:
    """How confidence intervals are drawn.

    Attributes:
        replicates: bootstrap resamples (0: point estimates only, intervals null).
        seed: the resampling seed (the same seed gives the same intervals).
        confidence: the interval's coverage (0.95: the 2.5th to 97.5th percentiles).
    """

    replicates: int = 1000
    seed: int = 0
    confidence: float = 0.95

    def __post_init__(self):
        from tripwire.common.config import ConfigError

        if self.replicates < 0:
            raise ConfigError(f"bootstrap.replicates: must be >= 0, got {self.replicates}")
        if not 0.5 <= self.confidence < 1.0:
            raise ConfigError(f"bootstrap.confidence: must be in [0.5, 1), got {self.confidence}")


def resample_weights(n: int, replicates: int, rng: np.random.Generator) -> np.ndarray:
    """(replicates, n) counts: how often each item was drawn in each resample."""
    draws = rng.integers(0, n, size=(replicates, n))
    offsets = (np.arange(replicates) * n)[:, None]
    return np.bincount((draws + offsets).ravel(), minlength=replicates * n).reshape(replicates, n).astype(np.float64)


def weight_chunks(n: int, bootstrap: BootstrapConfig, seed_offset: int = 0) -> Iterator[np.ndarray]:
    """The bootstrap's weights, ``bootstrap.replicates`` rows in all, a chunk of at most
    :data:`MAX_CHUNK_WEIGHTS` values at a time. The same config and offset give the same weights, so two
    models evaluated on the same items are compared on the same resamples (a paired bootstrap)."""
    if n == 0 or bootstrap.replicates == 0:
        return
    rng = np.random.default_rng([bootstrap.seed, seed_offset])
    rows = max(1, MAX_CHUNK_WEIGHTS // n)
    for start in range(0, bootstrap.replicates, rows):
        yield resample_weights(n, min(rows, bootstrap.replicates - start), rng)


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1), np.nan)


def category_arrays(labels: np.ndarray, scores: np.ndarray, predicted: np.ndarray, caught: np.ndarray,
                    weights: np.ndarray, target_precision: float) -> dict[str, np.ndarray]:
    """Every category metric for each row of ``weights`` (one category's labelled items).

    Args:
        labels: (n,) 0/1.
        scores: (n,) calibrated scores.
        predicted: (n,) bool: the category's action reached the positive action.
        caught: (n,) bool: the category's action reached at least review.
        weights: (R, n) item weights (ones for the point estimate).
        target_precision: for ``recall_at_precision``.

    Returns:
        metric name -> (R,) values (NaN where undefined), plus the confusion counts and ``caught``
        (positives whose action reached at least review).
    """
    y = labels.astype(np.float64)
    order = np.argsort(-scores, kind="mergesort")
    sorted_scores, sorted_y = scores[order], y[order]
    w = weights[:, order]
    # The last index of each run of equal scores: a threshold admits a whole run or none of it.
    ends = np.append(np.flatnonzero(np.diff(sorted_scores) != 0), len(sorted_scores) - 1)
    tp_cum = np.cumsum(w * sorted_y, axis=1)[:, ends]
    fp_cum = np.cumsum(w * (1 - sorted_y), axis=1)[:, ends]
    positives, negatives = tp_cum[:, -1], fp_cum[:, -1]
    tpr = _divide(tp_cum, positives[:, None])
    fpr_curve = _divide(fp_cum, negatives[:, None])
    zero = np.zeros((len(w), 1))
    tpr0, fpr0 = np.hstack([zero, tpr]), np.hstack([zero, fpr_curve])
    roc_auc = np.sum(np.diff(fpr0, axis=1) * (tpr0[:, 1:] + tpr0[:, :-1]) / 2, axis=1)
    precision_curve = _divide(tp_cum, tp_cum + fp_cum)
    recall_gain = np.diff(np.hstack([zero, tp_cum]), axis=1)
    pr_auc = _divide(np.nansum(recall_gain * precision_curve, axis=1), positives)
    meets = precision_curve >= target_precision
    recall_at_precision = np.where(positives > 0, np.max(np.where(meets, tpr, 0.0), axis=1, initial=0.0), np.nan)

    which = np.minimum((scores * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
    onehot = np.eye(RELIABILITY_BINS)[which]  # (n, bins)
    total = weights.sum(axis=1)
    ece = _divide(np.abs((weights * y) @ onehot - (weights * scores) @ onehot).sum(axis=1), total)

    tp = weights @ (y * predicted)
    fp = weights @ ((1 - y) * predicted)
    fn = weights @ (y * ~predicted)
    tn = weights @ ((1 - y) * ~predicted)
    return {
        "precision": _divide(tp, tp + fp), "recall": _divide(tp, tp + fn), "f1": _divide(2 * tp, 2 * tp + fp + fn),
        "fpr": _divide(fp, fp + tn), "roc_auc": np.where((positives > 0) & (negatives > 0), roc_auc, np.nan),
        "pr_auc": pr_auc, "recall_at_precision": recall_at_precision, "ece": ece,
        "catch_rate": _divide(weights @ (y * caught), positives),
        "class_macro_f1": (_divide(2 * tp, 2 * tp + fp + fn) + _divide(2 * tn, 2 * tn + fp + fn)) / 2,
        "tp": tp, "fp": fp, "fn": fn, "tn": tn, "caught": weights @ (y * caught),
    }


def _interval(values: np.ndarray, confidence: float) -> list[float | None]:
    """The plain percentile interval of the finite values (``[None, None]`` without any)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [None, None]
    tail = (1 - confidence) / 2 * 100
    return [round(float(np.percentile(finite, tail)), 6), round(float(np.percentile(finite, 100 - tail)), 6)]


def _value(x: float) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), 6)


def wilson(successes: float, trials: float, confidence: float) -> tuple[float, float]:
    """Wilson's score interval of a proportion; it always contains ``successes / trials`` and stays in [0, 1]."""
    z = NormalDist().inv_cdf(1 - (1 - confidence) / 2)
    p = successes / trials
    denominator = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denominator
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denominator
    return max(0.0, min(p, centre - half)), min(1.0, max(p, centre + half))


def estimate(point: float, replicates: np.ndarray | None, confidence: float, *, bias_corrected: bool = False,
             counts: tuple[float, float] | None = None, bounds: tuple[float, float] = (0.0, 1.0)) -> dict:
    """``{"value", "ci", "method"}`` of one metric; the interval always contains the value.

    ``method`` says how the interval was made (null without replicates or without a value):

    - ``percentile``: the bootstrap's percentile interval, when it contains the plug-in estimate (the
      resamples are centred on it).
    - ``bias-corrected``: for a statistic the resampling biases (``bias_corrected``, e.g. ECE, whose
      plug-in is biased upward by the noise in each bin), or any statistic whose plug-in estimate falls
      outside its own percentile interval: the value is the median-bias-corrected estimate
      ``2 * plug_in - median(replicates)`` and the interval the basic (pivot) bootstrap interval
      ``[2 * plug_in - q_hi, 2 * plug_in - q_lo]``, both clipped to ``bounds``; ``plug_in`` is kept.
      The median lies between the quantiles, so the value lies in the interval.
    - ``wilson``: the resamples all agree (a degenerate bootstrap: 3 of 3 positives caught resample to
      recall 1 every time) and the metric is a proportion (``counts`` = successes, trials): Wilson's
      score interval, which contains the proportion.
    - ``not estimable``: a degenerate bootstrap of a metric that is not a proportion: no interval.
    """
    value = _value(point)
    finite = replicates[np.isfinite(replicates)] if replicates is not None else np.empty(0)
    if value is None or finite.size == 0:
        return {"value": value, "ci": [None, None], "method": None}
    tail = (1 - confidence) / 2 * 100
    lo, median, hi = (float(q) for q in np.percentile(finite, [tail, 50.0, 100 - tail]))
    point = float(point)
    if hi - lo <= 1e-12:
        if counts is not None and counts[1] > 0:
            low, high = wilson(counts[0], counts[1], confidence)
            return {"value": value, "ci": [round(low, 6), round(high, 6)], "method": "wilson"}
        return {"value": value, "ci": [None, None], "method": "not estimable"}
    if not bias_corrected and lo <= point <= hi:
        return {"value": value, "ci": [round(lo, 6), round(hi, 6)], "method": "percentile"}
    low_bound, high_bound = bounds
    clip = lambda x: round(float(min(max(x, low_bound), high_bound)), 6)  # noqa: E731 (monotone: keeps the order)
    return {"value": clip(2 * point - median), "ci": [clip(2 * point - hi), clip(2 * point - lo)],
            "method": "bias-corrected", "plug_in": value}


@dataclass
class EvalArrays:
    """One evaluation's items, aligned: what the metrics are computed from.

    Attributes:
        labels: (N, C) 1 / 0 / -1.
        scores: (N, C) calibrated scores.
        category_actions: (N, C) the action each category took (0 allow .. 3 block, the core's reasons).
        actions: (N,) the item's decision, as an action index.
        fields: slice field -> (N,) values (None where the item has no value).
        ids: (N,) item ids, when known (a comparison aligns two evaluations on them).
    """

    labels: np.ndarray
    scores: np.ndarray
    category_actions: np.ndarray
    actions: np.ndarray
    fields: dict[str, np.ndarray]
    ids: np.ndarray | None = None

    def subset(self, mask: np.ndarray) -> "EvalArrays":
        return EvalArrays(self.labels[mask], self.scores[mask], self.category_actions[mask], self.actions[mask],
                          {k: v[mask] for k, v in self.fields.items()}, None if self.ids is None else self.ids[mask])

    def __len__(self) -> int:
        return len(self.labels)


def _nan(value: float | None) -> float:
    return float("nan") if value is None else value


def _column_nanmean(stacked: np.ndarray) -> np.ndarray:
    """Mean over rows of each column, ignoring NaN (NaN where a column has no finite value)."""
    finite = np.isfinite(stacked)
    return _divide(np.where(finite, stacked, 0.0).sum(axis=0), finite.sum(axis=0).astype(np.float64))


def _micro(metric: str, c: Mapping[str, np.ndarray]) -> np.ndarray:
    """Precision, recall or F1 of confusion counts pooled over categories."""
    if metric == "precision":
        return _divide(c["tp"], c["tp"] + c["fp"])
    if metric == "recall":
        return _divide(c["tp"], c["tp"] + c["fn"])
    return _divide(2 * c["tp"], 2 * c["tp"] + c["fp"] + c["fn"])


def category_estimates(point: Mapping[str, np.ndarray], replicates: Mapping[str, np.ndarray] | None,
                       confidence: float) -> dict[str, dict]:
    """Every category metric's ``{"value", "ci", "method"}`` from :func:`category_arrays`' point (one row)
    and replicates (None without a bootstrap): ECE bias-corrected, proportions with their counts."""
    out = {}
    for metric in CATEGORY_METRICS:
        counts = None
        if metric in PROPORTIONS:
            successes, (a, b) = PROPORTIONS[metric]
            counts = (float(point[successes][0]), float(point[a][0] + point[b][0]))
        out[metric] = estimate(point[metric][0], None if replicates is None else replicates.get(metric), confidence,
                               bias_corrected=metric in BIAS_CORRECTED, counts=counts)
    return out


def too_small(positives: int, negatives: int, min_positives: int, min_negatives: int) -> str | None:
    """Why a category's labelled items are too few to measure (None when they are enough)."""
    reasons = [f"{count} {name} (fewer than {least})" for count, name, least in
               ((positives, "positives", min_positives), (negatives, "negatives", min_negatives)) if count < least]
    return "; ".join(reasons) or None


def summarize(arrays: EvalArrays, categories: Sequence[str], positive_action: int, target_precision: float,
              bootstrap: BootstrapConfig, seed_offset: int = 0,
              thresholds: Mapping[str, Mapping[str, float | None]] | None = None,
              min_positives: int = 0, min_negatives: int = 0) -> dict:
    """The metrics of one set of items: per category, macro, micro, decision rates and review load, with
    intervals (:func:`estimate`: each contains its value).

    A category whose labelled items hold fewer than ``min_positives`` positives or ``min_negatives``
    negatives is reported as too small (``{"labelled", "positives", "negatives", "too_small": why}``, no
    metrics) and left out of macro and micro: a slice with three positives, all caught, would otherwise
    read recall 1.000. ``review_load`` is the share of items the policy sends to review: ``overall`` (the
    item's decision is review) and per category (the category's action is review), over every item,
    labelled or not. Every category and the item-level rates share one draw of resampling weights, so
    macro and micro intervals come from the same replicates as the per-category ones.
    """
    n = len(arrays)
    entries: dict[str, dict] = {}
    prepared, unlabelled = {}, []
    for j, category in enumerate(categories):
        known = arrays.labels[:, j] >= 0
        if not known.any():
            unlabelled.append(category)
            continue
        labels = arrays.labels[known, j]
        positives = int(labels.sum())
        negatives = int(known.sum()) - positives
        reason = too_small(positives, negatives, min_positives, min_negatives)
        if reason:
            entries[category] = {"labelled": int(known.sum()), "positives": positives, "negatives": negatives,
                                 "too_small": reason}
            continue
        entries[category] = {}
        prepared[category] = (known, (labels, arrays.scores[known, j],
                                      arrays.category_actions[known, j] >= positive_action,
                                      arrays.category_actions[known, j] >= 1))
    hits = {name: (arrays.actions == index).astype(np.float64) for index, name in enumerate(ACTION_NAMES)}
    bands = {category: (arrays.category_actions[:, j] == 1).astype(np.float64) for j, category in enumerate(categories)}
    category_reps: dict[str, list[dict[str, np.ndarray]]] = {c: [] for c in prepared}
    share_keys = [("action", a) for a in hits] + [("band", c) for c in bands]
    share_reps: dict[tuple[str, str], list[np.ndarray]] = {key: [] for key in share_keys}
    for chunk in weight_chunks(n, bootstrap, seed_offset):
        for category, (known, args) in prepared.items():
            category_reps[category].append(category_arrays(*args, chunk[:, known], target_precision))
        for (kind, name), reps in share_reps.items():
            reps.append(chunk @ (hits[name] if kind == "action" else bands[name]) / n)
    draws = bool(n and bootstrap.replicates)
    replicate_values = {c: {k: np.concatenate([r[k] for r in reps]) for k in reps[0]} if reps else None
                        for c, reps in category_reps.items()}
    points = {}
    for category, (known, args) in prepared.items():
        point = points[category] = category_arrays(*args, np.ones((1, int(known.sum()))), target_precision)
        entry = {"labelled": int(known.sum()), "positives": int(args[0].sum()),
                 "negatives": int(known.sum() - args[0].sum()),
                 "metrics": category_estimates(point, replicate_values[category], bootstrap.confidence),
                 "confusion": {k: int(point[k][0]) for k in ("tp", "fp", "fn", "tn")}}
        if thresholds is not None:
            entry["thresholds"] = dict(thresholds.get(category, {}))
        entries[category] = entry
    measured = list(prepared)

    def replicates_of(key: str) -> np.ndarray | None:
        return np.vstack([replicate_values[c][key] for c in measured]) if measured and draws else None

    macro = {}
    for metric in CATEGORY_METRICS:
        plug_in = np.array([points[c][metric][0] for c in measured])
        stacked = replicates_of(metric)
        macro[metric] = estimate(_column_nanmean(plug_in[:, None])[0] if measured else float("nan"),
                                 _column_nanmean(stacked) if stacked is not None else None, bootstrap.confidence,
                                 bias_corrected=metric in BIAS_CORRECTED)
    confusion = {k: np.array([sum(points[c][k][0] for c in measured)], np.float64) for k in ("tp", "fp", "fn", "tn")}
    confusion_reps = {k: replicates_of(k).sum(axis=0) for k in ("tp", "fp", "fn")} if measured and draws else None
    micro = {}
    for metric in MICRO_METRICS:
        counts = None
        if metric in PROPORTIONS:
            successes, (a, b) = PROPORTIONS[metric]
            counts = (float(confusion[successes][0]), float(confusion[a][0] + confusion[b][0]))
        micro[metric] = estimate(_micro(metric, confusion)[0],
                                 _micro(metric, confusion_reps) if confusion_reps else None, bootstrap.confidence,
                                 counts=counts)

    def share(kind: str, name: str, hit: np.ndarray) -> dict:
        return estimate(hit.mean() if n else float("nan"),
                        np.concatenate(share_reps[(kind, name)]) if draws else None, bootstrap.confidence,
                        counts=(float(hit.sum()), float(n)))

    actions = {name: share("action", name, hit) for name, hit in hits.items()}
    review_load = {"overall": actions["review"],
                   "categories": {category: share("band", category, band) for category, band in bands.items()}}
    return {"items": n, "categories": {c: entries[c] for c in categories if c in entries}, "macro": macro,
            "micro": micro, "actions": actions, "review_load": review_load, "unlabelled_categories": unlabelled}


def curves(arrays: EvalArrays, categories: Sequence[str]) -> dict:
    """Per labelled category: a PR curve (at most :data:`PR_CURVE_POINTS` points), reliability bins and
    score histograms of positives and negatives, for the report's plots."""
    out = {}
    for j, category in enumerate(categories):
        known = arrays.labels[:, j] >= 0
        if not known.any():
            continue
        y, s = arrays.labels[known, j].astype(bool), arrays.scores[known, j]
        order = np.argsort(-s, kind="mergesort")
        ends = np.append(np.flatnonzero(np.diff(s[order]) != 0), len(s) - 1)
        tp = np.cumsum(y[order])[ends]
        fp = np.cumsum(~y[order])[ends]
        precision, recall = tp / np.maximum(tp + fp, 1), tp / max(int(y.sum()), 1)
        keep = np.unique(np.linspace(0, len(ends) - 1, min(PR_CURVE_POINTS, len(ends))).astype(int))
        which = np.minimum((s * RELIABILITY_BINS).astype(int), RELIABILITY_BINS - 1)
        count = np.bincount(which, minlength=RELIABILITY_BINS)
        mean_score = np.bincount(which, s, RELIABILITY_BINS) / np.maximum(count, 1)
        rate = np.bincount(which, y.astype(float), RELIABILITY_BINS) / np.maximum(count, 1)
        edges = np.linspace(0, 1, HISTOGRAM_BINS + 1)
        out[category] = {
            "pr": {"precision": [round(float(v), 5) for v in precision[keep]],
                   "recall": [round(float(v), 5) for v in recall[keep]]},
            "reliability": {"mean_score": [round(float(v), 5) if c else None for v, c in zip(mean_score, count)],
                            "positive_rate": [round(float(v), 5) if c else None for v, c in zip(rate, count)],
                            "count": [int(c) for c in count]},
            "histogram": {"edges": [round(float(e), 4) for e in edges],
                          "positives": np.histogram(s[y], edges)[0].tolist(),
                          "negatives": np.histogram(s[~y], edges)[0].tolist()}}
    return out
