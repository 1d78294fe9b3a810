"""The review queue's item, typed: what enters the queue (:class:`QueueItem`) and an item as the store keeps
it with its review state (:class:`StoredItem`).

One writer and one reader per format: :meth:`QueueItem.from_json` reads the JSON an admin posts (CONTRACT.md
"Item") and :meth:`QueueItem.to_json` writes it; :meth:`QueueItem.to_row` writes the store's ``items`` row and
:meth:`StoredItem.from_row` reads it back.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from tripwire.moderation.result import ModerationResult

SOURCES = ("serving", "scan", "sampling", "appeal", "golden", "manual")
STATUSES = ("pending", "adjudication", "resolved", "golden")


class ItemError(ValueError):
    """A queue item that cannot be read; the message names the field."""


def _loads(text: str | None) -> Any:
    return json.loads(text) if text else None


@dataclass(frozen=True)
class QueueItem:
    """An item for people to review.

    Attributes:
        item_id: the queue's key (enqueueing an id again leaves the first item as it is).
        source: where it came from (:data:`SOURCES`).
        sample: the sample row (text, media URIs or inline media, meta); never its labels.
        result: the complete moderation result reviewers see (None: queued without one, e.g. by hand).
        base_uri: the folder relative media references resolve against.
        priority: higher is claimed first; None: the result's highest score.
        golden_labels: a hidden golden item's answer (reviewers never see it).
        batch: a name for a group of items (a feedback round).
        required_reviews: reviews that must agree; None: the store's setting.
    """

    item_id: str
    source: str = "manual"
    sample: dict[str, Any] = field(default_factory=dict)
    result: ModerationResult | None = None
    base_uri: str | None = None
    priority: float | None = None
    golden_labels: dict[str, int] | None = None
    batch: str | None = None
    required_reviews: int | None = None

    def __post_init__(self) -> None:
        if not self.item_id:
            raise ItemError("item_id: required")
        if self.source not in SOURCES:
            raise ItemError(f"source: {self.source!r} must be one of {list(SOURCES)}")
        if self.required_reviews is not None and self.required_reviews < 1:
            raise ItemError(f"required_reviews: {self.required_reviews} must be at least 1")

    def replace(self, **changes: Any) -> QueueItem:
        return dataclasses.replace(self, **changes)

    @property
    def effective_priority(self) -> float:
        if self.priority is not None:
            return float(self.priority)
        return max(self.result.scores.values(), default=0.0) if self.result is not None else 0.0

    @property
    def top_category(self) -> str | None:
        """The first reason's category, else the highest-scored one (what reviewers filter by)."""
        if self.result is None:
            return None
        if self.result.decision.reasons:
            return self.result.decision.reasons[0].category
        scores = self.result.scores
        return max(scores, key=scores.get) if scores else None

    @property
    def market(self) -> str | None:
        if self.result is not None and self.result.decision.market:
            return self.result.decision.market
        return (self.sample.get("meta") or {}).get("market")

    # -- JSON (the admin API, CONTRACT.md) ---------------------------------------------------------------
    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QueueItem:
        """An item as posted; an empty or absent ``result`` is none. Raises :class:`ItemError` naming the field."""
        if not isinstance(data, Mapping):
            raise ItemError(f"an item must be an object, not {type(data).__name__}")
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ItemError(f"unknown field(s) {unknown}")
        sample = data.get("sample") or {}
        if not isinstance(sample, Mapping):
            raise ItemError("sample: must be an object")
        result = None
        if data.get("result"):
            try:
                result = ModerationResult.from_json(data["result"])
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                raise ItemError(f"result: not a complete moderation result ({type(exc).__name__}: {exc})") from exc
        golden = data.get("golden_labels")
        if golden is not None and not isinstance(golden, Mapping):
            raise ItemError("golden_labels: must be an object of category -> 0|1")
        try:
            priority = None if data.get("priority") is None else float(data["priority"])
            required = None if data.get("required_reviews") is None else int(data["required_reviews"])
        except (TypeError, ValueError) as exc:
            raise ItemError(f"priority/required_reviews: must be numbers ({exc})") from exc
        return cls(item_id=str(data.get("item_id") or ""), source=data.get("source") or "manual", sample=dict(sample),
                   result=result, base_uri=data.get("base_uri"), priority=priority,
                   golden_labels=dict(golden) if golden is not None else None, batch=data.get("batch"),
                   required_reviews=required)

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["result"] = self.result.to_json() if self.result is not None else None
        return out

    # -- the store's row -----------------------------------------------------------------------------------
    def to_row(self, categories: Sequence[str], required_reviews: int, now: float) -> dict[str, Any]:
        """The ``items`` row, with the filter columns (action, category, market, versions) drawn from the result."""
        result = self.result
        golden = self.golden_labels
        return {
            "item_id": str(self.item_id), "source": self.source, "sample": json.dumps(self.sample),
            "base_uri": self.base_uri, "result": json.dumps(result.to_json() if result is not None else {}),
            "action": result.action if result is not None else None, "top_category": self.top_category,
            "market": self.market, "policy_version": result.policy_version if result is not None else None,
            "model_version": result.model_version if result is not None else None,
            "priority": self.effective_priority,
            "golden_labels": json.dumps({c: int(golden.get(c, 0)) for c in categories}) if golden is not None else None,
            "batch": self.batch, "required_reviews": int(self.required_reviews or required_reviews),
            "status": "golden" if golden is not None else "pending", "created_at": now}


@dataclass(frozen=True)
class StoredItem:
    """A queued item with its review state, as :meth:`tripwire.review.store.ReviewStore.item` reads it."""

    item: QueueItem
    status: str
    created_at: float
    reviews_done: int = 0
    escalation: str | None = None
    resolved_labels: dict[str, int] | None = None
    resolved_action: str | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None

    @property
    def item_id(self) -> str:
        return self.item.item_id

    @property
    def source(self) -> str:
        return self.item.source

    @property
    def sample(self) -> dict[str, Any]:
        return self.item.sample

    @property
    def result(self) -> ModerationResult | None:
        return self.item.result

    @property
    def puid(self) -> str | None:
        """The logged decision this item is about (None: its decision was not logged)."""
        return self.item.result.puid if self.item.result is not None else None

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> StoredItem:
        result = _loads(row["result"])
        item = QueueItem(
            item_id=row["item_id"], source=row["source"], sample=_loads(row["sample"]) or {},
            result=ModerationResult.from_json(result) if result else None, base_uri=row["base_uri"],
            priority=float(row["priority"]), golden_labels=_loads(row["golden_labels"]), batch=row["batch"],
            required_reviews=int(row["required_reviews"]))
        return cls(item=item, status=row["status"], created_at=float(row["created_at"]),
                   reviews_done=int(row["reviews_done"]), escalation=row["escalation"],
                   resolved_labels=_loads(row["resolved_labels"]), resolved_action=row["resolved_action"],
                   resolved_by=row["resolved_by"], resolved_at=row["resolved_at"])
