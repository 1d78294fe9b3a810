"""Training runs are reproducible and resumable: the same seed and data give the same metrics, re-running a
job name resumes it, a job with too many bad rows fails with the reason."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest


def epochs_in(run_dir: Path) -> list[dict]:
    """The training record of every checkpoint a run wrote, by epoch."""
    records = [json.loads(p.read_text()) for p in run_dir.glob("checkpoint_*/manifest.json")]
    return sorted(({**r["training"], "metrics": r["metrics"]} for r in records), key=lambda r: r["epoch"])


def test_same_seed_same_metrics_and_rerun_resumes(trained, cores_for_training, tmp_path):
    from pipelines.train import run
    from tripwire.splits import read_splits

    cfg, first = trained
    # The session's run, again under another name: same data, config and seed -> the same metrics.
    repeat = dataclasses.replace(cfg, run_name="repeat", storage_path=str(tmp_path / "ray"),
                                 export_dir=str(tmp_path / "model"),
                                 fit=dataclasses.replace(cfg.fit, num_to_keep=10))
    second = run(repeat)
    assert second["best_epoch"] == first["best_epoch"]
    for category, values in first["val_metrics"].items():
        for name, value in values.items():
            assert second["val_metrics"][category][name] == pytest.approx(value, abs=1e-6), (category, name)
    assert read_splits(f"{second['model_dir']}/splits.parquet") == read_splits(f"{first['model_dir']}/splits.parquet")

    # The same job name again, asked for one more epoch: it resumes after the last epoch, not from scratch.
    run_dir = Path(repeat.storage_path) / repeat.run_name
    before = epochs_in(run_dir)
    assert [r["epoch"] for r in before] == list(range(cfg.fit.epochs))
    run(dataclasses.replace(repeat, fit=dataclasses.replace(repeat.fit, epochs=cfg.fit.epochs + 1)))
    after = epochs_in(run_dir)
    assert [r["epoch"] for r in after] == list(range(cfg.fit.epochs + 1))
    assert after[-1]["resumed_from_epoch"] == cfg.fit.epochs - 1
    assert after[:-1] == before  # earlier epochs were not retrained


@pytest.mark.parametrize("cached", [False, True], ids=["streaming", "cached_preprocessing"])
def test_too_many_bad_rows_fail_the_job_with_reasons(trained, cores_for_training, tmp_path, cached):
    from pipelines.train import run
    from tripwire.quarantine import QuarantineLimitExceeded

    cfg, _ = trained  # the session corpus has 3 bad rows in ~160
    strict = dataclasses.replace(cfg, run_name="strict", storage_path=str(tmp_path / "ray"),
                                 export_dir=str(tmp_path / "model"),
                                 data=dataclasses.replace(cfg.data, max_quarantine_fraction=0.01,
                                                          cache_preprocessed=cached))
    with pytest.raises(QuarantineLimitExceeded, match=r"3 of \d+ rows .*corrupt.*invalid_row"):
        run(strict)
    trained_epochs = [r["epoch"] for r in epochs_in(Path(strict.storage_path) / strict.run_name)]
    # Streaming, the first epoch reveals the bad rows and the job stops after it; with the preprocessed
    # data cached, they are known before training starts.
    assert trained_epochs == ([] if cached else [0])
    assert not Path(strict.export_dir).exists()  # and exported nothing
