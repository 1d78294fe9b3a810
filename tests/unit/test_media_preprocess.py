"""Decoding real media bytes and the shared preprocessing, including every kind of bad input."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from tripwire.data.media import MediaError, MediaLimits, decode_audio, decode_image, decode_video
from tripwire.data.preprocess import Preprocessor
from tripwire.data.sample import Sample, read_manifest, read_media
from tripwire.data.synthetic import encode_audio, encode_image, encode_video

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


def _h264_with_b_frames(path, n=40):
    import av

    rng = np.random.default_rng(3)
    with av.open(str(path), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 64, 48, "yuv420p"
        for _ in range(n):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return path.read_bytes()


def _decode_all_frames(data):
    """Reference: every frame that decodes, up to the damage (what decode_video once kept in memory)."""
    import io

    import av

    frames = []
    with av.open(io.BytesIO(data)) as container:
        try:
            for frame in container.decode(container.streams.video[0]):
                frames.append((frame.to_ndarray(format="rgb24"), float(frame.time)))
        except Exception:
            pass
    return frames


def test_damaged_video_picks_from_the_frames_that_decode(tmp_path):
    # Zeroed bytes mid-file: the container still lists 40 packets, but decoding stops at the damage
    # (and x264's B-frames held in the decoder are lost), so fewer frames decode than were counted.
    data = bytearray(_h264_with_b_frames(tmp_path / "clip.mp4"))
    data[len(data) // 2:len(data) // 2 + 2000] = bytes(2000)
    reference = _decode_all_frames(bytes(data))
    assert 0 < len(reference) < 40
    for k in (1, 4, 8):
        clip = decode_video(bytes(data), k, LIMITS)
        picks = np.minimum(((np.arange(k) + 0.5) * len(reference) / k).astype(int), len(reference) - 1)
        assert clip.timestamps == [reference[i][1] for i in picks]
        assert all(np.array_equal(f, reference[i][0]) for f, i in zip(clip.frames, picks))


def _long_1080p_clip(seconds=30, fps=5) -> bytes:
    """A gradient with a moving block, x264's fastest preset: ~2.5 s to encode, ~0.15 s to decode."""
    import io

    import av

    base = np.zeros((1080, 1920, 3), np.uint8)
    base[..., 0] = np.linspace(0, 255, 1920, dtype=np.uint8)[None, :]
    buf = io.BytesIO()
    with av.open(buf, mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = 1920, 1080, "yuv420p"
        stream.options = {"preset": "ultrafast"}
        for i in range(seconds * fps):
            frame = base.copy()
            frame[300:500, (i * 37) % 1700:(i * 37) % 1700 + 200] = 255
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode(None):
            container.mux(packet)
    return buf.getvalue()


def test_text_is_not_held_up_by_a_video_decode(tiny_model_config):
    import threading
    import time

    pre = Preprocessor(tiny_model_config.preprocessing)
    video = Sample(id="long", video=_long_1080p_clip())
    texts = [Sample(id=f"t{i}", text=f"a short post, number {i}") for i in range(20)]
    started, done = threading.Event(), {}

    def decode_video_item():
        started.set()
        pre.sample(video)
        done["video"] = time.perf_counter()

    def preprocess_texts():
        started.wait()
        for sample in texts:
            assert pre.sample(sample)["text"]["input_ids"].shape == (16,)
        done["text"] = time.perf_counter()

    threads = [threading.Thread(target=decode_video_item), threading.Thread(target=preprocess_texts)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    # 20 texts take ~3 ms, the video ~150 ms: a lock around whole samples would put every text after it.
    assert set(done) == {"video", "text"}
    assert done["text"] < done["video"], f"texts done {1000 * (done['text'] - done['video']):.0f} ms after the video"


class _OverlapSpy:
    """Passes calls through to the real tokenizer, recording how many were in it at once."""

    def __init__(self, tokenizer):
        import threading

        self.tokenizer, self.active, self.most, self.guard = tokenizer, 0, 0, threading.Lock()

    def __call__(self, *args, **kwargs):
        import time

        with self.guard:
            self.active += 1
            self.most = max(self.most, self.active)
        try:
            time.sleep(0.005)  # widens the window in which an unguarded second caller would overlap
            return self.tokenizer(*args, **kwargs)
        finally:
            with self.guard:
                self.active -= 1


def test_tokenizer_is_never_called_concurrently(tiny_model_config):
    from concurrent.futures import ThreadPoolExecutor

    pre = Preprocessor(tiny_model_config.preprocessing, modalities=["text"])
    samples = [Sample(id=f"t{i}", text=f"post {i} " * (i % 7 + 1)) for i in range(64)]
    expected = [pre.sample(s)["text"]["input_ids"] for s in samples]
    spy = pre.tokenizer = _OverlapSpy(pre.tokenizer)
    with ThreadPoolExecutor(max_workers=8) as pool:
        got = list(pool.map(lambda s: pre.sample(s)["text"]["input_ids"], samples))
    # Fast tokenizers are not safe to call concurrently ("Already borrowed"): calls must be serialised.
    assert spy.most == 1
    assert all(np.array_equal(a, b) for a, b in zip(got, expected))


def test_text_with_a_lone_surrogate_is_a_media_error_not_a_crash():
    from tripwire.data.media import check_text

    with pytest.raises(MediaError) as info:
        check_text("fine until \ud800 here", LIMITS)
    assert info.value.field == "text" and info.value.reason == "invalid_unicode"


def _clip_with_sound(video_seconds: int, sound_seconds: float, fps: int = 1, rate: int = 8000) -> bytes:
    """A tiny Matroska clip: 16x16 MPEG-4 frames, ``fps`` a second, over ``sound_seconds`` of a PCM tone
    (PCM, not AAC: encoding 90 s of AAC alone takes seconds)."""
    import io

    import av

    buf = io.BytesIO()
    with av.open(buf, mode="w", format="matroska") as container:
        video = container.add_stream("mpeg4", rate=fps)
        video.width, video.height, video.pix_fmt = 16, 16, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=rate)
        audio.layout = "mono"
        for i in range(video_seconds * fps):
            frame = av.VideoFrame.from_ndarray(np.full((16, 16, 3), i * 7 % 255, np.uint8), format="rgb24")
            for packet in video.encode(frame):
                container.mux(packet)
        for packet in video.encode(None):
            container.mux(packet)
        tone = (9000 * np.sin(np.arange(int(sound_seconds * rate)) * 2 * np.pi * 440 / rate)).astype(np.int16)
        for start in range(0, len(tone), rate):
            frame = av.AudioFrame.from_ndarray(tone[None, start:start + rate].copy(), format="s16", layout="mono")
            frame.sample_rate, frame.pts = rate, start
            for packet in audio.encode(frame):
                container.mux(packet)
        for packet in audio.encode(None):
            container.mux(packet)
    return buf.getvalue()


def test_a_video_longer_than_the_audio_limit_keeps_its_soundtrack():
    # 90 s: within the 120 s video limit, over the 60 s audio limit; the soundtrack is the video's, bounded by it.
    data = _clip_with_sound(90, 90.0)
    clip = decode_video(data, 4, LIMITS)
    assert len(clip.frames) == 4 and clip.timestamps[-1] > 60
    assert clip.audio is not None and clip.audio.size / clip.sample_rate == pytest.approx(90.0, abs=0.5)
    with pytest.raises(MediaError, match="video: too_long"):
        decode_video(data, 4, dataclasses.replace(LIMITS, max_video_seconds=80.0))


def test_the_soundtrack_is_not_decoded_when_the_model_cannot_use_it(tiny_model_config):
    # 2 s of frames under 10 s of sound, limits of 5 s: decoding the soundtrack would refuse the item.
    limits = dataclasses.replace(LIMITS, max_video_seconds=5.0, max_audio_seconds=5.0)
    config = dataclasses.replace(tiny_model_config.preprocessing, limits=limits)
    data = _clip_with_sound(2, 10.0, fps=4)
    assert decode_video(data, 2, limits, with_audio=False).audio is None
    with pytest.raises(MediaError, match="video: too_long"):
        decode_video(data, 2, limits)
    item = Sample(id="v", video=data)
    # A model without an audio encoder never decodes it.
    assert set(Preprocessor(config, ["video"]).sample(item)) == {"video", "video_timestamps"}
    # One with an audio encoder decodes it (and refuses it here); unless the item brings its own audio.
    with_audio = Preprocessor(config, ["audio", "video"])
    with pytest.raises(MediaError, match="video: too_long"):
        with_audio.sample(item)
    own = encode_audio(np.zeros(8000, np.float32), 8000, "WAV")
    assert set(with_audio.sample(Sample(id="va", video=data, audio=own))) == {"audio", "video", "video_timestamps"}
