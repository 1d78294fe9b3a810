"""Schemathesis hooks for the Tripwire API (``SCHEMATHESIS_HOOKS=schemathesis_hooks``, with tests/ on the path).

The OpenAPI document marks media fields with custom string formats (``deployments.api.MEDIA_FORMATS``): a
schema cannot say "the base64 of a decodable PNG", so these formats carry that meaning, and a request
that is valid by the schema must then be real media. Here each format gets a strategy drawing from
media encoded once at import (small, valid files of every container the server decodes), as plain base64
or as a ``data:...;base64,`` URI, so schemathesis's "schema-valid" requests really are valid and must
be answered 200. Video encoding is slow, so a handful of clips are made and sampled from.
"""

from __future__ import annotations

import base64
import os

import numpy as np
import schemathesis
from hypothesis import strategies as st

from tripwire.data.synthetic import encode_audio, encode_image, encode_video


def _images() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(0)
    out = []
    for size, fmt, mime in ((8, "PNG", "image/png"), (24, "PNG", "image/png"), (16, "JPEG", "image/jpeg"),
                            (40, "JPEG", "image/jpeg")):
        out.append((mime, encode_image(rng.integers(0, 256, (size, size, 3), dtype=np.uint8), fmt)))
    # A greyscale PNG: the decoder converts modes, and a schema-valid image may be any of them.
    out.append(("image/png", encode_image(rng.integers(0, 256, (12, 20), dtype=np.uint8), "PNG")))
    return out


def _tone(rate: int, seconds: float, hz: float) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def _audio() -> list[tuple[str, bytes]]:
    return [("audio/wav", encode_audio(_tone(16_000, 0.5, 440), 16_000, "WAV")),
            ("audio/wav", encode_audio(_tone(8_000, 1.2, 220), 8_000, "WAV")),
            ("audio/flac", encode_audio(_tone(22_050, 0.4, 660), 22_050, "FLAC"))]


def _videos() -> list[tuple[str, bytes]]:
    rng = np.random.default_rng(1)
    frames = [rng.integers(0, 256, (16, 16, 3), dtype=np.uint8) for _ in range(6)]
    return [("video/mp4", encode_video(frames, 8, "mp4", None, 16_000)),
            ("video/webm", encode_video(frames[:4], 8, "webm", None, 16_000)),
            # With a soundtrack: the server scores it as the item's audio.
            ("video/mp4", encode_video(frames, 8, "mp4", _tone(16_000, 0.75, 330), 16_000))]


def _encoded(media: list[tuple[str, bytes]], data_uri_only: bool = False) -> st.SearchStrategy[str]:
    plain = [base64.b64encode(data).decode() for _, data in media]
    uris = [f"data:{mime};base64,{base64.b64encode(data).decode()}" for mime, data in media]
    return st.sampled_from(uris if data_uri_only else plain + uris)


IMAGES, AUDIO, VIDEOS = _images(), _audio(), _videos()
STRATEGIES = {
    "tripwire-image": _encoded(IMAGES),
    "tripwire-audio": _encoded(AUDIO),
    "tripwire-video": _encoded(VIDEOS),
    # OpenAI image_url parts: only data: URLs are accepted (remote URLs are refused, as documented).
    "tripwire-image-data-url": _encoded(IMAGES, data_uri_only=True),
    # The job API's media: allow-listed URIs of real files (tests/integration/test_openapi_fuzz.py writes them).
    "tripwire-media-uri": st.sampled_from(os.environ.get("TRIPWIRE_FUZZ_MEDIA_URIS", "file:///nowhere/a.flac").split(",")),
}

for _name, _strategy in STRATEGIES.items():
    schemathesis.openapi.format(_name, _strategy)

BATCH_PATH = "/v1/moderate/batch"


@schemathesis.check
def batch_rejects_bad_items(ctx, response, case):
    """``negative_data_rejection`` for the batch endpoint (which tests/schemathesis.toml lets answer 200 here).

    The batch answers per item by design: an item whose media does not decode gets its own error entry in
    a 200 answer and the other items are scored (tests/integration/test_api.py). A schema-violating batch
    must therefore be refused whole (4xx) or name at least one bad item; a 200 that scored every item of
    a violating batch is the failure the built-in check would have caught.
    """
    meta = case.meta
    if case.operation.path != BATCH_PATH or meta is None or not meta.generation.mode.is_negative:
        return None
    if 400 <= response.status_code < 500:
        return True
    if response.status_code == 200:
        results = response.json().get("results", [])
        if any("error" in result for result in results):
            return True
        raise AssertionError(f"a schema-violating batch was answered 200 with every item scored ({len(results)} items)")
    return None
