"""Helpers shared by the tests (fixtures live in conftest.py files)."""

from __future__ import annotations

import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

# Integration test files that need no Ray: under ``make test`` (two xdist workers, tests/conftest.py) they run
# beside the tests on the session's Ray, not after them.
WITHOUT_RAY = frozenset({"test_review_browser.py", "test_review_reliability.py",
                         "test_transparency_browser.py"})
# Integration test files that start a Ray cluster of their own and read the session's model from disk
# (``session_model`` in tests/integration/conftest.py): under ``make test`` they run on the other worker too,
# after its other tests, while the session's Ray goes on with its own.
OWN_CLUSTER = frozenset({"test_cluster.py"})


def result_json(item_id: str, scores: dict[str, float], driven_by: str = "text", market: str | None = None,
                model_version: str = "core@7") -> dict:
    """A complete moderation result's JSON for ``item_id``: the default policy decides on ``scores`` (every
    other category of the default taxonomy scores 0.02)."""
    from tripwire.policy import Policy, Taxonomy

    full = {c: float(scores.get(c, 0.02)) for c in Taxonomy.load().names}
    decision = Policy.load().decide(full, market).to_dict()
    return {"id": item_id, "scores": full, "flagged": decision["flagged"], "decision": decision,
            "attribution": {c: {"driven_by": driven_by, "contributions": {driven_by: full[c]}} for c in full},
            "evidence": {}, "modalities": [driven_by], "model_version": model_version,
            "policy_version": decision["policy_version"]}


def resolved_item(item_id: str, action: str, labels: dict[str, int], resolved_at: float, created_at: float = 0.0,
                  source: str = "serving", resolved_by: str = "alice"):
    """A review item the reviewers resolved, as the store reads it back (for outcome records)."""
    from tripwire.review.item import QueueItem, StoredItem

    return StoredItem(QueueItem(item_id, source=source), status="resolved", created_at=created_at,
                      resolved_labels=dict(labels), resolved_action=action, resolved_by=resolved_by,
                      resolved_at=resolved_at)


def _integration_file(nodeid: str) -> str | None:
    """The file name of an integration test (by node id); None for any other test."""
    path = nodeid.split("::", 1)[0]
    return path.rsplit("/", 1)[-1] if path.startswith("tests/integration/") else None


def on_session_ray(nodeid: str) -> bool:
    """Whether a test (by node id) runs on the session's Ray: every integration test outside WITHOUT_RAY and
    OWN_CLUSTER."""
    name = _integration_file(nodeid)
    return name is not None and name not in WITHOUT_RAY | OWN_CLUSTER


def on_own_cluster(nodeid: str) -> bool:
    return _integration_file(nodeid) in OWN_CLUSTER


def drawn_card(text: str, rotation: float = 0.0, size: int = 28):
    """``text`` drawn black on a white card (DejaVuSans, no JPEG), always the same: ``(RGB array, what was drawn)``."""
    import random

    import numpy as np

    from tripwire.data.rendered import RenderRecipe, render

    recipe = RenderRecipe(layouts=("card",), sizes=(size,), rotations=(rotation,), jpeg_qualities=(None,),
                          colours=(("#000000", "#ffffff"),), fonts=("DejaVuSans",))
    picture, drawn = render(text, random.Random(0), recipe, [])
    return np.asarray(picture), drawn


def read_words(text: str) -> list[str]:
    """The words of a text, lower case, punctuation dropped: what OCR must give back of a drawn text."""
    return "".join(c.lower() if c.isalnum() else " " for c in text).split()


TINY_TEXT = {"hf_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64}}


def good_samples(cfg):
    """The manifest's valid rows (the fixture appended broken ones, which training quarantined)."""
    from tripwire.data.sample import Sample

    for line in Path(cfg.data.manifest).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not str(row.get("id", "")).startswith("bad-"):
            yield Sample.from_row(row)


def one_sample_per_mix(cfg) -> list:
    """The first good sample of each modality mix in the session corpus (it has at least six mixes)."""
    samples, mixes = [], set()
    for sample in good_samples(cfg):
        if tuple(sample.modalities) not in mixes:
            mixes.add(tuple(sample.modalities))
            samples.append(sample)
    assert len(mixes) >= 6
    return samples


# One access-log line per call per deployment would bury the test output; errors are still logged.
QUIET_SERVE = {"enable_access_log": False}


def deploy(args: dict) -> None:
    """(Re)deploys the Tripwire app under the name and route the tests call. ``serve.run`` gives every
    deployment a new code version, so all replicas restart; in-place updates need ``serve deploy``."""
    from ray import serve

    from deployments.app import build_app

    serve.run(build_app(args), name="tripwire", route_prefix="/", logging_config=QUIET_SERVE)



def assert_same_result(got, expected, atol: float = 1e-5, where: str = "") -> None:
    """Two complete moderation results of one item agree (:func:`tripwire.moderation.parity.result_differences`);
    an HTTP answer (JSON) is read back with :meth:`ModerationResult.from_json` first."""
    from tripwire.moderation.parity import result_differences
    from tripwire.moderation.result import ModerationResult

    def typed(result):
        return result if isinstance(result, ModerationResult) else ModerationResult.from_json(result)

    differences = result_differences(typed(got), typed(expected), atol)
    assert not differences, f"{where}: {differences}"


def save_tiny_checkpoint(model_config, directory) -> str:
    """An untrained model of ``model_config`` saved as a checkpoint (speed and parity do not need training)."""
    from transformers import AutoTokenizer

    from tripwire.model.checkpoint import save_checkpoint
    from tripwire.model import build_model
    from tripwire.policy import Taxonomy

    taxonomy = Taxonomy.load()
    model = build_model(model_config, taxonomy.names).eval()
    tokenizer = AutoTokenizer.from_pretrained(model_config.preprocessing.text.tokenizer)
    return str(save_checkpoint(model, directory, model_config.preprocessing, taxonomy, tokenizer=tokenizer,
                               training={"run_name": "contract"}, experts=model_config.experts))


def speak(text: str, path, voice: str = "en-us", rate: int = 160, pad_before_s: float = 0.0) -> str:
    """``text`` spoken by espeak-ng into a WAV at ``path`` (optionally after some silence); skips the test where
    espeak-ng is not installed (``make speech-tools``)."""
    import shutil

    import numpy as np
    import pytest
    import soundfile

    from tripwire.data.spoken import ESPEAK_RATE, speak as spoken

    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed (make speech-tools): spoken test audio cannot be made")
    wave = spoken(text, voice, rate, sample_rate=ESPEAK_RATE)
    silence = np.zeros(int(pad_before_s * ESPEAK_RATE), np.float32)
    soundfile.write(str(path), np.concatenate([silence, wave]), ESPEAK_RATE, subtype="PCM_16")
    return str(path)


def serve_deploy(config: dict, path, dashboard: str) -> None:
    """What a platform owner runs: ``serve deploy <config.yaml>`` against the cluster's dashboard."""
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    Path(path).write_text(yaml.safe_dump(config))
    serve_cli = Path(sys.executable).with_name("serve")
    done = subprocess.run([str(serve_cli), "deploy", str(path), "--address", dashboard], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr


def wait_for(predicate, timeout_s: float = 180.0):
    import time

    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"not true within {timeout_s} s")


def scan_command(model_dir: str, manifest: Path, out: Path, config: Path) -> list[str]:
    """``tripwire scan`` as a subprocess command line (run by the tests as a user or ``ray job submit`` would)."""
    import sys

    return [sys.executable, "-m", "entrypoints.cli", "scan", "--checkpoint", model_dir, "--manifest", str(manifest),
            "--out", str(out), "--config", str(config)]


def epochs_in(run_dir: Path) -> list[dict]:
    """The training record of every checkpoint a run wrote, by epoch."""
    records = [json.loads(p.read_text()) for p in run_dir.glob("checkpoint_*/manifest.json")]
    return sorted(({**r["training"], "metrics": r["metrics"]} for r in records), key=lambda r: r["epoch"])


def free_session_app(serve_endpoint) -> None:
    """Deletes the app under the session app's name, whatever deployed it last (the default, or a test that
    replaced it with another policy or store), so its replicas give their CPUs back."""
    from ray import serve

    if "tripwire" in serve.status().applications:
        serve.delete("tripwire")
    serve_endpoint["deployed"] = False
