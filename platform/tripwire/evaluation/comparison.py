"""Candidate vs. baseline on the same items: per-metric deltas with paired-bootstrap intervals.

Both models' metrics are computed under the same resampling weights (:func:`tripwire.evaluation.metrics.weight_chunks`
with one seed), so each replicate's delta compares the two on the same resample, which is far tighter
than comparing two independent intervals. A delta is flagged a regression when its whole interval lies
on the worse side of zero (lower is better for ``fpr`` and ``ece``, higher for the rest), or, where every
resample gives the same nonzero delta (no interval), when that delta is on the worse side.

Every figure goes through :func:`tripwire.evaluation.metrics.estimate`, so each side's value is the one its own
evaluation report shows (ECE bias-corrected) and each delta lies in its interval: the delta's own plug-in
(candidate minus baseline) with the percentile interval of the paired differences where that contains it,
else bias-corrected with the basic interval (always for ECE; ``method`` says which). For ECE the corrected
delta can differ from the difference of the two corrected values by the correction's own noise.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from tripwire.evaluation.metrics import (BIAS_CORRECTED, CATEGORY_METRICS, BootstrapConfig, EvalArrays, _column_nanmean,
                                   category_arrays, category_estimates, estimate, too_small, weight_chunks)
from tripwire.evaluation.slices import empty_slice_specs, slice_masks, slice_seed

LOWER_IS_BETTER = frozenset({"fpr", "ece"})


def align(baseline: EvalArrays, candidate: EvalArrays) -> tuple[EvalArrays, EvalArrays]:
    """Both evaluations restricted to the items both scored, in the baseline's order."""
    position = {item: i for i, item in enumerate(candidate.ids)}
    shared = np.array([item in position for item in baseline.ids], dtype=bool)
    order = np.array([position[item] for item in baseline.ids[shared]], dtype=np.int64)
    return baseline.subset(shared), candidate.subset(order)


def delta_entry(metric: str, a_value: float | None, b_value: float | None, a_point: float, b_point: float,
                 deltas: np.ndarray | None, confidence: float) -> dict:
    delta = b_point - a_point if np.isfinite(a_point) and np.isfinite(b_point) else float("nan")
    est = estimate(delta, deltas, confidence, bias_corrected=metric in BIAS_CORRECTED, bounds=(-1.0, 1.0))
    lo, hi = est["ci"]
    if est["method"] == "not estimable" and est["value"]:
        # Every resample shows this same change (e.g. each positive the baseline caught, the candidate
        # missed): no interval to draw, and no doubt in the sample either way.
        lo = hi = est["value"]
    worse = (lo is not None and lo > 0) if metric in LOWER_IS_BETTER else (hi is not None and hi < 0)
    return {"baseline": a_value, "candidate": b_value, "delta": est["value"], "ci": est["ci"],
            "method": est["method"], "regression": bool(worse)}


def compare_arrays(a: EvalArrays, b: EvalArrays, categories: Sequence[str], positive_level: int,
                   target_precision: float, bootstrap: BootstrapConfig, seed_offset: int = 0,
                   min_positives: int = 0, min_negatives: int = 0) -> dict[str, Any]:
    """Per category and macro: baseline, candidate, delta and the delta's paired interval, per metric.

    A category with fewer than ``min_positives`` labelled positives or ``min_negatives`` negatives is not
    compared: it is named in ``too_small_categories`` with the reason, and left out of macro.
    """
    n = len(a)
    prepared, small = {}, {}
    for j, category in enumerate(categories):
        known = a.labels[:, j] >= 0
        if not known.any():
            continue
        positives = int(a.labels[known, j].sum())
        reason = too_small(positives, int(known.sum()) - positives, min_positives, min_negatives)
        if reason:
            small[category] = reason
            continue
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
    reps = {c: tuple({m: np.concatenate([r[m] for r in side]) for m in side[0]} if side else None
                     for side in pairs) for c, pairs in replicate_pairs.items()}
    confidence = bootstrap.confidence
    out_categories = {}
    for category, (pa, pb) in points.items():
        ra, rb = reps[category]
        values_a, values_b = category_estimates(pa, ra, confidence), category_estimates(pb, rb, confidence)
        out_categories[category] = {
            m: delta_entry(m, values_a[m]["value"], values_b[m]["value"], pa[m][0], pb[m][0],
                            (rb[m] - ra[m]) if ra is not None else None, confidence)
            for m in CATEGORY_METRICS}
    macro = {}
    labelled = list(points)
    for m in CATEGORY_METRICS:
        a_point = _column_nanmean(np.array([[points[c][0][m][0]] for c in labelled]))[0] if labelled else np.nan
        b_point = _column_nanmean(np.array([[points[c][1][m][0]] for c in labelled]))[0] if labelled else np.nan
        ma = mb = replicate_delta = None
        if labelled and reps[labelled[0]][0] is not None:
            ma = _column_nanmean(np.vstack([reps[c][0][m] for c in labelled]))
            mb = _column_nanmean(np.vstack([reps[c][1][m] for c in labelled]))
            replicate_delta = mb - ma
        corrected = m in BIAS_CORRECTED
        macro[m] = delta_entry(m, estimate(a_point, ma, confidence, bias_corrected=corrected)["value"],
                                estimate(b_point, mb, confidence, bias_corrected=corrected)["value"],
                                a_point, b_point, replicate_delta, confidence)
    out = {"items": n, "categories": out_categories, "macro": macro}
    if small:
        out["too_small_categories"] = small
    return out


def compare_slices(a: EvalArrays, b: EvalArrays, categories: Sequence[str], positive_level: int,
                   target_precision: float, bootstrap: BootstrapConfig, specs: Sequence[str], min_items: int,
                   max_values: int, min_positives: int = 0, min_negatives: int = 0) -> dict[str, Any]:
    """Per slice (as :func:`tripwire.evaluation.slices.measure` cuts them): the slice's comparison, or
    ``too_small``; within a slice, categories short of positives or negatives are ``too_small_categories``."""
    out = {spec: {"fields": {}, "items": 0, "too_small": True, "empty": "no item has a value for it"}
           for spec in empty_slice_specs(a.fields, specs)}
    for name, values, mask in slice_masks(a.fields, specs, max_values):
        items = int(mask.sum())
        if items < min_items:
            out[name] = {"fields": values, "items": items, "too_small": True}
            continue
        out[name] = {"fields": values, "too_small": False,
                     **compare_arrays(a.subset(mask), b.subset(mask), categories, positive_level, target_precision,
                                      bootstrap, slice_seed(name), min_positives, min_negatives)}
    return out
