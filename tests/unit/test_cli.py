"""The ``tripwire`` command: help, and user errors as one line before Ray starts.

The first tests run it for real in subprocesses, as a user does (exit codes, nothing of Ray on stderr); the
command-by-command ones call the same ``main`` in this process (``cli`` below), since a subprocess costs
seconds of imports a call and they make dozens of calls."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

from helpers import REPO

# Ray prints these when it starts a local instance or Serve; none may appear before a user error.
RAY_START_UP = ("Started a local Ray instance", "ray.init", "Serve", "Dashboard", "raylet")


def tripwire(*args: str, timeout: float = 120) -> tuple[subprocess.CompletedProcess, float]:
    env = {**os.environ, "COLUMNS": "120", "RAY_ADDRESS": ""}  # never join a cluster by accident
    started = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "entrypoints.cli", *args], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=timeout)
    return result, time.perf_counter() - started


class Ran:
    """What a command run in this process returned and printed (the fields of ``CompletedProcess`` used here)."""

    def __init__(self, returncode: int, stdout: str, stderr: str):
        self.returncode, self.stdout, self.stderr = returncode, stdout, stderr


class RayStarted(Exception):
    pass


@pytest.fixture
def cli(capsys, monkeypatch):
    """``cli(*args)``: ``entrypoints.cli.main`` in this process. No call may start Ray: ``ray.init`` raises
    here, and Ray reads as not running even where the test session's integration tests started it."""
    import ray

    from entrypoints.cli import main

    def refuse(*args, **kwargs):
        raise RayStarted("the command started Ray")

    monkeypatch.setattr(ray, "init", refuse)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)

    def run(*args: str) -> Ran:
        capsys.readouterr()
        try:
            code = main(list(args))
        except SystemExit as exit_:  # argparse's usage errors
            code = exit_.code
        out, err = capsys.readouterr()
        return Ran(code, out, err)

    return run


def assert_one_line_error(result: subprocess.CompletedProcess, command: str, *fragments: str) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"tripwire {command}: error: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]


def test_help_lists_every_command_with_a_description():
    from entrypoints.cli import COMMANDS

    result, _ = tripwire("--help")
    assert result.returncode == 0, result.stderr
    for name, command in COMMANDS.items():
        assert any(line.split(None, 1) == [name, command.help] for line in
                   (raw.strip() for raw in result.stdout.splitlines())), (name, result.stdout)
    assert {"generate", "ingest", "train", "serve", "demo"} <= set(COMMANDS)


def test_no_arguments_prints_the_commands_and_fails():
    result, _ = tripwire()
    assert result.returncode == 2
    assert "generate" in result.stderr and "serve" in result.stderr


def test_a_bad_config_value_is_one_line_naming_the_field(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("run_name: t\nfit:\n  epochs: two\n")
    result, _ = tripwire("train", "--config", str(config))
    assert_one_line_error(result, "train", str(config), "fit.epochs", "'two'")


def test_a_misspelt_component_argument_fails_at_load_time(tmp_path):
    config = tmp_path / "train.yaml"
    config.write_text("model:\n  fusion: {name: attention, args: {d_modle: 32}}\n")
    result, _ = tripwire("train", "--config", str(config))
    assert_one_line_error(result, "train", "model.fusion.args.d_modle: unexpected argument", "d_model")


def test_a_missing_config_file(tmp_path):
    result, _ = tripwire("train", "--config", str(tmp_path / "nope.yaml"))
    assert_one_line_error(result, "train", "nope.yaml", "not found")


def test_serve_with_a_wrong_checkpoint_fails_fast_without_starting_ray(tmp_path):
    result, elapsed = tripwire("serve", "--checkpoint", str(tmp_path / "no-model"), timeout=60)
    assert_one_line_error(result, "serve", str(tmp_path / "no-model"), "not a Tripwire checkpoint")
    assert not any(marker in result.stdout + result.stderr for marker in RAY_START_UP)
    assert elapsed < 30, elapsed  # Ray and Serve start in tens of seconds here; reading a manifest does not


def test_serve_with_a_broken_manifest_names_the_field(tmp_path):
    (tmp_path / "manifest.json").write_text(json.dumps({"format": "tripwire-checkpoint/1", "created": "now"}))
    result, _ = tripwire("serve", "--checkpoint", str(tmp_path), timeout=60)
    assert_one_line_error(result, "serve", "manifest.json: taxonomy: required field is missing")


@pytest.mark.parametrize("args, fragment", [
    (["serve"], "--checkpoint"),
    (["serve", "--checkpoint", "x", "--port", "99999"], "not a TCP port"),
    (["train", "--config", "x.yaml", "--epochs", "3"], "unrecognized arguments"),
])
def test_usage_errors_are_one_line_too(args, fragment):
    result, _ = tripwire(*args)
    assert_one_line_error(result, args[0], fragment)


def test_an_unknown_command():
    result, _ = tripwire("bogus")
    assert result.returncode == 2 and "invalid choice" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluation_commands_fail_fast_naming_the_problem(cli, tmp_path):
    catalogue = str(tmp_path / "catalogue.yaml")
    result = cli("evaluate", "--checkpoint", "/tmp", "--golden", "nope", "--out", str(tmp_path / "o"),
                         "--catalogue", catalogue)
    assert_one_line_error(result, "evaluate", "golden set 'nope' is not registered")
    (tmp_path / "gate.yaml").write_text("bars:\n  - {name: b, metric: accuracy, max_drop: 0.1}\n")
    result = cli("compare", "--baseline", "/tmp", "--candidate", "/tmp", "--golden", "x", "--out",
                         str(tmp_path / "c"), "--gate", str(tmp_path / "gate.yaml"), "--catalogue", catalogue)
    assert_one_line_error(result, "compare", "bars.b.metric: 'accuracy' is not one of")
    result = cli("thresholds", "--checkpoint", "/tmp", "--golden", "x", "--out", str(tmp_path / "p.yaml"),
                         "--target", "restrict:accuracy=0.9")
    assert_one_line_error(result, "thresholds", "metric 'accuracy' is not one of")
    assert not any(marker in result.stdout + result.stderr for marker in RAY_START_UP)


def test_review_commands_work_and_fail_fast_naming_the_problem(cli, tmp_path):
    store = str(tmp_path / "review.db")
    result = cli("queue", "add-reviewer", "--name", "ana", "--role", "admin", "--store", store)
    assert result.returncode == 0 and "admin ana: token " in result.stdout
    result = cli("queue", "status", "--store", store)
    assert result.returncode == 0 and "0 pending" in result.stdout and "1 reviewer(s)" in result.stdout
    result = cli("queue", "check", "--store", store)
    assert result.returncode == 0 and "consistent" in result.stdout
    result = cli("queue", "add-reviewer", "--name", "bad name", "--store", store)
    assert_one_line_error(result, "queue", "name: 'bad name' must be letters")
    result = cli("queue", "sample", "--store", store)
    assert_one_line_error(result, "queue", "--scan is required")
    result = cli("queue", "status", "--store", "mysql://db/x")
    assert_one_line_error(result, "queue", "neither a SQLite path nor a postgresql:// URL")
    result = cli("feedback", "export", "--store", store, "--out", str(tmp_path / "fb"),
                         "--catalogue", str(tmp_path / "none.yaml"))
    assert result.returncode == 0 and "0 item(s)" in result.stdout
    (tmp_path / "loop.yaml").write_text((REPO / "pipelines/configs/loop.yaml").read_text().replace("reviews: stop",
                                                                                                   "reviews: later"))
    result = cli("loop", "--config", str(tmp_path / "loop.yaml"))
    assert_one_line_error(result, "loop", "reviews: 'later' must be one of")
    result = cli("loop", "--config", str(REPO / "pipelines/configs/loop.yaml"), "--round", "r/1")
    assert_one_line_error(result, "loop", "round: 'r/1'")
    assert not any(marker in result.stdout + result.stderr for marker in RAY_START_UP)


def test_audit_verify_names_the_first_bad_record(cli, tmp_path):
    import sqlite3

    from tripwire.compliance.decision_log import DecisionLog

    store = str(tmp_path / "log.db")
    log = DecisionLog(store)
    log.append([("decision", f"p{i}", {"action": "restrict", "i": i}) for i in range(4)])
    seq, digest = log.head()
    log.close()
    result = cli("audit", "verify", "--store", store, "--head", f"{seq}:{digest}")
    assert result.returncode == 0 and f"OK, 4 record(s); head 4:{digest}" in result.stdout
    with sqlite3.connect(store) as conn:
        conn.execute("UPDATE decision_log SET body = ? WHERE seq = 3", ('{"action":"allow","i":2}',))
    result = cli("audit", "verify", "--store", store)
    assert result.returncode == 1 and "FAILED at record 3: its content does not match its hash" in result.stdout
    result = cli("audit", "verify", "--store", store, "--head", "nope")
    assert_one_line_error(result, "audit", "--head: 'nope' must be SEQ:SHA256")


def test_audit_checkpoint_prune_and_the_compliance_commands_from_the_command_line(cli, tmp_path):
    from tripwire.compliance.records import DECISION, decision_body
    from tripwire.moderation.result import ModerationResult
    from tripwire.compliance.decision_log import DecisionLog

    store, key = str(tmp_path / "log.db"), tmp_path / "key"
    key.write_bytes(b"k3y")
    log = DecisionLog(store)
    allowed = ModerationResult.from_json(
        {"id": "x", "scores": {"hate": 0.1}, "flagged": [],
         "decision": {"action": "allow", "reasons": [], "flagged": [], "policy_version": "p", "market": None},
         "attribution": {}, "evidence": {}, "modalities": ["text"], "model_version": "m", "policy_version": "p"})
    at = 1764547200.0  # 2025-12-01
    log.append([(DECISION, f"p{i}", decision_body(allowed, source="serving", policy=None, detected_at=at,
                                                  decided_at=at, content_hash="0" * 64, content_types=["text"]))
                for i in range(3)])
    log.close()
    result = cli("audit", "checkpoint", "--store", store)
    assert_one_line_error(result, "audit", "a signing key is needed")
    result = cli("audit", "prune", "--store", store, "--retention-days", "0.000001")
    assert_one_line_error(result, "audit", "prune: no checkpoint covers the records to prune")
    result = cli("audit", "checkpoint", "--store", store, "--key-file", str(key))
    assert result.returncode == 0 and "checkpoint 3:" in result.stdout
    result = cli("audit", "verify", "--store", store, "--key-file", str(key))
    assert result.returncode == 0 and "OK, 3 record(s)" in result.stdout
    (tmp_path / "other").write_bytes(b"not the key")
    result = cli("audit", "verify", "--store", store, "--key-file", str(tmp_path / "other"))
    assert result.returncode == 1 and "signature is not the key's" in result.stdout
    result = cli("compliance", "sor", "--store", store, "--out", str(tmp_path / "sor"))
    assert_one_line_error(result, "compliance", "--from YYYY-MM-DD and --to YYYY-MM-DD are required")
    result = cli("compliance", "report", "--store", store, "--from", "2026-11-02", "--to", "2026-11-01",
                         "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "compliance", "--to 2026-11-01 is before --from 2026-11-02")
    result = cli("compliance", "appeal", "--store", store, "--puid", "p1", "--statement", "unfair")
    assert_one_line_error(result, "compliance", "only restrictive decisions")
    result = cli("compliance", "report", "--store", store, "--from", "2025-12-01", "--to", "2025-12-31",
                         "--out", str(tmp_path / "r"))
    assert result.returncode == 0 and (tmp_path / "r" / "index.html").exists(), result.stderr
    assert json.loads((tmp_path / "r" / "report.json").read_text())["decisions"] == 3


def test_audit_reads_a_parquet_scan_log_and_compliance_wants_the_database(cli, tmp_path):
    from tripwire.compliance.parquet_log import ParquetDecisionLog

    url = f"file://{tmp_path / 'scan-log'}"
    ParquetDecisionLog(url).append([("decision", f"scan-x-{i}", {"action": "block"}) for i in range(3)])
    result = cli("audit", "verify", "--store", url)
    assert result.returncode == 0 and "OK, 3 record(s)" in result.stdout
    result = cli("audit", "checkpoint", "--store", url)
    assert_one_line_error(result, "audit", "a Parquet log has no signed checkpoints")
    result = cli("compliance", "report", "--store", url, "--from", "2026-11-01", "--to", "2026-11-30",
                         "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "compliance", "is a Parquet log", "--scan-log")
