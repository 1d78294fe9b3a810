"""Thresholds chosen on validation data for a stated target, written as a new policy version with its evidence.

A target names an action and what its threshold must achieve on the validation items that label the
category: ``restrict:precision=0.9`` (the lowest threshold whose precision reaches 0.9, so the most
recall at that precision), ``review:recall=0.9`` (the highest threshold that still catches 90% of
positives) or ``restrict:fbeta=1`` (the threshold with the best F-beta). A category with fewer than
``min_positives`` labelled positives keeps its current thresholds and is named in the evidence; so is
a target no threshold reaches. Chosen thresholds are put back in severity order (review <= restrict <=
block), moving the actions without a target, never the targeted ones.

Review is people's time: the review band must fit a **review capacity** (a share of the items,
``DEFAULT_REVIEW_CAPACITY`` unless told otherwise). When the chosen thresholds would send more items to
review than that (a ``review:recall=0.9`` target on a rare, poorly separated category can put its review
threshold near 0, sending everything to review), :func:`fit_review_capacity` raises review thresholds,
never lowers any, until the union of items whose decision is review fits, and the evidence records the
review load it implies (overall and per category) and which thresholds the capacity raised. Every
category's band counts, a skipped one's too (its review threshold may rise; the evidence says so).

A market override keeps its relation to the base rule: recommending moves each override threshold by the
same log-odds shift as its base threshold (an override meant stricter stays stricter, one meant laxer
stays laxer), so a German hate threshold below the generic one stays below the tuned generic one.
An override's stated ``intent`` (:class:`tripwire.policy.CategoryRule`) overrides the per-action
comparison; with per-market thresholds, a market's own choice is held to that relation too, and the
relation wins over the review capacity there.

Calibrated scores of a rare category seldom pass 0.5, so a model shipped with generic thresholds
silences exactly the rare harms: every trained checkpoint gets thresholds chosen on its own validation
split (training calls :func:`recommend`), and ``tripwire thresholds`` does the same on a golden set.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from tripwire.common.config import ConfigError, to_dict
from tripwire.evaluation.metrics import BootstrapConfig, category_arrays, category_estimates, weight_chunks
from tripwire.policy import SEVERE_ACTIONS, CategoryRule, Policy, relation

logger = logging.getLogger(__name__)

METRICS = ("precision", "recall", "fbeta")
DEFAULT_TARGETS = ("review:recall=0.9", "restrict:fbeta=1", "block:precision=0.95")
DEFAULT_MIN_POSITIVES = 10
DEFAULT_REVIEW_CAPACITY = 0.05  # one item in twenty may go to people
_LOGIT_EPS = 1e-6
LABELS = tuple(a.label for a in SEVERE_ACTIONS)


def check_review_capacity(value: float | None, where: str) -> None:
    """A review capacity is a share of items in (0, 1], or None (no limit)."""
    if value is not None and (isinstance(value, bool) or not 0.0 < value <= 1.0):
        raise ConfigError(f"{where}: must be a share of items in (0, 1] or null (no limit), got {value!r}")


@dataclass(frozen=True)
class Target:
    """What one action's threshold must achieve (``ACTION:METRIC=VALUE``)."""

    action: str
    metric: str
    value: float

    @classmethod
    def parse(cls, text: str) -> "Target":
        try:
            action, rest = text.split(":", 1)
            metric, value = rest.split("=", 1)
            number = float(value)
        except ValueError:
            raise ConfigError(f"target {text!r}: expected ACTION:METRIC=VALUE, e.g. restrict:precision=0.9") from None
        target = cls(action.strip(), metric.strip(), number)
        actions = [a.label for a in SEVERE_ACTIONS]
        if target.action not in actions:
            raise ConfigError(f"target {text!r}: action {target.action!r} is not one of {actions}")
        if target.metric not in METRICS:
            raise ConfigError(f"target {text!r}: metric {target.metric!r} is not one of {list(METRICS)}")
        if target.metric == "fbeta" and not number > 0 or target.metric != "fbeta" and not 0 < number <= 1:
            raise ConfigError(f"target {text!r}: {number} is out of range")
        return target

    def __str__(self) -> str:
        return f"{self.action}:{self.metric}={self.value:g}"


def parse_targets(texts: Sequence[str]) -> list[Target]:
    targets = [Target.parse(t) for t in texts]
    actions = [t.action for t in targets]
    duplicates = sorted({a for a in actions if actions.count(a) > 1})
    if duplicates:
        raise ConfigError(f"targets: more than one target for {duplicates}")
    return targets


def _curve(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per distinct score, highest first: that score, the next lower one (or -inf), precision, recall."""
    order = np.argsort(-scores, kind="mergesort")
    s, y = scores[order], labels[order].astype(bool)
    ends = np.append(np.flatnonzero(np.diff(s) != 0), len(s) - 1)
    tp, fp = np.cumsum(y)[ends], np.cumsum(~y)[ends]
    below = np.append(s[ends][1:], -np.inf)
    return s[ends], below, tp / (tp + fp), tp / max(int(y.sum()), 1)


def choose(labels: np.ndarray, scores: np.ndarray, target: Target) -> float | None:
    """The threshold meeting ``target`` on these items, or None when none does. A threshold sits halfway
    between the last admitted score and the next lower one, so it does not hang on one item's exact score."""
    at, below, precision, recall = _curve(labels, scores)
    if target.metric == "precision":
        meets = np.flatnonzero(precision >= target.value)
        k = int(meets[-1]) if meets.size else None
    elif target.metric == "recall":
        meets = np.flatnonzero(recall >= target.value)
        k = int(meets[0]) if meets.size else None
    else:
        b2 = target.value ** 2
        with np.errstate(invalid="ignore", divide="ignore"):
            fbeta = np.nan_to_num((1 + b2) * precision * recall / (b2 * precision + recall))
        k = int(np.argmax(fbeta)) if fbeta.max() > 0 else None
    if k is None:
        return None
    return _between(below[k] if np.isfinite(below[k]) else max(at[k] - 0.01, 0.0), at[k])


def _between(low: float, high: float) -> float:
    """A short number in (low, high] (``high`` itself when there is none): a threshold that admits ``high``
    and not ``low``, without hanging on one item's exact score."""
    for digits in (4, 6):
        middle = math.floor((high + low) / 2 * 10 ** digits) / 10 ** digits
        if low < middle <= high:
            return float(middle)
    return float(high)


def achieved(labels: np.ndarray, scores: np.ndarray, threshold: float, bootstrap: BootstrapConfig) -> dict[str, dict]:
    """Precision, recall and F1 at ``threshold`` on these items, with bootstrap intervals."""
    flagged = scores >= threshold
    args = (labels, scores, flagged, flagged)
    point = category_arrays(*args, np.ones((1, len(labels))), 0.5)
    reps = [category_arrays(*args, w, 0.5) for w in weight_chunks(len(labels), bootstrap)]
    merged = {m: np.concatenate([r[m] for r in reps]) for m in reps[0]} if reps else None
    estimates = category_estimates(point, merged, bootstrap.confidence)
    return {m: estimates[m] for m in ("precision", "recall", "f1")}


def _ordered(rule: CategoryRule, chosen: Mapping[str, float]) -> CategoryRule:
    """``rule`` with the chosen thresholds, the other actions moved (never the chosen ones) so that
    thresholds rise with severity; among chosen ones, a stricter action never sits below a milder one."""
    values = {a.label: getattr(rule, a.label) for a in SEVERE_ACTIONS}
    values.update(chosen)
    labels = [a.label for a in SEVERE_ACTIONS]
    for i, name in enumerate(labels):  # chosen thresholds: each at least the milder chosen ones
        if name in chosen:
            floor = max((values[m] for m in labels[:i] if m in chosen and values[m] is not None), default=None)
            if floor is not None and values[name] < floor:
                values[name] = floor
    for i, name in enumerate(labels):  # the others: between their chosen neighbours
        if name in chosen or values[name] is None:
            continue
        lower = max((values[m] for m in labels[:i] if values[m] is not None), default=0.0)
        upper = min((values[m] for m in labels[i + 1:] if m in chosen and values[m] is not None), default=1.0)
        values[name] = min(max(values[name], lower), upper)
    return dataclasses.replace(rule, **values)


def category_actions(rules: Mapping[str, CategoryRule], scores: np.ndarray, categories: Sequence[str]) -> np.ndarray:
    """(N, C) the action level (0 allow .. 3 block) each category's rule takes on each item, as
    :meth:`CategoryRule.action_for` would."""
    levels = np.zeros(scores.shape, dtype=np.int8)
    for j, category in enumerate(categories):
        rule = rules.get(category)
        for level, label in enumerate(LABELS, start=1):
            threshold = None if rule is None else getattr(rule, label)
            if threshold is not None:
                levels[:, j] = np.maximum(levels[:, j], np.where(scores[:, j] >= threshold, level, 0))
    return levels


def review_load(rules: Mapping[str, CategoryRule], scores: np.ndarray, categories: Sequence[str],
                capacity: float | None = None) -> dict[str, Any]:
    """The share of items these rules send to review: ``overall`` (the item's decision, its strictest
    category action, is review: what reaches people) and per category (the category's action is review)."""
    levels = category_actions(rules, scores, categories)
    n = max(len(scores), 1)
    overall = float((levels.max(axis=1, initial=0) == 1).sum() / n) if len(scores) else 0.0
    out = {"items": int(len(scores)), "overall": round(overall, 6),
           "categories": {c: round(float((levels[:, j] == 1).sum() / n), 6)
                          for j, c in enumerate(categories) if c in rules}}
    if capacity is not None:
        out.update(capacity=capacity, fits=bool(overall <= capacity + 1e-12))
    return out


def _upper(rule: CategoryRule) -> float | None:
    """The threshold above the review band: the next stricter action's (None: the band runs to 1)."""
    return rule.restrict if rule.restrict is not None else rule.block


def _band_cap(band_desc: np.ndarray, k: int, upper: float | None) -> float:
    """The lowest review threshold that leaves at most ``k`` of these scores (the category's scores below
    ``upper``, highest first) in the review band."""
    if k >= len(band_desc):
        return 0.0
    value = float(band_desc[k])
    higher = band_desc[:k][band_desc[:k] > value]
    top = float(higher[-1]) if higher.size else (upper if upper is not None else 1.0)
    return _between(value, top) if top > value else top


def fit_review_capacity(rules: Mapping[str, CategoryRule], scores: np.ndarray, categories: Sequence[str],
                        capacity: float) -> tuple[dict[str, CategoryRule], dict[str, Any]]:
    """Rules whose review band fits ``capacity`` on these items, and the review load they imply.

    Only review thresholds move, and only up (never past the category's next stricter threshold). Each
    category's band may hold at most ``k`` items, for the largest ``k`` at which the items whose decision
    is review are at most ``capacity`` of all: categories whose band is already small keep their
    threshold, the largest bands are cut to the same size. ``raised`` names what moved; ``fits`` is false
    when even empty bands leave too many (a category with a review threshold and nothing stricter).
    """
    rules = dict(rules)
    before = review_load(rules, scores, categories, capacity)
    if before["fits"] or not len(scores):
        return rules, {**before, "before": before["overall"], "raised": {}}
    index = {c: j for j, c in enumerate(categories)}
    movable = {c: r for c, r in rules.items() if c in index and r.review is not None}
    bands = {}
    for category, rule in movable.items():
        column, upper = scores[:, index[category]], _upper(rule)
        below = column if upper is None else column[column < upper]
        bands[category] = np.sort(below)[::-1]

    def fitted(k: int) -> dict[str, CategoryRule]:
        out = dict(rules)
        for category, rule in movable.items():
            upper = _upper(rule)
            review = max(rule.review, _band_cap(bands[category], k, upper))
            out[category] = dataclasses.replace(rule, review=review if upper is None else min(review, upper))
        return out

    def fits(k: int) -> bool:
        return review_load(fitted(k), scores, categories, capacity)["fits"]

    low, high = 0, len(scores)  # fits(k) turns false as k grows; find the largest k that fits
    if not fits(0):
        high = 0
    while low < high:
        middle = (low + high + 1) // 2
        if fits(middle):
            low = middle
        else:
            high = middle - 1
    new_rules = fitted(low)
    raised = {c: {"from": rules[c].review, "to": new_rules[c].review} for c in movable
              if new_rules[c].review != rules[c].review}
    after = review_load(new_rules, scores, categories, capacity)
    if not after["fits"]:
        logger.warning("review capacity %.1f%%: even empty review bands send %.1f%% of the items to review",
                       100 * capacity, 100 * after["overall"])
    return new_rules, {**after, "before": before["overall"], "raised": raised}


def _logit(p: float) -> float:
    p = min(max(p, _LOGIT_EPS), 1 - _LOGIT_EPS)
    return math.log(p / (1 - p))


def _floor6(x: float) -> float:
    return math.floor(x * 1e6) / 1e6


def _ceil6(x: float) -> float:
    return math.ceil(x * 1e6) / 1e6


def _severity_ordered(values: dict[str, float | None]) -> dict[str, float | None]:
    """Thresholds put back in severity order by lowering a milder one to the stricter one above it:
    lowering only makes a rule stricter, so an override meant stricter stays so."""
    upper = None
    for label in reversed(LABELS):
        if values[label] is None:
            continue
        if upper is not None and values[label] > upper:
            values[label] = upper
        upper = values[label]
    return values


def relations(override: CategoryRule, base: CategoryRule) -> dict[str, str | None]:
    """Per action, what ``override`` was meant to be relative to ``base``: its stated ``intent`` where it
    has one, else how its threshold compares (:func:`tripwire.policy.relation`)."""
    return {label: override.intent or relation(getattr(override, label), getattr(base, label)) for label in LABELS}


def relative_override(override: CategoryRule, base_before: CategoryRule, base_after: CategoryRule) -> CategoryRule:
    """``override`` moved with its base: each threshold shifted by the same log-odds as the base's went from
    ``base_before`` to ``base_after``. The shift is monotone, so a threshold below (above) the old base lands
    below (above) the new one, rounded away from it; an action without a base threshold stays as it was."""
    values = {}
    for label in LABELS:
        mine, before, after = getattr(override, label), getattr(base_before, label), getattr(base_after, label)
        if mine is None or before is None or after is None or before == after:
            values[label] = mine
            continue
        moved = 1 / (1 + math.exp(-(_logit(mine) + _logit(after) - _logit(before))))
        side = relation(mine, before)
        moved = min(_floor6(moved), after) if side == "stricter" else max(_ceil6(moved), after) if side == "laxer" \
            else after
        values[label] = min(max(moved, 0.0), 1.0)
    return dataclasses.replace(override, **_severity_ordered(values))


def _keep_relation(rule: CategoryRule, meant: Mapping[str, str | None], base: CategoryRule) -> CategoryRule:
    """``rule`` (chosen on a market's items) held to the relation its override was meant to have with the
    (tuned) base rule: no threshold of an override meant stricter above the base's, none of one meant
    laxer below it."""
    values = {label: getattr(rule, label) for label in LABELS}
    for label in LABELS:
        mine, theirs = values[label], getattr(base, label)
        if meant[label] == "laxer" and theirs is None:
            values[label] = None  # the base never takes this action, so an override meant laxer may not either
            continue
        if mine is None or theirs is None:
            continue
        if meant[label] == "stricter" and mine > theirs:
            values[label] = theirs
        elif meant[label] == "laxer" and mine < theirs:
            values[label] = theirs
    return dataclasses.replace(rule, **_severity_ordered(values))


def recommend_rules(labels: np.ndarray, scores: np.ndarray, categories: Sequence[str],
                    rules: Mapping[str, CategoryRule], targets: Sequence[Target], min_positives: int,
                    bootstrap: BootstrapConfig, review_capacity: float | None = None,
                    relation_to: Mapping[str, tuple[Mapping[str, str | None], CategoryRule]] | None = None,
                    own_rules_only: bool = False) -> tuple[dict[str, CategoryRule], dict[str, Any], dict[str, Any]]:
    """New rules for the categories with enough labelled positives, the evidence per category, and the
    review load of the resulting rules (``rules`` with the new ones) on these items.

    Args:
        review_capacity: the review band's share of items at most (:func:`fit_review_capacity`); None: no limit.
        relation_to: category -> (per action "stricter" / "laxer", the base rule): hold each chosen rule to
            that relation (a market override's intent, which wins over the capacity).
        own_rules_only: fit the capacity only when some category's thresholds were chosen here (a market
            without enough positives of any category gets no overrides; its load is still reported).
    """
    new_rules, evidence, chosen_actions = {}, {}, {}
    for j, category in enumerate(categories):
        if category not in rules:
            continue
        known = labels[:, j] >= 0
        y, s = labels[known, j].astype(np.int64), scores[known, j]
        positives = int(y.sum())
        if positives < min_positives:
            evidence[category] = {"skipped": f"{positives} labelled positives (fewer than {min_positives}); "
                                             "thresholds left as they were", "labelled": int(known.sum())}
            continue
        chosen, per_action = {}, {}
        for target in targets:
            threshold = choose(y, s, target)
            if threshold is None:
                per_action[target.action] = {"target": str(target), "unmet": "no threshold reaches the target; "
                                             "left as it was"}
                continue
            chosen[target.action] = threshold
        new_rules[category] = _ordered(rules[category], chosen)
        chosen_actions[category] = chosen
        evidence[category] = {"labelled": int(known.sum()), "positives": positives, "actions": per_action}
    current = {c: new_rules.get(c, rules[c]) for c in categories if c in rules}
    raised, before = {}, None
    if review_capacity is not None and (new_rules or not own_rules_only):
        current, fitted = fit_review_capacity(current, scores, categories, review_capacity)
        raised, before = fitted["raised"], fitted["before"]
    for category, (meant, base) in (relation_to or {}).items():
        if category in current:
            held = _keep_relation(current[category], meant, base)
            if held != current[category]:
                evidence.setdefault(category, {})["kept_relation"] = (
                    f"held {dict(meant)} relative to the base rule {dataclasses.asdict(base)}")
            current[category] = held
    for category, rule in current.items():
        if rule != rules[category]:
            new_rules[category] = rule
        else:  # fitting the capacity can bring a chosen rule back to exactly what it was
            new_rules.pop(category, None)
    load = review_load(current, scores, categories, review_capacity)
    load["before"] = load["overall"] if before is None else before  # the chosen thresholds' load, before fitting
    load["raised"] = {c: {**change, "to": current[c].review} for c, change in raised.items()}
    for category, change in load["raised"].items():
        evidence[category]["review_raised"] = (f"review threshold raised from {change['from']:g} to {change['to']:g} "
                                               f"to fit the review capacity ({100 * review_capacity:g}% of items)")
    for j, category in enumerate(categories):
        if category not in chosen_actions:
            continue
        known = labels[:, j] >= 0
        y, s = labels[known, j].astype(np.int64), scores[known, j]
        per_action = evidence[category]["actions"]
        for target in targets:
            if target.action in chosen_actions[category]:
                threshold = getattr(current[category], target.action)
                per_action[target.action] = {"target": str(target), "threshold": threshold,
                                             "achieved": achieved(y, s, threshold, bootstrap)}
                if target.action == "review" and category in load["raised"]:
                    per_action["review"]["capacity"] = evidence[category]["review_raised"]
    return new_rules, evidence, load


def recommend(policy: Policy, labels: np.ndarray, scores: np.ndarray, categories: Sequence[str],
              targets: Sequence[Target], evidence_source: Mapping[str, Any], version: str | None = None,
              min_positives: int = DEFAULT_MIN_POSITIVES, markets: np.ndarray | None = None,
              bootstrap: BootstrapConfig | None = None,
              review_capacity: float | None = DEFAULT_REVIEW_CAPACITY) -> Policy:
    """A new version of ``policy`` with thresholds chosen on ``labels`` / ``scores`` (N, C; labels -1 unknown).

    Args:
        evidence_source: what the thresholds were chosen on (golden set and hash, or the training run's
            validation split), recorded in the new policy's ``evidence``.
        markets: (N,) each item's market; given, markets with enough positives get their own overrides
            (chosen on their items, then held to the relation the market's original override had with the
            base rule), and each market's review load is fitted to the capacity on its own items.
        review_capacity: the share of items the review band may take (None: no limit); the evidence's
            ``review_load`` says what the new thresholds send to review, overall and per category.

    Every market override of ``policy`` is moved with its base (:func:`relative_override`), so an
    override meant stricter than the base stays stricter than the tuned base.
    """
    check_review_capacity(review_capacity, "review_capacity")
    bootstrap = bootstrap or BootstrapConfig(replicates=500)
    rules, evidence, load = recommend_rules(labels, scores, categories, policy.categories, targets, min_positives,
                                            bootstrap, review_capacity)
    tuned = {**policy.categories, **rules}
    new_markets = {m: {c: relative_override(o, policy.categories[c], tuned[c]) for c, o in overrides.items()}
                   for m, overrides in policy.markets.items()}
    market_evidence = {}
    if markets is not None:
        for market in sorted({m for m in markets if m}):
            mask = markets == market
            code = market.upper()
            originals = policy.markets.get(code, {})
            base = {c: new_markets.get(code, {}).get(c, tuned[c]) for c in policy.categories}
            meant = {c: (relations(o, policy.categories[c]), tuned[c]) for c, o in originals.items()}
            market_rules, market_ev, market_load = recommend_rules(labels[mask], scores[mask], categories, base,
                                                                   targets, min_positives, bootstrap,
                                                                   review_capacity, meant, own_rules_only=True)
            if market_rules:
                new_markets.setdefault(code, {}).update(market_rules)
            market_evidence[market] = {**market_ev, "review_load": market_load}
    stamp = datetime.datetime.now(datetime.timezone.utc)
    return Policy(
        version=version or f"{policy.version}+tuned.{stamp:%Y%m%d%H%M%S}",
        taxonomy_version=policy.taxonomy_version,
        categories=tuned,
        markets=new_markets,
        signals=policy.signals,
        evidence={"based_on": policy.version, "chosen_at": stamp.isoformat(timespec="seconds"),
                  "targets": [str(t) for t in targets], "min_positives": min_positives,
                  "review_capacity": review_capacity, "bootstrap": to_dict(bootstrap), **dict(evidence_source),
                  "categories": evidence, "review_load": load,
                  **({"markets": market_evidence} if markets is not None else {})})


def policy_yaml(policy: Policy) -> str:
    """The policy as a YAML file (loadable by :meth:`Policy.load`)."""
    header = (f"# Tripwire enforcement policy {policy.version}: thresholds chosen by tripwire.evaluation.thresholds "
              f"(based on {policy.evidence.get('based_on', '?')}); `evidence` records what they were chosen on.\n")
    return header + yaml.safe_dump(to_dict(policy), sort_keys=False, allow_unicode=True)


def skipped_categories(policy: Policy) -> dict[str, str]:
    """Category -> why its thresholds were not chosen (too few positives, or an unmet target), and
    ``category.review`` -> how the review capacity moved a chosen review threshold."""
    out = {}
    for category, entry in policy.evidence.get("categories", {}).items():
        if "skipped" in entry:
            out[category] = entry["skipped"]
        for action, result in entry.get("actions", {}).items():
            if "unmet" in result:
                out[f"{category}.{action}"] = f"{result['target']}: {result['unmet']}"
        if "review_raised" in entry:
            out[f"{category}.review"] = entry["review_raised"]
    return out
