"""Manifest records -> samples, with bad rows set aside: the one loop that training ingest and scanning share.

Ray Data carries each manifest row as one JSON string (``{"id", "record"}``; see
:func:`tripwire.data.sample.to_records`). A row that is not JSON, breaks the sample contract, or whose media
cannot be used becomes a quarantine row ``{"id", "reason", "detail"}`` (:mod:`tripwire.data.quarantine`)
instead of an exception, so one bad row never stops a job.
"""

from __future__ import annotations

import hashlib
import json
from typing import Callable, Iterable, TypeVar

from tripwire.data.media import MediaError
from tripwire.data.sample import Sample

T = TypeVar("T")


def quarantine_row(row_id: str, record: str, exc: Exception) -> dict[str, str]:
    """The quarantine row for a record that failed with ``exc``."""
    reason = exc.reason if isinstance(exc, MediaError) else "invalid_row"
    # A line that is not JSON has no id: name it by its content so each one counts once.
    row_id = str(row_id) or "line-sha256:" + hashlib.sha256(str(record).encode()).hexdigest()[:16]
    return {"id": row_id, "reason": reason, "detail": str(exc)}


def prepare_records(ids: Iterable[str], records: Iterable[str],
                    prepare: Callable[[Sample], T]) -> tuple[list[tuple[Sample, T]], list[dict[str, str]]]:
    """Parses each record into a :class:`Sample` and runs ``prepare`` on it.

    Returns:
        ``(sample, prepare(sample))`` for the good rows, in order, and the quarantine rows of the bad ones
        (``prepare`` may raise MediaError or ValueError to reject a row).
    """
    good, bad = [], []
    for row_id, record in zip(ids, records):
        try:
            try:
                row = json.loads(record)
            except json.JSONDecodeError as exc:
                raise ValueError(f"record: not valid JSON: {exc}") from exc
            sample = Sample.from_row(row)
            good.append((sample, prepare(sample)))
        except (MediaError, ValueError) as exc:
            bad.append(quarantine_row(row_id, record, exc))
    return good, bad
