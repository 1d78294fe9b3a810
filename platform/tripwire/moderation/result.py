"""The moderation result: one typed value for one item, whatever path produced it.

:class:`tripwire.moderation.moderator.Moderator` is its only producer. It has one writer and one reader per
format it travels in:

* the API's JSON answer: :meth:`ModerationResult.to_json` / :meth:`ModerationResult.from_json`;
* a row of a scan's Parquet results: :meth:`ModerationResult.to_row` / :meth:`ModerationResult.from_row`;
* a decision log record (written by :func:`tripwire.compliance.records.decision_body`), read back where the
  log kept no answer: :meth:`ModerationResult.from_logged_decision`.

Parity between paths compares these values (:func:`tripwire.moderation.parity.result_differences`).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
from dataclasses import dataclass
from typing import Any, Mapping

from tripwire.policy import Decision, Reason

OPTIONAL_FIELDS = ("embedding", "latency_ms", "request_id", "puid")


def decision_from_json(data: Mapping[str, Any]) -> Decision:
    """A policy decision as :meth:`Decision.to_dict` wrote it (a results row and a logged decision keep the same
    five fields under the same names)."""
    return Decision(action=data["action"], reasons=[Reason(**dict(r)) for r in data["reasons"]],
                    flagged=list(data["flagged"]), policy_version=data["policy_version"], market=data["market"])


@dataclass(frozen=True)
class ModerationResult:
    """One item's complete result.

    Attributes:
        id: the item's id.
        scores: calibrated probability per category, in the model's category order.
        decision: the policy's decision (action, reasons strictest first, flagged categories, versions, market).
        attribution: per category, the modality that drove it and each modality's share.
        evidence: where the encoders fired (top video frames with timestamps, the strongest audio window).
        modalities: the modalities the item had, in scoring order.
        model_version: the checkpoint's version.
        embedding: the fused embedding (scans keep it for active learning; answers leave it out).
        latency_ms: time per stage (served answers only).
        request_id: the idempotency key the caller sent (served answers only).
        puid: the decision log's id of this decision (where it was logged).
    """

    id: str
    scores: dict[str, float]
    decision: Decision
    attribution: dict[str, dict[str, Any]]
    evidence: dict[str, Any]
    modalities: list[str]
    model_version: str
    embedding: list[float] | None = None
    latency_ms: dict[str, float] | None = None
    request_id: str | None = None
    puid: str | None = None

    @property
    def action(self) -> str:
        return self.decision.action

    @property
    def flagged(self) -> list[str]:
        return self.decision.flagged

    @property
    def policy_version(self) -> str:
        return self.decision.policy_version

    def replace(self, **changes: Any) -> ModerationResult:
        return dataclasses.replace(self, **changes)

    # -- the API's JSON -----------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """The answer as the API sends it (``ModerateResponse``); optional fields only where set."""
        out: dict[str, Any] = {
            "id": self.id, "scores": dict(self.scores), "flagged": list(self.flagged),
            "decision": self.decision.to_dict(), "attribution": self.attribution, "evidence": self.evidence,
            "modalities": list(self.modalities), "model_version": self.model_version,
            "policy_version": self.policy_version}
        for name in OPTIONAL_FIELDS:
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ModerationResult:
        """An answer as :meth:`to_json` wrote it (from HTTP, a JSONL window, a logged answer)."""
        return cls(id=data["id"], scores={c: float(s) for c, s in data["scores"].items()},
                   decision=decision_from_json(data["decision"]), attribution=dict(data["attribution"]),
                   evidence=dict(data["evidence"]), modalities=list(data["modalities"]),
                   model_version=data["model_version"],
                   **{name: data[name] for name in OPTIONAL_FIELDS if data.get(name) is not None})

    # -- a scan's Parquet row -----------------------------------------------------------------------------
    def to_row(self, scanned_at: datetime.datetime) -> dict[str, Any]:
        """A row of a scan's results table (:func:`tripwire.scan.output.result_schema`), with its ``action``
        (the partition it is written under)."""
        decision = self.decision.to_dict()
        return {
            "id": self.id, "scores": dict(self.scores), "flagged": list(self.flagged), "reasons": decision["reasons"],
            "market": self.decision.market, "action": self.action,
            "driven_by": {c: a["driven_by"] for c, a in self.attribution.items()},
            "attribution": json.dumps(self.attribution, sort_keys=True),
            "evidence": json.dumps(self.evidence, sort_keys=True), "modalities": list(self.modalities),
            "model_version": self.model_version, "policy_version": self.policy_version, "scanned_at": scanned_at,
            "embedding": self.embedding}

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> ModerationResult:
        """A results row read back with its ``action`` partition (the embedding stays in the table)."""
        return cls(id=row["id"], scores=dict(row["scores"]), decision=decision_from_json(row),
                   attribution=json.loads(row["attribution"]), evidence=json.loads(row["evidence"]),
                   modalities=list(row["modalities"]), model_version=row["model_version"])

    # -- a decision log record --------------------------------------------------------------------------
    @classmethod
    def from_logged_decision(cls, puid: str, body: Mapping[str, Any]) -> ModerationResult:
        """The result a logged decision stands for: its served answer where the log kept it, else the
        decision's logged fields (no evidence: the log keeps none)."""
        if body.get("answer"):
            return cls.from_json({**body["answer"], "puid": puid})
        return cls(id=body["item_id"], scores=dict(body["scores"]), decision=decision_from_json(body),
                   attribution=dict(body.get("attribution") or {}), evidence={},
                   modalities=list(body["content_types"]), model_version=body["model_version"], puid=puid)

