"""Thresholds meet their targets on the data they were chosen on, land in a loadable new policy with the
evidence, skip categories without enough positives; the paired comparison and the promotion gate."""

from __future__ import annotations

import numpy as np
import pytest
import yaml

from tripwire.evaluation.comparison import align, compare_arrays
from tripwire.common.config import ConfigError, from_dict
from tripwire.evaluation.metrics import BootstrapConfig, EvalArrays
from tripwire.evaluation.gate import GateConfig, apply_gate
from tripwire.policy import Policy, Taxonomy
from tripwire.evaluation.thresholds import Target, choose, parse_targets, policy_yaml, recommend, skipped_categories

CATEGORIES = Taxonomy.load().names


def _data(n=3000, seed=0):
    rng = np.random.default_rng(seed)
    labels = (rng.random((n, len(CATEGORIES))) < 0.06).astype(np.int8)
    scores = np.clip(0.3 * labels + rng.random((n, len(CATEGORIES))) * 0.5, 0, 1)
    return labels, scores


@pytest.mark.parametrize("target", ["restrict:precision=0.9", "review:recall=0.9", "restrict:precision=0.75",
                                    "review:recall=0.5"])
def test_chosen_threshold_meets_its_target_and_is_the_best_that_does(target):
    labels, scores = _data()
    y, s = labels[:, 0], scores[:, 0]
    t = Target.parse(target)
    threshold = choose(y, s, t)
    flagged = s >= threshold
    precision, recall = (flagged & (y == 1)).sum() / flagged.sum(), (flagged & (y == 1)).sum() / y.sum()
    if t.metric == "precision":
        assert precision >= t.value
        lower = s[s < threshold].max()  # admitting the next item would break the target, or it is the best recall
        assert ((s >= lower) & (y == 1)).sum() / (s >= lower).sum() < t.value or recall == 1.0
    else:
        assert recall >= t.value
        higher = s[s >= threshold].min()
        assert ((s > higher) & (y == 1)).sum() / y.sum() < t.value


def test_recommended_policy_is_a_new_loadable_version_with_evidence():
    labels, scores = _data()
    labels[:, CATEGORIES.index("illicit")] = -1  # unlabelled
    labels[:, CATEGORIES.index("sexual")] = 0
    labels[:4, CATEGORIES.index("sexual")] = 1  # four positives: too few
    base = Policy.load()
    # No review capacity here (its own tests below): a skipped category keeps every threshold.
    tuned = recommend(base, labels, scores, CATEGORIES, parse_targets(["review:recall=0.9", "restrict:precision=0.8"]),
                      {"chosen_on": "unit test"}, min_positives=10, bootstrap=BootstrapConfig(replicates=50),
                      review_capacity=None)
    assert tuned.version != base.version and tuned.evidence["based_on"] == base.version
    reloaded = from_dict(Policy, yaml.safe_load(policy_yaml(tuned)), "tuned")
    assert reloaded == tuned
    skipped = skipped_categories(tuned)
    assert "4 labelled positives" in skipped["sexual"] and "0 labelled positives" in skipped["illicit"]
    assert tuned.categories["sexual"] == base.categories["sexual"]
    hate = tuned.categories["hate"]
    assert hate.review <= hate.restrict <= hate.block
    achieved = tuned.evidence["categories"]["hate"]["actions"]["restrict"]["achieved"]["precision"]
    assert achieved["value"] >= 0.8 and achieved["ci"][0] <= achieved["value"] <= achieved["ci"][1]
    assert tuned.evidence["chosen_on"] == "unit test"


def test_per_market_overrides_need_their_own_positives():
    labels, scores = _data(4000)
    markets = np.array(["DE"] * 3000 + ["FR"] * 1000, dtype=object)
    labels[3000:, :] = 0  # FR: no positives at all
    tuned = recommend(Policy.load(), labels, scores, CATEGORIES, parse_targets(["restrict:precision=0.8"]),
                      {}, markets=markets, bootstrap=BootstrapConfig(replicates=0))
    assert "hate" in tuned.markets["DE"] and "FR" not in tuned.markets
    assert "skipped" in tuned.evidence["markets"]["FR"]["hate"]


@pytest.mark.parametrize("text, message", [
    ("restrict", "expected ACTION:METRIC=VALUE"), ("allow:precision=0.9", "action 'allow'"),
    ("restrict:accuracy=0.9", "metric 'accuracy'"), ("restrict:precision=1.5", "out of range")])
def test_bad_targets_are_named(text, message):
    with pytest.raises(ConfigError, match=message):
        Target.parse(text)


def _arrays(scores, labels, ids):
    actions = np.where(scores >= 0.7, 2, np.where(scores >= 0.4, 1, 0))
    return EvalArrays(labels, scores, actions, actions.max(axis=1), {"market": np.array(["DE"] * len(ids), object)},
                      np.asarray(ids, object))


def test_paired_comparison_sees_a_real_drop_and_no_drop_between_equals():
    rng = np.random.default_rng(5)
    n = 2000
    labels = (rng.random((n, 2)) < 0.3).astype(np.int8)
    good = np.clip(0.45 * labels + rng.random((n, 2)) * 0.55, 0, 1)
    worse = good.copy()
    worse[:, 0] = np.clip(0.2 * labels[:, 0] + rng.random(n) * 0.8, 0, 1)  # category 0 degraded
    ids = [f"i{i}" for i in range(n)]
    baseline = _arrays(good, labels, ids)
    # The candidate's rows arrive in another order and one item is missing: alignment is by id.
    order = rng.permutation(n)[:-1]
    candidate = _arrays(worse[order], labels[order], [ids[i] for i in order])
    a, b = align(baseline, candidate)
    assert len(a) == len(b) == n - 1 and list(a.ids) == list(b.ids)
    result = compare_arrays(a, b, ["x", "y"], 2, 0.9, BootstrapConfig(replicates=200))
    assert result["categories"]["x"]["pr_auc"]["regression"] and result["categories"]["x"]["pr_auc"]["delta"] < -0.1
    assert not result["categories"]["y"]["pr_auc"]["regression"] and result["categories"]["y"]["pr_auc"]["delta"] == 0
    same = compare_arrays(a, a, ["x", "y"], 2, 0.9, BootstrapConfig(replicates=50))
    assert all(e["delta"] in (0.0, None) and not e["regression"] for m in same["categories"].values() for e in m.values())

    gate = from_dict(GateConfig, {"bars": [
        {"name": "pr-auc per category", "metric": "pr_auc", "max_drop": 0.01},
        {"name": "macro fpr", "metric": "fpr", "scope": "macro", "max_rise": 0.5}]}, "gate")
    verdict = apply_gate(gate, {"sets": {"s": {**result, "slices": {}}}})
    assert not verdict["passed"]
    failing = [b for b in verdict["bars"] if not b["passed"]]
    assert [b["name"] for b in failing] == ["pr-auc per category"]
    assert [f["where"] for f in failing[0]["failures"]] == ["s/x"]
    assert apply_gate(gate, {"sets": {"s": {**same, "slices": {}}}})["passed"]


@pytest.mark.parametrize("bar, message", [
    ({"name": "b", "metric": "accuracy", "max_drop": 0.1}, "metric: 'accuracy'"),
    ({"name": "b", "metric": "f1"}, "give max_drop or max_rise"),
    ({"name": "b", "metric": "f1", "scope": "world", "max_drop": 0.1}, "scope: 'world'"),
])
def test_bad_gate_bars_are_named(bar, message):
    with pytest.raises(ConfigError, match=message):
        from_dict(GateConfig, {"bars": [bar]}, "gate")
