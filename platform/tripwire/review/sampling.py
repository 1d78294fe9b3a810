"""Active learning over scan results: which items humans should label next (``tripwire queue sample``).

Reviewing every item is impossible and reviewing a random slice mostly finds easy negatives, so this module
spends a per-category review budget where a label teaches the model most: items whose score sits near the
category's decision threshold (``uncertainty``), near any action boundary (``margin``), where two models
disagree (``disagreement``), spread over embedding space so a batch is not fifty near-duplicates
(``diversity``, ``uncertainty+diversity``), or at random (``random``, the baseline the benchmark compares
against). Priority folds in how severe the category is and how many people saw the item.

Measures, per item and category (thresholds from ``policy.rule(category, market)``):

* uncertainty: ``1 - |s - t| / max(t, 1 - t)`` against the decision threshold ``t``: the review threshold,
  or the lowest defined one when the category never reviews. 1 on the line, 0 at the far end of [0, 1].
* margin: the same formula against the *nearest* of the review / restrict / block thresholds (normalised
  by the decision threshold's span), so an item about to tip from restrict to block counts as uncertain.
  Margin is never below uncertainty.
* disagreement: ``|s_a - s_b|`` between this scan's score and a second model's.

Selection: candidates are the rows with a score and a threshold for the category, less ``exclude`` and the
items another category already took (an item is picked once). Categories are served most severe first.
``diversity`` runs k-means (k = budget, k-means++ seeding, Lloyd steps) over a seeded random pool of
``pool_factor * budget`` candidates, ``uncertainty+diversity`` over the ``pool_factor * budget`` candidates of
highest priority; each keeps the highest-priority member of every cluster. Space: the fusion head's pooled
``embedding``, L2-normalised; the score vector when any pooled row lacks one (older scans).

Memory: the rows are the caller's, in memory; this module adds O(rows) floats per category, the pool's
features (pool x dim) and one pool x k distance matrix; k-means costs O(pool * k * dim) per iteration, so the
cost grows with the budget, not with the scan.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from tripwire.common.config import ConfigError
from tripwire.policy import Policy

logger = logging.getLogger(__name__)

STRATEGIES = ("uncertainty", "margin", "disagreement", "diversity", "uncertainty+diversity", "random")
THRESHOLD_NAMES = ("review", "restrict", "block")
SECOND_MODEL = -1  # reference index meaning "the second model's score", not a threshold
KMEANS_ITERATIONS = 20


@dataclass(frozen=True)
class SamplingConfig:
    """How many items to sample per category, and how to choose them.

    Give either ``budget`` (category -> items) or ``total`` (split evenly over the policy's categories, the
    remainder to the first ones). ``severity`` weighs categories (default 1.0) in the priority and in the
    order categories choose; ``reach_field`` names a ``meta`` field (e.g. ``views``) whose value multiplies
    the priority by ``1 + log1p(reach)``: the log keeps one viral post from swamping the batch, and the
    ``1 +`` keeps an unseen (or reach-less) item ranked by its uncertainty instead of at zero.
    """

    budget: dict[str, int] = field(default_factory=dict)
    total: int | None = None
    strategy: str = "uncertainty+diversity"
    pool_factor: int = 2
    severity: dict[str, float] = field(default_factory=dict)
    reach_field: str | None = None
    seed: int = 0
    exclude: frozenset[str] = frozenset()
    # The threshold uncertainty is measured against: the enforcement boundary (restrict) by default, where a
    # wrong score does harm; review-band items sit at the review threshold by construction. A category
    # without that action falls back to its lowest threshold.
    boundary: str = "restrict"
    # At most this many picks per cluster of the fused embeddings (clusters: ceil(budget / per_cluster)).
    per_cluster: int = 2

    def __post_init__(self):
        if self.strategy not in STRATEGIES:
            raise ConfigError(f"strategy: {self.strategy!r} is not one of {list(STRATEGIES)}")
        if self.boundary not in THRESHOLD_NAMES:
            raise ConfigError(f"boundary: {self.boundary!r} is not one of {list(THRESHOLD_NAMES)}")
        if bool(self.budget) == (self.total is not None):
            raise ConfigError("budget: give a per-category budget or a total, exactly one of them")
        for category, n in self.budget.items():
            if isinstance(n, bool) or not isinstance(n, int) or n < 0:
                raise ConfigError(f"budget.{category}: expected an integer >= 0, got {n!r}")
        if self.total is not None and (isinstance(self.total, bool) or not isinstance(self.total, int)
                                       or self.total < 0):
            raise ConfigError(f"total: expected an integer >= 0, got {self.total!r}")
        if isinstance(self.pool_factor, bool) or not isinstance(self.pool_factor, int) or self.pool_factor < 1:
            raise ConfigError(f"pool_factor: expected an integer >= 1, got {self.pool_factor!r}")
        if isinstance(self.per_cluster, bool) or not isinstance(self.per_cluster, int) or self.per_cluster < 1:
            raise ConfigError(f"per_cluster: expected an integer >= 1, got {self.per_cluster!r}")
        for category, weight in self.severity.items():
            if not isinstance(weight, (int, float)) or not weight >= 0:
                raise ConfigError(f"severity.{category}: expected a number >= 0, got {weight!r}")
        object.__setattr__(self, "exclude", frozenset(str(i) for i in self.exclude))

    def budgets(self, categories: Sequence[str]) -> dict[str, int]:
        """Items per category; ``categories`` are the policy's (ConfigError naming an unknown one)."""
        unknown = sorted(set(self.budget) - set(categories))
        if unknown:
            raise ConfigError(f"budget.{unknown[0]}: not a policy category; known: {list(categories)}")
        if self.total is None:
            return dict(self.budget)
        share, extra = divmod(self.total, len(categories)) if categories else (0, 0)
        return {c: share + (i < extra) for i, c in enumerate(categories)}

    def weight(self, category: str) -> float:
        return float(self.severity.get(category, 1.0))


@dataclass(frozen=True)
class Pick:
    """One item chosen for review, for one category, with why."""

    item_id: str
    category: str
    strategy: str
    uncertainty: float  # the strategy's measure (disagreement for "disagreement"), in [0, 1]
    priority: float  # severity weight * reach factor * uncertainty
    reason: str  # e.g. "hate 0.41 near review threshold 0.40"

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class _Table:
    """The scan rows as arrays (one row per id, in id order, so the result ignores file order)."""

    ids: np.ndarray
    markets: np.ndarray
    rows: list[Mapping[str, Any]]
    reach: np.ndarray | None
    available: np.ndarray  # not excluded and not yet picked


@dataclass
class _Measured:
    """One category's measure over every row; ``value`` is NaN where the row is no candidate."""

    category: str
    scores: np.ndarray
    value: np.ndarray
    ref: np.ndarray  # the threshold (or second-model score) the value measures against
    ref_kind: np.ndarray  # index into THRESHOLD_NAMES, or SECOND_MODEL
    priority: np.ndarray


def _table(rows: Sequence[Mapping[str, Any]], config: SamplingConfig,
           meta: Mapping[str, Mapping[str, Any]] | None) -> _Table:
    unique: dict[str, Mapping[str, Any]] = {}
    for row in rows:
        unique.setdefault(str(row["id"]), row)
    if len(unique) < len(rows):
        logger.warning("sampling: %d rows repeat an id; the first of each is used", len(rows) - len(unique))
    ids = sorted(unique)
    ordered = [unique[i] for i in ids]
    markets = np.array([str(r.get("market") or "") for r in ordered], dtype=object)
    reach = None
    if config.reach_field:
        meta = meta or {}
        reach = np.array([_reach(meta.get(i) or {}, config.reach_field) for i in ids], dtype=float)
    available = np.array([i not in config.exclude for i in ids], dtype=bool)
    return _Table(np.array(ids, dtype=object), markets, ordered, reach, available)


def _reach(meta: Mapping[str, Any], name: str) -> float:
    try:
        return max(0.0, float(meta.get(name) or 0.0))
    except (TypeError, ValueError):
        return 0.0


def _scores(rows: Sequence[Mapping[str, Any]], category: str) -> np.ndarray:
    values = [(r.get("scores") or {}).get(category) for r in rows]
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def _thresholds(policy: Policy, category: str, markets: np.ndarray) -> np.ndarray:
    """(rows, 3) review / restrict / block thresholds per row for its market; NaN where not defined."""
    table = np.full((len(markets), len(THRESHOLD_NAMES)), np.nan)
    for market in set(markets):
        rule = policy.rule(category, market or None)
        if rule is not None:
            values = [getattr(rule, name) for name in THRESHOLD_NAMES]
            table[markets == market] = [np.nan if v is None else v for v in values]
    return table


def _closeness(scores: np.ndarray, ref: np.ndarray, span: np.ndarray) -> np.ndarray:
    """1 at the reference, falling linearly to 0 at the far end of [0, 1] (``span`` = max(t, 1 - t))."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.clip(1.0 - np.abs(scores - ref) / span, 0.0, 1.0)


def _measure(strategy: str, scores: np.ndarray, thresholds: np.ndarray, second: np.ndarray | None,
             boundary: str = "restrict") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The strategy's (value, reference, reference kind) per row; value NaN where undefined."""
    defined = ~np.isnan(thresholds)
    has_threshold = defined.any(axis=1)
    rows = np.arange(len(scores))
    lowest = np.where(has_threshold, np.argmax(defined, axis=1), 0)  # thresholds rise: first defined
    preferred = THRESHOLD_NAMES.index(boundary)
    lowest = np.where(defined[:, preferred], preferred, lowest)
    decision = np.where(has_threshold, thresholds[rows, lowest], np.nan)
    span = np.maximum(decision, 1.0 - decision)
    if strategy == "disagreement":
        value = np.abs(scores - second)
        value[~has_threshold] = np.nan
        return value, second, np.full(len(scores), SECOND_MODEL)
    if strategy == "margin":
        with np.errstate(invalid="ignore"):
            gaps = np.where(defined, np.abs(scores[:, None] - np.nan_to_num(thresholds)), np.inf)
        kind = np.argmin(gaps, axis=1)
        nearest = np.where(has_threshold, thresholds[rows, kind], np.nan)
        return _closeness(scores, nearest, span), nearest, kind
    return _closeness(scores, decision, span), decision, lowest


def _measured(table: _Table, policy: Policy, config: SamplingConfig, category: str,
              second_scores: Mapping[str, Mapping[str, float]] | None) -> _Measured:
    scores = _scores(table.rows, category)
    second = None
    if config.strategy == "disagreement":
        second = np.array([_second(second_scores, i, category) for i in table.ids], dtype=float)
    value, ref, kind = _measure(config.strategy, scores, _thresholds(policy, category, table.markets), second,
                                config.boundary)
    reach = 1.0 + np.log1p(table.reach) if table.reach is not None else 1.0
    return _Measured(category, scores, value, ref, kind, config.weight(category) * reach * value)


def _second(second_scores: Mapping[str, Mapping[str, float]], item_id: str, category: str) -> float:
    value = (second_scores.get(item_id) or {}).get(category)
    return np.nan if value is None else float(value)


def second_model_scores(rows: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, float]]:
    """item_id -> category -> score of a second model's scan results rows: ``sample``'s ``second_scores``
    for ``disagreement`` (the second model scans the same catalogue; its policy does not matter)."""
    return {str(r["id"]): {c: float(v) for c, v in (r.get("scores") or {}).items() if v is not None} for r in rows}


def _by_priority(indices: np.ndarray, priority: np.ndarray) -> np.ndarray:
    """``indices`` highest priority first; ties keep id order, so the order is deterministic."""
    return indices[np.argsort(-priority[indices], kind="stable")]


def _features(rows: list[Mapping[str, Any]], categories: Sequence[str]) -> np.ndarray:
    """Points for k-means: L2-normalised embeddings, or the score vectors when any embedding is missing."""
    embeddings = [r.get("embedding") for r in rows]
    if all(e is not None and len(e) for e in embeddings) and len({len(e) for e in embeddings}) == 1:
        points = np.asarray(embeddings, dtype=float)
        norms = np.linalg.norm(points, axis=1, keepdims=True)
        return points / np.where(norms > 0, norms, 1.0)
    logger.info("sampling: no embedding column in these rows; diversity uses the score vectors")
    return np.nan_to_num(np.array([_scores(rows, c) for c in categories], dtype=float).T)


def _squared_distances(points: np.ndarray, centers: np.ndarray) -> np.ndarray:
    """(points, centers) squared L2 distances without the points x centers x dim intermediate."""
    d = (points**2).sum(1)[:, None] - 2.0 * points @ centers.T + (centers**2).sum(1)[None, :]
    return np.maximum(d, 0.0)


def _kmeans_pp(points: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeds: each next seed drawn with probability proportional to its squared distance."""
    chosen = [int(rng.integers(len(points)))]
    nearest = ((points - points[chosen[0]]) ** 2).sum(1)
    for _ in range(1, k):
        total = nearest.sum()
        if total <= 1e-12:  # fewer distinct points than k: any unused point will do
            unused = np.setdiff1d(np.arange(len(points)), chosen)
            index = int(rng.choice(unused))
        else:
            index = int(rng.choice(len(points), p=nearest / total))
        chosen.append(index)
        nearest = np.minimum(nearest, ((points - points[index]) ** 2).sum(1))
    return points[chosen].copy()


def kmeans(points: np.ndarray, k: int, seed: int | np.random.Generator = 0,
           iterations: int = KMEANS_ITERATIONS) -> np.ndarray:
    """Cluster labels (0..k-1) of ``points`` by Lloyd's k-means from k-means++ seeds; deterministic by seed."""
    rng = np.random.default_rng(seed)
    centers = _kmeans_pp(points, k, rng)
    labels = np.argmin(_squared_distances(points, centers), axis=1)
    for _ in range(iterations):
        for j in range(k):
            members = labels == j
            if members.any():  # an emptied cluster keeps its centre
                centers[j] = points[members].mean(0)
        updated = np.argmin(_squared_distances(points, centers), axis=1)
        if np.array_equal(updated, labels):
            break
        labels = updated
    return labels


def _diverse(pool: np.ndarray, priority: np.ndarray, budget: int, points: np.ndarray,
             rng: np.random.Generator, per_cluster: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """The pool in priority order, at most ``per_cluster`` items from each of ``ceil(budget / per_cluster)``
    clusters (topped up by priority if some clusters run short).

    Returns:
        The chosen row indices and each one's cluster number (-1 for a top-up).
    """
    labels = kmeans(points, -(-budget // per_cluster), rng)
    ranked = np.argsort(-priority[pool], kind="stable")
    taken: dict[int, int] = {}
    chosen: list[int] = []  # ranks (positions in ``ranked``) of the picks
    for rank, position in enumerate(ranked):
        cluster = int(labels[position])
        if taken.get(cluster, 0) < per_cluster:
            taken[cluster] = taken.get(cluster, 0) + 1
            chosen.append(rank)
            if len(chosen) == budget:
                break
    best = np.array(chosen, dtype=int)
    top_up = np.setdiff1d(np.arange(len(ranked)), best)[:max(0, budget - len(best))]
    positions = ranked[np.concatenate([best, top_up]).astype(int)]
    clusters = np.concatenate([labels[ranked[best]], np.full(len(top_up), -1)])
    return pool[positions], clusters


def _choose(measured: _Measured, table: _Table, budget: int, config: SamplingConfig,
            categories: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray | None]:
    """Row indices for one category (and cluster numbers for the diversity strategies)."""
    candidates = np.flatnonzero(table.available & ~np.isnan(measured.value) & ~np.isnan(measured.scores))
    if budget <= 0 or len(candidates) == 0:
        return candidates[:0], None
    strategy = config.strategy
    if strategy == "random":
        return np.sort(rng.choice(candidates, min(budget, len(candidates)), replace=False)), None
    if strategy not in ("diversity", "uncertainty+diversity"):
        return _by_priority(candidates, measured.priority)[:budget], None
    size = min(len(candidates), config.pool_factor * budget)
    if strategy == "diversity":
        pool = np.sort(rng.choice(candidates, size, replace=False))
    else:
        pool = _by_priority(candidates, measured.priority)[:size]
    if len(pool) <= budget:
        return pool, None
    points = _features([table.rows[i] for i in pool], categories)
    return _diverse(pool, measured.priority, budget, points, rng, config.per_cluster)


def _reason(measured: _Measured, row: int, strategy: str, cluster: int | None, k: int,
            table: _Table, config: SamplingConfig) -> str:
    score, ref, kind = measured.scores[row], measured.ref[row], int(measured.ref_kind[row])
    if kind == SECOND_MODEL:
        text = f"{measured.category} {score:.2f} vs {ref:.2f} from the second model"
    elif strategy in ("random", "diversity"):
        text = f"{measured.category} {score:.2f}, {THRESHOLD_NAMES[kind]} threshold {ref:.2f}"
    else:
        text = f"{measured.category} {score:.2f} near {THRESHOLD_NAMES[kind]} threshold {ref:.2f}"
    if strategy == "random":
        text = f"random baseline: {text}"
    if cluster is not None and cluster >= 0:
        text += f"; cluster {cluster + 1} of {k}"
    if table.reach is not None:
        text += f"; {table.reach[row]:g} {config.reach_field}"
    return text


def _category_order(budgets: Mapping[str, int], config: SamplingConfig) -> list[str]:
    """Most severe first (stable: ties keep the budget's order), so a shared item goes to the worse harm."""
    return sorted(budgets, key=lambda c: -config.weight(c))


def sample(rows: Sequence[Mapping[str, Any]], policy: Policy, config: SamplingConfig,
           second_scores: Mapping[str, Mapping[str, float]] | None = None,
           meta: Mapping[str, Mapping[str, Any]] | None = None) -> list[Pick]:
    """Chooses items for human review from scan results.

    Args:
        rows: results rows (``tripwire.scan.output.read_results``); ``embedding`` is optional.
        policy: the policy the scan applied (its thresholds define uncertainty).
        config: budgets and strategy.
        second_scores: item_id -> category -> score from a second model (``disagreement`` only).
        meta: item_id -> sample meta, for ``config.reach_field``.

    Returns:
        At most one pick per item, at most ``budget`` per category, highest priority first.

    Raises:
        ConfigError: ``disagreement`` without ``second_scores``, or a budget for an unknown category.
    """
    if config.strategy == "disagreement" and second_scores is None:
        raise ConfigError("strategy: 'disagreement' needs second_scores (a second model's scores per item)")
    categories = list(policy.categories)
    budgets = config.budgets(categories)
    table = _table(rows, config, meta)
    rng = np.random.default_rng(config.seed)
    picks = []
    for category in _category_order(budgets, config):
        measured = _measured(table, policy, config, category, second_scores)
        chosen, clusters = _choose(measured, table, budgets[category], config, categories, rng)
        table.available[chosen] = False
        for position, row in enumerate(chosen):
            cluster = None if clusters is None else int(clusters[position])
            picks.append(Pick(str(table.ids[row]), category, config.strategy, float(measured.value[row]),
                              float(measured.priority[row]),
                              _reason(measured, row, config.strategy, cluster, budgets[category], table, config)))
        if len(chosen) < budgets[category]:
            logger.info("sampling: %s has %d candidates for a budget of %d", category, len(chosen),
                        budgets[category])
    return sorted(picks, key=lambda p: (-p.priority, p.item_id))


def rare_positive_yield(picks: Sequence[Pick], labels: Mapping[str, Mapping[str, int]],
                        category: str) -> dict[str, Any]:
    """How many picked items truly are ``category`` (by ``labels``), in total and per 100 reviews.

    Picked items without labels count as reviews that found nothing (``unlabeled`` says how many).
    """
    reviews = len(picks)
    positives = sum(int((labels.get(p.item_id) or {}).get(category, 0) == 1) for p in picks)
    return {"category": category, "reviews": reviews, "positives": positives,
            "per_100": 100.0 * positives / reviews if reviews else None,
            "unlabeled": sum(p.item_id not in labels for p in picks)}


def compare_strategies(rows: Sequence[Mapping[str, Any]], policy: Policy, labels: Mapping[str, Mapping[str, int]],
                       category: str, budget: int, strategies: Sequence[str] = ("random", "uncertainty+diversity"),
                       seed: int = 0) -> dict[str, Any]:
    """Rare-positive yield of each strategy when the whole budget goes to ``category`` (the benchmark).

    Returns:
        ``{"category", "budget", "strategies": {name: yield (see rare_positive_yield) plus
        "ratio_vs_baseline"}, "ratio"}``: the baseline is ``strategies[0]``; ``ratio`` is the last
        strategy's per-100 yield over the baseline's (None when the baseline found none).
    """
    results = {}
    for strategy in strategies:
        config = SamplingConfig(budget={category: budget}, strategy=strategy, seed=seed)
        results[strategy] = rare_positive_yield(sample(rows, policy, config), labels, category)
    baseline = results[strategies[0]]["per_100"]
    for outcome in results.values():
        found = outcome["per_100"]
        outcome["ratio_vs_baseline"] = found / baseline if baseline and found is not None else None
    return {"category": category, "budget": budget, "strategies": results,
            "ratio": results[strategies[-1]]["ratio_vs_baseline"]}
