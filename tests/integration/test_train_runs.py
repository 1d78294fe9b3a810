"""A training job with too many bad rows fails with the reason, streaming or with its preprocessing cached.
(Reproducibility and resuming by run name: test_cluster.py; a killed worker: test_train_faults.py.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from helpers import epochs_in


@pytest.mark.parametrize("cached", [False, True], ids=["streaming", "cached_preprocessing"])
def test_too_many_bad_rows_fail_the_job_with_reasons(trained, cores_for_training, tmp_path, cached):
    from pipelines.train import run
    from tripwire.data.quarantine import QuarantineLimitExceeded

    cfg, _ = trained  # the session corpus has 3 bad rows (its last lines) in ~160
    # Its first 40 rows and the 3 bad ones, beside it (the media paths are relative): an epoch of 40 rows shows them.
    lines = Path(cfg.data.manifest).read_text().splitlines(keepends=True)
    subset = Path(cfg.data.manifest).with_name(f"strict-{'cached' if cached else 'streaming'}.jsonl")
    subset.write_text("".join(lines[:40] + lines[-3:]))
    strict = dataclasses.replace(cfg, run_name="strict", storage_path=str(tmp_path / "ray"),
                                 export_dir=str(tmp_path / "model"),
                                 data=dataclasses.replace(cfg.data, manifest=str(subset), max_quarantine_fraction=0.01,
                                                          cache_preprocessed=cached),
                                 fit=dataclasses.replace(cfg.fit, num_workers=1))
    with pytest.raises(QuarantineLimitExceeded, match=r"3 of \d+ rows .*corrupt.*invalid_row"):
        run(strict)
    trained_epochs = [r["epoch"] for r in epochs_in(Path(strict.storage_path) / strict.run_name)]
    # Streaming, the first epoch reveals the bad rows and the job stops after it; with the preprocessed
    # data cached, they are known before training starts.
    assert trained_epochs == ([] if cached else [0])
    assert not Path(strict.export_dir).exists()  # and exported nothing
