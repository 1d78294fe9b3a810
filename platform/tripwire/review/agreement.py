"""Inter-rater agreement for the human-review queue: Cohen's and Fleiss' kappa, reviewer and golden accuracy.

The admin stats page uses these to tell whether labels are trustworthy enough to train on: raw percent
agreement flatters rare categories (two reviewers who never tick ``self_harm`` agree 99% of the time), so
kappa corrects for the agreement expected by chance. Per-reviewer agreement with the resolved labels and
accuracy on hidden golden items find the reviewers who need calibration.

Labels are ``{category: 0|1}`` dicts; an omitted category means 0, as in a submitted review. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

import numpy as np


def _kappa(observed: float, expected: float) -> float:
    """(p_o - p_e) / (1 - p_e), with the degenerate p_e == 1 case settled.

    p_e == 1 means every rating fell in one class, so chance explains everything and the ratio is 0/0. We
    answer 1.0 when the raters also agreed on every item (unanimous: the admin page should not show a
    healthy category as "undefined" or as disagreement) and 0.0 otherwise (agreement no better than chance).
    """
    if np.isclose(expected, 1.0):
        return 1.0 if np.isclose(observed, 1.0) else 0.0
    return float((observed - expected) / (1.0 - expected))


def cohen_kappa(a: Sequence[int], b: Sequence[int]) -> float | None:
    """Cohen's kappa of two raters over the same items, any number of classes.

    Returns:
        Kappa, or None for no items (nothing to agree on). See :func:`_kappa` for the all-one-class case.

    Raises:
        ValueError: when the two raters rated different numbers of items.
    """
    first, second = np.asarray(a), np.asarray(b)
    if first.shape != second.shape or first.ndim != 1:
        raise ValueError(f"cohen_kappa: raters must rate the same items, got {first.shape} and {second.shape}")
    if first.size == 0:
        return None
    classes = np.union1d(first, second)
    observed = float(np.mean(first == second))
    share_a = np.array([np.mean(first == c) for c in classes])
    share_b = np.array([np.mean(second == c) for c in classes])
    return _kappa(observed, float(share_a @ share_b))


def fleiss_kappa(counts: np.ndarray) -> float | None:
    """Fleiss' kappa from a (items, classes) table of how many raters put each item in each class.

    Items may have different numbers of raters: each item's agreement P_i uses its own n_i, and the class
    proportions pool all ratings (the usual generalisation; with a constant n it is Fleiss 1971 exactly).
    Items with fewer than two ratings carry no agreement information and are left out.

    Returns:
        Kappa, or None when no item has two ratings. See :func:`_kappa` for the all-one-class case.
    """
    table = np.asarray(counts, dtype=float)
    if table.ndim != 2:
        raise ValueError(f"fleiss_kappa: counts must be (items, classes), got shape {table.shape}")
    if (table < 0).any():
        raise ValueError("fleiss_kappa: counts must be non-negative")
    raters = table.sum(axis=1)
    table, raters = table[raters >= 2], raters[raters >= 2]
    if len(table) == 0:
        return None
    per_item = ((table**2).sum(axis=1) - raters) / (raters * (raters - 1))
    proportions = table.sum(axis=0) / raters.sum()
    return _kappa(float(per_item.mean()), float(proportions @ proportions))


def _label(labels: Mapping[str, int], category: str) -> int:
    value = labels.get(category, 0)
    if value not in (0, 1):
        raise ValueError(f"labels.{category}: expected 0 or 1, got {value!r}")
    return int(value)


def _category_stats(votes: list[list[int]]) -> dict[str, Any]:
    """Agreement figures for one category; ``votes`` holds each item's 0/1 labels (>= 2 per item)."""
    if not votes:
        return {"fleiss_kappa": None, "cohen_kappa": None, "items": 0, "percent_agreement": None}
    positives = np.array([sum(v) for v in votes], dtype=float)
    raters = np.array([len(v) for v in votes], dtype=float)
    unanimous = np.mean((positives == 0) | (positives == raters))
    return {
        "fleiss_kappa": fleiss_kappa(np.column_stack([raters - positives, positives])),
        "cohen_kappa": cohen_kappa([v[0] for v in votes], [v[1] for v in votes]),
        "items": len(votes),
        "percent_agreement": float(unanimous),
    }


def category_agreement(reviews_by_item: Mapping[str, Sequence[Mapping[str, int]]],
                       categories: Sequence[str]) -> dict[str, dict[str, Any]]:
    """Per category: Fleiss' kappa, Cohen's kappa and percent agreement over items with >= 2 reviews.

    Cohen's kappa takes each item's first two reviews (in the order given) as "rater A" and "rater B":
    the queue does not pair fixed reviewers, so this is positional agreement, comparable over time.
    ``percent_agreement`` is the fraction of items on which every review gave the same label (unanimity,
    the figure an admin reads as "reviewers agreed on 93% of items").
    """
    multi = [list(reviews) for reviews in reviews_by_item.values() if len(reviews) >= 2]
    return {c: _category_stats([[_label(r, c) for r in reviews] for reviews in multi]) for c in categories}


@dataclass
class _Tally:
    """One reviewer's counts against a reference (resolved or golden labels)."""

    reviews: int = 0
    items: int = 0
    exact: int = 0
    matches: int = 0
    pairs: int = 0

    def add(self, labels: Mapping[str, int], reference: Mapping[str, int], categories: Sequence[str]) -> None:
        hits = sum(_label(labels, c) == _label(reference, c) for c in categories)
        self.items += 1
        self.exact += hits == len(categories)
        self.matches += hits
        self.pairs += len(categories)

    def label_rate(self) -> float | None:
        if not self.items:
            return None
        # No categories at all: every label is an omitted 0 on both sides, so they agree.
        return self.matches / self.pairs if self.pairs else 1.0


def _label_space(reviews: Sequence[Mapping[str, Any]], reference: Mapping[str, Mapping[str, int]],
                 categories: Sequence[str] | None) -> list[str]:
    """The categories to compare: those given, else every category any review or reference names."""
    if categories is not None:
        return list(categories)
    names: set[str] = set()
    for labels in _iter_labels(reviews, reference):
        names.update(labels)
    return sorted(names)


def _iter_labels(reviews: Sequence[Mapping[str, Any]],
                 reference: Mapping[str, Mapping[str, int]]) -> Iterable[Mapping[str, int]]:
    yield from (r.get("labels") or {} for r in reviews)
    yield from reference.values()


def _tally(reviews: Sequence[Mapping[str, Any]], reference: Mapping[str, Mapping[str, int]],
           categories: Sequence[str] | None) -> dict[str, _Tally]:
    space = _label_space(reviews, reference, categories)
    tallies: dict[str, _Tally] = {}
    for review in reviews:
        tally = tallies.setdefault(str(review["reviewer"]), _Tally())
        tally.reviews += 1
        if review["item_id"] in reference:
            tally.add(review.get("labels") or {}, reference[review["item_id"]], space)
    return tallies


def reviewer_agreement(reviews: Sequence[Mapping[str, Any]], resolved: Mapping[str, Mapping[str, int]],
                       categories: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per reviewer: how often their labels match the final (resolved) labels of the items they reviewed.

    Args:
        reviews: ``{"reviewer", "item_id", "labels", "action"}`` dicts.
        resolved: item_id -> final labels, for resolved items only.
        categories: the categories compared; by default every category named in a review or a resolution
            (pass the taxonomy so an all-zero review still counts every category).

    Returns:
        reviewer -> ``{"reviews": all their reviews, "agreement": matching (item, category) pairs / pairs
        over resolved items (None if they reviewed none), "items_compared": those resolved items}``.
    """
    return {name: {"reviews": t.reviews, "agreement": t.label_rate(), "items_compared": t.items}
            for name, t in _tally(reviews, resolved, categories).items()}


def golden_accuracy(reviews: Sequence[Mapping[str, Any]], golden: Mapping[str, Mapping[str, int]],
                    categories: Sequence[str] | None = None) -> dict[str, dict[str, Any]]:
    """Per reviewer: accuracy on hidden golden items (known answers), whole-item and per label.

    Returns:
        reviewer -> ``{"golden_reviews": golden items reviewed, "accuracy": fraction with every category
        right (None if none), "label_accuracy": fraction of (item, category) pairs right (None if none)}``.
    """
    out = {}
    for name, t in _tally(reviews, golden, categories).items():
        out[name] = {"golden_reviews": t.items, "accuracy": t.exact / t.items if t.items else None,
                     "label_accuracy": t.label_rate()}
    return out
