"""Whole-result parity: do two moderation results of the same item, from different paths, agree?

Serve, scan and the in-process core compute the same numbers in different processes and batches, so
scores differ by float rounding only. Everything else must be equal: the decision and its reasons, the
flags, the modality that drove each category (where more than rounding decides it), the evidence and
the versions. The tests and the demo both check paths against each other with :func:`result_differences`.
"""

from __future__ import annotations

from typing import Any, Mapping

from tripwire.moderation.result import ModerationResult

# Fields of a result that legitimately differ between paths: the caller's ids, this request's timings, and
# the decision log's id for this decision (only paths that log a decision have one).
VOLATILE_FIELDS = ("latency_ms", "request_id", "puid")
EVIDENCE_WEIGHT_ATOL = 2e-4  # results round evidence weights to 1e-4


def _close(a: float, b: float, atol: float) -> bool:
    return abs(float(a) - float(b)) <= atol


def result_differences(got: ModerationResult, expected: ModerationResult, atol: float = 1e-5) -> list[str]:
    """What differs between two results (empty when they agree); each entry names the field. A result that
    came as JSON (an HTTP answer) is read with :meth:`ModerationResult.from_json` first."""
    got = {k: v for k, v in got.to_json().items() if k not in VOLATILE_FIELDS}
    expected = {k: v for k, v in expected.to_json().items() if k not in VOLATILE_FIELDS}
    if set(got) != set(expected):
        return [f"fields: {sorted(got)} != {sorted(expected)}"]
    out = []
    if sorted(got["scores"]) != sorted(expected["scores"]):
        return [f"scores: categories {sorted(got['scores'])} != {sorted(expected['scores'])}"]
    out += [f"scores.{c}: {got['scores'][c]} != {v}" for c, v in expected["scores"].items()
            if not _close(got["scores"][c], v, atol)]
    out += [f"{key}: {got[key]!r} != {expected[key]!r}" for key in ("id", "flagged", "modalities", "model_version",
                                                                    "policy_version") if got[key] != expected[key]]
    out += _decision_differences(got["decision"], expected["decision"], atol)
    out += _attribution_differences(got["attribution"], expected["attribution"], atol)
    out += _evidence_differences(got["evidence"], expected["evidence"])
    return out


def _decision_differences(got: Mapping[str, Any], expected: Mapping[str, Any], atol: float) -> list[str]:
    out = [f"decision.{k}: {got.get(k)!r} != {v!r}" for k, v in expected.items() if k != "reasons" and got.get(k) != v]
    mine, theirs = got.get("reasons", []), expected["reasons"]
    if [{k: v for k, v in r.items() if k != "score"} for r in mine] != \
            [{k: v for k, v in r.items() if k != "score"} for r in theirs]:
        out.append(f"decision.reasons: {mine} != {theirs}")
    else:
        out += [f"decision.reasons[{i}].score: {a['score']} != {b['score']}"
                for i, (a, b) in enumerate(zip(mine, theirs)) if not _close(a["score"], b["score"], atol)]
    return out


def _attribution_differences(got: Mapping[str, Any], expected: Mapping[str, Any], atol: float) -> list[str]:
    if sorted(got) != sorted(expected):
        return [f"attribution: categories {sorted(got)} != {sorted(expected)}"]
    out = []
    for category, theirs in expected.items():
        mine = got[category]
        if sorted(mine["contributions"]) != sorted(theirs["contributions"]):
            out.append(f"attribution.{category}: modalities {sorted(mine['contributions'])} != {sorted(theirs['contributions'])}")
            continue
        # Contributions are rounded to 1e-6 in results.
        out += [f"attribution.{category}.{m}: {mine['contributions'][m]} != {v}"
                for m, v in theirs["contributions"].items() if not _close(mine["contributions"][m], v, atol + 1e-6)]
        ranked = sorted(theirs["contributions"].values(), reverse=True)
        # The driver must agree wherever more than float noise decides it.
        if (len(ranked) < 2 or ranked[0] - ranked[1] > 2 * atol) and mine["driven_by"] != theirs["driven_by"]:
            out.append(f"attribution.{category}.driven_by: {mine['driven_by']} != {theirs['driven_by']}")
    return out


# Whisper's word times come from aligning its attention; the expert pins its BLAS threads so they agree
# between processes, and a replica on other hardware (a GPU) may still move a word by a 20 ms frame or two.
SPEECH_TIME_ATOL = 0.05


SCORE_ATOL = 1e-4  # evidence rounds the scores it names


def _close_times(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    return all(_close(a[k], b[k], SPEECH_TIME_ATOL) for k in ("start_s", "end_s"))


def _same_speech(got: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """What was heard: the same sentences and words, at the same times within one alignment frame, each naming the
    same top category with its score within rounding, and the same worst sentence per category."""
    def words(data):
        return [w for s in data["segments"] for w in s["words"]]

    plain = ("segments", "worst")
    if {k: v for k, v in got.items() if k not in plain} != {k: v for k, v in expected.items() if k not in plain}:
        return False
    mine, theirs = got["segments"], expected["segments"]
    if [s["text"] for s in mine] != [s["text"] for s in theirs] or not all(map(_close_times, mine, theirs)):
        return False
    if [("top" in s, s.get("top", {}).get("category")) for s in mine] != \
            [("top" in s, s.get("top", {}).get("category")) for s in theirs] or not all(
            _close(a["top"]["score"], b["top"]["score"], SCORE_ATOL) for a, b in zip(mine, theirs) if "top" in b):
        return False
    worst, expected_worst = got.get("worst", {}), expected.get("worst", {})
    if sorted(worst) != sorted(expected_worst) or any(
            worst[c]["text"] != w["text"] or not _close_times(worst[c], w) or
            not _close(worst[c]["score"], w["score"], SCORE_ATOL) for c, w in expected_worst.items()):
        return False
    mine, theirs = words(got), words(expected)
    return [w["text"] for w in mine] == [w["text"] for w in theirs] and all(map(_close_times, mine, theirs))


def _same_windows(got: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """Long media's windows: the same settings and count, the same worst windows per category (scores within
    rounding), each naming the same sentence at the same time."""
    if {k: v for k, v in got.items() if k != "worst"} != {k: v for k, v in expected.items() if k != "worst"}:
        return False
    if sorted(got["worst"]) != sorted(expected["worst"]):
        return False
    for category, theirs in expected["worst"].items():
        mine = got["worst"][category]
        if [(w["start_s"], w["end_s"], w.get("excerpt"), "span" in w) for w in mine] != \
                [(w["start_s"], w["end_s"], w.get("excerpt"), "span" in w) for w in theirs]:
            return False
        if not all(_close(a["score"], b["score"], SCORE_ATOL) and ("span" not in b or (
                _close_times(a["span"], b["span"]) and _close(a["span"]["score"], b["span"]["score"], SCORE_ATOL)))
                for a, b in zip(mine, theirs)):
            return False
    return True


def _same_image_text(got: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """Text read in pictures: the same blocks (text, box, frame time) with the same top category, and the same
    worst block per category, scores within rounding."""
    def where(block: Mapping[str, Any]) -> tuple:
        return block["text"], tuple(block["box"]), tuple(block.get("size", ())), block.get("frame_s")

    mine, theirs = got["blocks"], expected["blocks"]
    if [(where(b), b["top"]["category"]) for b in mine] != [(where(b), b["top"]["category"]) for b in theirs] or \
            got["blocks_total"] != expected["blocks_total"] or sorted(got["worst"]) != sorted(expected["worst"]):
        return False
    # The worst block by its text and score: the same text read in several frames ties within float noise.
    return all(_close(a["top"]["score"], b["top"]["score"], SCORE_ATOL) for a, b in zip(mine, theirs)) and all(
        got["worst"][c]["text"] == w["text"] and _close(got["worst"][c]["score"], w["score"], SCORE_ATOL)
        for c, w in expected["worst"].items())


def _same_nudity(got: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    """The nudity expert's readings: the same pictures and regions, probabilities within rounding."""
    def shape(picture: Mapping[str, Any]) -> tuple:
        return (picture.get("frame_s"), picture["width"], picture["height"],
                [tuple(r["box"]) for r in picture["regions"]])

    mine, theirs = got["pictures"], expected["pictures"]
    return [shape(p) for p in mine] == [shape(p) for p in theirs] and _close(got["score"], expected["score"], 1e-4) \
        and all(_close(a["score"], b["score"], 1e-4) for a, b in zip(mine, theirs))


def _evidence_differences(got: Mapping[str, Any], expected: Mapping[str, Any]) -> list[str]:
    if sorted(got) != sorted(expected):
        return [f"evidence: {sorted(got)} != {sorted(expected)}"]
    out = []
    for kind, theirs in expected.items():
        mine = got[kind]
        if isinstance(theirs, list):  # top video frames: the same frames, weights within rounding
            if [f["timestamp_s"] for f in mine] != [f["timestamp_s"] for f in theirs] or not all(
                    _close(a["weight"], b["weight"], EVIDENCE_WEIGHT_ATOL) for a, b in zip(mine, theirs)):
                out.append(f"evidence.{kind}: {mine} != {theirs}")
        elif kind == "speech":  # what was heard: the same words, at the same times within one alignment frame
            if not _same_speech(mine, theirs):
                out.append(f"evidence.{kind}: {mine} != {theirs}")
        elif kind == "image_text":  # text read in pictures: the same blocks where they were read
            if not _same_image_text(mine, theirs):
                out.append(f"evidence.{kind}: {mine} != {theirs}")
        elif kind == "nudity":
            if not _same_nudity(mine, theirs):
                out.append(f"evidence.{kind}: {mine} != {theirs}")
        elif kind == "windows":  # long media: the same windows, the worst ones naming the same sentences
            if not _same_windows(mine, theirs):
                out.append(f"evidence.{kind}: {mine} != {theirs}")
        elif kind == "unevaluated_signals":  # the categories held at review: the same, scores within rounding
            if sorted(mine) != sorted(theirs) or any(
                    (m["signals"], m["would_have"], m["took"]) != (t["signals"], t["would_have"], t["took"])
                    or not _close(m["score"], t["score"], 1e-4)
                    or (m["evaluated_score"] is None) != (t["evaluated_score"] is None)
                    or (t["evaluated_score"] is not None and not _close(m["evaluated_score"], t["evaluated_score"], 1e-4))
                    for m, t in ((mine[c], theirs[c]) for c in theirs)):
                out.append(f"evidence.{kind}: {mine} != {theirs}")
        elif (mine["start_s"], mine["end_s"]) != (theirs["start_s"], theirs["end_s"]) or \
                not _close(mine["weight"], theirs["weight"], EVIDENCE_WEIGHT_ATOL):
            out.append(f"evidence.{kind}: {mine} != {theirs}")
    return out
