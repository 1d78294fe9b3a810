"""What the model said about one item before the policy: :class:`Scored`, the moderation core's value between
scoring (:meth:`tripwire.moderation.moderator.Moderator.score`) and the result it assembles."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tripwire.experts import NudityReading, Transcript
from tripwire.experts.ocr import Box
from tripwire.policy import Policy

# Signals scored beside the fusion head, each a (C,) score per item: what was said and the text read in pictures
# (both through the text encoder), and the nudity expert's probability.
SIDE_SIGNALS = ("speech", "image_text", "nudity")


@dataclass(frozen=True)
class ReadText:
    """A block of text read in a picture (an image, or a video frame at ``frame_s``) of ``size`` (width, height: the
    box's frame, the picture as the expert read it) and the text model's (C,) scores of it."""

    text: str
    box: Box
    frame_s: float | None
    scores: np.ndarray
    size: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class SeenPicture:
    """What the nudity expert saw in one picture (an image, or a video frame at ``frame_s``)."""

    frame_s: float | None
    reading: NudityReading


@dataclass
class Scored:
    """One item's model outputs: encoder outputs by modality, calibrated scores, attribution."""

    encoded: dict[str, dict[str, np.ndarray]]
    scores: np.ndarray
    attribution: dict[str, np.ndarray]
    encoders_ms: float = 0.0
    fusion_ms: float = 0.0
    embedding: np.ndarray | None = None  # the fusion head's fused embedding (active learning clusters by it)
    # Scores from a subset of the present modalities (the signals evaluated on real content for some
    # category, see Policy.trusted); an empty subset is absent (no evaluated signal: no score).
    subset_scores: dict[frozenset[str], np.ndarray] | None = None
    transcript: Transcript | None = None  # what the speech expert heard (None: no speech expert or no audio)
    # The text model's scores of what was said: per category the highest of its segments' (None: nothing said),
    # and each segment's own (C,) scores, in the transcript's segment order.
    speech_scores: np.ndarray | None = None
    segment_scores: list[np.ndarray] | None = None
    # The policy the subsets were chosen for: the item is decided by it, even if a live update lands meanwhile.
    policy: Policy | None = None
    # Long media: the windows it was scored in and the worst of them per category (tripwire.moderation.windowed).
    windows: dict[str, Any] | None = None
    # Pictures (images and video frames): the text blocks OCR read, scored (None: no OCR ran), and what the nudity
    # expert saw (None: it did not run).
    read_texts: list[ReadText] | None = None
    pictures_seen: list[SeenPicture] | None = None
    # The side signals other than speech ("image_text", "nudity") -> (C,) scores, for the signals that spoke.
    expert_scores: dict[str, np.ndarray] = field(default_factory=dict)

    def side_scores(self) -> dict[str, np.ndarray]:
        """Every side signal that spoke for this item (SIDE_SIGNALS) -> its (C,) scores."""
        out = {"speech": self.speech_scores} if self.speech_scores is not None else {}
        return {**out, **self.expert_scores}
