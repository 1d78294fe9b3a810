"""Decoding of media bytes into arrays, with limits. Every failure is a :class:`MediaError` naming the field.

Decoders take bytes (already fetched through fsspec or from an inline payload) so the same code serves
batch jobs and HTTP requests.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

from tripwire.config import ConfigError


class MediaError(ValueError):
    """Media that cannot be used: corrupt, truncated, unsupported or over a limit.

    Attributes:
        field: the sample field at fault (``image``, ``audio``, ``video``, ``text``).
        reason: a short machine-readable reason (``corrupt``, ``too_large``, ...).
    """

    def __init__(self, field: str, reason: str, detail: str):
        super().__init__(f"{field}: {reason}: {detail}")
        self.field = field
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class MediaLimits:
    """Upper bounds on what an item may carry; enforced before any model sees it."""

    max_text_chars: int = 10_000
    max_image_bytes: int = 8 * 1024 * 1024
    max_image_pixels: int = 4096 * 4096
    max_audio_bytes: int = 16 * 1024 * 1024
    max_audio_seconds: float = 60.0
    max_video_bytes: int = 64 * 1024 * 1024
    max_video_seconds: float = 120.0

    def __post_init__(self):
        for name, value in vars(self).items():
            if value <= 0:
                raise ConfigError(f"{name}: must be positive, got {value}")


@dataclass
class VideoClip:
    """Frames sampled from a video, their timestamps, and its soundtrack when it has one."""

    frames: list[np.ndarray]
    timestamps: list[float]
    audio: np.ndarray | None
    sample_rate: int | None


def check_text(text: str, limits: MediaLimits) -> str:
    if not isinstance(text, str):
        raise MediaError("text", "wrong_type", f"expected a string, got {type(text).__name__}")
    if len(text) > limits.max_text_chars:
        raise MediaError("text", "too_large", f"{len(text)} characters > limit {limits.max_text_chars}")
    return text


def _check_size(field: str, data: bytes, limit: int) -> None:
    if not data:
        raise MediaError(field, "empty", "no bytes")
    if len(data) > limit:
        raise MediaError(field, "too_large", f"{len(data)} bytes > limit {limit}")


def decode_image(data: bytes, limits: MediaLimits) -> np.ndarray:
    """Decodes PNG/JPEG/... bytes into an RGB uint8 array of shape (H, W, 3)."""
    from PIL import Image

    _check_size("image", data, limits.max_image_bytes)
    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
            if width * height > limits.max_image_pixels:
                raise MediaError("image", "too_large", f"{width}x{height} pixels > limit {limits.max_image_pixels}")
            img.load()
            return np.asarray(img.convert("RGB"), dtype=np.uint8)
    except MediaError:
        raise
    except Image.DecompressionBombError as exc:
        raise MediaError("image", "too_large", str(exc)) from exc
    except Exception as exc:  # PIL raises many types for corrupt or truncated data
        raise MediaError("image", "corrupt", f"cannot decode image: {exc}") from exc


def _to_mono(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, dtype=np.float32)
    return samples.mean(axis=1) if samples.ndim == 2 else samples


def decode_audio(data: bytes, limits: MediaLimits) -> tuple[np.ndarray, int]:
    """Decodes WAV/FLAC/OGG (soundfile) or other containers (PyAV) into mono float32 and its rate."""
    import soundfile

    _check_size("audio", data, limits.max_audio_bytes)
    try:
        info = soundfile.info(io.BytesIO(data))
        if info.duration > limits.max_audio_seconds:
            raise MediaError("audio", "too_long", f"{info.duration:.1f}s > limit {limits.max_audio_seconds}s")
        samples, rate = soundfile.read(io.BytesIO(data), dtype="float32", always_2d=False)
    except MediaError:
        raise
    except Exception:
        # Not a soundfile format (e.g. AAC, Opus in WebM): fall back to FFmpeg through PyAV.
        samples, rate = _decode_audio_av(data, limits, field="audio")
        if samples is None:
            raise MediaError("audio", "no_audio_stream", "the container has no audio stream") from None
    samples = _to_mono(samples)
    if samples.size == 0:
        raise MediaError("audio", "empty", "no samples decoded")
    if not np.isfinite(samples).all():
        raise MediaError("audio", "corrupt", "non-finite samples")
    return samples, int(rate)


def _decode_audio_av(data: bytes, limits: MediaLimits, field: str, container=None):
    import av

    try:
        own = container is None
        container = container or av.open(io.BytesIO(data))
        try:
            if not container.streams.audio:
                return None, None
            stream = container.streams.audio[0]
            chunks, rate = [], stream.codec_context.sample_rate or stream.rate
            total = 0
            resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1)
                    chunks.append(arr)
                    total += arr.size
                if total / rate > limits.max_audio_seconds:
                    raise MediaError(field, "too_long", f"soundtrack over limit {limits.max_audio_seconds}s")
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
        finally:
            if own:
                container.close()
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError(field, "corrupt", f"cannot decode audio: {exc}") from exc
    if not chunks:
        raise MediaError(field, "empty", "no audio samples decoded")
    return np.concatenate(chunks).astype(np.float32), int(rate)


def decode_video(data: bytes, num_frames: int, limits: MediaLimits) -> VideoClip:
    """Decodes a video (MP4, WebM, ...) with PyAV into ``num_frames`` uniformly sampled RGB frames.

    Frames are chosen at the centres of ``num_frames`` equal time segments, so short and long clips are
    covered evenly. The soundtrack, when present, is decoded too (mono float32).
    """
    import av

    _check_size("video", data, limits.max_video_bytes)
    try:
        container = av.open(io.BytesIO(data))
    except Exception as exc:
        raise MediaError("video", "corrupt", f"cannot open container: {exc}") from exc
    try:
        if not container.streams.video:
            raise MediaError("video", "no_video_stream", "the container has no video stream")
        stream = container.streams.video[0]
        frames, times = [], []
        try:
            for frame in container.decode(stream):
                t = float(frame.time) if frame.time is not None else len(frames) / float(stream.average_rate or 25)
                if t > limits.max_video_seconds:
                    raise MediaError("video", "too_long", f"longer than limit {limits.max_video_seconds}s")
                frames.append(frame)
                times.append(t)
        except MediaError:
            raise
        except Exception as exc:
            if not frames:
                raise MediaError("video", "corrupt", f"cannot decode video: {exc}") from exc
            # A truncated tail still leaves usable frames; decoding stops at the damage.
        if not frames:
            raise MediaError("video", "empty", "no frames decoded")
        picks = np.minimum(((np.arange(num_frames) + 0.5) * len(frames) / num_frames).astype(int), len(frames) - 1)
        arrays = [frames[i].to_ndarray(format="rgb24") for i in picks]
        timestamps = [times[i] for i in picks]
        audio, rate = None, None
        if container.streams.audio:
            container.seek(0)
            audio, rate = _decode_audio_av(data, limits, field="video", container=container)
        return VideoClip(arrays, timestamps, audio, rate)
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError("video", "corrupt", f"cannot decode video: {exc}") from exc
    finally:
        container.close()
