"""The scan's output files: a result survives the Parquet round trip whole, flushes are all-or-nothing, and
resume sees exactly what was finished."""

from __future__ import annotations

import datetime

import pytest

from tripwire.moderation.result import ModerationResult
from tripwire.policy import Policy, Taxonomy
from tripwire.scan.config import ScanConfig, ScanJob
from tripwire.scan.output import REVIEW, ScanSummary, ScanWriter, completed_ids, read_results, result_rows

CATEGORIES = Taxonomy.load().names
NOW = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)


def result(item_id: str, score: float, market: str | None = None) -> ModerationResult:
    scores = {c: score for c in CATEGORIES}
    decision = Policy.load().decide(scores, market).to_dict()
    return ModerationResult.from_json({"id": item_id, "scores": scores, "flagged": decision["flagged"], "decision": decision,
            "attribution": {c: {"driven_by": "text", "contributions": {"text": 0.25, "image": -0.1}} for c in CATEGORIES},
            "evidence": {"video_top_frames": [{"timestamp_s": 1.5, "weight": 0.6}]},
            "modalities": ["text", "image"], "model_version": "m@1", "policy_version": decision["policy_version"]})


def test_a_result_survives_the_parquet_round_trip(tmp_path):
    originals = [result("a", 0.05), result("b", 0.45, "DE"), result("c", 0.95)]
    writer = ScanWriter(str(tmp_path), CATEGORIES, rows_per_file=100)
    writer.add(result_rows(originals, NOW))
    writer.flush()
    back = {row["id"]: row for row in read_results(str(tmp_path))}
    assert {r.action for r in originals} == {row["action"] for row in back.values()}
    for original in originals:
        assert ModerationResult.from_row(back[original.id]) == original
        assert back[original.id]["scanned_at"] == NOW
    # Partitioned by action; review candidates hold exactly the review rows.
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == sorted(f"action={r.action}"
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
    assert all(summary.flagged[c] == 1 for c in result("b", 0.95).flagged)


def test_scan_job_and_config_validate_at_the_edge():
    from tripwire.common.config import ConfigError, from_dict

    with pytest.raises(ConfigError, match="actors"):
        ScanConfig(actors=0)
    with pytest.raises(ConfigError, match="scan.batch_size: expected an integer"):
        from_dict(ScanJob, {"checkpoint": "c", "manifest": "m.jsonl", "out": "o", "scan": {"batch_size": "big"}}, "scan")
    with pytest.raises(ConfigError, match="market"):
        ScanJob(checkpoint="c", manifest="m.jsonl", out="o", market="Germany")


def _written_with(**changes) -> dict:
    record = {"checkpoint": {"version": "m@1", "sha256": "a" * 64, "uri": "/models/m"},
              "policy": {"version": "p@1", "sha256": "b" * 64}, "manifest": "/data/catalogue.jsonl", "market": None}
    for key, value in changes.items():
        record[key] = {**record[key], **value} if isinstance(value, dict) else value
    return record


def _write_results(out: str, ids: list[str]) -> None:
    writer = ScanWriter(out, CATEGORIES, rows_per_file=100)
    writer.add(result_rows([result(i, 0.55) for i in ids], NOW))
    writer.flush()


@pytest.mark.parametrize("changes, named", [
    ({"checkpoint": {"version": "m@2", "sha256": "c" * 64}}, ["checkpoint m@1 (sha256 aaaaaaaaaaaa) there",
                                                             "m@2 (sha256 cccccccccccc) now"]),
    ({"checkpoint": {"sha256": "c" * 64}}, ["checkpoint m@1"]),  # same name, other weights or calibration
    ({"policy": {"sha256": "d" * 64}}, ["policy p@1 (sha256 bbbbbbbbbbbb) there, p@1 (sha256 dddddddddddd) now"]),
    ({"manifest": "/data/other.jsonl"}, ["manifest /data/catalogue.jsonl there, /data/other.jsonl now"]),
    ({"market": "DE"}, ["market none there, DE now"]),
])
def test_an_output_refuses_a_scan_written_with_something_else(tmp_path, changes, named):
    from tripwire.common.config import ConfigError
    from tripwire.scan.output import prepare_output

    out = str(tmp_path / "scan")
    prepare_output(out, _written_with())
    _write_results(out, ["a", "b"])
    prepare_output(out, _written_with(checkpoint={"uri": "/copied/elsewhere"}))  # the same model, moved: resumes
    with pytest.raises(ConfigError) as info:
        prepare_output(out, _written_with(**changes))
    message = str(info.value)
    assert all(fragment in message for fragment in named) and "--restart" in message, message
    assert completed_ids(out) == {"a", "b"}  # refused: nothing removed
    # Restarting clears the earlier results (only the scan's own files) and records the new inputs.
    (tmp_path / "scan" / "notes.txt").write_text("not the scan's")
    prepare_output(out, _written_with(**changes), restart=True)
    assert completed_ids(out) == set() and (tmp_path / "scan" / "notes.txt").exists()
    prepare_output(out, _written_with(**changes))
    with pytest.raises(ConfigError):
        prepare_output(out, _written_with())


def test_an_output_without_a_record_resumes_only_for_its_own_model_and_policy(tmp_path):
    from tripwire.common.config import ConfigError
    from tripwire.scan.output import RECORD, prepare_output, read_record

    out = str(tmp_path / "scan")
    _write_results(out, ["a"])  # rows of model m@1 and the bundled policy, as scans wrote before records
    policy = Policy.load().version
    with pytest.raises(ConfigError, match="m@1 / .*, not m@2"):
        prepare_output(out, _written_with(checkpoint={"version": "m@2"}, policy={"version": policy}))
    assert not (tmp_path / "scan" / RECORD).exists()
    prepare_output(out, _written_with(policy={"version": policy}))
    assert read_record(out)["checkpoint"]["version"] == "m@1"


def test_what_is_left_to_scan_is_decided_by_ids_not_counts(tmp_path):
    import json

    from tripwire.scan.output import count_pending
    from tripwire.data.rows import quarantine_row

    manifest = tmp_path / "catalogue.jsonl"
    broken = "{not json"
    manifest.write_text("\n".join([json.dumps({"id": f"item-{i}", "text": "t"}) for i in range(4)] + [broken, ""]))
    # An output that holds as many ids as the manifest has rows, but two of them are no longer in it.
    done = {"item-0", "item-1", "gone-1", "gone-2", quarantine_row("", broken, ValueError())["id"]}
    assert count_pending(str(manifest), done) == (5, 2)
    assert count_pending(str(manifest), done | {"item-2", "item-3"}) == (5, 0)

    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": ["x", "y", "z"], "text": ["a", "b", "c"]}), tmp_path / "catalogue.parquet")
    assert count_pending(str(tmp_path / "catalogue.parquet"), {"x", "q"}) == (3, 2)
