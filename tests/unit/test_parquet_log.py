"""The decision log as Parquet files on an fsspec URI (scans): the same chain and the same verify, tampering
named, retention by whole files, and read together with the database log (statements and reports)."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tripwire.compliance.cases import all_cases
from tripwire.compliance.logs import LogSet, open_log
from tripwire.compliance.parquet_log import ParquetDecisionLog, is_parquet_log
from tripwire.compliance.records import DECISION, REVIEW_OUTCOME
from tripwire.compliance.decision_log import DecisionLog


def entries(start: int, n: int, kind: str = DECISION):
    return [(kind, f"scan-abc-{i}", {"action": "restrict", "i": i}) for i in range(start, start + n)]


@pytest.fixture
def log(tmp_path):
    parquet = ParquetDecisionLog(f"file://{tmp_path / 'log'}")
    for start in (0, 3, 6):  # three appends: three files
        parquet.append(entries(start, 3))
    return parquet


def test_urls_choose_the_store():
    assert is_parquet_log("s3://bucket/log") and is_parquet_log("file:///tmp/log") and is_parquet_log("memory://x")
    assert not any(is_parquet_log(u) for u in ("runs/review.db", "sqlite:///abs/r.db", "postgresql://u@h/db"))
    assert isinstance(open_log("memory://open-log-test"), ParquetDecisionLog)


def test_appends_chain_across_files_and_verify(log):
    assert len(log._files()) == 3 and log.head()[0] == 9
    result = log.verify(published_head=log.head())
    assert result.ok and result.checked == 9
    assert log.append(entries(8, 2)) and log.head()[0] == 10  # scan-abc-8 is there already: only 9 is new
    assert log.find(DECISION, "scan-abc-4").body == {"action": "restrict", "i": 4} and log.find(DECISION, "nope") is None
    fresh = ParquetDecisionLog(log.url)  # another process reads the same chain
    assert [r.seq for r in fresh.records()] == list(range(1, 11)) and fresh.verify().ok


def _rewrite(log, index: int, change) -> None:
    file = log._files()[index]
    rows = pq.read_table(file).to_pylist()
    change(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(file)), file)


def test_an_edited_record_and_a_deleted_file_are_named(log, tmp_path):
    _rewrite(log, 1, lambda rows: rows[1].update(body=json.dumps({"action": "allow", "i": 4}, separators=(",", ":"))))
    result = log.verify()
    assert not result.ok and result.first_bad == 5 and "edited" in result.reason
    _rewrite(log, 1, lambda rows: rows[1].update(body=json.dumps({"action": "restrict", "i": 4}, separators=(",", ":"))))
    assert log.verify().ok
    (tmp_path / "log" / "part-000000000004.parquet").unlink()
    result = log.verify()
    assert not result.ok and result.first_bad == 7 and "missing" in result.reason


def test_two_swapped_records_are_named(log):
    _rewrite(log, 2, lambda rows: rows.reverse())
    result = log.verify()
    assert not result.ok and result.first_bad == 9


def test_retention_drops_whole_old_files_and_the_rest_verifies(log, tmp_path):
    cutoff = max(r.logged_at for r in log.records() if r.seq <= 6) + 1e-6
    assert log.prune(cutoff) == 6 and [r.seq for r in log.records()] == [7, 8, 9]
    assert log.verify().ok and log.head()[0] == 9
    log.append(entries(20, 1))
    assert log.verify().ok and log.head()[0] == 10
    # A crash between writing the anchor and deleting its file: the file's records lie before the anchor.
    again = ParquetDecisionLog(log.url)
    anchor_file = tmp_path / "log" / "anchor.json"
    pq.write_table(pa.Table.from_pylist([{"seq": 0, "kind": "x", "puid": "x", "body": "{}", "logged_at": 0.0,
                                          "prev_hash": "0", "hash": "0"}]), tmp_path / "log" / "part-000000000000.parquet")
    assert json.loads(anchor_file.read_text())["seq"] == 6 and again.verify().ok


def test_a_scan_log_and_the_database_log_read_as_one(log, tmp_path):
    db = DecisionLog(str(tmp_path / "db.db"))
    db.append([(REVIEW_OUTCOME, "scan-abc-1", {"action": "allow", "decided_at": 1.0})])  # about a Parquet decision
    logs = LogSet([db.url, log.url])  # the outcome is read before its decision
    cases = all_cases(logs.records())
    assert len(cases) == 9 and cases["scan-abc-1"].review == {"action": "allow", "decided_at": 1.0}
    assert logs.find(DECISION, "scan-abc-2").puid == "scan-abc-2" and set(logs.heads()) == {db.url, log.url}
    logs.close()
    db.close()
