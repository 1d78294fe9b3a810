"""Long media (a podcast, an audiobook chapter, a video's soundtrack) as a stream of overlapping windows.

The file is never read whole: :func:`audio_windows` opens it through fsspec, decodes it with FFmpeg (PyAV) frame
by frame, resamples to the speech rate as it goes and yields :class:`Window` s of ``window_s`` seconds every
``hop_s`` seconds. What is held at any time is one window plus one decoded frame, so memory is bounded by the
window, whatever the length. The length limit is judged from the container's header before decoding where it
states one, and from the samples decoded otherwise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Iterator

import numpy as np

from tripwire.common.config import ConfigError
from tripwire.data.media import MediaError
from tripwire.data.sample import MediaRef, decode_base64, open_media, resolve_uri

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowConfig:
    """How long media is cut for scoring (saved in the checkpoint with the rest of its preprocessing).

    Attributes:
        window_s: each window's length. The speech expert hears one window at a time, so a sentence is judged
            with up to this much context.
        hop_s: the start of one window to the start of the next; ``window_s - hop_s`` is the overlap, so a
            sentence cut by one window's edge is whole in the next (keep the overlap above a sentence's length).
        max_seconds: the longest media accepted at all (longer is refused before it is decoded).
        max_bytes: the largest file accepted (judged from the store's size before opening).
        batch_windows: windows scored per model call; with ``window_s`` it bounds the memory a stream holds.
        top_windows: the worst windows per category that the evidence lists.
    """

    window_s: float = 30.0
    hop_s: float = 25.0
    max_seconds: float = 4 * 3600.0
    max_bytes: int = 2 * 1024**3
    batch_windows: int = 4
    top_windows: int = 3

    def __post_init__(self):
        if not 1.0 <= self.window_s <= 600.0:
            raise ConfigError(f"window_s: must be between 1 and 600 seconds, got {self.window_s}")
        if not 0 < self.hop_s <= self.window_s:
            raise ConfigError(f"hop_s: must be > 0 and at most window_s ({self.window_s}), got {self.hop_s}")
        if self.max_seconds <= 0 or self.max_bytes <= 0:
            raise ConfigError("max_seconds and max_bytes: must be positive")
        if self.batch_windows < 1 or self.top_windows < 1:
            raise ConfigError("batch_windows and top_windows: must be at least 1")

    @property
    def overlap_s(self) -> float:
        return self.window_s - self.hop_s


@dataclass(frozen=True)
class Window:
    """One stretch of the media: ``wave`` (mono float32 at the stream's rate) from ``start_s`` to ``end_s``."""

    index: int
    start_s: float
    end_s: float
    wave: np.ndarray
    media_s: float | None = None  # the whole media's length as its header states it (None: it states none)


def _open(field: str, ref: MediaRef, base_uri: str | None, config: WindowConfig):
    """A binary file object for the media (inline bytes are wrapped; a URI is opened, not read)."""
    import io

    if isinstance(ref, bytes) or ref.startswith("data:"):
        data = ref if isinstance(ref, bytes) else decode_base64(field, ref, config.max_bytes)
        if len(data) > config.max_bytes:
            raise MediaError(field, "too_large", f"{len(data)} bytes > limit {config.max_bytes}", size=len(data))
        return io.BytesIO(data)
    return open_media(field, resolve_uri(ref, base_uri), config.max_bytes)


def _header_seconds(container) -> float | None:
    """The length its container's header states: the first audio stream's, else the container's (None: none)."""
    stream = container.streams.audio[0] if container.streams.audio else None
    if stream is not None and stream.duration is not None and stream.time_base:
        return float(stream.duration * stream.time_base)
    return container.duration / 1e6 if container.duration else None


def _checked_seconds(field: str, container, config: WindowConfig) -> float | None:
    """:func:`_header_seconds`, refused (``too_long``) past ``config.max_seconds``."""
    seconds = _header_seconds(container)
    if seconds is not None and seconds > config.max_seconds:
        raise MediaError(field, "too_long", f"{seconds:.1f}s > limit {config.max_seconds}s for long media")
    return seconds


def media_seconds(field: str, ref: MediaRef, base_uri: str | None, config: WindowConfig) -> float | None:
    """The media's length as its container's header states it (None where it states none); reads the header
    only.

    Raises:
        MediaError: naming ``field``: missing, unreadable, corrupt, or over the windows' ``max_bytes`` /
            ``max_seconds`` (long media the windows would refuse is refused here, before any decoding).
    """
    import av

    with _open(field, ref, base_uri, config) as handle:
        try:
            container = av.open(handle)
        except Exception as exc:
            raise MediaError(field, "corrupt", f"cannot open container: {exc}") from exc
        with container:
            return _checked_seconds(field, container, config)


def audio_windows(field: str, ref: MediaRef, base_uri: str | None, config: WindowConfig,
                  sample_rate: int = 16000) -> Iterator[Window]:
    """The media's first audio stream (an audio file, or a video's soundtrack) as overlapping windows.

    Every window is ``window_s`` long but the last, which ends with the media (and is left out where the window
    before already covered the end). Media shorter than one window is one window.

    Raises:
        MediaError: naming ``field``: missing, unreadable, corrupt, without an audio stream, empty, or over
            ``max_bytes`` / ``max_seconds`` (judged from the header before decoding, and while decoding).
    """
    import av

    window_n = int(round(config.window_s * sample_rate))
    hop_n = int(round(config.hop_s * sample_rate))
    limit_n = int(config.max_seconds * sample_rate)
    handle = _open(field, ref, base_uri, config)
    try:
        try:
            container = av.open(handle)
        except Exception as exc:
            raise MediaError(field, "corrupt", f"cannot open container: {exc}") from exc
        with container:
            if not container.streams.audio:
                raise MediaError(field, "no_audio_stream", "the container has no audio stream")
            stream = container.streams.audio[0]
            seconds = _checked_seconds(field, container, config)
            resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
            pending: list[np.ndarray] = []  # decoded samples not yet in a window, joined once a window is full
            pending_n = start_n = decoded = index = 0
            buffer = np.zeros(0, np.float32)
            for chunk in _frames(container, stream, resampler, field):
                decoded += chunk.size
                if decoded > limit_n:
                    raise MediaError(field, "too_long", f"more than limit {config.max_seconds}s of audio")
                if not np.isfinite(chunk).all():
                    raise MediaError(field, "corrupt", "non-finite samples")
                pending.append(chunk)
                pending_n += chunk.size
                if len(buffer) + pending_n < window_n:
                    continue
                buffer = np.concatenate([buffer, *pending])
                pending, pending_n = [], 0
                while len(buffer) >= window_n:
                    yield Window(index, start_n / sample_rate, (start_n + window_n) / sample_rate,
                                 buffer[:window_n].copy(), seconds)
                    index += 1
                    buffer = buffer[hop_n:]
                    start_n += hop_n
            buffer = np.concatenate([buffer, *pending])
            if decoded == 0:
                raise MediaError(field, "empty", "no audio samples decoded")
            # The tail: what the last full window did not reach (all of it when there was none).
            covered = window_n - hop_n if index else 0
            if len(buffer) > covered:
                yield Window(index, start_n / sample_rate, (start_n + len(buffer)) / sample_rate, buffer.copy(),
                             seconds)
    finally:
        handle.close()


def _frames(container, stream, resampler, field: str) -> Iterator[np.ndarray]:
    """The stream's samples, resampled, frame by frame; damage after some audio ends the stream there."""
    got = False
    try:
        for packet_frame in container.decode(stream):
            for out in resampler.resample(packet_frame):
                got = True
                yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
        for out in resampler.resample(None):
            yield out.to_ndarray().reshape(-1).astype(np.float32, copy=False)
    except MediaError:
        raise
    except Exception as exc:
        if not got:
            raise MediaError(field, "corrupt", f"cannot decode audio: {exc}") from exc
        logger.warning("%s: decoding stopped at damage: %s", field, exc)
