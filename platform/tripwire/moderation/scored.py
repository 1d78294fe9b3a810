"""What the model said about one item before the policy: :class:`Scored`, the moderation core's value between
scoring (:meth:`tripwire.moderation.moderator.Moderator.score`) and the result it assembles."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from tripwire.experts import Transcript
from tripwire.policy import Policy


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
