"""Checkpoint round trip (bit-identical scores), per-component loading, fsspec URIs; metrics."""

from __future__ import annotations

import json

import fsspec
import numpy as np
import pytest
import torch

from tripwire.model.checkpoint import (CheckpointError, CheckpointManifest, ComponentSpec, load_encoders, load_fusion,
                                 load_model, save_checkpoint)
from tripwire.common.config import ConfigError
from tripwire.evaluation.classification import average_precision, category_metrics, roc_auc
from tripwire.model import build_model
from tripwire.policy import Taxonomy
from tripwire.data.preprocess import Preprocessor, batch_to_model_inputs
from tripwire.data.sample import read_manifest


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
    a_file = tmp_path / "weights.bin"
    a_file.write_bytes(b"\0")
    with pytest.raises(FileNotFoundError, match=f"{a_file}: not a Tripwire checkpoint"):
        CheckpointManifest.read(str(a_file))


def test_manifest_is_parsed_into_typed_fields(saved):
    out, _, _ = saved
    manifest = CheckpointManifest.read(str(out))
    text = manifest.encoders["text"]
    assert isinstance(text, ComponentSpec) and text.file == "encoder-text.safetensors" and text.out_dim == 32
    assert manifest.fusion.file == "fusion.safetensors" and manifest.fusion.out_dim is None
    assert manifest.training.run_name == "t" and manifest.version.startswith("t@")
    assert manifest.policy_version == "p1" and manifest.metrics == {"macro": {"roc_auc": 0.5}}
    assert manifest.spec.preprocessing.text.tokenizer == "tokenizer"  # as saved; preprocessing() makes it local
    assert manifest.preprocessing().text.tokenizer == str(out / "tokenizer")
    # The raw JSON stays available while serving code moves to the typed fields.
    assert manifest.data == json.loads((out / "manifest.json").read_text())
    manifest.check_files()


def broken_copy(saved, tmp_path, edit):
    """A copy of the saved checkpoint whose manifest ``edit`` changed in place."""
    import shutil

    out, _, _ = saved
    copy = tmp_path / "model"
    shutil.copytree(out, copy)
    data = json.loads((copy / "manifest.json").read_text())
    edit(data)
    (copy / "manifest.json").write_text(json.dumps(data))
    return copy


@pytest.mark.parametrize("edit, message", [
    (lambda d: d["encoders"]["text"].pop("file"), "encoders.text.file: required field is missing"),
    (lambda d: d["encoders"]["audio"].update(out_dim="big"), "encoders.audio.out_dim: expected an integer, got 'big'"),
    (lambda d: d["fusion"].update(name="mlp"), "fusion.name: unknown fusion head 'mlp'"),
    (lambda d: d["encoders"].pop("image"), "encoders.video: 'frame_pool' needs the image encoder"),
    (lambda d: d["preprocessing"]["image"].update(size="big"), "preprocessing.image.size: expected an integer"),
    (lambda d: d.pop("taxonomy"), "taxonomy: required field is missing"),
    (lambda d: d.update(format="other/2"), "unsupported checkpoint format 'other/2'"),
], ids=["missing-file", "out-dim-type", "fusion-name", "frame-encoder", "preprocessing", "taxonomy", "format"])
def test_a_bad_manifest_names_the_file_and_field(saved, tmp_path, edit, message):
    copy = broken_copy(saved, tmp_path, edit)
    with pytest.raises(CheckpointError) as raised:
        CheckpointManifest.read(str(copy))
    assert str(raised.value).startswith(f"{copy}/manifest.json: {message}"), str(raised.value)
    assert isinstance(raised.value, ConfigError)


def test_a_manifest_that_is_not_json(tmp_path):
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(CheckpointError, match=f"{tmp_path}/manifest.json: cannot read a JSON manifest"):
        CheckpointManifest.read(str(tmp_path))


def test_check_files_names_a_missing_component(saved, tmp_path):
    copy = broken_copy(saved, tmp_path, lambda d: None)
    (copy / "encoder-audio.safetensors").unlink()
    manifest = CheckpointManifest.read(str(copy))  # the manifest itself is fine
    with pytest.raises(CheckpointError, match=r"encoders\.audio\.file: 'encoder-audio\.safetensors' is not in"):
        manifest.check_files()


def test_save_rejects_unknown_training_facts(tmp_path, tiny_model_config):
    taxonomy = Taxonomy.load()
    model = build_model(tiny_model_config, taxonomy.names)
    pre = Preprocessor(tiny_model_config.preprocessing)
    with pytest.raises(CheckpointError, match=r"training: unknown field\(s\) \['epochs'\]"):
        save_checkpoint(model, tmp_path / "m", tiny_model_config.preprocessing, taxonomy, tokenizer=pre.tokenizer,
                        training={"epochs": 3})


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
