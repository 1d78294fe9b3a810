"""Every reported figure lies in its own interval: a statistic the bootstrap biases (ECE) is bias-corrected,
a degenerate bootstrap (every resample equal) gets an exact interval for a proportion or none at all, and
a slice category with too few positives or negatives is reported as too small, not as 1.000 [1.000, 1.000]."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.evaluation import metrics as em
from tripwire.evaluation.comparison import compare_arrays
from tripwire.common.config import ConfigError, from_dict
from tripwire.evaluation.config import EvalConfig
from tripwire.evaluation.slices import measure


def _estimates(summary: dict):
    """(where, estimate) of every figure of a summary: categories, macro, micro, decision rates, review load."""
    for category, entry in summary["categories"].items():
        for metric, est in entry.get("metrics", {}).items():
            yield f"{category}.{metric}", est
    for section in ("macro", "micro", "actions"):
        for metric, est in summary[section].items():
            yield f"{section}.{metric}", est
    yield "review_load", summary["review_load"]["overall"]
    for category, est in summary["review_load"]["categories"].items():
        yield f"review_load.{category}", est


def _assert_contains(where: str, est: dict) -> None:
    lo, hi = est["ci"]
    if est["value"] is None or est["method"] == "not estimable":
        assert lo is None and hi is None, (where, est)
        return
    assert lo is not None and hi is not None, (where, est)
    assert lo <= est["value"] <= hi, (where, est)


def _calibrated(n: int, seed: int, categories: int = 1) -> em.EvalArrays:
    """Well-calibrated scores (a label is 1 with probability its score): the true ECE is 0, so the plug-in
    ECE is all bias, and resampling adds more."""
    rng = np.random.default_rng(seed)
    scores = rng.random((n, categories))
    labels = (rng.random((n, categories)) < scores).astype(np.int8)
    actions = np.where(scores >= 0.7, 2, np.where(scores >= 0.4, 1, 0))
    return em.EvalArrays(labels, scores, actions, actions.max(axis=1), {})


@pytest.mark.parametrize("seed", range(20))
def test_ece_lies_in_its_interval(seed):
    # The demo's harassment read 0.017 [0.018, 0.038]: the percentile interval of a statistic the bootstrap
    # biases upward. Of these 20 sets, 4 had their plug-in ECE below the whole percentile interval.
    summary = em.summarize(_calibrated(480, seed, 2), ["x", "y"], 2, 0.9, em.BootstrapConfig(replicates=300))
    for where, est in [("x", summary["categories"]["x"]["metrics"]["ece"]),
                       ("y", summary["categories"]["y"]["metrics"]["ece"]), ("macro", summary["macro"]["ece"])]:
        _assert_contains(where, est)
        assert est["method"] == "bias-corrected"
        # The correction moves the value below the plug-in (the bias is upward), never below 0.
        assert 0.0 <= est["value"] <= est["plug_in"], (where, est)


@pytest.mark.parametrize("seed", range(12))
def test_every_figure_lies_in_its_interval_even_on_small_awkward_sets(seed):
    rng = np.random.default_rng(100 + seed)
    n = int(rng.integers(6, 120))
    prevalence = rng.choice([0.02, 0.1, 0.5, 0.95])
    labels = (rng.random((n, 3)) < prevalence).astype(np.int8)
    labels[rng.random((n, 3)) < 0.2] = -1
    scores = np.round(np.clip(0.4 * labels.clip(0) + rng.random((n, 3)) * 0.6, 0, 1), 1)  # ties
    actions = np.where(scores >= 0.7, 2, np.where(scores >= 0.4, 1, 0))
    arrays = em.EvalArrays(labels, scores, actions, actions.max(axis=1), {}, np.arange(n).astype(str))
    config = em.BootstrapConfig(replicates=80, seed=seed)
    summary = em.summarize(arrays, ["a", "b", "c"], 2, 0.8, config)
    for where, est in _estimates(summary):
        _assert_contains(where, est)
    # A paired comparison's deltas, and the values it shows for each side, too.
    other = em.EvalArrays(labels, np.round(rng.random((n, 3)), 1), actions[::-1], actions.max(axis=1)[::-1], {})
    comparison = compare_arrays(arrays, other, ["a", "b", "c"], 2, 0.8, config)
    for category, metrics in {**comparison["categories"], "macro": comparison["macro"]}.items():
        for metric, row in metrics.items():
            _assert_contains(f"{category}.{metric} delta", {"value": row["delta"], "ci": row["ci"],
                                                           "method": row["method"]})


def test_a_degenerate_bootstrap_gets_an_exact_interval_or_none():
    # Three positives, all caught and flagged; every negative far below: every resample says recall 1 and
    # ROC-AUC 1, which is no evidence that the next positive will be caught.
    y = np.array([1, 1, 1] + [0] * 57)
    s = np.where(y == 1, 0.95, 0.05)
    actions = np.where(s >= 0.7, 2, 0)
    arrays = em.EvalArrays(y[:, None], s[:, None], actions[:, None], actions, {})
    metrics = em.summarize(arrays, ["x"], 2, 0.9, em.BootstrapConfig(replicates=200))["categories"]["x"]["metrics"]
    recall = metrics["recall"]
    assert recall["value"] == 1.0 and recall["method"] == "wilson"
    low, high = em.wilson(3, 3, 0.95)
    assert recall["ci"] == [pytest.approx(low, abs=1e-6), 1.0] and 0.43 < low < 0.44  # Wilson's 3 of 3
    assert metrics["roc_auc"]["value"] == 1.0 and metrics["roc_auc"]["method"] == "not estimable"
    assert metrics["roc_auc"]["ci"] == [None, None]


def test_wilson_contains_the_proportion():
    for successes, trials in [(0, 1), (1, 1), (0, 50), (50, 50), (3, 7), (1, 1000)]:
        low, high = em.wilson(successes, trials, 0.95)
        assert 0.0 <= low <= successes / trials <= high <= 1.0


def test_bias_correction_keeps_the_value_in_the_interval_and_the_range():
    replicates = np.array([0.03, 0.04, 0.05, 0.06, 0.2])  # skewed: the basic interval would go below 0
    est = em.estimate(0.02, replicates, 0.9, bias_corrected=True)
    assert est["method"] == "bias-corrected" and est["plug_in"] == 0.02
    assert est["ci"][0] == 0.0 <= est["value"] <= est["ci"][1]
    # A plain metric whose point falls outside its percentile interval is corrected the same way.
    est = em.estimate(0.5, np.linspace(0.6, 0.9, 50), 0.95)
    assert est["method"] == "bias-corrected" and est["ci"][0] <= est["value"] <= est["ci"][1]
    # One that lies inside keeps the plain percentile interval and its plug-in value.
    est = em.estimate(0.75, np.linspace(0.6, 0.9, 50), 0.95)
    assert est["method"] == "percentile" and est["value"] == 0.75


def _sliced(n: int = 400, seed: int = 2) -> em.EvalArrays:
    rng = np.random.default_rng(seed)
    market = np.array(["DE"] * (n - 60) + ["FR"] * 60, dtype=object)
    labels = (rng.random((n, 2)) < 0.25).astype(np.int8)
    fr = market == "FR"
    labels[fr, 0] = 0
    labels[np.flatnonzero(fr)[:3], 0] = 1  # three positives of "a" in FR, all caught
    scores = np.clip(0.5 * labels + rng.random((n, 2)) * 0.45, 0, 1)
    actions = np.where(scores >= 0.5, 2, np.where(scores >= 0.3, 1, 0))
    return em.EvalArrays(labels, scores, actions, actions.max(axis=1), {"market": market})


def test_a_slice_with_too_few_positives_is_too_small_not_a_perfect_score():
    config = from_dict(EvalConfig, {"slices": ["market"], "min_slice_items": 30, "min_slice_positives": 10,
                                    "min_slice_negatives": 10, "bootstrap": {"replicates": 100}}, "evaluate")
    report = measure(_sliced(), ["a", "b"], config)
    fr = report["slices"]["market=FR"]
    assert not fr["too_small"] and fr["items"] == 60  # enough items ...
    a = fr["categories"]["a"]
    assert a["too_small"] == "3 positives (fewer than 10)" and "metrics" not in a  # ... not enough positives
    assert a["positives"] == 3 and a["negatives"] == 57
    assert "metrics" in fr["categories"]["b"]  # the other category has its positives
    assert set(fr["macro"]) and fr["macro"]["recall"]["value"] == fr["categories"]["b"]["metrics"]["recall"]["value"]
    assert "too_small" not in report["overall"]["categories"]["a"]  # the whole set is measured
    # Negatives count too: a slice where nearly everything is positive.
    strict = from_dict(EvalConfig, {"slices": ["market"], "min_slice_items": 30, "min_slice_positives": 1,
                                    "min_slice_negatives": 58, "bootstrap": {"replicates": 0}}, "evaluate")
    assert measure(_sliced(), ["a", "b"], strict)["slices"]["market=FR"]["categories"]["a"]["too_small"] \
        == "57 negatives (fewer than 58)"


def test_slice_minimums_are_validated():
    with pytest.raises(ConfigError, match="min_slice_positives"):
        EvalConfig(min_slice_positives=-1)
    with pytest.raises(ConfigError, match="review_capacity"):
        EvalConfig(review_capacity=1.5)


def test_review_load_is_the_share_sent_to_review_overall_and_per_category():
    arrays = _sliced()
    summary = em.summarize(arrays, ["a", "b"], 2, 0.9, em.BootstrapConfig(replicates=50))
    load = summary["review_load"]
    assert load["overall"]["value"] == pytest.approx((arrays.actions == 1).mean(), abs=1e-6)
    for j, category in enumerate(["a", "b"]):
        assert load["categories"][category]["value"] == pytest.approx((arrays.category_actions[:, j] == 1).mean(),
                                                                      abs=1e-6)


def test_the_shipped_evaluation_config_sets_slice_minimums_and_the_review_capacity():
    from helpers import REPO
    from tripwire.common.config import load_yaml

    config = load_yaml(EvalConfig, REPO / "pipelines" / "configs" / "evaluate.yaml")
    assert (config.min_slice_positives, config.min_slice_negatives, config.review_capacity) == (10, 10, 0.05)


def test_a_change_every_resample_agrees_on_is_flagged_a_regression():
    """Three positives the baseline caught and the candidate missed: each resample's catch-rate delta is -1,
    a degenerate bootstrap with no interval, but a regression beyond doubt in this sample."""
    from tripwire.evaluation.comparison import delta_entry

    deltas = np.full(200, -1.0)
    entry = delta_entry("catch_rate", 1.0, 0.0, 1.0, 0.0, deltas, 0.95)
    assert entry["method"] == "not estimable" and entry["delta"] == -1.0 and entry["regression"]
    assert not delta_entry("catch_rate", 0.0, 1.0, 0.0, 1.0, -deltas, 0.95)["regression"]
    assert not delta_entry("catch_rate", 1.0, 1.0, 1.0, 1.0, np.zeros(200), 0.95)["regression"]
    assert delta_entry("fpr", 0.0, 1.0, 0.0, 1.0, -deltas, 0.95)["regression"]  # lower is better
