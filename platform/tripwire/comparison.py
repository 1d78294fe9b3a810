"""Candidate vs. baseline on the same items: per-metric deltas with paired-bootstrap intervals.

Both models' metrics are computed under the same resampling weights (:func:`tripwire.eval_metrics.weight_chunks`
with one seed), so each replicate's delta compares the two on the same resample, which is far tighter
than comparing two independent intervals. A delta is flagged a regression when its whole interval lies
on the worse side of zero (lower is better for ``fpr`` and ``ece``, higher for the rest).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tripwire.eval_metrics import (CATEGORY_METRICS, BootstrapConfig, EvalArrays, _column_nanmean, _interval, _value,
                                   category_arrays, weight_chunks)
from tripwire.eval_slices import empty_slice_specs, slice_masks, slice_seed

LOWER_IS_BETTER = frozenset({"fpr", "ece"})


def align(baseline: EvalArrays, candidate: EvalArrays) -> tuple[EvalArrays, EvalArrays]:
    """Both evaluations restricted to the items both scored, in the baseline's order."""
    position = {item: i for i, item in enumerate(candidate.ids)}
    shared = np.array([item in position for item in baseline.ids], dtype=bool)
    order = np.array([position[item] for item in baseline.ids[shared]], dtype=np.int64)
    return baseline.subset(shared), candidate.subset(order)


def _delta_entry(metric: str, a_point: float, b_point: float, deltas: np.ndarray | None, confidence: float) -> dict:
    ci = _interval(deltas, confidence) if deltas is not None and deltas.size else [None, None]
    worse = (ci[0] is not None and ci[0] > 0) if metric in LOWER_IS_BETTER else (ci[1] is not None and ci[1] < 0)
    delta = b_point - a_point if np.isfinite(a_point) and np.isfinite(b_point) else float("nan")
    return {"baseline": _value(a_point), "candidate": _value(b_point), "delta": _value(delta), "ci": ci,
            "regression": bool(worse)}


def compare_arrays(a: EvalArrays, b: EvalArrays, categories: Sequence[str], positive_level: int,
                   target_precision: float, bootstrap: BootstrapConfig, seed_offset: int = 0) -> dict[str, Any]:
    """Per category and macro: baseline, candidate, delta and the delta's paired interval, per metric."""
    n = len(a)
    prepared = {}
    for j, category in enumerate(categories):
        known = a.labels[:, j] >= 0
        if known.any():
            prepared[category] = (known, [(x.labels[known, j], x.scores[known, j],
                                           x.category_actions[known, j] >= positive_level,
                                           x.category_actions[known, j] >= 1) for x in (a, b)])
    points = {}
    for category, (known, (args_a, args_b)) in prepared.items():
        ones = np.ones((1, int(known.sum())))
        points[category] = (category_arrays(*args_a, ones, target_precision),
                            category_arrays(*args_b, ones, target_precision))
    replicate_pairs = {c: ([], []) for c in prepared}
    for chunk in weight_chunks(n, bootstrap, seed_offset):
        for category, (known, (args_a, args_b)) in prepared.items():
            w = chunk[:, known]
            replicate_pairs[category][0].append(category_arrays(*args_a, w, target_precision))
            replicate_pairs[category][1].append(category_arrays(*args_b, w, target_precision))
    reps = {c: tuple({m: np.concatenate([r[m] for r in side]) for m in CATEGORY_METRICS} if side else None
                     for side in pairs) for c, pairs in replicate_pairs.items()}
    out_categories = {}
    for category, (pa, pb) in points.items():
        ra, rb = reps[category]
        out_categories[category] = {
            m: _delta_entry(m, pa[m][0], pb[m][0], (rb[m] - ra[m]) if ra is not None else None, bootstrap.confidence)
            for m in CATEGORY_METRICS}
    macro = {}
    labelled = list(points)
    for m in CATEGORY_METRICS:
        a_point = _column_nanmean(np.array([[points[c][0][m][0]] for c in labelled]))[0] if labelled else np.nan
        b_point = _column_nanmean(np.array([[points[c][1][m][0]] for c in labelled]))[0] if labelled else np.nan
        replicate_delta = None
        if labelled and reps[labelled[0]][0] is not None:
            ma = _column_nanmean(np.vstack([reps[c][0][m] for c in labelled]))
            mb = _column_nanmean(np.vstack([reps[c][1][m] for c in labelled]))
            replicate_delta = mb - ma
        macro[m] = _delta_entry(m, a_point, b_point, replicate_delta, bootstrap.confidence)
    return {"items": n, "categories": out_categories, "macro": macro}


def compare_slices(a: EvalArrays, b: EvalArrays, categories: Sequence[str], positive_level: int,
                   target_precision: float, bootstrap: BootstrapConfig, specs: Sequence[str], min_items: int,
                   max_values: int) -> dict[str, Any]:
    out = {spec: {"fields": {}, "items": 0, "too_small": True, "empty": "no item has a value for it"}
           for spec in empty_slice_specs(a.fields, specs)}
    for name, values, mask in slice_masks(a.fields, specs, max_values):
        items = int(mask.sum())
        if items < min_items:
            out[name] = {"fields": values, "items": items, "too_small": True}
            continue
        out[name] = {"fields": values, "too_small": False,
                     **compare_arrays(a.subset(mask), b.subset(mask), categories, positive_level, target_precision,
                                      bootstrap, slice_seed(name))}
    return out
