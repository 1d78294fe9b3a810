"""Exports statements of reasons as the API's batch bodies (``{"statements": [...]}``, at most 100) for a
submitter, and records each exported puid in a ledger table, ``sor_exports``, in the decision log's database,
so a later export of an overlapping period skips them (the API rejects a reused puid).
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import re
import secrets
import time
from collections import Counter
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

from tripwire.compliance.cases import Case, cases
from tripwire.compliance.dsa import DsaMapping
from tripwire.compliance.logs import LogSet
from tripwire.compliance.parquet_log import is_parquet_log
from tripwire.compliance.records import DECISION
from tripwire.storage.sql import Tables
from tripwire.compliance.statements import MAX_BATCH, _build, statement
from tripwire.compliance.statement_schema import validate, validate_batch

logger = logging.getLogger(__name__)


LEDGER_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS sor_exports (puid TEXT PRIMARY KEY, export_id TEXT NOT NULL, batch TEXT NOT NULL, "
    "exported_at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS sor_exports_by_batch ON sor_exports (batch)",
]
LEDGER_LOOKUP_CHUNK = 500  # puids per "IN (...)" query: far below SQLite's and PostgreSQL's parameter limits
BATCH_FILE = re.compile(r"^statements-(?P<export_id>.+)-(?P<number>[0-9]{4,})\.json$")
LOCK_FILE = ".sor-export.lock"


# -- the export ledger --------------------------------------------------------------------------------
class ExportLedger(Tables):
    """Which puids were exported, by which export and in which batch file: the ``sor_exports`` table in the
    decision log's database (SQLite or PostgreSQL). Connections are per thread, as the log's are."""

    schema = LEDGER_SCHEMA

    def exported(self, puids: Iterable[str]) -> set[str]:
        """Those of ``puids`` an earlier export recorded."""
        found: set[str] = set()
        for chunk in _chunks(list(puids), LEDGER_LOOKUP_CHUNK):
            marks = ", ".join("?" for _ in chunk)
            found.update(row[0] for row in self._rows(f"SELECT puid FROM sor_exports WHERE puid IN ({marks})", chunk))
        return found

    def all_puids(self) -> set[str]:
        return {row[0] for row in self._rows("SELECT puid FROM sor_exports")}

    def has_batch(self, batch: str) -> bool:
        return bool(self._rows("SELECT 1 FROM sor_exports WHERE batch = ? LIMIT 1", (batch,)))

    def record(self, export_id: str, batch: str, puids: Sequence[str]) -> None:
        """Records one batch file's puids in one transaction (all or none). A puid recorded before (another
        export ran at the same time) fails the whole batch, so no puid is ever recorded twice."""
        now = time.time()
        try:
            with self.db.write(self.conn):
                for puid in puids:
                    self.conn.execute(self.db.sql("INSERT INTO sor_exports (puid, export_id, batch, exported_at) "
                                                  "VALUES (?, ?, ?, ?)"), (puid, export_id, batch, now))
        except self.db.integrity_errors as exc:
            raise RuntimeError(f"{batch}: a puid in it was exported by a concurrent export; this file is "
                               "left unrecorded and the next export removes it") from exc


def exported_puids(log_url: str, puids: Iterable[str] | None = None) -> set[str]:
    """The puids whose statements an export recorded (of ``puids``, or all): what was issued, for reports."""
    ledger = ExportLedger(log_url)
    try:
        return ledger.all_puids() if puids is None else ledger.exported(puids)
    finally:
        ledger.close()


# -- the export ---------------------------------------------------------------------------------------
def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for i in range(0, len(items), size):
        yield items[i:i + size]


def _new_export_id() -> str:
    """Sortable by time, unique across concurrent runs, and safe in a file name."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + "-" + secrets.token_hex(3)


def _write_json(path: Path, value: Any) -> None:
    """Writes ``value`` whole or not at all: a crash leaves the old file or none, never half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        json.dump(value, handle, ensure_ascii=False, indent=1)
        handle.write("\n")
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(tmp, path)


@contextlib.contextmanager
def _exclusive(out_dir: Path) -> Iterator[None]:
    """One export at a time per output folder (removing unrecorded files must not race a running export)."""
    with open(out_dir / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RuntimeError(f"{out_dir}: another statements export is writing here") from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _remove_unrecorded(out_dir: Path, ledger: ExportLedger, log: LogSet) -> list[str]:
    """Removes batch files an earlier export wrote but crashed before recording (see
    :func:`export_statements`): a file is removed only when its export has no summary, no ledger row names
    it and every puid in it is a decision of this log, so another log's files in the folder stay."""
    removed = []
    for tmp in out_dir.glob(".statements-*.json.tmp"):
        tmp.unlink()
    for path in sorted(out_dir.glob("statements-*.json")):
        match = BATCH_FILE.match(path.name)
        if not match or (out_dir / f"sor-summary-{match['export_id']}.json").exists() or ledger.has_batch(path.name):
            continue
        try:
            puids = [s["puid"] for s in json.loads(path.read_text(encoding="utf-8"))["statements"]]
        except (ValueError, KeyError, TypeError):
            logger.warning("%s: not a statements batch; left alone", path)
            continue
        if all(log.find(DECISION, puid) is not None for puid in puids):
            path.unlink()
            removed.append(path.name)
            logger.warning("%s: written by an export that stopped before recording it; removed, its %d "
                           "statements are exported again", path.name, len(puids))
    return removed


def _iso(ts: float) -> str:
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


def export_statements(log_url: str, start: float, end: float, out_dir: str | Path,
                      mapping: DsaMapping, scan_logs: Sequence[str] = ()) -> dict[str, Any]:
    """Writes the statements of reasons owed for the decisions made in ``[start, end)`` (Unix seconds,
    :func:`tripwire.compliance.cases.period`) as API batch bodies, skipping puids exported before.

    Steps: every statement still owed is built and validated first, so a statement the API would reject
    stops the export before any file is written (puids exported before are not rebuilt: a later mapping
    change does not reopen them). Then, per batch of at most 100, the file
    ``out_dir/statements-<export_id>-<NNNN>.json`` (exactly the ``POST /api/v1/statements`` body) is
    written whole (temporary file, fsync, rename) and only then its puids are recorded in ``sor_exports``.
    A crash between the two leaves a file with no ledger entry, never a ledger entry without a file: the
    next export into the same folder removes such a file and exports its statements again in its own
    files, so each puid ends up in exactly one recorded file. Finally ``out_dir/sor-summary-<export_id>.json``
    (also returned) records the period, mapping version, counts, files and what was skipped.

    ``log_url`` is the database log (it also holds the ledger); ``scan_logs`` are scans' Parquet logs read
    with it (:class:`tripwire.compliance.logs.LogSet`).

    Memory: the period's cases (:func:`~tripwire.compliance.cases.cases`) plus one batch of statements.
    One export at a time per ``out_dir`` (a lock file); ``out_dir`` is a local folder, one per log.

    Raises:
        StatementError: a statement fails validation (nothing written) or cannot be built.
        RuntimeError: another export holds ``out_dir``, or ran concurrently on the same ledger.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    export_id = _new_export_id()
    if is_parquet_log(log_url):
        raise ValueError(f"{log_url}: statements need the database log (it holds the export ledger); pass "
                         "Parquet logs as scan_logs")
    log, ledger = LogSet([log_url, *scan_logs]), ExportLedger(log_url)
    try:
        with _exclusive(out):
            enforced = [case for case in cases(log.records(), start, end) if case.enforced]
            head = log.head()
            removed = _remove_unrecorded(out, ledger, log)
            done = ledger.exported(case.puid for case in enforced)
            pending = [case for case in enforced if case.puid not in done]
            for case in pending:  # all of them valid before the first file (one statement in memory at a time)
                validate(statement(case, mapping))
            counts, files = _write_batches(pending, mapping, out, export_id, ledger)
            summary = {
                "export_id": export_id, "exported_at": _iso(time.time()),
                "period": {"start": _iso(start), "end": _iso(end), "end_is_exclusive": True},
                "mapping_version": mapping.version, "schema": mapping.schema,
                "taxonomy_version": mapping.taxonomy_version,
                "log_head": {"seq": head[0], "hash": head[1]},
                **({"scan_log_heads": {url: {"seq": h[0], "hash": h[1]} for url, h in log.heads().items()
                                       if url != log_url}} if scan_logs else {}),
                "enforced_cases": len(enforced), "exported": len(pending), "skipped_already_exported": len(done),
                "files": files, "unrecorded_files_removed": removed,
                **{f"by_{name}": dict(sorted(counter.items())) for name, counter in counts.items()},
            }
            _write_json(out / f"sor-summary-{export_id}.json", summary)
    finally:
        ledger.close()
        log.close()
    logger.info("statements export %s: %d exported in %d file(s), %d already exported before", export_id,
                summary["exported"], len(files), summary["skipped_already_exported"])
    return summary


def _write_batches(pending: Sequence[Case], mapping: DsaMapping, out: Path, export_id: str,
                   ledger: ExportLedger) -> tuple[dict[str, Counter], list[str]]:
    counts = {name: Counter() for name in ("category", "taxonomy_category", "automated_decision", "decision_ground")}
    files = []
    for number, chunk in enumerate(_chunks(pending, MAX_BATCH), start=1):
        built = [_build(case, mapping) for case in chunk]
        body = {"statements": [statement_ for statement_, _ in built]}
        validate_batch(body)
        name = f"statements-{export_id}-{number:04d}.json"
        _write_json(out / name, body)
        ledger.record(export_id, name, [case.puid for case in chunk])  # after the file: see export_statements
        files.append(name)
        for statement_, taxonomy_category in built:
            counts["category"][statement_["category"]] += 1
            counts["taxonomy_category"][taxonomy_category] += 1
            counts["automated_decision"][statement_["automated_decision"]] += 1
            counts["decision_ground"][statement_["decision_ground"]] += 1
        logger.info("%s: %d statements", name, len(chunk))
    return counts, files
