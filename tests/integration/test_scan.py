"""``tripwire scan`` with real Ray Data: the same results as HTTP and in-process, quarantine, review candidates,
resume after the driver is killed, and the scan's actors spread over a two-node cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import yaml

from helpers import REPO, assert_same_result, good_samples, one_sample_per_mix
from ray_nodes import RAY, alive_nodes, local_cluster
from tripwire.moderation import Moderator
from tripwire.sample import Sample, manifest_base, request_body, write_manifest
from tripwire.scan_config import ScanConfig, ScanJob
from tripwire.scan_output import read_results, row_to_result

# Fits beside the session's Serve app on 2 cores (its replicas reserve 1 CPU).
SMALL = ScanConfig(batch_size=8, actors=1, cpus_per_actor=0.25, preprocess_batch_size=16, preprocess_cpus=0.25,
                   rows_per_file=64, progress_every_s=1.0)


def test_scan_gives_the_same_results_as_http_and_in_process(trained, served, tmp_path):
    from pipelines.scan import run

    cfg, _ = trained
    url, model_dir = served
    out = str(tmp_path / "scan")
    summary = run(ScanJob(checkpoint=model_dir, manifest=cfg.data.manifest, out=out, scan=SMALL))

    good = list(good_samples(cfg))
    rows = read_results(out)
    results = {row["id"]: row_to_result(row) for row in rows}
    # Every good row once; the broken image and the line that is not JSON are quarantined with reasons (the
    # row whose labels are outside the taxonomy is scored: a scan reads no labels).
    assert len(rows) == len(results) == len(good) + 1 and set(results) == {s.id for s in good} | {"bad-label"}
    assert summary["scored"] == len(rows) and summary["quarantined"] == 2
    assert summary["quarantine_reasons"] == {"corrupt": 1, "invalid_row": 1}
    assert sum(summary["actions"].values()) == len(rows)
    assert json.loads((tmp_path / "scan" / "summary.json").read_text())["scored"] == len(rows)

    base = manifest_base(cfg.data.manifest)
    samples = one_sample_per_mix(cfg)
    reference = Moderator.local(model_dir).moderate_sync(samples, base)
    with httpx.Client(timeout=60) as client:
        for sample, expected in zip(samples, reference):
            over_http = client.post(f"{url}/v1/moderate", json=request_body(sample, base))
            assert over_http.status_code == 200, over_http.text
            assert_same_result(results[sample.id], expected, where=f"scan {sample.id} {sample.modalities}")
            assert_same_result(over_http.json(), expected, where=f"http {sample.id} {sample.modalities}")

    import pyarrow.parquet as pq

    review = pq.read_table(tmp_path / "scan" / "review_candidates").to_pylist()
    assert sorted(r["id"] for r in review) == sorted(r["id"] for r in rows if r["action"] == "review")
    assert all(set(r["scores"]) == set(results[r["id"]]["scores"]) for r in review)


def test_scan_rejects_a_bad_checkpoint_or_manifest_before_starting(trained, tmp_path):
    from pipelines.scan import validate
    from tripwire.config import ConfigError

    cfg, summary = trained
    with pytest.raises((ConfigError, FileNotFoundError), match="not a Tripwire checkpoint"):
        validate(ScanJob(checkpoint=str(tmp_path / "nowhere"), manifest=cfg.data.manifest, out=str(tmp_path / "o")))
    (tmp_path / "notes.jsonl").write_text("just some words\n")
    with pytest.raises(ConfigError, match="not a JSONL manifest"):
        validate(ScanJob(checkpoint=summary["model_dir"], manifest=str(tmp_path / "notes.jsonl"), out=str(tmp_path / "o")))
    with pytest.raises(ConfigError, match="does not exist"):
        validate(ScanJob(checkpoint=summary["model_dir"], manifest=str(tmp_path / "gone.jsonl"), out=str(tmp_path / "o")))
    with pytest.raises(ConfigError, match="is not a manifest"):
        ScanJob(checkpoint=summary["model_dir"], manifest=str(tmp_path / "model.bin"), out=str(tmp_path / "o"))


def scan_command(model_dir: str, manifest: Path, out: Path, config: Path) -> list[str]:
    return [sys.executable, "-m", "entrypoints.cli", "scan", "--checkpoint", model_dir, "--manifest", str(manifest),
            "--out", str(out), "--config", str(config)]


def test_a_scan_killed_mid_run_resumes_without_rescoring(ray_session, trained, tmp_path):
    """SIGKILL of the driver (it joined the session's cluster, as a job on a real cluster would), then the
    same command again: the rest is scored, nothing twice, and every id is in the output exactly once."""
    cfg, summary = trained
    samples = [s for s in good_samples(cfg) if s.modalities == ["text"]]
    catalogue = [Sample(id=f"item-{i:04d}", text=samples[i % len(samples)].text) for i in range(600)]
    manifest = tmp_path / "catalogue.jsonl"
    write_manifest(catalogue, str(manifest))
    config = tmp_path / "scan.yaml"
    config.write_text(yaml.safe_dump({**vars(SMALL), "rows_per_file": 16, "batch_size": 4}))
    out = tmp_path / "out"
    address = ray_session._private.worker.global_worker.node.address
    env = {**os.environ, "RAY_ADDRESS": address}
    command = scan_command(summary["model_dir"], manifest, out, config)

    first = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             start_new_session=True)
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and len(list((out / "results").glob("*/part-*.parquet"))) < 3:
        assert first.poll() is None, first.stdout.read().decode()[-3000:]
        time.sleep(0.2)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    written = {row["id"] for row in read_results(str(out))}
    assert 0 < len(written) < len(catalogue), len(written)

    second = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=400)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    ids = [row["id"] for row in read_results(str(out))]
    assert sorted(ids) == sorted(s.id for s in catalogue)  # each exactly once
    report = json.loads((out / "summary.json").read_text())
    assert report["already_done"] >= len(written) and report["scored"] == len(catalogue) - report["already_done"]
    assert "[scan] done" in second.stdout


def test_scan_spreads_its_actors_over_a_two_node_cluster(trained, cores_for_training, tmp_path):
    """``ray job submit`` of the scan to a cluster of a head and a worker node (two ``ray start`` processes,
    one CPU each): the two model actors run on different nodes and the output is complete."""
    cfg, summary = trained
    config = tmp_path / "scan.yaml"
    config.write_text(yaml.safe_dump({**vars(SMALL), "actors": 2, "cpus_per_actor": 0.5}))
    out = tmp_path / "out"
    with local_cluster(tmp_path, head_cpus=1, worker_cpus=(1,)) as (address, _, env):
        assert len(alive_nodes(address, env)) == 2
        submitted = subprocess.run(
            [RAY, "job", "submit", "--address", address, "--runtime-env", "cluster/runtime_env.yaml", "--",
             *scan_command(summary["model_dir"], Path(cfg.data.manifest), out, config)],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=540)
        logs = submitted.stdout + submitted.stderr
        assert submitted.returncode == 0, logs[-4000:]
        listed = subprocess.run([RAY, "list", "actors", "--address", address, "--format", "json", "--detail",
                                 "--limit", "1000"], env=env, capture_output=True, text=True, check=True)
        actors = [a for a in json.loads(listed.stdout) if "ModerateBatch" in a.get("class_name", "")]
    assert len(actors) == 2 and len({a["node_id"] for a in actors}) == 2, actors
    ids = [row["id"] for row in read_results(str(out))]
    assert len(ids) == len(set(ids)) == len(list(good_samples(cfg))) + 1
    assert "[scan] done" in logs
