"""Appeals: a user contests a decision by its puid. The appeal enters the review queue with the original
decision and its evidence (reviewers see what the model saw and why it acted), and is logged; its outcome
is logged when reviewers resolve it (:mod:`tripwire.compliance.outcomes`): ``upheld``, or ``overturned``,
which reverses the enforcement.
"""

from __future__ import annotations

import time
from typing import Any, Mapping

from tripwire.compliance.outcomes import effective_decision
from tripwire.compliance.records import APPEAL, RESTRICTIVE, appeal_body, check_puid
from tripwire.compliance.decision_log import DecisionLog
from tripwire.moderation.result import ModerationResult

APPEAL_PRIORITY = 10.0  # ahead of model-sampled work: an appeal has a person waiting (scores are <= 1)
MAX_STATEMENT = 5000


class AppealError(ValueError):
    """An appeal that cannot be filed; ``status`` is the HTTP status that says why (``code``: the API error
    code, where the status alone does not say it)."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


def appeal_item_id(puid: str) -> str:
    return f"appeal-{puid}"


def file_appeal(store, log: DecisionLog, puid: str, statement: str, sample: Mapping[str, Any] | None = None,
                base_uri: str | None = None) -> dict[str, Any]:
    """Queues and logs an appeal of the decision ``puid``; filing it again (the same statement) returns the
    first appeal, and filing another statement for the same decision is refused (409, ``appeal_conflict``).

    Args:
        statement: the user's reasons (at most 5000 characters).
        sample: the content as a manifest row, where the log did not keep it (``keep_content``).

    Raises:
        AppealError: 404 for an unknown puid, 409 for a decision that restricted nothing or was appealed
            already with another statement, 422 for bad input.
    """
    try:
        check_puid(puid)
    except ValueError as exc:
        raise AppealError(422, str(exc)) from None
    if not statement or not statement.strip() or len(statement) > MAX_STATEMENT:
        raise AppealError(422, f"statement: required, at most {MAX_STATEMENT} characters")
    existing = log.find(APPEAL, puid)
    if existing is not None:
        if existing.body["statement"] != statement.strip():
            raise AppealError(409, f"decision {puid} was appealed already with another statement (item "
                                   f"{existing.body['item_id']!r}): one appeal per decision", "appeal_conflict")
        return {"puid": puid, "item_id": existing.body["item_id"], "filed_at": existing.body["filed_at"],
                "duplicate": True}
    decision = effective_decision(log, puid)
    if decision is None:
        raise AppealError(404, f"no decision with puid {puid!r} in the decision log")
    if decision["action"] not in RESTRICTIVE:
        raise AppealError(409, f"decision {puid} is {decision['action']!r}: only restrictive decisions "
                               f"({', '.join(RESTRICTIVE)}) can be appealed")
    item_id, filed_at = appeal_item_id(puid), time.time()
    content = decision.get("content") or dict(sample or {})
    content.setdefault("id", decision["item_id"])
    content.setdefault("meta", {})["appeal"] = statement.strip()
    store.enqueue([{"item_id": item_id, "source": "appeal", "sample": content, "base_uri": base_uri,
                    "result": ModerationResult.from_logged_decision(puid, decision).to_json(),
                    "priority": APPEAL_PRIORITY, "required_reviews": 1}])
    record = log.append([(APPEAL, puid, appeal_body(statement.strip(), filed_at, item_id))])[0]
    return {"puid": puid, "item_id": item_id, "filed_at": record.body["filed_at"], "duplicate": False}
