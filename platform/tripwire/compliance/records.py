"""The decision log's record bodies: one builder per kind, so every writer logs the same fields.

Kinds (a ``(kind, puid)`` pair is logged once; every kind's ``puid`` is the decision's):

* ``decision``: an enforcement decision from serving or a scan (:func:`decision_body`);
* ``review_outcome``: what reviewers resolved for a decision that entered the review queue
  (:func:`review_outcome_body`);
* ``appeal``: a user's appeal of a decision (:func:`appeal_body`);
* ``appeal_outcome``: the appeal's outcome, upheld or overturned; overturned reverses the enforcement
  (:func:`appeal_outcome_body`).

Times are Unix seconds (UTC). Actions are the policy's: ``allow``, ``review``, ``restrict``, ``block``.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from typing import Any, Mapping, Protocol, Sequence

from tripwire.moderation.result import ModerationResult
from tripwire.policy import Policy

DECISION, REVIEW_OUTCOME, APPEAL, APPEAL_OUTCOME = "decision", "review_outcome", "appeal", "appeal_outcome"
KINDS = (DECISION, REVIEW_OUTCOME, APPEAL, APPEAL_OUTCOME)
RESTRICTIVE = ("restrict", "block")  # actions that restrict content (a statement of reasons is owed)
SOURCES = ("serving", "scan")
PUID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]+$")  # the DSA Transparency Database's puid rule
MAX_PUID = 500
_MAX_OWN_ID = 200  # ids longer than this (or with other characters) enter a puid as their sha256


def _id_part(value: str) -> str:
    value = str(value)
    if PUID_PATTERN.match(value) and len(value) <= _MAX_OWN_ID:
        return value
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:40]


def serving_puid(request_id: str | None = None) -> str:
    """A served decision's puid: from the client's ``request_id`` (so a retry finds its first answer), or new."""
    return f"srv-{_id_part(request_id)}" if request_id else f"srv-{uuid.uuid4().hex}"


def scan_puid(scan_out: str, item_id: str) -> str:
    """A scanned decision's puid: one per scan output and item (a resumed scan logs nothing twice)."""
    scan = hashlib.sha256(scan_out.rstrip("/").encode("utf-8")).hexdigest()[:12]
    return f"scan-{scan}-{_id_part(item_id)}"


def check_puid(puid: str) -> str:
    if not isinstance(puid, str) or not PUID_PATTERN.match(puid) or len(puid) > MAX_PUID:
        raise ValueError(f"puid: {puid!r} must match {PUID_PATTERN.pattern} and be at most {MAX_PUID} characters")
    return puid


def evidence_times(result: ModerationResult) -> dict[str, dict[str, Any]]:
    """Per category a reason names, where in the media the evidence is, in seconds (no content): the sentence that
    scored highest in long media's worst window, or in a short clip's speech."""
    out = {}
    windows = (result.evidence.get("windows") or {}).get("worst") or {}
    speech = (result.evidence.get("speech") or {}).get("worst") or {}
    for reason in result.decision.reasons:
        category = reason.category
        top = (windows.get(category) or [None])[0]
        if top is not None:
            span = top.get("span") or top
            out[category] = {"start_s": span["start_s"], "end_s": span["end_s"],
                             "signal": "speech" if "span" in top else "audio"}
        elif category in speech and result.attribution.get(category, {}).get("driven_by") == "speech":
            out[category] = {"start_s": speech[category]["start_s"], "end_s": speech[category]["end_s"],
                             "signal": "speech"}
    return out


def decision_body(result: ModerationResult, *, source: str, policy: Policy | None, detected_at: float,
                  decided_at: float, content_hash: str, content_types: Sequence[str], language: str | None = None,
                  content_date: str | None = None, content: Mapping[str, Any] | None = None,
                  answer: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """One moderation result (the moderation core's, :meth:`tripwire.moderation.moderator.Moderator.result`) as logged.

    Args:
        result: the complete result.
        source: ``serving`` or ``scan`` (scans are proactive: the DSA's ``SOURCE_VOLUNTARY``).
        policy: the policy that decided (its thresholds for the result's market are recorded); None when
            only the result's reasons are known.
        detected_at / decided_at: when scoring began and when the decision was made.
        content_hash: :func:`tripwire.data.sample.content_digest` of the content.
        content_types: the modalities the content had (``text``, ``image``, ``audio``, ``video``).
        language / content_date: the content's language (ISO 639-1) and the date it was posted (Y-m-d).
        content: the raw content, only where the log is configured to keep it.
        answer: the exact answer returned (serving: a repeated ``request_id`` gets it back from the log).
    """
    if source not in SOURCES:
        raise ValueError(f"source: {source!r} must be one of {SOURCES}")
    decision = result.decision.to_dict()
    market = decision["market"]
    body = {
        "item_id": str(result.id),
        "source": source,
        "content_hash": content_hash,
        "content_types": list(content_types),
        "language": language.lower() if language else None,
        "content_date": content_date,
        "market": market,
        "detected_at": float(detected_at),
        "decided_at": float(decided_at),
        "model_version": result.model_version,
        "policy_version": result.policy_version,
        "thresholds": policy.thresholds(market) if policy is not None else None,
        "scores": dict(result.scores),
        "attribution": result.attribution,
        "action": decision["action"],
        "reasons": decision["reasons"],
        "flagged": decision["flagged"],
        "where": evidence_times(result),
        # Every decision here is the model's and the policy's; "review" hands the decision to people.
        "automated_detection": True,
        "automated_decision": decision["action"] != "review",
    }
    if content is not None:
        body["content"] = dict(content)
    if answer is not None:
        body["answer"] = dict(answer)
    return body


class ReviewedItem(Protocol):
    """What an outcome record reads of a resolved review item (:class:`tripwire.review.item.StoredItem`)."""

    item_id: str
    source: str
    created_at: float
    resolved_labels: dict[str, int] | None
    resolved_action: str | None
    resolved_by: str | None
    resolved_at: float | None
    result: Any


def review_outcome_body(item: ReviewedItem, original: Mapping[str, Any] | None, reviewers: int) -> dict[str, Any]:
    """A resolved review item as logged.

    ``original`` is the decision's logged body (None when the item's decision was never logged: then the
    item's own result stands in). ``confirmed`` says whether the reviewers found any category the model
    flagged; ``overturned`` whether they lifted a restriction the automated decision had applied.
    """
    decision = item.result.decision if item.result is not None else None
    source = original or {"action": decision.action if decision else None,
                          "flagged": list(decision.flagged) if decision else []}
    labels = item.resolved_labels or {}
    flagged = list(source.get("flagged") or [])
    action = item.resolved_action
    return {
        "item_id": item.item_id,
        "queue_source": item.source,
        "action": action,
        "labels": dict(labels),
        "resolved_by": item.resolved_by,
        "reviewers": int(reviewers),
        "queued_at": float(item.created_at or 0.0),
        "decided_at": float(item.resolved_at or 0.0),
        "original_action": source.get("action"),
        "model_flagged": flagged,
        "confirmed": any(int(labels.get(c, 0)) == 1 for c in flagged) if flagged else None,
        "overturned": source.get("action") in RESTRICTIVE and action not in RESTRICTIVE,
    }


def appeal_body(statement: str, filed_at: float, item_id: str) -> dict[str, Any]:
    """A user's appeal of a decision: their statement and the review item that carries it."""
    return {"statement": statement, "filed_at": float(filed_at), "item_id": item_id}


def appeal_outcome_body(original: Mapping[str, Any], item: ReviewedItem, filed_at: float) -> dict[str, Any]:
    """The outcome of an appeal: ``overturned`` when the reviewers' action no longer restricts the content,
    which reverses the enforcement (``enforcement_reversed``)."""
    action = item.resolved_action
    original_action = original.get("action")
    overturned = original_action in RESTRICTIVE and action not in RESTRICTIVE
    return {
        "item_id": item.item_id,
        "outcome": "overturned" if overturned else "upheld",
        "action": action,
        "labels": dict(item.resolved_labels or {}),
        "original_action": original_action,
        "enforcement_reversed": overturned,
        "filed_at": float(filed_at),
        "decided_at": float(item.resolved_at or 0.0),
    }
