"""Opening decision logs by URL, and reading several as one (a database log plus scans' Parquet logs).

A SQLite path, ``sqlite:///`` or ``postgresql://`` URL opens :class:`tripwire.compliance.decision_log.DecisionLog`;
any other fsspec URI (``s3://bucket/log``, ``file:///abs/dir``) a
:class:`~tripwire.compliance.parquet_log.ParquetDecisionLog`.
"""

from __future__ import annotations

import itertools
from typing import Iterator, Sequence

from tripwire.compliance.parquet_log import ParquetDecisionLog, is_parquet_log
from tripwire.compliance.decision_log import DecisionLog, LogRecord


def open_log(url: str) -> DecisionLog | ParquetDecisionLog:
    return ParquetDecisionLog(url) if is_parquet_log(url) else DecisionLog(url)


class LogSet:
    """Several logs read as one: their records one log after another (puids are distinct across logs: a
    scan's are ``scan-``, serving's ``srv-``), lookups in each. Each log keeps its own chain."""

    def __init__(self, urls: Sequence[str]):
        if not urls:
            raise ValueError("LogSet: at least one log")
        self.logs = [open_log(url) for url in urls]

    def records(self) -> Iterator[LogRecord]:
        return itertools.chain.from_iterable(log.records() for log in self.logs)

    def find(self, kind: str, puid: str) -> LogRecord | None:
        return next((r for r in (log.find(kind, puid) for log in self.logs) if r is not None), None)

    def head(self) -> tuple[int, str]:
        """The first log's head (the database's, where serving and reviewers write)."""
        return self.logs[0].head()

    def heads(self) -> dict[str, tuple[int, str]]:
        return {log.url: log.head() for log in self.logs}

    def close(self) -> None:
        for log in self.logs:
            log.close()
