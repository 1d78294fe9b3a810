"""Checkpoint round trip (bit-identical scores), per-component loading, fsspec URIs; metrics."""

from __future__ import annotations

import json

import fsspec
import numpy as np
import pytest
import torch

from tripwire.checkpoint import CheckpointManifest, load_encoders, load_fusion, load_model, save_checkpoint
from tripwire.metrics import average_precision, category_metrics, roc_auc
from tripwire.model import build_model
from tripwire.policy import Taxonomy
from tripwire.preprocess import Preprocessor, batch_to_model_inputs
from tripwire.sample import read_manifest


@pytest.fixture(scope="module")
def saved(tmp_path_factory, tiny_model_config, tiny_corpus):
    taxonomy = Taxonomy.load()
    torch.manual_seed(0)
    model = build_model(tiny_model_config, taxonomy.names).eval()
    pre = Preprocessor(tiny_model_config.preprocessing)
    batch = pre.collate([pre.sample(s, str(tiny_corpus.parent)) for s in read_manifest(str(tiny_corpus))])
    out = tmp_path_factory.mktemp("ckpt") / "model"
    save_checkpoint(model, out, tiny_model_config.preprocessing, taxonomy, tokenizer=pre.tokenizer,
                    policy_version="p1", training={"run_name": "t"}, metrics={"macro": {"roc_auc": 0.5}})
    inputs, present = batch_to_model_inputs(batch)
    with torch.no_grad():
        expected = model(inputs, present)
    return out, batch, expected


def test_round_trip_gives_identical_scores(saved):
    out, batch, expected = saved
    model = load_model(str(out))
    with torch.no_grad():
        assert torch.equal(model(*batch_to_model_inputs(batch)), expected)


def test_layout_is_safetensors_plus_manifest(saved):
    out, _, _ = saved
    files = sorted(p.name for p in out.iterdir())
    assert files == ["encoder-audio.safetensors", "encoder-image.safetensors", "encoder-text.safetensors",
                     "encoder-video.safetensors", "fusion.safetensors", "manifest.json", "tokenizer"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["taxonomy"]["version"] == Taxonomy.load().version and manifest["policy_version"] == "p1"
    assert manifest["preprocessing"]["text"]["tokenizer"] == "tokenizer"
    assert not list(out.rglob("*.pt")) and not list(out.rglob("*.bin")) and not list(out.rglob("*.pkl"))


def test_components_load_on_their_own(saved):
    out, batch, _ = saved
    audio = load_encoders(str(out), ["audio"])
    assert list(audio) == ["audio"]
    fusion = load_fusion(str(out))
    assert fusion.modalities == ["text", "image", "audio", "video"]
    with pytest.raises(KeyError, match="no encoders"):
        load_encoders(str(out), ["smell"])


def test_loads_from_an_fsspec_uri(saved):
    out, batch, expected = saved
    fs = fsspec.filesystem("memory")
    for path in out.rglob("*"):
        if path.is_file():
            with fs.open(f"/ckpt-test/{path.relative_to(out).as_posix()}", "wb") as handle:
                handle.write(path.read_bytes())
    uri = "memory://ckpt-test"
    assert CheckpointManifest.read(uri).modalities == ["text", "image", "audio", "video"]
    model = load_model(uri)
    pre = Preprocessor(CheckpointManifest.read(uri).preprocessing())
    assert pre.tokenizer is not None
    with torch.no_grad():
        assert torch.equal(model(*batch_to_model_inputs(batch)), expected)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a Tripwire checkpoint"):
        CheckpointManifest.read(str(tmp_path))


def test_roc_auc_and_ap_known_values():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert roc_auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # ties count half
    assert np.isnan(roc_auc([1, 1], [0.2, 0.3]))
    assert average_precision([1, 0, 1], [0.9, 0.8, 0.1]) == pytest.approx((1 + 2 / 3) / 2)


def test_category_metrics_skip_unknown_labels():
    labels = np.array([[1, -1], [0, 1], [1, 0], [0, -1]])
    scores = np.array([[0.9, 0.2], [0.1, 0.8], [0.7, 0.3], [0.2, 0.99]])
    metrics = category_metrics(labels, scores, ["a", "b"])
    assert metrics["a"]["roc_auc"] == 1.0 and metrics["b"]["support"] == 2
    assert metrics["macro"]["roc_auc"] == 1.0
