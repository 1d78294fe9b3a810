"""Training survives a killed worker: the session's own run (tests/integration/conftest.py ``trained``) had one
of its two workers SIGKILLed right after its first checkpoint was reported; Ray Train restarted the group from
the last checkpoint it had registered and the run finished. That the resumed run equals an uninterrupted one,
metric for metric, is checked against a run submitted to another cluster (test_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import epochs_in


def test_killed_worker_resumes_from_last_checkpoint(trained):
    cfg, summary = trained
    records = epochs_in(Path(cfg.storage_path) / cfg.run_name)
    by_epoch: dict[int, list[dict]] = {}
    for record in records:
        by_epoch.setdefault(record["epoch"], []).append(record)
    assert sorted(by_epoch) == list(range(cfg.fit.epochs))  # none lost to the kill
    resumed = [r for r in records if r["resumed_from_epoch"] is not None]
    assert resumed, "no epoch was trained by a restarted worker group"
    [start] = {r["resumed_from_epoch"] for r in resumed}
    # The restarted group trained every epoch after the checkpoint it resumed from, and only those.
    assert start < cfg.fit.epochs - 1 and sorted(r["epoch"] for r in resumed) == list(range(start + 1, cfg.fit.epochs))
    assert all(r["resumed_from_epoch"] is None for r in by_epoch[0])
    # An epoch the killed group had already written (its checkpoint landed before the kill did) was trained
    # again from the same checkpoint, to the same figures: resuming is exact.
    for epoch, twice in by_epoch.items():
        for record in twice[1:]:
            for category, values in record["metrics"].items():
                assert values == pytest.approx(twice[0]["metrics"][category], abs=1e-9), (epoch, category)
    assert all(r["num_workers"] == 2 for r in records)
    assert (Path(summary["model_dir"]) / "manifest.json").exists()
    assert summary["val_metrics"]["macro"] == max((r["metrics"]["macro"] for r in records), key=lambda m: m["roc_auc"])
