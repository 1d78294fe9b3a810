"""Evaluation metrics over weights: the point estimates agree with direct definitions, the bootstrap is
seeded and covers the truth, unknown labels are left out per category, and memory stays chunked."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.evaluation import metrics as em
from tripwire.common.config import ConfigError
from tripwire.evaluation.classification import average_precision, roc_auc


def _direct(y, s, threshold, target):
    predicted = s >= threshold
    tp, fp = int((predicted & y).sum()), int((predicted & ~y).sum())
    fn, tn = int((~predicted & y).sum()), int((~predicted & ~y).sum())
    best = 0.0
    for t in np.unique(s):
        chosen = s >= t
        precision = (chosen & y).sum() / chosen.sum()
        if precision >= target:
            best = max(best, (chosen & y).sum() / y.sum())
    return {"precision": tp / (tp + fp), "recall": tp / (tp + fn), "fpr": fp / (fp + tn),
            "f1": 2 * tp / (2 * tp + fp + fn), "recall_at_precision": best}


def test_point_estimates_match_direct_definitions():
    rng = np.random.default_rng(3)
    y = rng.random(400) < 0.3
    # Rounded scores: many ties, which the step-wise curves must handle as a whole run.
    s = np.round(np.clip(0.35 * y + rng.random(400) * 0.65, 0, 1), 2)
    got = em.category_arrays(y.astype(int), s, s >= 0.6, s >= 0.4, np.ones((1, 400)), 0.8)
    want = _direct(y, s, 0.6, 0.8)
    for key, value in want.items():
        assert got[key][0] == pytest.approx(value), key
    assert got["roc_auc"][0] == pytest.approx(roc_auc(y, s))
    assert got["catch_rate"][0] == pytest.approx(((s >= 0.4) & y).sum() / y.sum())
    from tripwire.evaluation.classification import binary_macro_f1

    assert got["class_macro_f1"][0] == pytest.approx(binary_macro_f1(y, s >= 0.6))
    # Average precision with ties grouped: the mean precision at each positive, ties scored as one run.
    order = np.argsort(-s, kind="mergesort")
    ends = np.append(np.flatnonzero(np.diff(s[order]) != 0), 399)
    tp = np.cumsum(y[order])[ends]
    fp = np.cumsum(~y[order])[ends]
    expected_ap = np.sum(np.diff(np.concatenate([[0], tp])) * tp / (tp + fp)) / y.sum()
    assert got["pr_auc"][0] == pytest.approx(expected_ap)
    untied = s + rng.random(400) * 1e-6  # without ties it is the classic definition
    assert em.category_arrays(y.astype(int), untied, untied >= 0.6, untied >= 0.4, np.ones((1, 400)), 0.8)["pr_auc"][0] \
        == pytest.approx(average_precision(y, untied))


def test_weights_equal_repeating_items():
    rng = np.random.default_rng(0)
    y, s = (rng.random(50) < 0.4).astype(int), rng.random(50)
    counts = rng.integers(0, 4, 50)
    weighted = em.category_arrays(y, s, s >= 0.5, s >= 0.3, counts[None, :].astype(float), 0.7)
    repeated = np.repeat(np.arange(50), counts)
    ys, ss = y[repeated], s[repeated]
    plain = em.category_arrays(ys, ss, ss >= 0.5, ss >= 0.3, np.ones((1, len(ys))), 0.7)
    for key in plain:
        np.testing.assert_allclose(weighted[key], plain[key], err_msg=key)


def _arrays(n=600, seed=0, unknown_fraction=0.0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, 2)) < [0.3, 0.1]).astype(int)
    labels[rng.random(n) < unknown_fraction, 1] = -1
    scores = np.clip(0.5 * labels.clip(0) + rng.random((n, 2)) * 0.6, 0, 1)
    category_actions = np.where(scores >= 0.7, 2, np.where(scores >= 0.4, 1, 0))
    return em.EvalArrays(labels, scores, category_actions, category_actions.max(axis=1),
                         {"language": np.array(["en", "de"] * (n // 2), dtype=object)})


def test_summary_is_reproducible_and_its_intervals_contain_the_estimate():
    arrays = _arrays()
    config = em.BootstrapConfig(replicates=300, seed=7)
    first = em.summarize(arrays, ["a", "b"], 2, 0.9, config)
    again = em.summarize(arrays, ["a", "b"], 2, 0.9, config)
    assert first == again
    other_seed = em.summarize(arrays, ["a", "b"], 2, 0.9, em.BootstrapConfig(replicates=300, seed=8))
    assert other_seed["categories"]["a"]["metrics"]["roc_auc"]["ci"] != first["categories"]["a"]["metrics"]["roc_auc"]["ci"]
    for category in ("a", "b"):
        for metric, est in first["categories"][category]["metrics"].items():
            lo, hi = est["ci"]
            assert lo <= est["value"] <= hi, (category, metric, est)
    for section in ("macro", "micro", "actions"):
        for metric, est in first[section].items():
            if est["method"] == "not estimable":  # every resample equal (macro precision 1.0 here): no interval
                assert est["ci"] == [None, None] and est["value"] is not None, (section, metric, est)
                continue
            assert est["ci"][0] <= est["value"] <= est["ci"][1], (section, metric, est)
    assert sum(first["actions"][a]["value"] for a in em.ACTION_NAMES) == pytest.approx(1.0)


def test_interval_covers_the_population_value():
    # The bootstrap's 95% interval of a large sample's recall contains the population's recall (0.5 here
    # by construction: positives' scores are uniform and the predicted threshold is their median).
    rng = np.random.default_rng(11)
    n = 4000
    y = rng.random(n) < 0.5
    s = np.where(y, rng.random(n), rng.random(n) * 0.5)
    arrays = em.EvalArrays(y[:, None].astype(int), s[:, None], np.where(s >= 0.5, 2, 0)[:, None],
                           np.where(s >= 0.5, 2, 0), {})
    recall = em.summarize(arrays, ["x"], 2, 0.9, em.BootstrapConfig(replicates=400))["categories"]["x"]["metrics"]["recall"]
    assert recall["ci"][0] < 0.5 < recall["ci"][1]
    assert recall["ci"][1] - recall["ci"][0] < 0.06


def test_unknown_labels_are_left_out_per_category():
    arrays = _arrays(unknown_fraction=0.5)
    summary = em.summarize(arrays, ["a", "b"], 2, 0.9, em.BootstrapConfig(replicates=0))
    assert summary["categories"]["a"]["labelled"] == 600
    assert summary["categories"]["b"]["labelled"] == int((arrays.labels[:, 1] >= 0).sum()) < 400
    assert summary["categories"]["b"]["metrics"]["roc_auc"]["ci"] == [None, None]
    known = arrays.labels[:, 1] >= 0
    assert summary["categories"]["b"]["metrics"]["roc_auc"]["value"] == pytest.approx(
        roc_auc(arrays.labels[known, 1], arrays.scores[known, 1]), abs=1e-6)
    unlabelled = em.EvalArrays(np.full((10, 1), -1), np.zeros((10, 1)), np.zeros((10, 1), int), np.zeros(10, int), {})
    assert em.summarize(unlabelled, ["c"], 2, 0.9, em.BootstrapConfig(replicates=10))["unlabelled_categories"] == ["c"]


def test_undefined_metrics_are_null_not_numbers():
    # No predicted positives: precision is undefined (null), recall is 0.
    y = np.array([1, 0, 1, 0])
    arrays = em.EvalArrays(y[:, None], np.full((4, 1), 0.1), np.zeros((4, 1), int), np.zeros(4, int), {})
    metrics = em.summarize(arrays, ["x"], 2, 0.9, em.BootstrapConfig(replicates=20))["categories"]["x"]["metrics"]
    assert metrics["precision"]["value"] is None and metrics["recall"]["value"] == 0.0


def test_weight_chunks_bound_memory_and_total_the_replicates():
    chunks = list(em.weight_chunks(300_000, em.BootstrapConfig(replicates=50)))
    assert sum(len(c) for c in chunks) == 50
    assert max(c.size for c in chunks) <= em.MAX_CHUNK_WEIGHTS
    assert all((c.sum(axis=1) == 300_000).all() for c in chunks[:2])


def test_bad_bootstrap_settings_are_named():
    with pytest.raises(ConfigError, match="bootstrap.replicates"):
        em.BootstrapConfig(replicates=-1)
    with pytest.raises(ConfigError, match="bootstrap.confidence"):
        em.BootstrapConfig(confidence=1.5)


def test_curves_for_plots():
    arrays = _arrays()
    curves = em.curves(arrays, ["a", "b"])
    assert set(curves) == {"a", "b"}
    a = curves["a"]
    assert len(a["pr"]["precision"]) <= em.PR_CURVE_POINTS and a["pr"]["recall"][-1] == 1.0
    assert sum(a["reliability"]["count"]) == 600
    assert sum(a["histogram"]["positives"]) == int(arrays.labels[:, 0].sum())
