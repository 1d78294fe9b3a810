"""The synthetic corpus's held-out variants and everyday benign content: validation items are scored on
phrasings, colours, shapes and tones that training never shows, and ordinary language is common in it."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from tripwire.data.sample import read_manifest
from tripwire.data.splits import split_columns
from tripwire.data.synthetic import (COLOUR_FAMILIES, COMBINATION_PHRASES, HELDOUT_POOL, HELDOUT_SPLIT, PHRASES,
                                     SIGNATURES, TONE_VARIANTS, TRAIN_POOL, CorpusSpec, benign_text, variant_tables,
                                     generate_corpus, variant_pools)

SMALL = {"image_size": 32, "video_frames": 4, "audio_seconds": 0.25}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    spec = CorpusSpec(num_items=240, seed=5, heldout_fraction=0.4, **SMALL)
    root = tmp_path_factory.mktemp("heldout")
    return root, spec, list(read_manifest(str(generate_corpus(root, spec))))


def test_train_and_heldout_pools_are_disjoint_and_cover_every_variant():
    pools = variant_pools(7)
    tables = variant_tables()
    assert set(pools) == set(tables)
    for key, values in tables.items():
        train, held = pools[key][TRAIN_POOL], pools[key][HELDOUT_POOL]
        assert train and held, key
        assert not set(train) & set(held), key
        assert sorted(map(str, train + held)) == sorted(map(str, values)), key
    assert variant_pools(7) == pools  # deterministic from the seed
    other = variant_pools(8)
    assert any(other[key][HELDOUT_POOL] != pools[key][HELDOUT_POOL] for key in pools)


def test_benign_texts_are_varied_everyday_language():
    rng = np.random.default_rng(0)
    texts = [benign_text(rng) for _ in range(3000)]
    assert len(set(texts)) > 1500
    lengths = [len(t.split()) for t in texts]
    assert min(lengths) <= 2 and max(lengths) >= 7  # from "hi!" to whole everyday sentences
    assert sum(n <= 3 for n in lengths) > 150  # short greetings are common, not exotic
    assert sum(t.startswith("what a ") for t in texts) > 100  # exclamations as well as insults start so
    assert sum(t.startswith("you are ") for t in texts) > 100  # second person is not a harassment cue
    harmful = [p for phrases in PHRASES.values() for p in phrases] + COMBINATION_PHRASES
    assert not any(p in t for t in texts for p in harmful)


def _contains(text: str, phrases) -> list[str]:
    return [p for p in phrases if p in (text or "")]


def test_the_heldout_split_uses_only_heldout_variants(corpus):
    root, spec, samples = corpus
    pools = variant_pools(spec.seed)
    splits = {s.meta["split"] for s in samples}
    assert splits == {"train", HELDOUT_SPLIT}
    checked = {"text": 0, "image": 0, "tone": 0, "combination": 0}
    for sample in samples:
        pool = HELDOUT_POOL if sample.meta["split"] == HELDOUT_SPLIT else TRAIN_POOL
        other = TRAIN_POOL if pool == HELDOUT_POOL else HELDOUT_POOL
        # No phrase of the other pool, of any category, appears in an item's text.
        for category in SIGNATURES:
            assert not _contains(sample.text, pools[("phrase", category)][other]), (sample.id, sample.text)
        assert not _contains(sample.text, pools[("combination_phrase", "combination")][other]), sample.text
        carrier = sample.meta.get("carrier")
        positives = [c for c in SIGNATURES if sample.labels.get(c)]
        category = max(positives, key=lambda c: "/" in c) if carrier and carrier != "combination" else None  # a/b: b
        if carrier == "text":
            assert _contains(sample.text, pools[("phrase", category)][pool]), (sample.id, sample.text)
            checked["text"] += 1
        if carrier == "combination":
            assert _contains(sample.text, pools[("combination_phrase", "combination")][pool]), sample.text
            checked["combination"] += 1
        if carrier in ("audio", "soundtrack"):
            assert int(sample.meta["variant"].removeprefix("tone")) in pools[("tone", category)][pool]
            checked["tone"] += 1
        if carrier == "image" and sample.image.endswith(".png"):
            # PNG keeps the exact signature colour: one of the pool's, none of the other pool's.
            pixels = np.asarray(Image.open(root / sample.image).convert("RGB")).reshape(-1, 3)
            counts = {colour: int((pixels == colour).all(axis=1).sum()) for colour in COLOUR_FAMILIES[category]}
            assert any(counts[c] > 3 for c in pools[("colour", category)][pool]), (sample.id, counts)
            assert not any(counts[c] for c in pools[("colour", category)][other]), (sample.id, counts)
            shape = sample.meta["variant"].split("/")[0]
            assert any(shape in pools[key][pool] for key in pools if key[0] == "shape"), sample.meta
            checked["image"] += 1
    assert min(checked.values()) >= 3, checked


def test_the_training_job_keeps_the_corpus_split(corpus):
    import json

    _, _, samples = corpus
    records = [json.dumps(s.to_row()) for s in samples]
    columns = split_columns(records, list(SIGNATURES), None, split_by="meta.split")
    assert columns["preset"] == [s.meta["split"] for s in samples]
    assert set(split_columns(records, list(SIGNATURES), None)["preset"]) == {""}  # not asked: no preset


def test_every_tone_variant_is_playable():
    from tripwire.data.synthetic import make_audio

    for category in SIGNATURES:
        for variant in range(len(TONE_VARIANTS[category])):
            wave = make_audio(np.random.default_rng(0), 16000, 0.25, category, variant)
            assert wave.dtype == np.float32 and np.isfinite(wave).all() and np.abs(wave).max() <= 0.9 + 1e-6


def test_rows_naming_their_split_keep_it_and_count_for_the_class_weights():
    from tripwire.training.job import assign_rows

    def row(i, preset, label):
        return {"id": f"r{i}", "group": f"id:r{i}", "labels": [label, 0], "parsed": True, "preset": preset}

    named = [row(i, "val" if i % 4 == 0 else "train", int(i % 2 == 0)) for i in range(40)]
    free = [row(100 + i, "", int(i % 3 == 0)) for i in range(60)]
    unreadable = [{"id": "", "group": "", "labels": [-1, -1], "parsed": False, "preset": ""}]
    assignment, train_labels = assign_rows(named + free + unreadable, 2, {"train": 0.5, "val": 0.5, "test": 0.0}, 0)
    assert all(assignment[r["id"]] == r["preset"] for r in named)
    assert {assignment[r["id"]] for r in free} == {"train", "val"}  # the rest by the fractions
    expected = [r["labels"] for r in named + free if assignment[r["id"]] == "train"]
    assert train_labels.shape == (len(expected), 2) and train_labels.sum() == np.asarray(expected).sum()
    assert train_labels.shape[0] > 30  # named training rows count for pos_weight too


def test_split_by_names_a_meta_field():
    from tripwire.common.config import ConfigError
    from tripwire.training.config import DataConfig

    assert DataConfig(split_by="meta.split").split_by == "meta.split"
    for bad in ("split", "meta.", "text"):
        with pytest.raises(ConfigError, match="split_by"):
            DataConfig(split_by=bad)
