"""Evaluation and comparison report dicts, of the shapes :mod:`tripwire.evaluation.report` renders, for tests.

The numbers come from synthetic labels and scores (seeded), so a report is consistent with itself:
confusion counts, metrics, curves and histograms all describe the same items, and a slice is a real
subset of them. Intervals are the estimate plus or minus a width that shrinks with the item count (the
renderer only shows them). Every report has the awkward cases on purpose: a category whose name is an
HTML ``<script>`` tag, with no predicted positives (precision and F1 null); a category the set does not
label; a slice too small to score; a slice whose name is a ``<script>`` tag; within slices, categories
with fewer than ``SLICE_MIN_POSITIVES`` positives or negatives, reported as too small.
"""

from __future__ import annotations

import copy

import numpy as np

EVIL = "<script>alert('tripwire')</script>"
CATEGORIES = ("hate", "violence", "self_harm", EVIL)
UNLABELLED = "sexual"
ACTIONS = ("allow", "review", "restrict", "block")
TARGET_PRECISION = 0.9
THRESHOLDS = {"review": 0.4, "restrict": 0.6, "block": 0.85}
TOO_SMALL_SLICE = "language=fr&market=FR"
TOO_SMALL_ITEMS = 7
SLICE_MIN_POSITIVES = 10  # per category within a slice, positives and negatives alike (EvalConfig.min_slice_*)
REVIEW_CAPACITY = 0.05
METRIC_NAMES = ("precision", "recall", "f1", "fpr", "roc_auc", "pr_auc", "recall_at_precision", "ece", "catch_rate",
                "class_macro_f1")
EVIL_SLICE = f"language={EVIL}"
# Beta parameters of (positives, negatives) per category: larger gaps separate the classes better.
SEPARATION = {"hate": ((5, 2), (2, 5)), "violence": ((6, 2), (2, 6)), "self_harm": ((3, 2), (2, 3)),
              EVIL: ((2, 5), (2, 6))}
FAILING_GATE = {"passed": False, "bars": [
    {"name": "min_recall", "passed": False, "failures": [
        {"where": "hate.recall", "value": 0.712, "limit": 0.8},
        {"where": f"slice {EVIL_SLICE}: {EVIL}.recall", "value": 0.0, "limit": 0.8}]},
    {"name": "max_ece", "passed": True, "failures": []},
    {"name": "min_pr_auc", "passed": False, "failures": [{"where": "self_harm.pr_auc", "value": 0.61, "limit": 0.7}]},
]}
PASSING_GATE = {"passed": True, "bars": [{"name": "min_recall", "passed": True, "failures": []},
                                          {"name": "max_ece", "passed": True, "failures": []}]}
GATES = {"fail": FAILING_GATE, "pass": PASSING_GATE, None: None}


def estimate(value: float | None, n: int) -> dict:
    if value is None:
        return {"value": None, "ci": [None, None]}
    width = 1.0 / np.sqrt(max(n, 1))
    return {"value": float(value), "ci": [float(max(0.0, value - width)), float(min(1.0, value + width))]}


def _ratio(a: float, b: float) -> float | None:
    return float(a / b) if b else None


def _category(labels: np.ndarray, scores: np.ndarray) -> tuple[dict, dict]:
    """One category's entry (labelled, positives, metrics, confusion, thresholds) and its curves."""
    n, positives = len(labels), int(labels.sum())
    predicted = scores >= THRESHOLDS["restrict"]
    tp = int((predicted & labels).sum())
    fp = int((predicted & ~labels).sum())
    fn = int((~predicted & labels).sum())
    tn = int((~predicted & ~labels).sum())
    precision, recall = _ratio(tp, tp + fp), _ratio(tp, tp + fn)
    f1 = _ratio(2 * tp, 2 * tp + fp + fn) if tp + fp else None
    pos, neg = scores[labels], scores[~labels]
    roc_auc = float((pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()) \
        if len(pos) and len(neg) else None
    order = np.argsort(-scores, kind="mergesort")
    ctp, cfp = np.cumsum(labels[order]), np.cumsum(~labels[order])
    curve_p, curve_r = ctp / np.maximum(ctp + cfp, 1), ctp / max(positives, 1)
    pr_auc = float(curve_p[labels[order]].sum() / positives) if positives else None
    reaching = curve_r[curve_p >= TARGET_PRECISION]
    recall_at_p = float(reaching.max()) if positives and len(reaching) else None
    which = np.minimum((scores * 10).astype(int), 9)
    count = np.bincount(which, minlength=10)
    mean_score = np.bincount(which, scores, 10) / np.maximum(count, 1)
    rate = np.bincount(which, labels.astype(float), 10) / np.maximum(count, 1)
    ece = float((count / n * np.abs(mean_score - rate)).sum())
    catch = _ratio(int((scores[labels] >= THRESHOLDS["review"]).sum()), positives)
    values = {"precision": precision, "recall": recall, "f1": f1, "fpr": _ratio(fp, fp + tn), "roc_auc": roc_auc,
              "pr_auc": pr_auc, "recall_at_precision": recall_at_p, "ece": ece, "catch_rate": catch,
              "class_macro_f1": None if f1 is None else (f1 + _ratio(2 * tn, 2 * tn + fp + fn)) / 2}
    entry = {"labelled": n, "positives": positives,
             "metrics": {m: estimate(v, n) for m, v in values.items()},
             "confusion": {"tp": tp, "fp": fp, "fn": fn, "tn": tn}, "thresholds": dict(THRESHOLDS)}
    keep = np.unique(np.linspace(0, n - 1, min(60, n)).astype(int))
    edges = np.linspace(0, 1, 21)
    curves = {"pr": {"precision": [round(float(v), 5) for v in curve_p[keep]],
                     "recall": [round(float(v), 5) for v in curve_r[keep]]},
              "reliability": {"mean_score": [round(float(v), 5) if c else None for v, c in zip(mean_score, count)],
                              "positive_rate": [round(float(v), 5) if c else None for v, c in zip(rate, count)],
                              "count": [int(c) for c in count]},
              "histogram": {"edges": [round(float(e), 4) for e in edges],
                            "positives": np.histogram(pos, edges)[0].tolist(),
                            "negatives": np.histogram(neg, edges)[0].tolist()}}
    return entry, curves


def _scope(labels: dict, scores: dict, index: np.ndarray, min_class: int = 0) -> tuple[dict, dict]:
    """The "overall"-shaped summary of the items at ``index``, and its curves; a category with fewer than
    ``min_class`` positives or negatives there is too small (counts and the reason, no metrics)."""
    n = len(index)
    categories, curves = {}, {}
    for name in CATEGORIES:
        y = labels[name][index]
        positives, negatives = int(y.sum()), int((~y).sum())
        if min(positives, negatives) < min_class:
            why = "; ".join(f"{count} {kind} (fewer than {min_class})" for count, kind in
                            ((positives, "positives"), (negatives, "negatives")) if count < min_class)
            categories[name] = {"labelled": n, "positives": positives, "negatives": negatives, "too_small": why}
            continue
        categories[name], curves[name] = _category(y, scores[name][index])
    measured = {name: c for name, c in categories.items() if "metrics" in c}
    macro = {}
    for metric in METRIC_NAMES:
        values = [c["metrics"][metric]["value"] for c in measured.values()]
        values = [v for v in values if v is not None]
        macro[metric] = estimate(float(np.mean(values)) if values else None, n)
    pooled = {k: sum(c["confusion"][k] for c in measured.values()) for k in ("tp", "fp", "fn")}
    micro = {"precision": estimate(_ratio(pooled["tp"], pooled["tp"] + pooled["fp"]), n),
             "recall": estimate(_ratio(pooled["tp"], pooled["tp"] + pooled["fn"]), n),
             "f1": estimate(_ratio(2 * pooled["tp"], 2 * pooled["tp"] + pooled["fp"] + pooled["fn"]), n)}
    top = np.max(np.stack([scores[c][index] for c in CATEGORIES]), axis=0)
    level = np.searchsorted([THRESHOLDS["review"], THRESHOLDS["restrict"], THRESHOLDS["block"]], top, side="right")
    actions = {a: estimate(float((level == i).mean()) if n else None, n) for i, a in enumerate(ACTIONS)}
    bands = {c: estimate(float(((scores[c][index] >= THRESHOLDS["review"])
                                & (scores[c][index] < THRESHOLDS["restrict"])).mean()) if n else None, n)
             for c in CATEGORIES}
    return ({"items": n, "categories": categories, "macro": macro, "micro": micro, "actions": actions,
             "review_load": {"overall": actions["review"], "categories": bands},
             "unlabelled_categories": [UNLABELLED]}, curves)


def _golden(name: str = "core", version: int = 3, items: int = 600) -> dict:
    return {"name": name, "version": version, "sha256": "3f9a" + "0123456789abcdef" * 3 + "beefcafe" * 2 + "c0de",
            "items": items, "source": "synthetic://tests/report_fixtures", "licence": "CC-BY-4.0",
            "label_provenance": "two annotators, adjudicated", "categories": list(CATEGORIES)}


def evaluation_report(gate: str | None = "fail", seed: int = 0, items: int = 600,
                      separation: dict | None = None, model_version: str = "m-2024.06.1") -> dict:
    """An evaluation report of ``items`` synthetic items; ``gate``: "fail", "pass" or None."""
    rng = np.random.default_rng(seed)
    separation = {**SEPARATION, **(separation or {})}
    prevalence = {"hate": 0.2, "violence": 0.15, "self_harm": 0.1, EVIL: 0.05}
    labels, scores = {}, {}
    for name in CATEGORIES:
        y = rng.random(items) < prevalence[name]
        (pa, pb), (na, nb) = separation[name]
        labels[name] = y
        scores[name] = np.where(y, rng.beta(pa, pb, items), rng.beta(na, nb, items)).round(4)
    scores[EVIL] = np.minimum(scores[EVIL], THRESHOLDS["restrict"] - 0.01)  # never predicted positive
    overall, curves = _scope(labels, scores, np.arange(items))
    language = rng.choice(["en", "de", "xx"], items, p=[0.6, 0.3, 0.1])
    market = rng.choice(["US", "DE"], items)
    slices = {}
    for name, fields, mask in (("language=en", {"language": "en"}, language == "en"),
                               ("market=DE", {"market": "DE"}, market == "DE"),
                               ("language=en&market=DE", {"language": "en", "market": "DE"},
                                (language == "en") & (market == "DE")),
                               (EVIL_SLICE, {"language": EVIL}, language == "xx")):
        scope, _ = _scope(labels, scores, np.flatnonzero(mask), SLICE_MIN_POSITIVES)
        slices[name] = {"fields": fields, "too_small": False, **scope}
    slices[TOO_SMALL_SLICE] = {"fields": {"language": "fr", "market": "FR"}, "items": TOO_SMALL_ITEMS,
                               "too_small": True}
    return {"kind": "evaluation", "schema_version": 1, "golden": _golden(items=items),
            "checkpoint": "runs/train/2024-06-01/checkpoint_000012", "model_version": model_version,
            "policy_version": "policy-7", "positive_action": "restrict", "target_precision": TARGET_PRECISION,
            "bootstrap": {"replicates": 1000, "seed": 0, "confidence": 0.95},
            "scored": items, "quarantined": 3, "quarantine_reasons": {"decode_error": 2, "bad_label": 1},
            "wall_s": 41.7, "overall": overall, "slices": slices, "curves": curves,
            "review_capacity": REVIEW_CAPACITY,
            "slice_minimums": {"items": 30, "positives": SLICE_MIN_POSITIVES, "negatives": SLICE_MIN_POSITIVES},
            "gate": copy.deepcopy(GATES[gate])}


def _deltas(base: dict, cand: dict, n: int) -> dict:
    """Per metric: baseline, candidate, delta, interval; a regression when the interval lies wholly on
    the worse side of zero (below for most metrics, above for FPR and ECE)."""
    out = {}
    for metric, b in base.items():
        bv, cv = b["value"], cand[metric]["value"]
        delta = None if bv is None or cv is None else cv - bv
        width = 1.0 / np.sqrt(max(n, 1))
        ci = [None, None] if delta is None else [float(delta - width / 2), float(delta + width / 2)]
        worse_high = metric in ("fpr", "ece")
        regression = delta is not None and (ci[0] > 0 if worse_high else ci[1] < 0)
        out[metric] = {"baseline": bv, "candidate": cv, "delta": delta, "ci": ci, "regression": bool(regression)}
    return out


def _compare_scope(base: dict, cand: dict) -> dict:
    return {name: _deltas(base["categories"][name]["metrics"], cand["categories"][name]["metrics"], base["items"])
            for name in base["categories"] if "metrics" in base["categories"][name]}


def _too_small_categories(scope: dict) -> dict:
    return {name: entry["too_small"] for name, entry in scope["categories"].items() if entry.get("too_small")}


def comparison_report(gate: str | None = "fail") -> dict:
    """Candidate vs baseline on two golden sets; the candidate separates ``hate`` worse (a regression)."""
    sets = {}
    for set_name, version, seed in (("core", 3, 0), ("multilingual", 1, 5)):
        base = evaluation_report(None, seed=seed)
        cand = evaluation_report(None, seed=seed, separation={"hate": ((3, 3), (2, 4)), "violence": ((8, 2), (2, 7))})
        golden = _golden(set_name, version)
        slices = {}
        for name, scope in base["slices"].items():
            if scope["too_small"]:
                slices[name] = {"items": scope["items"], "too_small": True}
            else:
                slices[name] = {"items": scope["items"], "too_small": False,
                                "categories": _compare_scope(scope, cand["slices"][name])}
                if _too_small_categories(scope):
                    slices[name]["too_small_categories"] = _too_small_categories(scope)
        sets[set_name] = {"golden": golden, "items": base["overall"]["items"],
                          "categories": _compare_scope(base["overall"], cand["overall"]),
                          "macro": _deltas(base["overall"]["macro"], cand["overall"]["macro"],
                                           base["overall"]["items"]),
                          "slices": slices}
    return {"kind": "comparison", "schema_version": 1,
            "baseline": {"checkpoint": "runs/train/2024-05-01/checkpoint_000010", "model_version": "m-2024.05.2",
                         "policy_version": "policy-7"},
            "candidate": {"checkpoint": "runs/train/2024-06-01/checkpoint_000012", "model_version": "m-2024.06.1",
                          "policy_version": "policy-7"},
            "bootstrap": {"replicates": 1000, "seed": 0, "confidence": 0.95}, "target_precision": TARGET_PRECISION,
            "sets": sets, "gate": copy.deepcopy(GATES[gate])}


def regressions(report: dict) -> int:
    """How many metric rows of a comparison report are flagged as regressions (sets, macro, slices)."""
    total = 0
    for entry in report["sets"].values():
        scopes = [entry["categories"], {"macro": entry["macro"]}]
        scopes += [s["categories"] for s in entry["slices"].values() if not s["too_small"]]
        total += sum(row["regression"] for scope in scopes for rows in scope.values() for row in rows.values())
    return total
