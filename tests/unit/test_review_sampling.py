"""Active-learning sampling over scan results: measures, diversity, budgets, priority and the rare-category yield."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.common.config import ConfigError
from tripwire.policy import Policy
from tripwire.review.sampling import (Pick, SamplingConfig, compare_strategies, kmeans, rare_positive_yield,
                                      sample)

POLICY = Policy.load()  # hate: review 0.40 (DE 0.30), restrict 0.70; self_harm: review 0.30
CATEGORIES = list(POLICY.categories)


def _row(i: int, market: str = "US", embedding=None, **scores: float) -> dict:
    row = {"id": f"it-{i:04d}", "scores": {c: 0.0 for c in CATEGORIES}, "action": "allow", "market": market,
           "flagged": [], "reasons": [], "model_version": "m1", "policy_version": POLICY.version}
    row["scores"].update({k.replace("__", "/"): v for k, v in scores.items()})
    if embedding is not None:
        row["embedding"] = list(map(float, embedding))
    return row


def _hate_rows(n: int = 200, seed: int = 0) -> list[dict]:
    rng = np.random.default_rng(seed)
    return [_row(i, hate=float(s)) for i, s in enumerate(rng.random(n))]


def _clustered_rows(clusters: int = 10, per_cluster: int = 20, dim: int = 16, with_embedding: bool = True):
    """Planted near-duplicates: cluster j is ``per_cluster`` copies of one direction, hate 0.40 + 0.02 j."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(clusters, dim))
    rows = []
    for j in range(clusters):
        for m in range(per_cluster):
            embedding = centres[j] + rng.normal(0, 1e-3, dim) if with_embedding else None
            # Without embeddings the clusters live in score space: harassment 0.0 .. 0.9 marks the cluster.
            rows.append(_row(j * per_cluster + m, embedding=embedding, hate=0.40 + 0.02 * j + 1e-4 * m,
                             harassment=0.1 * j))
    return rows


def _cluster_of(item_id: str, per_cluster: int = 20) -> int:
    return int(item_id.split("-")[1]) // per_cluster


def test_uncertainty_picks_items_nearest_the_threshold():
    rows = _hate_rows()
    picks = sample(rows, POLICY, SamplingConfig(budget={"hate": 10}, strategy="uncertainty", boundary="review"))
    distance = {r["id"]: abs(r["scores"]["hate"] - 0.40) for r in rows}
    assert {p.item_id for p in picks} == set(sorted(distance, key=distance.get)[:10])
    assert all(p.category == "hate" and p.strategy == "uncertainty" for p in picks)
    assert [p.priority for p in picks] == sorted((p.priority for p in picks), reverse=True)
    best = picks[0]
    score = next(r["scores"]["hate"] for r in rows if r["id"] == best.item_id)
    assert best.uncertainty == pytest.approx(1 - abs(score - 0.40) / 0.60)
    assert best.reason == f"hate {score:.2f} near review threshold 0.40"
    assert set(best.to_dict()) == {"item_id", "category", "strategy", "uncertainty", "priority", "reason"}


def test_market_override_moves_the_threshold():
    rows = [_row(0, market="DE", hate=0.30), _row(1, market="US", hate=0.30)]
    picks = sample(rows, POLICY, SamplingConfig(budget={"hate": 2}, strategy="uncertainty", boundary="review"))
    assert [p.item_id for p in picks] == ["it-0000", "it-0001"]
    assert picks[0].uncertainty == pytest.approx(1.0) and "review threshold 0.30" in picks[0].reason


def test_margin_counts_the_nearest_action_boundary():
    rows = [_row(0, hate=0.69), _row(1, hate=0.55), _row(2, hate=0.05)]
    margin = sample(rows, POLICY, SamplingConfig(boundary="review", budget={"hate": 1}, strategy="margin"))
    uncertainty = sample(rows, POLICY, SamplingConfig(budget={"hate": 1}, strategy="uncertainty", boundary="review"))
    assert margin[0].item_id == "it-0000" and "restrict threshold 0.70" in margin[0].reason
    assert uncertainty[0].item_id == "it-0001"


def test_disagreement_needs_and_uses_a_second_model():
    rows = [_row(i, hate=0.5) for i in range(4)]
    second = {"it-0000": {"hate": 0.45}, "it-0001": {"hate": 0.05}, "it-0002": {"hate": 0.9}}
    picks = sample(rows, POLICY, SamplingConfig(budget={"hate": 2}, strategy="disagreement"), second_scores=second)
    assert [p.item_id for p in picks] == ["it-0001", "it-0002"]  # it-0003: no second score, no candidate
    assert picks[0].uncertainty == pytest.approx(0.45) and "vs 0.05 from the second model" in picks[0].reason
    with pytest.raises(ConfigError, match="strategy"):
        sample(rows, POLICY, SamplingConfig(budget={"hate": 2}, strategy="disagreement"))


@pytest.mark.parametrize("strategy", ["uncertainty+diversity", "diversity"])
@pytest.mark.parametrize("with_embedding", [True, False])
def test_diversity_takes_one_item_per_planted_cluster(strategy, with_embedding):
    rows = _clustered_rows(with_embedding=with_embedding)
    config = SamplingConfig(boundary="review", budget={"hate": 10}, strategy=strategy, pool_factor=20, seed=3, per_cluster=1)
    picks = sample(rows, POLICY, config)
    assert sorted(_cluster_of(p.item_id) for p in picks) == list(range(10))
    if strategy == "uncertainty+diversity":  # each cluster's most uncertain member (the first, m == 0)
        assert all(int(p.item_id.split("-")[1]) % 20 == 0 for p in picks)
        assert "cluster" in picks[0].reason
    # Plain uncertainty takes ten near-duplicates from the most uncertain cluster.
    plain = sample(rows, POLICY, SamplingConfig(boundary="review", budget={"hate": 10}, strategy="uncertainty"))
    assert {_cluster_of(p.item_id) for p in plain} == {0}


def test_per_cluster_caps_the_picks_of_each_cluster():
    rows = _clustered_rows()
    picks = sample(rows, POLICY, SamplingConfig(boundary="review", budget={"hate": 10}, strategy="uncertainty+diversity", pool_factor=20,
                                                seed=3, per_cluster=2))
    clusters = [_cluster_of(p.item_id) for p in picks]
    assert len(picks) == 10 and max(clusters.count(c) for c in set(clusters)) <= 2


def test_the_default_boundary_is_the_restrict_threshold():
    rows = [_row(0, hate=0.41), _row(1, hate=0.69), _row(2, hate=0.05)]
    [pick] = sample(rows, POLICY, SamplingConfig(budget={"hate": 1}, strategy="uncertainty"))
    assert pick.item_id == "it-0001" and "restrict threshold 0.70" in pick.reason
    with pytest.raises(ConfigError, match="boundary"):
        SamplingConfig(total=1, boundary="allow")


def test_diversity_pool_smaller_than_the_clusters_tops_up_by_priority():
    rows = _clustered_rows()
    # pool_factor 1: the pool is the 10 most uncertain items (all cluster 0), so no clustering is possible.
    picks = sample(rows, POLICY, SamplingConfig(boundary="review", budget={"hate": 10}, strategy="uncertainty+diversity",
                                                pool_factor=1, per_cluster=1))
    assert len(picks) == 10 and {_cluster_of(p.item_id) for p in picks} == {0}
    # pool_factor 3: all of cluster 0 and half of cluster 1; the best of each, then the best remaining.
    picks = sample(rows, POLICY, SamplingConfig(boundary="review", budget={"hate": 10}, strategy="uncertainty+diversity",
                                                pool_factor=3, per_cluster=1))
    assert len(picks) == 10 and len({p.item_id for p in picks}) == 10
    assert {"it-0000", "it-0020"} <= {p.item_id for p in picks}
    assert {_cluster_of(p.item_id) for p in picks} == {0, 1}


def test_kmeans_is_deterministic_and_separates_clusters():
    rng = np.random.default_rng(0)
    points = np.repeat(rng.normal(size=(5, 4)), 30, axis=0) + rng.normal(0, 1e-3, (150, 4))
    labels = kmeans(points, 5, seed=7)
    assert np.array_equal(labels, kmeans(points, 5, seed=7))
    assert all(len(set(labels[j * 30:(j + 1) * 30])) == 1 for j in range(5)) and len(set(labels)) == 5
    assert len(set(kmeans(np.zeros((6, 3)), 3, seed=0))) >= 1  # identical points: no crash


def _multi_rows(n: int = 120) -> list[dict]:
    rng = np.random.default_rng(5)
    return [_row(i, hate=float(rng.uniform(0.3, 0.5)), sexual=float(rng.uniform(0.4, 0.6)),
                 violence=float(rng.uniform(0.4, 0.6))) for i in range(n)]


@pytest.mark.parametrize("strategy", ["uncertainty", "margin", "uncertainty+diversity", "diversity", "random"])
def test_budgets_respected_and_no_item_twice(strategy):
    rows = _multi_rows()
    budget = {"hate": 5, "sexual": 7, "violence": 3}
    picks = sample(rows, POLICY, SamplingConfig(boundary="review", budget=budget, strategy=strategy, seed=1))
    assert {c: sum(p.category == c for p in picks) for c in budget} == budget
    assert len({p.item_id for p in picks}) == len(picks) == 15


def test_total_budget_splits_evenly_over_policy_categories():
    picks = sample(_multi_rows(), POLICY, SamplingConfig(boundary="review", total=19, strategy="uncertainty"))
    counts = {c: sum(p.category == c for p in picks) for c in CATEGORIES}
    assert sum(counts.values()) == 19 and set(counts.values()) == {2, 3}
    assert [counts[c] for c in CATEGORIES] == [3, 3, 3, 2, 2, 2, 2, 2]


def test_exclude_respected():
    rows = _hate_rows()
    first = sample(rows, POLICY, SamplingConfig(boundary="review", budget={"hate": 10}, strategy="uncertainty"))
    taken = [p.item_id for p in first]
    again = sample(rows, POLICY, SamplingConfig(boundary="review", budget={"hate": 10}, strategy="uncertainty", exclude=taken))
    assert not {p.item_id for p in again} & set(taken) and len(again) == 10


def test_severity_decides_who_gets_a_shared_item():
    rows = [_row(0, market="FR", hate=0.40, sexual=0.50)]  # both exactly on their review thresholds
    config = SamplingConfig(boundary="review", budget={"hate": 1, "sexual": 1}, strategy="uncertainty", severity={"sexual": 2.0})
    [pick] = sample(rows, POLICY, config)
    assert pick.category == "sexual" and pick.priority == pytest.approx(2.0)


def test_reach_raises_priority():
    rows = [_row(0, hate=0.42), _row(1, hate=0.42), _row(2, hate=0.40)]
    meta = {"it-0000": {"views": 0}, "it-0001": {"views": 1200}}  # it-0002 has no meta
    config = SamplingConfig(boundary="review", budget={"hate": 3}, strategy="uncertainty", reach_field="views")
    picks = {p.item_id: p for p in sample(rows, POLICY, config, meta=meta)}
    assert picks["it-0001"].priority == pytest.approx(picks["it-0000"].priority * (1 + np.log1p(1200)))
    assert picks["it-0002"].priority == pytest.approx(1.0) and "1200 views" in picks["it-0001"].reason
    [best] = sample(rows, POLICY, SamplingConfig(boundary="review", budget={"hate": 1}, strategy="uncertainty", reach_field="views"),
                    meta=meta)
    assert best.item_id == "it-0001"


def test_random_baseline_is_deterministic_by_seed():
    rows = list(_hate_rows(300))

    def ids(seed, data=rows):
        return [p.item_id for p in sample(data, POLICY, SamplingConfig(budget={"hate": 20}, strategy="random",
                                                                         seed=seed))]

    assert ids(4) == ids(4) and ids(4) != ids(5)
    assert ids(4, list(reversed(rows))) == ids(4)  # file order does not matter
    assert all(p.reason.startswith("random baseline: hate") for p in
               sample(rows, POLICY, SamplingConfig(budget={"hate": 3}, strategy="random")))


@pytest.mark.parametrize("kwargs, field", [
    ({"budget": {"hate": 1}, "strategy": "entropy"}, "strategy"),
    ({"budget": {"hate": 1}, "pool_factor": 0}, "pool_factor"),
    ({"budget": {"hate": -1}}, "budget.hate"),
    ({"budget": {"hate": 1}, "total": 5}, "budget"),
    ({}, "budget"),
    ({"total": 5, "severity": {"hate": -1.0}}, "severity.hate"),
])
def test_invalid_config_names_the_field(kwargs, field):
    with pytest.raises(ConfigError, match=f"^{field}"):
        SamplingConfig(**kwargs)


def test_budget_for_unknown_category_names_it():
    with pytest.raises(ConfigError, match="budget.spam"):
        sample(_hate_rows(5), POLICY, SamplingConfig(budget={"spam": 2}))


def test_empty_rows_and_zero_budget():
    assert sample([], POLICY, SamplingConfig(budget={"hate": 5})) == []
    assert sample(_hate_rows(10), POLICY, SamplingConfig(budget={"hate": 0})) == []


def _rare_corpus(n: int = 3000, rate: float = 0.03):
    """self_harm is rare; its positives score near the 0.30 threshold, most negatives far below it."""
    rng = np.random.default_rng(11)
    rows, labels = [], {}
    for i in range(n):
        positive = rng.random() < rate
        score = rng.uniform(0.22, 0.40) if positive else rng.beta(1.0, 12.0)
        rows.append(_row(i, embedding=rng.normal(size=8), self_harm=float(score), hate=float(rng.random())))
        labels[rows[-1]["id"]] = {"self_harm": int(positive)}
    return rows, labels


def test_compare_strategies_finds_more_rare_positives_than_random():
    rows, labels = _rare_corpus()
    out = compare_strategies(rows, POLICY, labels, "self_harm", budget=100, seed=0)
    random_yield = out["strategies"]["random"]
    smart = out["strategies"]["uncertainty+diversity"]
    assert random_yield["reviews"] == smart["reviews"] == 100
    assert smart["per_100"] > 3 * max(random_yield["per_100"], 1.0)
    assert out["ratio"] == smart["ratio_vs_baseline"]
    assert out["ratio"] is None or out["ratio"] > 3


def test_rare_positive_yield_counts():
    picks = [Pick("a", "hate", "random", 0.5, 0.5, ""), Pick("b", "hate", "random", 0.5, 0.5, ""),
             Pick("c", "sexual", "random", 0.5, 0.5, ""), Pick("d", "hate", "random", 0.5, 0.5, "")]
    labels = {"a": {"hate": 1}, "b": {"hate": 0}, "c": {"hate": 1}}
    assert rare_positive_yield(picks, labels, "hate") == {"category": "hate", "reviews": 4, "positives": 2,
                                                         "per_100": 50.0, "unlabeled": 1}
    assert rare_positive_yield([], labels, "hate")["per_100"] is None
