"""Decoding of media bytes into arrays, with limits. Every failure is a :class:`MediaError` naming the field.

Decoders take bytes (already fetched through fsspec or from an inline payload) so the same code serves
batch jobs and HTTP requests.
"""

from __future__ import annotations

import contextlib
import io
import logging
from dataclasses import dataclass

import numpy as np

from tripwire.common.config import ConfigError

logger = logging.getLogger(__name__)


class MediaError(ValueError):
    """Media that cannot be used: corrupt, truncated, unsupported or over a limit.

    Attributes:
        field: the sample field at fault (``image``, ``audio``, ``video``, ``text``).
        reason: a short machine-readable reason (``corrupt``, ``too_large``, ...).
        size: for ``too_large``, the size measured in bytes where one was (None after a capped read).
    """

    def __init__(self, field: str, reason: str, detail: str, size: int | None = None):
        super().__init__(f"{field}: {reason}: {detail}")
        self.field = field
        self.reason = reason
        self.detail = detail
        self.size = size  # ``too_large``: the size measured (bytes, or a base64 text's decoded estimate), if known


@dataclass(frozen=True)
class MediaLimits:
    """Upper bounds on what an item may carry; enforced before any model sees it.

    Byte limits bound the read itself (:func:`tripwire.data.sample.read_media`). A video's soundtrack is part of
    the video, so ``max_video_seconds`` bounds it; ``max_audio_seconds`` is for audio items.
    """

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

    def max_bytes(self, field: str) -> int:
        """The byte limit of a media field (``image``, ``audio``, ``video``): what a read may fetch of it."""
        try:
            return getattr(self, {"image": "max_image_bytes", "audio": "max_audio_bytes",
                                  "video": "max_video_bytes"}[field])
        except KeyError:
            raise ValueError(f"{field!r} is not a media field (image, audio, video)") from None


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
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate (JSON allows "\ud800"): tokenizers raise on it
        raise MediaError("text", "invalid_unicode", f"not valid Unicode text: {exc.reason} at {exc.start}") from None
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


def _decode_audio_av(data: bytes, limits: MediaLimits, field: str, container=None, max_seconds: float | None = None):
    """The first audio stream as mono float32 and its rate ((None, None) without one), refused past
    ``max_seconds`` (default: ``limits.max_audio_seconds``)."""
    import av

    if max_seconds is None:
        max_seconds = limits.max_audio_seconds

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
                if total / rate > max_seconds:
                    raise MediaError(field, "too_long", f"soundtrack over limit {max_seconds}s")
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


def frame_picks(count: int, num_frames: int) -> np.ndarray:
    """Indices of the frames at the centres of ``num_frames`` equal segments of ``count`` frames."""
    return np.minimum(((np.arange(num_frames) + 0.5) * count / num_frames).astype(int), count - 1)


def _open_video(data: bytes):
    import av

    try:
        return av.open(io.BytesIO(data))
    except Exception as exc:
        raise MediaError("video", "corrupt", f"cannot open container: {exc}") from exc


def _video_stream(container):
    if not container.streams.video:
        raise MediaError("video", "no_video_stream", "the container has no video stream")
    return container.streams.video[0]


@contextlib.contextmanager
def _opened_video(data: bytes, action: str, need_video: bool = True):
    """``(container, video stream)`` of ``data``, closed afterwards; any failure inside that is not a
    MediaError becomes ``MediaError("video", "corrupt")`` saying what could not be done."""
    container = _open_video(data)
    try:
        yield container, (_video_stream(container) if need_video else None)
    except MediaError:
        raise
    except Exception as exc:
        raise MediaError("video", "corrupt", f"cannot {action} video: {exc}") from exc
    finally:
        container.close()


def _timestamp(pts, time_base, index: int, stream) -> float:
    if pts is not None and time_base:
        return float(pts * time_base)
    return index / float(stream.average_rate or 25)


def _count_video_frames(data: bytes, limits: MediaLimits) -> int:
    """Demuxes (no decoding) to count the video stream's frames and enforce ``max_video_seconds``.

    Knowing the count up front lets the decode pass keep only the sampled frames, so memory is bounded
    by ``num_frames`` whatever the clip's length; and an over-long clip is refused before any decoding.
    Damage stops the count where it is: the decode pass then finds out what is really usable.
    """
    with _opened_video(data, "read") as (container, stream):
        count = 0
        try:
            for packet in container.demux(stream):
                if packet.size == 0:  # the demuxer's end-of-stream flush packet carries no frame
                    continue
                pts = packet.pts if packet.pts is not None else packet.dts
                if _timestamp(pts, packet.time_base, count, stream) > limits.max_video_seconds:
                    raise MediaError("video", "too_long", f"longer than limit {limits.max_video_seconds}s")
                count += 1
        except MediaError:
            raise
        except Exception as exc:
            logger.debug("video demux stopped after %d packets: %s", count, exc)
        return count


def _decoded_frames(container, stream):
    """The stream's frames in order, ending quietly at damage once at least one frame has decoded."""
    count = 0
    try:
        for frame in container.decode(stream):
            count += 1
            yield frame
    except Exception as exc:
        if not count:
            raise MediaError("video", "corrupt", f"cannot decode video: {exc}") from exc
        # A truncated tail still leaves usable frames; decoding stops at the damage.


def _decode_picked(data: bytes, picks: np.ndarray, limits: MediaLimits,
                   stop_after: int | None = None) -> tuple[dict[int, tuple[np.ndarray, float]], int]:
    """Decodes the video stream once, converting to RGB only the frames whose index is in ``picks``.

    Every other frame is dropped as soon as it is decoded. Returns ``{index: (rgb, timestamp)}`` and
    how many frames decoded (up to ``stop_after``, or to the end or the first damage).
    """
    wanted = {int(i) for i in picks}
    kept: dict[int, tuple[np.ndarray, float]] = {}
    with _opened_video(data, "decode") as (container, stream):
        count = 0
        for frame in _decoded_frames(container, stream):
            t = _timestamp(frame.pts, frame.time_base, count, stream)
            if t > limits.max_video_seconds:
                raise MediaError("video", "too_long", f"longer than limit {limits.max_video_seconds}s")
            if count in wanted:
                kept[count] = (frame.to_ndarray(format="rgb24"), t)
            count += 1
            if stop_after is not None and count >= stop_after:
                break
        return kept, count


def decode_video(data: bytes, num_frames: int, limits: MediaLimits, with_audio: bool = True) -> VideoClip:
    """Decodes a video (MP4, WebM, ...) with PyAV into ``num_frames`` uniformly sampled RGB frames.

    Frames are chosen at the centres of ``num_frames`` equal segments of the clip's frames, so short and
    long clips are covered evenly. At most ``num_frames`` frames are held at a time: a demux-only pass
    counts the frames, then one decode pass keeps just the picked ones. The soundtrack, when present and
    ``with_audio`` (a model without an audio encoder has no use for it, so is spared decoding it), is
    decoded too (mono float32), bounded like the video by ``max_video_seconds``: it is the video's, not a
    separate audio item.
    """
    _check_size("video", data, limits.max_video_bytes)
    counted = _count_video_frames(data, limits)
    picks = frame_picks(counted, num_frames) if counted else np.zeros(0, int)
    kept, decoded = _decode_picked(data, picks, limits)
    if not decoded:
        raise MediaError("video", "empty", "no frames decoded")
    if decoded != counted:
        # Packets and frames disagree (a truncated or damaged file, or a codec with hidden frames):
        # decode again and pick from the frames that really decode, as if their number had been known.
        logger.debug("video: %d packets but %d frames decoded; decoding again", counted, decoded)
        picks = frame_picks(decoded, num_frames)
        kept, _ = _decode_picked(data, picks, limits, stop_after=decoded)
        if not kept:
            raise MediaError("video", "corrupt", "frames that decoded once did not decode again")
        # Decoding is deterministic, so this pass reaches the same frames; never index past what it reached.
        picks = np.minimum(picks, max(kept))
    arrays = [kept[int(i)][0] for i in picks]
    timestamps = [kept[int(i)][1] for i in picks]
    audio, rate = _decode_soundtrack(data, limits) if with_audio else (None, None)
    return VideoClip(arrays, timestamps, audio, rate)


def _decode_soundtrack(data: bytes, limits: MediaLimits) -> tuple[np.ndarray | None, int | None]:
    with _opened_video(data, "decode", need_video=False) as (container, _):
        if not container.streams.audio:
            return None, None
        # The soundtrack has always been decoded after a seek to 0, which starts the AAC/Opus decoders
        # differently from a plain read (an Opus clip loses its first 20 ms frame). Kept, so soundtrack
        # features, and the scores of checkpoints trained on them, stay as they were.
        container.seek(0)
        return _decode_audio_av(data, limits, field="video", container=container, max_seconds=limits.max_video_seconds)
