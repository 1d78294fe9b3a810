"""Jobs on a separately started cluster (``ray start`` head and worker nodes, tests/ray_nodes.py) through
``ray job submit``, as a team runs them: training (reproducible against the session's own run, and resumable
by run name) and a scan whose model actors spread over two nodes. They share one two-node cluster (starting
one costs about half a minute on 2 cores)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO, epochs_in, good_samples, scan_command
from ray_nodes import RAY, alive_nodes
from tripwire.scan_config import ScanConfig
from tripwire.scan_output import read_results


def submit(address: str, env: dict, command: list[str]) -> str:
    submitted = subprocess.run([RAY, "job", "submit", "--address", address, "--runtime-env", "cluster/runtime_env.yaml",
                                "--", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=540)
    logs = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, logs[-4000:]
    return logs


def test_training_submitted_to_another_cluster_is_reproducible_and_resumes(separate_cluster, trained, tmp_path):
    """``ray job submit`` of ``tripwire train`` with the session's config, data and seed, on a cluster of two
    nodes, uninterrupted: the same best epoch, validation metrics (1e-6) and split as the session's own run,
    which lost a worker after its first epoch and resumed from that checkpoint (a resumed run is the run it
    would have been). Submitted again under the same run name with one more epoch, it resumes after the last
    epoch instead of starting over."""
    import sys

    from tripwire.splits import read_splits

    address, env = separate_cluster
    cfg, first = trained
    config = yaml.safe_load((REPO / "pipelines/configs/tiny.yaml").read_text())
    config.update(run_name="submitted", storage_path=str(tmp_path / "ray"), export_dir=str(tmp_path / "model"))
    config["data"]["manifest"] = cfg.data.manifest  # the session's corpus, its broken rows included
    config["fit"]["num_to_keep"] = 10
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(config))
    command = [sys.executable, "-m", "entrypoints.cli", "train", "--config", str(job)]

    logs = submit(address, env, command)
    assert "succeeded" in logs and f"[train] best epoch {first['best_epoch'] + 1}" in logs
    second = json.loads((tmp_path / "model" / "summary.json").read_text())
    assert second["run_name"] == "submitted" and second["best_epoch"] == first["best_epoch"]
    for category, values in first["val_metrics"].items():
        for name, value in values.items():
            assert second["val_metrics"][category][name] == pytest.approx(value, abs=1e-6), (category, name)
    assert read_splits(f"{second['model_dir']}/splits.parquet") == read_splits(f"{first['model_dir']}/splits.parquet")

    run_dir = tmp_path / "ray" / "submitted"
    before = epochs_in(run_dir)
    assert [r["epoch"] for r in before] == list(range(cfg.fit.epochs))
    config["fit"]["epochs"] = cfg.fit.epochs + 1
    job.write_text(yaml.safe_dump(config))
    submit(address, env, command)
    after = epochs_in(run_dir)
    assert [r["epoch"] for r in after] == list(range(cfg.fit.epochs + 1))
    assert after[-1]["resumed_from_epoch"] == cfg.fit.epochs - 1
    assert after[:-1] == before  # earlier epochs were not retrained


def test_scan_spreads_its_actors_over_a_two_node_cluster(separate_cluster, trained, tmp_path):
    """The scan's two model actors run on different nodes and the output is complete."""
    address, env = separate_cluster
    cfg, summary = trained
    small = ScanConfig(batch_size=8, actors=2, cpus_per_actor=0.5, preprocess_batch_size=16, preprocess_cpus=0.25,
                       rows_per_file=64, progress_every_s=1.0)
    config = tmp_path / "scan.yaml"
    config.write_text(yaml.safe_dump(vars(small)))
    out = tmp_path / "out"
    assert len(alive_nodes(address, env)) == 2
    logs = submit(address, env, scan_command(summary["model_dir"], Path(cfg.data.manifest), out, config))
    listed = subprocess.run([RAY, "list", "actors", "--address", address, "--format", "json", "--detail",
                             "--limit", "1000"], env=env, capture_output=True, text=True, check=True)
    actors = [a for a in json.loads(listed.stdout) if "ModerateBatch" in a.get("class_name", "")]
    assert len(actors) == 2 and len({a["node_id"] for a in actors}) == 2, actors
    ids = [row["id"] for row in read_results(str(out))]
    assert len(ids) == len(set(ids)) == len(list(good_samples(cfg))) + 1
    assert "[scan] done" in logs
