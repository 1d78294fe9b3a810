"""Inter-rater agreement: Cohen's and Fleiss' kappa against textbook values, reviewer and golden accuracy."""

from __future__ import annotations

import numpy as np
import pytest

from tripwire.review.agreement import (category_agreement, cohen_kappa, fleiss_kappa, golden_accuracy,
                                       reviewer_agreement)

# Fleiss (1971) as tabulated in Wikipedia's "Fleiss' kappa": 10 items, 14 raters, 5 classes; kappa 0.210.
FLEISS_TABLE = np.array([
    [0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0], [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7],
])


def test_fleiss_textbook_example():
    assert fleiss_kappa(FLEISS_TABLE) == pytest.approx(0.2099, abs=5e-4)


def test_fleiss_varying_raters_and_undefined():
    # Items with one rating carry no agreement: dropping them leaves the kappa unchanged.
    padded = np.vstack([FLEISS_TABLE, [[1, 0, 0, 0, 0], [0, 0, 0, 0, 0]]])
    assert fleiss_kappa(padded) == pytest.approx(fleiss_kappa(FLEISS_TABLE))
    # Two raters on every item: Fleiss equals Scott's pi, by hand p_o 3/4, p_e (3/8)^2 + (5/8)^2 = 34/64.
    assert fleiss_kappa(np.array([[2, 0], [0, 2], [1, 1], [0, 2]])) == pytest.approx(7 / 15)
    assert fleiss_kappa(np.array([[3, 0], [0, 2], [4, 0]])) == 1.0  # perfect agreement, varying raters
    assert fleiss_kappa(np.array([[1, 0], [0, 1]])) is None
    assert fleiss_kappa(np.zeros((0, 2))) is None
    assert fleiss_kappa(np.array([[5, 0], [3, 0]])) == 1.0  # one class only: unanimous -> 1.0
    with pytest.raises(ValueError, match="non-negative"):
        fleiss_kappa(np.array([[-1, 3]]))


def test_cohen_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(0)
    for classes in (2, 3, 5):
        a = rng.integers(0, classes, 200)
        b = np.where(rng.random(200) < 0.6, a, rng.integers(0, classes, 200))
        assert cohen_kappa(a.tolist(), b.tolist()) == pytest.approx(metrics.cohen_kappa_score(a, b))
    # Raters using disjoint classes.
    assert cohen_kappa([0, 0, 1, 1], [2, 2, 2, 3]) == pytest.approx(metrics.cohen_kappa_score([0, 0, 1, 1],
                                                                                             [2, 2, 2, 3]))


def test_cohen_textbook_and_edge_cases():
    # Wikipedia "Cohen's kappa": 50 items, 20 yes/yes, 5 yes/no, 10 no/yes, 15 no/no -> p_o 0.7, kappa 0.4.
    a = [1] * 20 + [1] * 5 + [0] * 10 + [0] * 15
    b = [1] * 20 + [0] * 5 + [1] * 10 + [0] * 15
    assert cohen_kappa(a, b) == pytest.approx(0.4)
    assert cohen_kappa([1, 0, 1], [1, 0, 1]) == 1.0
    assert cohen_kappa([], []) is None
    assert cohen_kappa([0, 0, 0], [0, 0, 0]) == 1.0  # expected agreement 1: unanimous -> 1.0
    assert cohen_kappa([0, 1], [1, 0]) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="same items"):
        cohen_kappa([0, 1], [0])


def test_category_agreement():
    reviews = {
        "a": [{"hate": 1}, {"hate": 1}],
        "b": [{"hate": 0, "sexual": 1}, {"sexual": 1}, {"hate": 1, "sexual": 1}],
        "c": [{}, {}],
        "d": [{"hate": 1}, {}],
        "e": [{"hate": 1}],  # one review: ignored
    }
    out = category_agreement(reviews, ["hate", "sexual", "violence"])
    assert out["hate"]["items"] == 4
    assert out["hate"]["percent_agreement"] == pytest.approx(0.5)  # a, c unanimous; b, d split
    assert out["hate"]["cohen_kappa"] == pytest.approx(cohen_kappa([1, 0, 0, 1], [1, 0, 0, 0]))
    counts = np.array([[0, 2], [2, 1], [2, 0], [1, 1]])
    assert out["hate"]["fleiss_kappa"] == pytest.approx(fleiss_kappa(counts))
    assert out["sexual"]["percent_agreement"] == 1.0 and out["sexual"]["fleiss_kappa"] == 1.0
    assert out["violence"] == {"fleiss_kappa": 1.0, "cohen_kappa": 1.0, "items": 4, "percent_agreement": 1.0}
    empty = category_agreement({"x": [{"hate": 1}]}, ["hate"])["hate"]
    assert empty == {"fleiss_kappa": None, "cohen_kappa": None, "items": 0, "percent_agreement": None}
    with pytest.raises(ValueError, match="labels.hate"):
        category_agreement({"x": [{"hate": 2}, {}]}, ["hate"])


REVIEWS = [
    {"reviewer": "ana", "item_id": "i1", "labels": {"hate": 1}, "action": "restrict"},
    {"reviewer": "ana", "item_id": "i2", "labels": {}, "action": "allow"},
    {"reviewer": "ana", "item_id": "g1", "labels": {"sexual": 1}, "action": "restrict"},
    {"reviewer": "bo", "item_id": "i1", "labels": {"hate": 1, "sexual": 1}, "action": "block"},
    {"reviewer": "bo", "item_id": "g1", "labels": {"hate": 1}, "action": "restrict"},
    {"reviewer": "bo", "item_id": "g2", "labels": {}, "action": "allow"},
    {"reviewer": "cy", "item_id": "i9", "labels": {}, "action": "allow"},
]


def test_reviewer_agreement():
    resolved = {"i1": {"hate": 1}, "i2": {"hate": 0}}
    out = reviewer_agreement(REVIEWS, resolved, categories=["hate", "sexual"])
    assert out["ana"] == {"reviews": 3, "agreement": 1.0, "items_compared": 2}
    assert out["bo"] == {"reviews": 3, "agreement": 0.5, "items_compared": 1}
    assert out["cy"] == {"reviews": 1, "agreement": None, "items_compared": 0}
    # Without categories: every category named anywhere (hate, sexual) is compared.
    assert reviewer_agreement(REVIEWS, resolved)["bo"]["agreement"] == 0.5


def test_golden_accuracy():
    golden = {"g1": {"hate": 0, "sexual": 1}, "g2": {"hate": 0, "sexual": 0}}
    out = golden_accuracy(REVIEWS, golden, categories=["hate", "sexual"])
    assert out["ana"] == {"golden_reviews": 1, "accuracy": 1.0, "label_accuracy": 1.0}
    # bo: g1 wrong on both categories, g2 right -> 1/2 items, 2/4 labels.
    assert out["bo"] == {"golden_reviews": 2, "accuracy": 0.5, "label_accuracy": 0.5}
    assert out["cy"] == {"golden_reviews": 0, "accuracy": None, "label_accuracy": None}
