"""CorpusSpec.signature_weights: a rare category on demand, and the default corpus left byte-identical."""

from __future__ import annotations

import pytest

from tripwire.policy import Taxonomy
from tripwire.data.sample import read_manifest
from tripwire.data.synthetic import SIGNATURES, CorpusSpec, generate_corpus

SMALL = {"image_size": 16, "video_frames": 4, "audio_seconds": 0.25}


def test_weights_make_a_category_rare(tmp_path):
    spec = CorpusSpec(num_items=300, seed=7, signature_weights=(("self_harm", 0.05),), **SMALL)
    samples = list(read_manifest(str(generate_corpus(tmp_path, spec))))
    positives = {c: sum(s.labels[c] for s in samples) for c in Taxonomy.load().names}
    others = [positives[c] for c in SIGNATURES if c != "self_harm"]
    assert positives["self_harm"] * 4 < min(others), positives


def test_default_manifest_unchanged_by_explicit_none(tmp_path):
    # The weighted draw consumes the generator differently, so None must keep the historical draw.
    implicit = generate_corpus(tmp_path / "a", CorpusSpec(num_items=80, seed=3, **SMALL))
    explicit = generate_corpus(tmp_path / "b", CorpusSpec(num_items=80, seed=3, signature_weights=None, **SMALL))
    assert implicit.read_bytes() == explicit.read_bytes()
    weighted = generate_corpus(tmp_path / "c", CorpusSpec(num_items=80, seed=3, signature_weights=(), **SMALL))
    assert weighted.read_bytes() != implicit.read_bytes()  # weights set (even all 1.0): the p= draw


@pytest.mark.parametrize("weights, message", [
    ((("spam", 0.5),), "spam"),
    ((("hate", -1.0),), "signature_weights.hate"),
    (tuple((c, 0.0) for c in SIGNATURES), "positive weight"),
])
def test_bad_weights_name_the_problem(weights, message):
    with pytest.raises(ValueError, match=message):
        CorpusSpec(signature_weights=weights)
