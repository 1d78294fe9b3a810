"""Collated batches carry columns for the model's modalities only, and feed the model as they are."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from helpers import TINY_TEXT
from tripwire.data.preprocess import Preprocessor, batch_to_model_inputs
from tripwire.data.sample import Sample, read_manifest

TEXT_COLUMNS = {"text_input_ids", "text_attention_mask", "present_text"}


def bytes_per_row(batch: dict[str, np.ndarray]) -> float:
    return sum(v.nbytes for v in batch.values()) / len(next(iter(batch.values())))


def text_samples(n: int) -> list[Sample]:
    return [Sample(id=f"t{i}", text=f"post number {i}, " * (i % 5 + 1)) for i in range(n)]


@pytest.fixture(scope="module")
def text_model_config(tiny_model_config):
    from tripwire.model.safety_model import ComponentConfig, ModelConfig

    return ModelConfig(encoders={"text": ComponentConfig("hf_text", TINY_TEXT)},
                       fusion=ComponentConfig("attention", {"d_model": 16, "num_heads": 2, "dropout": 0.0}),
                       preprocessing=tiny_model_config.preprocessing)


def test_text_only_batch_has_only_text_columns_and_is_small(tiny_model_config):
    config = dataclasses.replace(tiny_model_config.preprocessing,
                                 text=dataclasses.replace(tiny_model_config.preprocessing.text, max_length=32))
    pre = Preprocessor(config, modalities=["text"])
    batch = pre.collate([pre.sample(s) for s in text_samples(8)])
    assert set(batch) == TEXT_COLUMNS
    assert set(pre.empty_item()) == TEXT_COLUMNS - {"present_text"}
    assert batch["present_text"].all()
    # Two int64 columns of 32 tokens and one flag: 513 bytes, where the four-modality row was ~100 KB.
    assert bytes_per_row(batch) == 2 * 32 * 8 + 1 < 1024
    full = Preprocessor(config)
    assert bytes_per_row(full.collate([full.sample(s) for s in text_samples(8)])) > 50 * bytes_per_row(batch)


def test_rows_lacking_a_modality_get_zero_placeholders(tiny_model_config):
    pre = Preprocessor(tiny_model_config.preprocessing, modalities=["text", "image"])
    image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    items = [pre.sample(Sample(id="a", text="hello")), {"image": pre.image(image)}]
    batch = pre.collate(items)
    assert set(batch) == {"text_input_ids", "text_attention_mask", "image", "present_text", "present_image"}
    assert batch["present_text"].tolist() == [True, False] and batch["present_image"].tolist() == [False, True]
    assert not batch["image"][0].any() and not batch["text_input_ids"][1].any()
    assert batch["image"].shape == (2, 3, 32, 32)


def test_no_items_collate_to_zero_row_columns(tiny_model_config):
    pre = Preprocessor(tiny_model_config.preprocessing, modalities=["text", "audio"])
    batch = pre.collate([])
    assert set(batch) == {"text_input_ids", "text_attention_mask", "audio", "present_text", "present_audio"}
    assert batch["audio"].shape == (0, 1, 16, 101) and batch["present_audio"].shape == (0,)


def test_full_batch_round_trips_through_model_inputs(tiny_model_config, tiny_corpus):
    from tripwire.model.safety_model import build_model

    pre = Preprocessor(tiny_model_config.preprocessing)
    samples = list(read_manifest(str(tiny_corpus)))[:12]
    batch = pre.collate([pre.sample(s, str(tiny_corpus.parent)) for s in samples])
    inputs, present = batch_to_model_inputs(batch)
    assert set(inputs) == set(present) == {"text", "image", "audio", "video"}
    assert torch.equal(inputs["text"]["input_ids"], torch.as_tensor(batch["text_input_ids"]))
    for modality in ("image", "audio", "video"):
        assert torch.equal(inputs[modality], torch.as_tensor(batch[modality]))
        assert present[modality].dtype == torch.bool
        assert present[modality].tolist() == batch[f"present_{modality}"].tolist()
    # Torch batches (as Ray Data hands them out) give the same inputs.
    torch_inputs, torch_present = batch_to_model_inputs({k: torch.as_tensor(v) for k, v in batch.items()})
    assert all(torch.equal(present[m], torch_present[m]) for m in present)
    assert torch.equal(torch_inputs["video"], inputs["video"])
    model = build_model(tiny_model_config, ["a", "b"]).eval()
    with torch.no_grad():
        assert torch.equal(model(inputs, present), model(torch_inputs, torch_present))


def test_text_only_model_trains_on_text_only_batches(text_model_config):
    from tripwire.model.safety_model import build_model

    torch.manual_seed(0)
    model = build_model(text_model_config, ["a", "b"])
    pre = Preprocessor(text_model_config.preprocessing, modalities=model.modalities)
    batch = pre.collate([pre.sample(s) for s in text_samples(6)])
    inputs, present = batch_to_model_inputs(batch)
    assert set(inputs) == set(present) == {"text"}
    logits = model(inputs, present)
    assert logits.shape == (6, 2)
    logits.sum().backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoders["text"].parameters())


def test_a_scans_rows_carry_only_the_media_they_have(tiny_model_config, tiny_corpus):
    """The scan's hop to its model actors: a text row carries no image, audio or video of zeros, and every row comes
    back as the item it was prepared as (the same arrays, bit for bit)."""
    from tripwire.scan.stages import rows_from_batch, scan_columns

    pre = Preprocessor(tiny_model_config.preprocessing)
    samples = list(read_manifest(str(tiny_corpus)))[:24]
    items = [pre.sample(s, str(tiny_corpus.parent)) for s in samples]
    columns = scan_columns(pre, items)
    collated = pre.collate(items)
    for modality in ("image", "audio", "video"):
        has = columns[f"present_{modality}"]
        assert has.tolist() == collated[f"present_{modality}"].tolist() and 0 < has.sum() < len(items)
        assert all(columns[modality][i].size == 0 and columns[modality][i].ndim == collated[modality].ndim - 1
                   for i in np.flatnonzero(~has))
    ragged = sum(a.nbytes for m in ("image", "audio", "video") for a in columns[m])
    assert ragged < sum(collated[m].nbytes for m in ("image", "audio", "video")) / 2
    back = rows_from_batch({"id": np.asarray([s.id for s in samples], object), **columns,
                            "video_timestamps": np.zeros((len(items), 4))}, ("text", "image", "audio", "video"))
    for item, again in zip(items, back):
        assert set(again) - {"video_timestamps"} == set(item) - {"video_timestamps"}
        for key in set(item) - {"video_timestamps"}:
            if key == "text":
                assert all(np.array_equal(item["text"][k], again["text"][k]) for k in item["text"])
            else:
                assert np.array_equal(item[key], again[key]) and again[key].dtype == item[key].dtype
    assert scan_columns(pre, [])["video"].shape == (0,) and scan_columns(pre, [])["text_input_ids"].shape == (0, 16)
