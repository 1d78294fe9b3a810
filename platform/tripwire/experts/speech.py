"""The speech expert's interface: 16 kHz mono audio -> a transcript with segment and word times.

Transcripts are scored by the checkpoint's own text model (:mod:`tripwire.moderation`), so what the text
model learns from real data and reviewers applies to speech too.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from tripwire.common.registry import Registry
from tripwire.experts.weights import WeightsRecord

SPEECH_EXPERTS: Registry = Registry("speech expert")
SAMPLE_RATE = 16000  # what every speech expert takes


@dataclass(frozen=True)
class Word:
    text: str
    start_s: float
    end_s: float


@dataclass(frozen=True)
class Segment:
    """A stretch of speech: its text and times (seconds from the start of the audio) and its words."""

    text: str
    start_s: float
    end_s: float
    words: tuple[Word, ...] = ()


@dataclass(frozen=True)
class Transcript:
    """What was said in one piece of audio."""

    language: str | None
    duration_s: float
    segments: tuple[Segment, ...] = field(default_factory=tuple)
    speech_s: float | None = None  # seconds the voice-activity check kept (None: no check ran)

    @property
    def text(self) -> str:
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())

    def by_sentence(self, pause_s: float = 1.0) -> "Transcript":
        """The same words as one segment per sentence: cut after a word ending a sentence (``.``, ``!``, ``?``) and
        at a pause of ``pause_s`` or more. A speech model's segments can run over several sentences and pauses
        (Whisper's: up to 30 s), too coarse to say where something was said. Segments without word times stay."""
        out: list[Segment] = []
        for segment in self.segments:
            if not segment.words:
                out.append(segment)
                continue
            current: list[Word] = []
            for word in segment.words:
                if current and word.start_s - current[-1].end_s >= pause_s:
                    out.append(_joined(current))
                    current = []
                current.append(word)
                if word.text.strip().endswith((".", "!", "?")):
                    out.append(_joined(current))
                    current = []
            if current:
                out.append(_joined(current))
        return dataclasses.replace(self, segments=tuple(s for s in out if s.text))

    def to_json(self) -> dict[str, Any]:
        return {"language": self.language, "duration_s": round(self.duration_s, 3), "speech_s": self.speech_s,
                "segments": [{"text": s.text.strip(), "start_s": round(s.start_s, 3), "end_s": round(s.end_s, 3),
                              "words": [{"text": w.text.strip(), "start_s": round(w.start_s, 3),
                                         "end_s": round(w.end_s, 3)} for w in s.words]} for s in self.segments]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Transcript":
        return cls(language=data.get("language"), duration_s=float(data["duration_s"]), speech_s=data.get("speech_s"),
                   segments=tuple(Segment(s["text"], float(s["start_s"]), float(s["end_s"]),
                                          tuple(Word(w["text"], float(w["start_s"]), float(w["end_s"]))
                                                for w in s.get("words", ())))
                                  for s in data.get("segments", ())))


def _joined(words: Sequence[Word]) -> Segment:
    # Words joined by spaces, not by their own leading spaces: those do not survive JSON (Transcript.to_json strips
    # them), and a transcript from a Serve replica must read the same as one made in process.
    return Segment(" ".join(w.text.strip() for w in words if w.text.strip()), words[0].start_s, words[-1].end_s,
                   tuple(words))


class SpeechExpert(Protocol):
    """A registered speech expert. Constructed from its config args; thread-compatible (one call at a time)."""

    registry_name: str

    @property
    def weights(self) -> WeightsRecord:
        """The weights it runs with."""

    @classmethod
    def weights_record(cls, **args: Any) -> WeightsRecord:
        """The weights an instance built with ``args`` would run with (hashed from disk, nothing loaded)."""

    def transcribe(self, waves: Sequence[np.ndarray]) -> list[Transcript]:
        """Transcripts of 16 kHz mono float32 waveforms, one per wave (an empty one for silence)."""
