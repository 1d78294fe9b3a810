"""Whole-result parity catches every kind of difference between two paths' results of one item."""

from __future__ import annotations

import copy

import pytest

from tripwire.moderation.parity import result_differences as typed_differences
from tripwire.moderation.result import ModerationResult
from tripwire.policy import Policy, Taxonomy

CATEGORIES = Taxonomy.load().names


def result_differences(got: dict, expected: dict) -> list[str]:
    """The differences of two answers as the API writes them (JSON), each read back as a typed result."""
    return typed_differences(ModerationResult.from_json(got), ModerationResult.from_json(expected))


def result() -> dict:
    scores = {c: 0.1 + 0.1 * i for i, c in enumerate(CATEGORIES)}
    decision = Policy.load().decide(scores, "DE").to_dict()
    return {"id": "x", "scores": scores, "flagged": decision["flagged"], "decision": decision,
            "attribution": {c: {"driven_by": "text", "contributions": {"text": 0.3, "video": 0.1}} for c in CATEGORIES},
            "evidence": {"video_top_frames": [{"timestamp_s": 1.5, "weight": 0.6}, {"timestamp_s": 0.5, "weight": 0.3}],
                         "audio_top_window": {"start_s": 0.2, "end_s": 0.24, "weight": 0.4}},
            "modalities": ["text", "video"], "model_version": "m@1", "policy_version": decision["policy_version"],
            "latency_ms": {"total": 3.0}}


def test_identical_results_and_float_noise_agree():
    a, b = result(), result()
    b["scores"]["hate"] += 5e-6
    b["latency_ms"] = {"total": 9.0}
    b["request_id"] = "r"
    a["request_id"] = "s"
    assert result_differences(b, a) == []


@pytest.mark.parametrize("change, field", [
    (lambda r: r["scores"].update(hate=r["scores"]["hate"] + 1e-3), "scores.hate"),
    (lambda r: r["decision"].update(action="allow"), "decision.action"),
    (lambda r: r["decision"]["reasons"].pop(), "decision.reasons"),
    (lambda r: r["decision"]["reasons"][0].update(score=r["decision"]["reasons"][0]["score"] + 1e-2), "decision.reasons[0].score"),
    (lambda r: r["flagged"].reverse(), "flagged"),
    (lambda r: r["attribution"]["hate"].update(driven_by="video"), "attribution.hate.driven_by"),
    (lambda r: r["attribution"]["hate"]["contributions"].update(text=0.2), "attribution.hate.text"),
    (lambda r: r["evidence"]["video_top_frames"].reverse(), "evidence.video_top_frames"),
    (lambda r: r["evidence"].pop("audio_top_window"), "evidence"),
    (lambda r: r.update(model_version="m@2"), "model_version"),
    (lambda r: r.update(modalities=["text"]), "modalities"),
    (lambda r: r.update(embedding=[0.5]), "fields"),
])
def test_each_kind_of_difference_is_named(change, field):
    expected, got = result(), result()
    change(got)
    differences = result_differences(got, copy.deepcopy(expected))
    assert differences and any(d.startswith(field) for d in differences), differences


def test_a_near_tie_between_modalities_does_not_decide_the_driver():
    a, b = result(), result()
    for r, driver in ((a, "text"), (b, "video")):
        r["attribution"]["hate"] = {"driven_by": driver, "contributions": {"text": 0.2, "video": 0.2 + 1e-6}}
    assert result_differences(b, a) == []


def test_an_answer_missing_a_field_cannot_be_read():
    answer = result()
    answer.pop("evidence")
    with pytest.raises(KeyError, match="evidence"):
        ModerationResult.from_json(answer)
