"""The sample contract, manifests (JSONL and Parquet) and the synthetic corpus generator."""

from __future__ import annotations

import hashlib
import json

import pytest

from tripwire.policy import Taxonomy
from tripwire.data.sample import Sample, read_manifest, read_media, to_records, uri_allowed, write_manifest
from tripwire.data.synthetic import CorpusSpec, generate_corpus


@pytest.mark.parametrize("row, message", [
    ({"text": "hi"}, "id: missing"),
    ({"id": "a", "text": 3}, "text: expected a string"),
    ({"id": "a", "image": 3.5}, "image: expected a URI"),
    ({"id": "a", "labels": {"hate": 2}}, "labels.hate"),
    ({"id": "a", "colour": "red"}, "unknown field"),
])
def test_bad_rows_name_the_field(row, message):
    with pytest.raises(ValueError, match=message):
        Sample.from_row(row)


def test_labels_missing_means_unknown():
    sample = Sample.from_row({"id": 1, "text": "x", "labels": {"hate": 1, "sexual": None}})
    assert sample.id == "1" and sample.labels == {"hate": 1} and sample.modalities == ["text"]


@pytest.mark.parametrize("name", ["m.jsonl", "m.parquet"])
def test_manifest_round_trip(tmp_path, name):
    samples = [Sample(id="a", text="hello", image="img/a.png", labels={"hate": 0}, meta={"market": "DE"}),
               Sample(id="b", audio=b"RIFF", labels={}, meta={})]
    write_manifest(samples, str(tmp_path / name))
    back = list(read_manifest(str(tmp_path / name)))
    assert [s.id for s in back] == ["a", "b"] and back[0].to_row() == samples[0].to_row()
    # Inline bytes survive (JSONL carries them as data: URIs).
    assert read_media("audio", back[1].audio, None) == b"RIFF"


def test_records_keep_inline_bytes_and_bad_lines():
    records = to_records([{"id": "x", "image": b"\x89PNG", "labels": "{}", "meta": "{}"}])
    row = json.loads(records["record"][0])
    assert row["image"].startswith("data:") and records["id"] == ["x"]
    assert to_records(["{not json"]) == {"id": [""], "record": ["{not json"]}


def _tree_digest(root):
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        if path.is_file():
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_generator_is_deterministic(tmp_path):
    spec = CorpusSpec(num_items=30, seed=5, image_size=32)
    generate_corpus(tmp_path / "a", spec)
    generate_corpus(tmp_path / "b", spec)
    assert _tree_digest(tmp_path / "a") == _tree_digest(tmp_path / "b")


def test_generator_covers_modalities_categories_and_combinations(tiny_corpus):
    samples = list(read_manifest(str(tiny_corpus)))
    taxonomy = Taxonomy.load()
    assert {m for s in samples for m in s.modalities} == {"text", "image", "audio", "video"}
    assert all(set(s.labels) == set(taxonomy.names) for s in samples)
    formats = {s.image.rsplit(".", 1)[1] for s in samples if s.image} | {s.video.rsplit(".", 1)[1] for s in samples if s.video}
    assert {"png", "jpg", "mp4"} <= formats


def test_full_size_corpus_has_every_category_and_combination_items(tmp_path):
    # Labels only: the generator's label logic is cheap; this checks the default spec's balance.
    manifest = generate_corpus(tmp_path, CorpusSpec(num_items=400, seed=7, image_size=16, video_frames=4))
    samples = list(read_manifest(str(manifest)))
    positives = {c: sum(s.labels[c] for s in samples) for c in Taxonomy.load().names}
    assert min(positives.values()) >= 10, positives
    from tripwire.data.synthetic import COMBINATION_PHRASES

    combos = [s for s in samples if s.text and any(p in s.text for p in COMBINATION_PHRASES) and s.labels["harassment/threatening"]]
    assert combos, "expected combination-only items"


@pytest.mark.parametrize("uri, allowed", [
    ("file:///srv/media/cat.png", True),
    ("s3://bucket/media/a/b.png", True),
    ("file:///srv/media/../secrets.txt", False),          # resolves outside the prefix
    ("file:///srv/media/%2e%2e/secrets.txt", False),      # the same, percent-encoded
    ("file:///srv/media/./cat.png", False),
    ("file:///srv/other/cat.png", False),
    ("s3://other-bucket/media/x.png", False),
    ("/srv/media/cat.png", False),                        # not a URI
    ("file:///srv/media/a::http://example.com/x", False), # fsspec chaining would read the second URL
])
def test_uris_are_allowed_only_under_a_listed_prefix_without_dot_segments(uri, allowed):
    assert uri_allowed(uri, ["file:///srv/media/", "s3://bucket/media/"]) is allowed
    assert uri_allowed(uri, []) is False  # nothing listed: nothing allowed
