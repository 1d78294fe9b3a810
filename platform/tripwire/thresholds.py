"""Thresholds chosen on validation data for a stated target, written as a new policy version with its evidence.

A target names an action and what its threshold must achieve on the validation items that label the
category: ``restrict:precision=0.9`` (the lowest threshold whose precision reaches 0.9, so the most
recall at that precision), ``review:recall=0.9`` (the highest threshold that still catches 90% of
positives) or ``restrict:fbeta=1`` (the threshold with the best F-beta). A category with fewer than
``min_positives`` labelled positives keeps its current thresholds and is named in the evidence; so is
a target no threshold reaches. Chosen thresholds are put back in severity order (review <= restrict <=
block), moving the actions without a target, never the targeted ones.

Calibrated scores of a rare category seldom pass 0.5, so a model shipped with generic thresholds
silences exactly the rare harms: every trained checkpoint gets thresholds chosen on its own validation
split (training calls :func:`recommend`), and ``tripwire thresholds`` does the same on a golden set.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import yaml

from tripwire.config import ConfigError, to_dict
from tripwire.eval_metrics import BootstrapConfig, category_arrays, estimate, weight_chunks
from tripwire.policy import SEVERE_ACTIONS, CategoryRule, Policy

METRICS = ("precision", "recall", "fbeta")
DEFAULT_TARGETS = ("review:recall=0.9", "restrict:fbeta=1", "block:precision=0.95")
DEFAULT_MIN_POSITIVES = 10


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
    low = below[k] if np.isfinite(below[k]) else max(at[k] - 0.01, 0.0)
    for digits in (4, 6):  # a short number strictly between the two scores, when there is one
        middle = math.floor((at[k] + low) / 2 * 10 ** digits) / 10 ** digits
        if low < middle <= at[k]:
            return float(middle)
    return float(at[k])


def achieved(labels: np.ndarray, scores: np.ndarray, threshold: float, bootstrap: BootstrapConfig) -> dict[str, dict]:
    """Precision, recall and F1 at ``threshold`` on these items, with bootstrap intervals."""
    flagged = scores >= threshold
    args = (labels, scores, flagged, flagged)
    point = category_arrays(*args, np.ones((1, len(labels))), 0.5)
    reps = [category_arrays(*args, w, 0.5) for w in weight_chunks(len(labels), bootstrap)]
    return {m: estimate(point[m][0], np.concatenate([r[m] for r in reps]) if reps else None, bootstrap.confidence)
            for m in ("precision", "recall", "f1")}


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


def recommend_rules(labels: np.ndarray, scores: np.ndarray, categories: Sequence[str],
                    rules: Mapping[str, CategoryRule], targets: Sequence[Target], min_positives: int,
                    bootstrap: BootstrapConfig) -> tuple[dict[str, CategoryRule], dict[str, Any]]:
    """New rules for the categories with enough labelled positives, and the evidence per category."""
    new_rules, evidence = {}, {}
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
        rule = _ordered(rules[category], chosen)
        for target in targets:
            if target.action in chosen:
                threshold = getattr(rule, target.action)
                per_action[target.action] = {"target": str(target), "threshold": threshold,
                                             "achieved": achieved(y, s, threshold, bootstrap)}
        new_rules[category] = rule
        evidence[category] = {"labelled": int(known.sum()), "positives": positives, "actions": per_action}
    return new_rules, evidence


def recommend(policy: Policy, labels: np.ndarray, scores: np.ndarray, categories: Sequence[str],
              targets: Sequence[Target], evidence_source: Mapping[str, Any], version: str | None = None,
              min_positives: int = DEFAULT_MIN_POSITIVES, markets: np.ndarray | None = None,
              bootstrap: BootstrapConfig | None = None) -> Policy:
    """A new version of ``policy`` with thresholds chosen on ``labels`` / ``scores`` (N, C; labels -1 unknown).

    Args:
        evidence_source: what the thresholds were chosen on (golden set and hash, or the training run's
            validation split), recorded in the new policy's ``evidence``.
        markets: (N,) each item's market; given, markets with enough positives get their own overrides.
    """
    bootstrap = bootstrap or BootstrapConfig(replicates=500)
    rules, evidence = recommend_rules(labels, scores, categories, policy.categories, targets, min_positives, bootstrap)
    new_markets = {m: dict(o) for m, o in policy.markets.items()}
    market_evidence = {}
    if markets is not None:
        for market in sorted({m for m in markets if m}):
            mask = markets == market
            base = {c: policy.rule(c, market) for c in policy.categories}
            market_rules, market_ev = recommend_rules(labels[mask], scores[mask], categories, base, targets,
                                                      min_positives, bootstrap)
            if market_rules:
                new_markets.setdefault(market.upper(), {}).update(market_rules)
            market_evidence[market] = market_ev
    stamp = datetime.datetime.now(datetime.timezone.utc)
    return Policy(
        version=version or f"{policy.version}+tuned.{stamp:%Y%m%d%H%M%S}",
        taxonomy_version=policy.taxonomy_version,
        categories={**policy.categories, **rules},
        markets=new_markets,
        evidence={"based_on": policy.version, "chosen_at": stamp.isoformat(timespec="seconds"),
                  "targets": [str(t) for t in targets], "min_positives": min_positives,
                  "bootstrap": to_dict(bootstrap), **dict(evidence_source), "categories": evidence,
                  **({"markets": market_evidence} if markets is not None else {})})


def policy_yaml(policy: Policy) -> str:
    """The policy as a YAML file (loadable by :meth:`Policy.load`)."""
    header = (f"# Tripwire enforcement policy {policy.version}: thresholds chosen by tripwire.thresholds "
              f"(based on {policy.evidence.get('based_on', '?')}); `evidence` records what they were chosen on.\n")
    return header + yaml.safe_dump(to_dict(policy), sort_keys=False, allow_unicode=True)


def skipped_categories(policy: Policy) -> dict[str, str]:
    """Category -> why its thresholds were not chosen (too few positives, or an unmet target)."""
    out = {}
    for category, entry in policy.evidence.get("categories", {}).items():
        if "skipped" in entry:
            out[category] = entry["skipped"]
        for action, result in entry.get("actions", {}).items():
            if "unmet" in result:
                out[f"{category}.{action}"] = f"{result['target']}: {result['unmet']}"
    return out
