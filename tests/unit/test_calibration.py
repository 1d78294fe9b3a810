"""Score calibration: Platt scaling per category, fitted on validation, applied identically everywhere."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tripwire.model.calibration import PlattCalibration, calibration_report, expected_calibration_error
from tripwire.evaluation.classification import roc_auc


def overconfident(n: int, seed: int):
    """Logits from a head that is 3x too confident and biased up (as pos_weight training leaves it)."""
    rng = np.random.default_rng(seed)
    true_logit = rng.normal(-1.5, 1.5, size=(n, 2))
    labels = (rng.random((n, 2)) < 1 / (1 + np.exp(-true_logit))).astype(np.int64)
    labels[: n // 10, 1] = -1  # some unknown labels: ignored by the fit
    return 3.0 * true_logit + 2.0, labels


def test_fit_recovers_the_true_map_and_lowers_held_out_ece():
    logits, labels = overconfident(4000, seed=0)
    calibration = PlattCalibration.fit(logits, labels)
    assert calibration.scale == pytest.approx((1 / 3, 1 / 3), rel=0.15)
    assert calibration.bias == pytest.approx((-2 / 3, -2 / 3), abs=0.2)

    test_logits, test_labels = overconfident(4000, seed=1)  # held out
    raw = torch.sigmoid(torch.as_tensor(test_logits)).numpy()
    calibrated = calibration.probabilities(torch.as_tensor(test_logits)).numpy()
    for j in range(2):
        assert expected_calibration_error(test_labels[:, j], calibrated[:, j]) < 0.03
        assert expected_calibration_error(test_labels[:, j], raw[:, j]) > 0.1
        known = test_labels[:, j] >= 0
        assert roc_auc(test_labels[known, j], calibrated[known, j]) == pytest.approx(
            roc_auc(test_labels[known, j], raw[known, j]))  # ranking unchanged


def test_too_few_labels_keep_identity_and_round_trip():
    logits = np.random.default_rng(0).normal(size=(50, 3))
    labels = np.zeros((50, 3), np.int64)
    labels[:2, 0] = 1  # 2 positives: too few to fit
    labels[:, 2] = -1  # nothing known
    calibration = PlattCalibration.fit(logits, labels)
    assert calibration.scale[0] == 1.0 and calibration.bias[0] == 0.0 and calibration.scale[2] == 1.0
    assert PlattCalibration.from_dict(calibration.to_dict(), 3) == calibration
    assert PlattCalibration.from_dict(None, 3) == PlattCalibration.identity(3)
    report = calibration_report(labels, logits, calibration, ["a", "b", "c"])
    assert report["c"]["ece_raw"] is None and report["macro"]["ece_raw"] is not None


@pytest.mark.parametrize("data, match", [
    ({"method": "isotonic", "scale": [1.0], "bias": [0.0]}, "method"),
    ({"method": "platt", "scale": [1.0, 1.0], "bias": [0.0, 0.0]}, "2 categories"),
    ({"method": "platt", "scale": [-1.0], "bias": [0.0]}, "positive"),
])
def test_bad_calibration_is_refused(data, match):
    with pytest.raises(ValueError, match=match):
        PlattCalibration.from_dict(data, 1)


def test_perfectly_separated_validation_keeps_a_finite_slope():
    logits = np.concatenate([np.linspace(-6, -2, 100), np.linspace(2, 6, 20)])[:, None]
    labels = np.concatenate([np.zeros(100), np.ones(20)])[:, None].astype(np.int64)
    calibration = PlattCalibration.fit(logits, labels)
    scores = calibration.probabilities(torch.as_tensor(logits)).numpy()
    assert calibration.scale[0] < 5 and 0.0 < scores.min() and scores.max() < 1.0
