"""The demo's held-out report per carrying modality: which items each row compares, and its figures."""

from __future__ import annotations

import numpy as np

from entrypoints.demo import CARRIER_ROWS, modality_figures, print_heldout_report
from tripwire.data.sample import Sample


def _item(i, modalities, carrier=None, label=None):
    media = {m: f"{m}/{i}" for m in modalities if m != "text"}
    meta = {"split": "val", **({"carrier": carrier} if carrier else {})}
    labels = {"hate": 0, "harassment": 0}
    if label:
        labels[label] = 1
    return Sample(id=str(i), text="t" if "text" in modalities else None, labels=labels, meta=meta, **media)


def _result(score, top="hate", action=None):
    scores = {"hate": 0.0, "harassment": 0.0}
    scores[top] = score
    from tripwire.moderation.result import ModerationResult

    action = action or ("restrict" if score > 0.5 else "allow")
    return ModerationResult.from_json(
        {"id": "x", "scores": scores, "flagged": [], "attribution": {}, "evidence": {}, "modalities": ["text"],
         "model_version": "m", "decision": {"action": action, "reasons": [], "flagged": [], "policy_version": "p",
                                            "market": None}})


def test_each_modality_row_ranks_its_carried_violations_against_benign_items_with_that_modality():
    rng = np.random.default_rng(0)
    samples, results = [], {}
    for i in range(40):  # text-carried hate, scored high; image-carried hate, scored at chance
        samples.append(_item(i, ("text",), "text", "hate"))
        results[str(i)] = _result(0.6 + 0.4 * rng.random())
        samples.append(_item(100 + i, ("image",), "image", "hate"))
        results[str(100 + i)] = _result(rng.random(), top="harassment")
    for i in range(60):  # benign text items low; benign image items uniform
        samples.append(_item(200 + i, ("text",)))
        results[str(200 + i)] = _result(0.4 * rng.random())
        samples.append(_item(300 + i, ("image",)))
        results[str(300 + i)] = _result(rng.random())
    samples.append(_item(999, ("audio",), "audio", "hate"))  # not scored: left out
    rows = {row["modality"]: row for row in modality_figures(samples, results, replicates=200)}
    assert [r[0] for r in CARRIER_ROWS] == list(rows)
    text, image = rows["text"], rows["image"]
    assert (text["violating"], text["benign"]) == (40, 60) and (image["violating"], image["benign"]) == (40, 60)
    assert text["roc_auc"]["value"] == 1.0 and text["right_category"]["value"] == 1.0
    assert 0.3 < image["roc_auc"]["value"] < 0.7 and image["right_category"]["value"] == 0.0
    lo, hi = image["roc_auc"]["ci"]
    assert lo < image["roc_auc"]["value"] < hi and hi - lo > 0.05  # an interval, not a point
    assert text["benign_flagged"]["value"] == 0.0 and text["flagged"]["value"] > 0.6
    assert rows["audio"] == {"modality": "audio", "violating": 0, "benign": 0}


def test_the_report_prints_every_category_and_modality(capsys):
    estimate = {"value": 0.9, "ci": [0.8, 0.95]}
    evaluation = {"overall": {"categories": {"hate": {"positives": 3, "metrics": {"roc_auc": estimate, "pr_auc": estimate,
                                                                                  "f1": estimate}}},
                              "macro": {"roc_auc": estimate, "pr_auc": estimate, "f1": {"value": None, "ci": [None, None]}}}}
    figures = [{"modality": "text", "violating": 5, "benign": 7, "roc_auc": estimate, "flagged": estimate,
                "benign_flagged": estimate, "right_category": estimate},
               {"modality": "audio", "violating": 0, "benign": 3}]
    print_heldout_report(evaluation, figures, 12)
    out = capsys.readouterr().out
    assert "hate" in out and "0.900 [0.800, 0.950]" in out and "n/a" in out
    assert "text" in out and "audio" in out and "12 items" in out
