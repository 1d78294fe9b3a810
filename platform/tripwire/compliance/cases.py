"""The decision log read back as cases: one per decision, with its review outcome, appeal and appeal outcome.

Statements of reasons and transparency reports both count from :func:`cases`, so their figures reconcile
with the log and with each other: a case is *enforced* when its effective action (the reviewers' where
they decided, else the automated one) restricts the content, and its *application time* is when that
action was taken.

Memory: one slim :class:`Case` per decision logged (the bodies' large fields, such as the answer and the
content, are not kept).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping

from tripwire.compliance.records import APPEAL, APPEAL_OUTCOME, DECISION, RESTRICTIVE, REVIEW_OUTCOME
from tripwire.compliance.decision_log import LogRecord

_SLIM = ("answer", "content", "attribution", "thresholds")


@dataclass
class Case:
    """One decision and what followed it (each ``dict`` is the logged body, less its large fields)."""

    puid: str
    decision: dict[str, Any]
    seq: int
    review: dict[str, Any] | None = None
    appeal: dict[str, Any] | None = None
    appeal_outcome: dict[str, Any] | None = None
    records: list[int] = field(default_factory=list)  # the seqs of this case's records

    @property
    def human_decided(self) -> bool:
        """People decided the enforcement: the decision was in the review band and reviewers resolved it."""
        return self.decision["action"] == "review" and self.review is not None

    @property
    def action(self) -> str:
        """The enforcement applied (before any appeal): the reviewers' for a review-band decision, else the
        automated one (``review`` while it still waits for people)."""
        if self.human_decided:
            return self.review["action"]
        return self.decision["action"]

    @property
    def enforced(self) -> bool:
        return self.action in RESTRICTIVE

    @property
    def reversed(self) -> bool:
        return bool(self.appeal_outcome and self.appeal_outcome.get("enforcement_reversed"))

    @property
    def applied_at(self) -> float:
        """When the enforcement was applied: the reviewers' resolution, else the automated decision."""
        return float(self.review["decided_at"]) if self.human_decided else float(self.decision["decided_at"])

    @property
    def automated_decision(self) -> str:
        """``fully`` (the model and policy decided), ``partially`` (they flagged, people decided)."""
        return "partially" if self.human_decided else "fully"

    @property
    def time_to_action_s(self) -> float:
        return self.applied_at - float(self.decision["detected_at"])


def _slim(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k not in _SLIM}


def all_cases(records: Iterable[LogRecord]) -> dict[str, Case]:
    """Every decision in ``records`` joined with the records about it. ``records`` may come from several logs
    one after another (a scan's Parquet log and the database with its reviewers' outcomes), so an outcome
    read before its decision waits for it; one whose decision never comes (pruned, or never logged) is
    left out."""
    cases: dict[str, Case] = {}
    waiting: dict[str, list[LogRecord]] = {}
    for record in records:
        if record.kind == DECISION:
            case = cases[record.puid] = Case(record.puid, _slim(record.body), record.seq, records=[record.seq])
            for earlier in waiting.pop(record.puid, []):
                _attach(case, earlier)
        elif record.puid in cases:
            _attach(cases[record.puid], record)
        else:
            waiting.setdefault(record.puid, []).append(record)
    return cases


def _attach(case: Case, record: LogRecord) -> None:
    case.records.append(record.seq)
    if record.kind == REVIEW_OUTCOME:
        case.review = _slim(record.body)
    elif record.kind == APPEAL:
        case.appeal = _slim(record.body)
    elif record.kind == APPEAL_OUTCOME:
        case.appeal_outcome = _slim(record.body)


def in_period(case: Case, start: float, end: float) -> bool:
    """A case belongs to the period ``[start, end)`` in which its decision was made (detection side)."""
    return start <= float(case.decision["decided_at"]) < end


def cases(records: Iterable[LogRecord], start: float, end: float) -> Iterator[Case]:
    """The cases whose decisions were made in ``[start, end)`` (Unix seconds), in log order."""
    for case in all_cases(records).values():
        if in_period(case, start, end):
            yield case


def day_start(value: str | datetime.date) -> float:
    """``YYYY-MM-DD`` (UTC) -> the Unix time its day starts."""
    day = datetime.date.fromisoformat(value) if isinstance(value, str) else value
    return datetime.datetime(day.year, day.month, day.day, tzinfo=datetime.timezone.utc).timestamp()


def period(start: str, end: str) -> tuple[float, float]:
    """``--from``/``--to`` dates (inclusive, UTC) -> ``[start, end)`` in Unix seconds."""
    lo = day_start(start)
    hi = day_start(datetime.date.fromisoformat(end) + datetime.timedelta(days=1))
    if hi <= lo:
        raise ValueError(f"--to {end} is before --from {start}")
    return lo, hi


def utc_date(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).date().isoformat()
