"""The scan's output files: a result survives the Parquet round trip whole, flushes are all-or-nothing, and
resume sees exactly what was finished."""

from __future__ import annotations

import datetime

import pytest

from tripwire.policy import Policy, Taxonomy
from tripwire.scan_config import ScanConfig, ScanJob
from tripwire.scan_output import (REVIEW, ScanSummary, ScanWriter, completed_ids, read_results, result_rows,
                                  row_to_result)

CATEGORIES = Taxonomy.load().names
NOW = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)


def result(item_id: str, score: float, market: str | None = None) -> dict:
    scores = {c: score for c in CATEGORIES}
    decision = Policy.load().decide(scores, market).to_dict()
    return {"id": item_id, "scores": scores, "flagged": decision["flagged"], "decision": decision,
            "attribution": {c: {"driven_by": "text", "contributions": {"text": 0.25, "image": -0.1}} for c in CATEGORIES},
            "evidence": {"video_top_frames": [{"timestamp_s": 1.5, "weight": 0.6}]},
            "modalities": ["text", "image"], "model_version": "m@1", "policy_version": decision["policy_version"]}


def test_a_result_survives_the_parquet_round_trip(tmp_path):
    originals = [result("a", 0.05), result("b", 0.45, "DE"), result("c", 0.95)]
    writer = ScanWriter(str(tmp_path), CATEGORIES, rows_per_file=100)
    writer.add(result_rows(originals, NOW))
    writer.flush()
    back = {row["id"]: row for row in read_results(str(tmp_path))}
    assert {r["decision"]["action"] for r in originals} == {row["action"] for row in back.values()}
    for original in originals:
        assert row_to_result(back[original["id"]]) == original
        assert back[original["id"]]["scanned_at"] == NOW
    # Partitioned by action; review candidates hold exactly the review rows.
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted(f"action={r['decision']['action']}"
                                                                              for r in originals)
    review = {row["id"] for row in read_results(str(tmp_path)) if row["action"] == "review"}
    import pyarrow.parquet as pq

    assert {r["id"] for r in pq.read_table(tmp_path / REVIEW).to_pylist()} == review


def test_rows_per_file_bounds_the_buffer(tmp_path):
    writer = ScanWriter(str(tmp_path), CATEGORIES, rows_per_file=4)
    writer.add(result_rows([result(f"i{n}", 0.05) for n in range(10)], NOW))
    assert len(writer.buffer) == 2 and writer.written == 8
    writer.flush()
    assert len(list((tmp_path / "results").glob("*/part-*.parquet"))) == 3


def test_resume_counts_finished_flushes_and_clears_half_done_ones(tmp_path):
    writer = ScanWriter(str(tmp_path), CATEGORIES, rows_per_file=100)
    writer.add(result_rows([result("done-1", 0.05), result("done-2", 0.55)], NOW))
    writer.flush()
    # What a kill leaves: a half-written file, and review candidates whose results never landed.
    (tmp_path / "results" / "action=allow" / "_tmp-20261201T090000-dead.parquet").write_bytes(b"PAR1 half")
    orphan = ScanWriter(str(tmp_path), CATEGORIES, rows_per_file=100)
    rows = result_rows([result("lost", 0.55)], NOW)
    orphan._write(str(tmp_path / REVIEW), "20261201T090001-orphan", rows)
    assert completed_ids(str(tmp_path)) == {"done-1", "done-2"}
    assert not list(tmp_path.glob("**/_tmp-*")) and not list((tmp_path / REVIEW).glob("*orphan*"))


def test_summary_counts_actions_and_flags():
    summary = ScanSummary(CATEGORIES)
    summary.add(result_rows([result("a", 0.05), result("b", 0.95)], NOW))
    assert summary.items == 2 and sum(summary.actions.values()) == 2
    assert all(summary.flagged[c] == 1 for c in result("b", 0.95)["flagged"])


def test_scan_job_and_config_validate_at_the_edge():
    from tripwire.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="actors"):
        ScanConfig(actors=0)
    with pytest.raises(ConfigError, match="scan.batch_size: expected an integer"):
        from_dict(ScanJob, {"checkpoint": "c", "manifest": "m.jsonl", "out": "o", "scan": {"batch_size": "big"}}, "scan")
    with pytest.raises(ConfigError, match="market"):
        ScanJob(checkpoint="c", manifest="m.jsonl", out="o", market="Germany")
