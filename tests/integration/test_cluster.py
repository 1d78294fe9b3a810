"""Jobs on a separately started cluster (``ray start`` head and worker nodes, tests/ray_nodes.py) through
``ray job submit``, as a team runs them: training (reproducible against the session's own run, and resumable
by run name) and a scan whose model actors spread over two nodes. They share one two-node cluster (starting
one costs about half a minute on 2 cores) and need no session Ray: the session's model is read from disk
(``session_model``), so under ``make test`` they run beside the tests on the session's Ray."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import REPO, epochs_in, good_samples, scan_command
from ray_nodes import RAY, alive_nodes
from tripwire.scan.config import ScanConfig
from tripwire.scan.output import read_results


def submit(address: str, env: dict, command: list[str]) -> str:
    submitted = subprocess.run([RAY, "job", "submit", "--address", address, "--runtime-env", "cluster/runtime_env.yaml",
                                "--", *command], cwd=REPO, env=env, capture_output=True, text=True, timeout=540)
    logs = submitted.stdout + submitted.stderr
    assert submitted.returncode == 0, logs[-4000:]
    return logs


def test_training_submitted_to_another_cluster_is_reproducible_and_resumes(separate_cluster, session_model, tmp_path):
    """``ray job submit`` of ``tripwire train`` with the session's config, data and seed, for its first epoch, on
    a cluster of two nodes: the same split, and the epoch's validation metrics within 1e-6 of the session's own
    run. Submitted again under the same run name with one more epoch, it resumes after the last epoch instead
    of starting over, and that epoch equals the session's second, which was trained by a group restarted after
    a worker was killed (a resumed run is the run it would have been)."""
    import sys

    from tripwire.data.splits import read_splits

    address, env = separate_cluster
    cfg, first = session_model
    session = {r["epoch"]: r for r in epochs_in(Path(cfg.storage_path) / cfg.run_name)}
    config = yaml.safe_load((REPO / "pipelines/configs/tiny.yaml").read_text())
    config.update(run_name="submitted", storage_path=str(tmp_path / "ray"), export_dir=str(tmp_path / "model"))
    config["data"]["manifest"] = cfg.data.manifest  # the session's corpus, its broken rows included
    config["fit"].update(epochs=1, num_to_keep=10)
    job = tmp_path / "job.yaml"
    job.write_text(yaml.safe_dump(config))

    logs = submit(address, env, [sys.executable, "-m", "entrypoints.cli", "train", "--config", str(job)])
    assert "succeeded" in logs and "[train] best epoch" in logs
    second = json.loads((tmp_path / "model" / "summary.json").read_text())
    assert second["run_name"] == "submitted"
    assert read_splits(f"{second['model_dir']}/splits.parquet") == read_splits(f"{first['model_dir']}/splits.parquet")

    def assert_as_in_session(record: dict) -> None:
        expected = session[record["epoch"]]["metrics"]
        for category, values in expected.items():
            for name, value in values.items():
                assert record["metrics"][category][name] == pytest.approx(value, abs=1e-6), (record["epoch"], category, name)

    run_dir = tmp_path / "ray" / "submitted"
    before = epochs_in(run_dir)
    assert [r["epoch"] for r in before] == [0] and before[0]["resumed_from_epoch"] is None
    for record in before:
        assert_as_in_session(record)

    config["fit"]["epochs"] = 2
    job.write_text(yaml.safe_dump(config))
    logs = submit(address, env, [sys.executable, "-m", "entrypoints.cli", "train", "--config", str(job)])
    assert "succeeded" in logs and "[train] best epoch" in logs
    after = epochs_in(run_dir)
    assert [r["epoch"] for r in after] == [0, 1]
    assert after[-1]["resumed_from_epoch"] == 0
    assert after[:-1] == before  # earlier epochs were not retrained
    assert_as_in_session(after[-1])


def test_scan_spreads_its_actors_over_a_two_node_cluster(separate_cluster, session_model, tmp_path):
    """The scan's two model actors run on different nodes and the output is complete."""
    address, env = separate_cluster
    cfg, summary = session_model
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
