"""Decoding real media bytes and the shared preprocessing, including every kind of bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tripwire.media import MediaError, MediaLimits, decode_audio, decode_image, decode_video
from tripwire.preprocess import Preprocessor
from tripwire.sample import Sample, read_manifest, read_media
from tripwire.synthetic import encode_audio, encode_image, encode_video

LIMITS = MediaLimits()


def frames(n=6, size=32):
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (size, size, 3), dtype=np.uint8) for _ in range(n)]


def test_image_round_trip_png_and_jpeg():
    img = np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8)
    assert np.array_equal(decode_image(encode_image(img, "PNG"), LIMITS), img)
    assert decode_image(encode_image(img, "JPEG"), LIMITS).shape == (20, 30, 3)


@pytest.mark.parametrize("data, reason", [(b"not an image", "corrupt"), (b"", "empty")])
def test_bad_images(data, reason):
    with pytest.raises(MediaError) as info:
        decode_image(data, LIMITS)
    assert info.value.field == "image" and info.value.reason == reason


def test_truncated_image_and_limits():
    png = encode_image(np.zeros((64, 64, 3), np.uint8) + 90, "PNG")
    with pytest.raises(MediaError, match="image: corrupt"):
        decode_image(png[: len(png) // 2], LIMITS)
    with pytest.raises(MediaError, match="too_large"):
        decode_image(png, dataclasses.replace(LIMITS, max_image_pixels=100))
    with pytest.raises(MediaError, match="too_large"):
        decode_image(png, dataclasses.replace(LIMITS, max_image_bytes=10))


@pytest.mark.parametrize("fmt", ["WAV", "FLAC"])
def test_audio_decodes_to_mono_float(fmt):
    wave = np.sin(np.linspace(0, 100, 8000)).astype(np.float32) * 0.5
    out, rate = decode_audio(encode_audio(wave, 8000, fmt), LIMITS)
    assert rate == 8000 and out.dtype == np.float32 and np.abs(out - wave).max() < 1e-3


def test_audio_errors():
    wave = np.zeros(16000, np.float32)
    with pytest.raises(MediaError, match="too_long"):
        decode_audio(encode_audio(wave, 16000, "WAV"), dataclasses.replace(LIMITS, max_audio_seconds=0.5))
    with pytest.raises(MediaError) as info:
        decode_audio(b"RIFF garbage that is not audio", LIMITS)
    assert info.value.field == "audio"


@pytest.mark.parametrize("fmt", ["mp4", "webm"])
def test_video_samples_frames_and_soundtrack(fmt):
    sound = np.sin(np.linspace(0, 300, 12000)).astype(np.float32) * 0.3
    clip = decode_video(encode_video(frames(), 8, fmt, sound, 16000), 4, LIMITS)
    assert len(clip.frames) == 4 and clip.frames[0].shape == (32, 32, 3)
    assert clip.timestamps == sorted(set(clip.timestamps)) and clip.timestamps[0] >= 0
    assert clip.audio is not None and clip.audio.size > 0


def test_video_without_soundtrack_and_errors():
    data = encode_video(frames(), 8, "mp4", None, 16000)
    assert decode_video(data, 3, LIMITS).audio is None
    with pytest.raises(MediaError) as info:
        decode_video(b"\x00" * 500, 3, LIMITS)
    assert info.value.field == "video"
    with pytest.raises(MediaError, match="too_long"):
        decode_video(data, 3, dataclasses.replace(LIMITS, max_video_seconds=0.2))


def test_preprocessor_shapes_and_video_soundtrack(tiny_model_config, tiny_corpus):
    pre = Preprocessor(tiny_model_config.preprocessing)
    base = str(tiny_corpus.parent)
    samples = list(read_manifest(str(tiny_corpus)))
    items = [pre.sample(s, base) for s in samples]
    batch = pre.collate(items)
    n = len(samples)
    assert batch["image"].shape == (n, 3, 32, 32)
    assert batch["video"].shape == (n, 4, 3, 32, 32)
    assert batch["audio"].shape == (n, 1, 16, 101)
    assert batch["text_input_ids"].shape == (n, 16)
    for sample, item, row in zip(samples, items, range(n)):
        for modality in ("text", "image", "video"):
            assert batch[f"present_{modality}"][row] == (getattr(sample, modality) is not None)
    # A video's soundtrack fills the audio slot when the item has no audio of its own.
    with_track = [i for s, i in zip(samples, items) if s.video and not s.audio and "audio" in i]
    assert with_track, "the corpus should contain videos with soundtracks"


def test_audio_resampling_gives_same_features_for_same_sound(tiny_model_config):
    pre = Preprocessor(tiny_model_config.preprocessing)
    t16 = np.arange(16000) / 16000
    t22 = np.arange(22050) / 22050
    a = pre.audio(np.sin(2 * np.pi * 440 * t16).astype(np.float32), 16000)
    b = pre.audio(np.sin(2 * np.pi * 440 * t22).astype(np.float32), 22050)
    assert a.shape == b.shape and np.abs(a - b).mean() < 0.1


def test_preprocessor_rejects_empty_and_unsupported(tiny_model_config):
    pre = Preprocessor(tiny_model_config.preprocessing, modalities=["text"])
    with pytest.raises(MediaError, match="item: empty"):
        pre.sample(Sample(id="x"))
    with pytest.raises(MediaError, match="unsupported_modality"):
        pre.sample(Sample(id="x", image=b"123"))
    with pytest.raises(MediaError, match="text: too_large"):
        Preprocessor(dataclasses.replace(tiny_model_config.preprocessing, limits=MediaLimits(max_text_chars=5)),
                     ["text"]).sample(Sample(id="x", text="far too long"))


def test_read_media_sources(tmp_path):
    (tmp_path / "a.bin").write_bytes(b"abc")
    assert read_media("image", "a.bin", str(tmp_path)) == b"abc"
    assert read_media("image", "data:image/png;base64,YWJj", None) == b"abc"
    assert read_media("image", b"raw", None) == b"raw"
    with pytest.raises(MediaError, match="missing_file"):
        read_media("image", "nope.png", str(tmp_path))
    with pytest.raises(MediaError, match="invalid_base64"):
        read_media("audio", "data:audio/wav;base64,@@@", None)
