"""``tripwire scan`` with real Ray Data: the same results as HTTP and in-process, quarantine, review candidates,
resume after the driver is killed, and resume by ids into an output of the same inputs only. The scan on a
two-node cluster is in test_cluster.py."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import time

import httpx
import pytest
import yaml

from helpers import REPO, assert_same_result, good_samples, one_sample_per_mix, scan_command
from tripwire.moderation.moderator import Moderator
from tripwire.data.sample import Sample, manifest_base, request_body, write_manifest
from tripwire.scan.config import ScanConfig, ScanJob
from tripwire.moderation.result import ModerationResult
from tripwire.scan.output import read_results

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
    results = {row["id"]: ModerationResult.from_row(row) for row in rows}
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
    assert all(set(r["scores"]) == set(results[r["id"]].scores) for r in review)


def test_scan_rejects_a_bad_checkpoint_or_manifest_before_starting(trained, tmp_path):
    from pipelines.scan import validate
    from tripwire.common.config import ConfigError

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


def test_a_scan_resumes_by_ids_and_refuses_an_output_of_another_policy(ray_session, tiny_model_config, tmp_path):
    """A catalogue whose items changed (as many rows, other ids) scanned again into its output scores the new
    ids; the same output with another policy is refused before anything runs (``restart`` and each field's
    check: tests/unit/test_scan_output.py)."""
    from helpers import save_tiny_checkpoint
    from pipelines.scan import run
    from tripwire.common.config import ConfigError, to_dict
    from tripwire.policy import Policy

    checkpoint = save_tiny_checkpoint(tiny_model_config, tmp_path / "model")
    manifest, out = tmp_path / "catalogue.jsonl", str(tmp_path / "out")
    write_manifest([Sample(id=f"item-{i}", text=f"post number {i}") for i in range(8)], str(manifest))
    job = ScanJob(checkpoint=checkpoint, manifest=str(manifest), out=out, scan=SMALL)
    assert run(job)["scored"] == 8

    write_manifest([Sample(id=f"item-{i}", text=f"post number {i}") for i in range(2, 8)]
                   + [Sample(id=f"new-{i}", text=f"new post {i}") for i in range(2)], str(manifest))
    report = run(job)
    assert (report["scored"], report["already_done"]) == (2, 6)
    assert sorted(row["id"] for row in read_results(out)) == sorted([f"item-{i}" for i in range(8)] + ["new-0", "new-1"])

    other = tmp_path / "other-policy.yaml"
    other.write_text(yaml.safe_dump({**to_dict(Policy.load()), "version": "other-policy"}))
    with pytest.raises(ConfigError, match=r"different policy .*--restart"):
        run(dataclasses.replace(job, policy=str(other)))
    assert len(read_results(out)) == 10
