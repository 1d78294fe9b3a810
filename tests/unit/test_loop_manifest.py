"""The loop's training manifest: seed rows with their media made absolute (the manifest is written
elsewhere), feedback rows winning on a shared id, unparsable seed lines passed on for training to
quarantine; and the loop config's relative paths made absolute."""

from __future__ import annotations

import json
import os

from pipelines.loop import combined_manifest, resolved
from tripwire.common.config import from_dict, read_yaml
from tripwire.review.loop import LoopConfig
from tripwire.data.sample import Sample, write_manifest

from helpers import REPO


def test_seed_media_resolve_from_the_combined_manifest_wherever_it_is(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus" / "image").mkdir(parents=True)
    (tmp_path / "corpus" / "image" / "a.png").write_bytes(b"png")
    seed = tmp_path / "corpus" / "seed.jsonl"
    seed.write_text(json.dumps({"id": "a", "image": "image/a.png", "labels": {"hate": 0}}) + "\n"
                    + json.dumps({"id": "b", "text": "old label", "labels": {"hate": 0}}) + "\n{not json\n")
    feedback = tmp_path / "feedback.jsonl"
    write_manifest([Sample.from_row({"id": "b", "text": "reviewed", "labels": {"hate": 1}})], str(feedback))
    out, seed_rows, feedback_rows = combined_manifest("corpus/seed.jsonl", str(feedback), tmp_path / "work" / "m.jsonl")
    lines = open(out).read().splitlines()
    assert (seed_rows, feedback_rows) == (2, 1) and "{not json" in lines
    rows = {r["id"]: r for r in (json.loads(line) for line in lines if line.startswith("{\""))}
    assert os.path.isabs(rows["a"]["image"]) and os.path.exists(rows["a"]["image"])
    assert rows["b"]["text"] == "reviewed" and rows["b"]["labels"]["hate"] == 1


def test_relative_paths_in_the_loop_config_become_absolute(tmp_path, monkeypatch):
    cfg = from_dict(LoopConfig, {**read_yaml(REPO / "pipelines/configs/loop.yaml"),
                                 "store": "postgresql://tw@db/reviews"}, "loop")
    monkeypatch.chdir(tmp_path)
    absolute = resolved(cfg)
    assert absolute.pool_manifest == str(tmp_path / "data/catalogue/manifest.jsonl")
    assert absolute.work_dir == str(tmp_path / "runs/loop") and absolute.store == "postgresql://tw@db/reviews"
