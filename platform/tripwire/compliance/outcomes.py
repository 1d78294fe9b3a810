"""Reviewer outcomes into the decision log: each resolved review item whose decision was logged appends one
``review_outcome`` (or, for an appeal, ``appeal_outcome``) record.

The reviewer app logs an item's outcome right after the review that resolves it (:func:`log_outcome`);
:func:`sync_outcomes` appends any that are missing (a crash between the review's commit and the log's, or a
store whose app ran without the log) and is idempotent: a ``(kind, puid)`` is logged once.
"""

from __future__ import annotations

import logging
from typing import Any

from tripwire.compliance.records import (APPEAL, APPEAL_OUTCOME, DECISION, REVIEW_OUTCOME, appeal_outcome_body,
                                         review_outcome_body)
from tripwire.compliance.decision_log import DecisionLog

logger = logging.getLogger(__name__)


def effective_decision(log: DecisionLog, puid: str) -> dict[str, Any] | None:
    """The decision as enforced before an appeal: the logged decision, with the reviewers' action where
    people decided a review-band decision."""
    decision = log.find(DECISION, puid)
    if decision is None:
        return None
    body = dict(decision.body)
    outcome = log.find(REVIEW_OUTCOME, puid)
    if body["action"] == "review" and outcome is not None:
        body["action"] = outcome.body["action"]
    return body


def outcome_entry(store, log: DecisionLog, item: Any) -> tuple[str, str, dict[str, Any]] | None:
    """The ``(kind, puid, body)`` to log for a resolved item (:class:`tripwire.review.item.StoredItem`; its
    ``puid`` names the logged decision it is about), or None (not resolved, or no logged decision)."""
    puid = item.puid
    if item.status != "resolved" or puid is None:
        return None
    if item.source == "appeal":
        appeal = log.find(APPEAL, puid)
        original = effective_decision(log, puid)
        if appeal is None or original is None:
            return None
        return APPEAL_OUTCOME, puid, appeal_outcome_body(original, item, appeal.body["filed_at"])
    decision = log.find(DECISION, puid)
    if decision is None:
        return None
    reviewers = sum(1 for r in store.reviews(item.item_id) if r["kind"] in ("review", "adjudication"))
    return REVIEW_OUTCOME, puid, review_outcome_body(item, decision.body, reviewers)


def log_outcome(store, log: DecisionLog, item_id: str) -> bool:
    """Logs one item's outcome if it is resolved and not logged yet; True when a record was appended."""
    entry = outcome_entry(store, log, store.item(item_id))
    if entry is None or log.find(entry[0], entry[1]) is not None:
        return False
    log.append([entry])
    return True


def sync_outcomes(store, log: DecisionLog, batch_size: int = 500) -> int:
    """Appends the outcome of every resolved item that is missing from the log; returns how many."""
    added, entries = 0, []
    for item in store.items(status="resolved"):
        puid = item.puid
        kind = APPEAL_OUTCOME if item.source == "appeal" else REVIEW_OUTCOME
        if puid is None or log.find(kind, puid) is not None:
            continue
        entry = outcome_entry(store, log, item)
        if entry is not None:
            entries.append(entry)
        if len(entries) >= batch_size:
            added += len(log.append(entries))
            entries = []
    if entries:
        added += len(log.append(entries))
    if added:
        logger.info("decision log: %d reviewer outcome(s) appended", added)
    return added
