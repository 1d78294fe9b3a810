"""Active-learning options reach the sampler: ``--reach-field`` and the loop's ``reach_field`` read each item's
reach from the manifest's meta, and ``disagreement`` gets a second model's scores from the command line
(``--second-scan``, ``--second-checkpoint``) and from the loop (``second_checkpoint``)."""

from __future__ import annotations

import datetime
import json

import pytest

from tripwire.common.config import ConfigError, from_dict
from tripwire.policy import Policy, default_resource
from tripwire.scan.output import ScanWriter, result_rows
from tripwire.moderation.result import ModerationResult

POLICY = Policy.load()  # hate: restrict 0.70, the default boundary
CATEGORIES = list(POLICY.categories)
NOW = datetime.datetime(2026, 12, 1, 9, 0, tzinfo=datetime.timezone.utc)


def write_scan(out, hate: dict[str, float], model_version: str = "m@1") -> str:
    results = []
    for item_id, score in hate.items():
        scores = {c: 0.0 for c in CATEGORIES} | {"hate": score}
        decision = POLICY.decide(scores).to_dict()
        results.append(ModerationResult.from_json({"id": item_id, "scores": scores, "flagged": decision["flagged"], "decision": decision,
                        "attribution": {c: {"driven_by": "text", "contributions": {"text": 0.1}} for c in CATEGORIES},
                        "evidence": {}, "modalities": ["text"], "model_version": model_version,
                        "policy_version": POLICY.version}))
    writer = ScanWriter(str(out), CATEGORIES, rows_per_file=100)
    writer.add(result_rows(results, NOW))
    writer.flush()
    return str(out)


def write_manifest(path, views: dict[str, int | None]) -> str:
    rows = [{"id": i, "text": f"post {i}", "meta": {} if v is None else {"views": v}} for i, v in views.items()]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n{a line the scan quarantined\n")
    return str(path)


def picked(output: str) -> list[str]:
    """The item ids ``tripwire queue sample`` printed, best first."""
    return [line.split()[0] for line in output.splitlines() if line.startswith("  ") and "priority" in line]


def queue_sample(capsys, tmp_path, *options: str) -> list[str]:
    from entrypoints.cli import main

    assert main(["queue", "sample", "--store", str(tmp_path / "review.db"), "--policy",
                 default_resource("policy.yaml"), *options]) == 0
    return picked(capsys.readouterr().out)


# "on-line" sits on the restrict threshold, seen by nobody; "viral", a little off it, by a million people.
HATE = {"on-line": 0.70, "viral": 0.64, "far": 0.05}
VIEWS = {"on-line": 0, "viral": 1_000_000, "far": None}


def test_reach_field_on_the_command_line_changes_the_pick(capsys, tmp_path):
    scan = write_scan(tmp_path / "scan", HATE)
    manifest = write_manifest(tmp_path / "catalogue.jsonl", VIEWS)
    common = ["--scan", scan, "--manifest", manifest, "--budget", "hate=1", "--strategy", "uncertainty"]
    assert queue_sample(capsys, tmp_path, *common) == ["on-line"]
    assert queue_sample(capsys, tmp_path, *common, "--reach-field", "views") == ["viral"]


def test_disagreement_from_the_command_line_with_a_second_scan(capsys, tmp_path):
    scan = write_scan(tmp_path / "scan", {"a": 0.5, "b": 0.5, "c": 0.5})
    second = write_scan(tmp_path / "second", {"a": 0.45, "b": 0.10, "c": 0.95}, model_version="m@2")
    options = ["--scan", scan, "--budget", "hate=2", "--strategy", "disagreement"]
    assert queue_sample(capsys, tmp_path, *options, "--second-scan", second) == ["c", "b"]


def test_disagreement_options_fail_naming_what_is_missing(capsys, tmp_path):
    from entrypoints.cli import main

    scan = write_scan(tmp_path / "scan", {"a": 0.5})
    base = ["queue", "sample", "--store", str(tmp_path / "review.db"), "--policy", default_resource("policy.yaml"),
            "--scan", scan, "--budget", "hate=1"]
    assert main([*base, "--strategy", "disagreement"]) == 2
    assert "needs the second model: --second-checkpoint" in capsys.readouterr().err
    assert main([*base, "--strategy", "uncertainty", "--second-scan", scan]) == 2
    assert "--second-scan is used by --strategy disagreement only" in capsys.readouterr().err
    assert main([*base, "--strategy", "disagreement", "--second-scan", str(tmp_path / "nothing")]) == 2
    assert "holds no scan results" in capsys.readouterr().err


def test_disagreement_from_the_command_line_with_a_second_checkpoint(capsys, tmp_path, tiny_model_config):
    """``--second-checkpoint`` scans the manifest with the second model; its scan is already complete here (as
    when the command runs again), so the scan resumes into it, scores nothing and Ray never starts."""
    from helpers import save_tiny_checkpoint
    from pipelines.scan import make_job
    from tripwire.scan.job import written_with
    from tripwire.model.checkpoint import CheckpointManifest
    from tripwire.data.quarantine import write_quarantine
    from tripwire.data.rows import quarantine_row
    from tripwire.scan.output import prepare_output

    manifest = write_manifest(tmp_path / "catalogue.jsonl", {"a": None, "b": None, "c": None})
    scan = write_scan(tmp_path / "scan", {"a": 0.5, "b": 0.5, "c": 0.5})
    checkpoint = save_tiny_checkpoint(tiny_model_config, tmp_path / "second-model")
    second_out = str(tmp_path / "second-scan")
    second = CheckpointManifest.read(checkpoint)
    prepare_output(second_out, written_with(make_job(checkpoint, manifest, second_out), second, second.policy()))
    write_scan(second_out, {"a": 0.9, "b": 0.45, "c": 0.1}, model_version=second.version)
    write_quarantine(f"{second_out}/quarantine", [quarantine_row("", "{a line the scan quarantined", ValueError())])
    picks = queue_sample(capsys, tmp_path, "--scan", scan, "--manifest", manifest, "--budget", "hate=2",
                         "--strategy", "disagreement", "--second-checkpoint", checkpoint, "--second-out", second_out)
    assert picks == ["a", "c"]


def loop_config(tmp_path, pool: str, **sampling):
    from tripwire.review.loop import LoopConfig

    second = sampling.pop("second_checkpoint", None)
    return from_dict(LoopConfig, {"checkpoint": "model", "train_config": "train.yaml", "seed_manifest": "seed.jsonl",
                                  "pool_manifest": pool, "golden": ["g"], "work_dir": str(tmp_path / "work"),
                                  "second_checkpoint": second, "sampling": {"budget": {"hate": 1}, **sampling}}, "loop")


def queued_ids(tmp_path, cfg, scan: str, second: str | None = None) -> list[str]:
    from pipelines.loop import queue_round
    from tripwire.review.store import open_store

    store = open_store(str(tmp_path / f"{cfg.sampling.strategy}-{cfg.sampling.reach_field}.db"), CATEGORIES)
    try:
        queue_round(cfg, store, POLICY, scan, second)
        return [item.item_id for item in store.items(batch=cfg.round)]
    finally:
        store.close()


def test_the_loops_reach_field_changes_the_pick(tmp_path):
    scan = write_scan(tmp_path / "scan", HATE)
    pool = write_manifest(tmp_path / "pool.jsonl", VIEWS)
    assert queued_ids(tmp_path, loop_config(tmp_path, pool, strategy="uncertainty"), scan) == ["on-line"]
    assert queued_ids(tmp_path, loop_config(tmp_path, pool, strategy="uncertainty", reach_field="views"),
                      scan) == ["viral"]


def test_the_loop_samples_where_a_second_model_disagrees(tmp_path):
    scan = write_scan(tmp_path / "scan", {"a": 0.5, "b": 0.5, "c": 0.5})
    second = write_scan(tmp_path / "second", {"a": 0.45, "b": 0.10, "c": 0.55}, model_version="m@2")
    pool = write_manifest(tmp_path / "pool.jsonl", {"a": None, "b": None, "c": None})
    cfg = loop_config(tmp_path, pool, strategy="disagreement", second_checkpoint="other-model")
    assert queued_ids(tmp_path, cfg, scan, second) == ["b"]


def test_the_loops_second_checkpoint_and_disagreement_come_together(tmp_path):
    with pytest.raises(ConfigError, match="second_checkpoint: sampling.strategy 'disagreement' needs a second model"):
        loop_config(tmp_path, "pool.jsonl", strategy="disagreement")
    with pytest.raises(ConfigError, match="second_checkpoint: only sampling.strategy 'disagreement'"):
        loop_config(tmp_path, "pool.jsonl", strategy="margin", second_checkpoint="other-model")
