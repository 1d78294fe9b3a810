"""Helpers shared by the tests (fixtures live in conftest.py files)."""

from __future__ import annotations

import base64
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

TINY_TEXT = {"hf_config": {"model_type": "bert", "vocab_size": 30522, "hidden_size": 32, "num_hidden_layers": 1,
                           "num_attention_heads": 2, "intermediate_size": 64, "max_position_embeddings": 64}}


def body_for(sample, base):
    from tripwire.sample import read_media

    body = {"id": sample.id}
    if sample.text is not None:
        body["text"] = sample.text
    for modality in ("image", "audio", "video"):
        ref = getattr(sample, modality)
        if ref is not None:
            body[modality] = base64.b64encode(read_media(modality, ref, base)).decode()
    return body


def good_samples(cfg):
    """The manifest's valid rows (the fixture appended broken ones, which training quarantined)."""
    from tripwire.sample import Sample

    for line in Path(cfg.data.manifest).read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not str(row.get("id", "")).startswith("bad-"):
            yield Sample.from_row(row)


