"""Long media's windows folded into one item: what the moderation core scores a podcast or a long video by.

Each window (:mod:`tripwire.data.longform`) is scored like a short clip (its audio through the audio encoder, what
was said through the text model a segment at a time). The item's score per category is the **highest** of its
windows': one violating minute in an hour of talk is what a reviewer must see, and an average would dilute it away.
Overlapping windows hear a sentence cut by one window's edge whole in the next; each sentence is kept once (from
the first window that heard it whole), so the transcript and the speech scores count every sentence once.

The evidence lists the worst windows per category with their times, the excerpt and span of the sentence that
scored highest in each. Windows are ranked by the score the policy decides the category by: the evaluated signals'
own score where the category has one, so a window is not named worst for a signal that cannot decide.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from tripwire.data.longform import Window, WindowConfig
from tripwire.experts import Transcript
from tripwire.experts.speech import Segment, Word
from tripwire.moderation.scored import Scored

EDGE_S = 0.5  # a segment ending this close to a window's end (not the media's) was probably cut by it
EXCERPT_CHARS = 300


def shifted(segment: Segment, offset: float) -> Segment:
    """``segment`` with its times (and its words') moved by ``offset`` seconds."""
    return Segment(segment.text, segment.start_s + offset, segment.end_s + offset,
                   tuple(Word(w.text, w.start_s + offset, w.end_s + offset) for w in segment.words))


@dataclass
class _WindowRecord:
    """What is kept of one scored window: its times, its ranking scores, and its kept segments' indices."""

    start_s: float
    end_s: float
    rank: np.ndarray  # (C,): the score that ranks it per category
    segments: list[int] = field(default_factory=list)  # indices into WindowFold.segments


class WindowFold:
    """Folds scored windows, in order, into one :class:`Scored` for the whole item.

    Args:
        categories: the model's categories.
        config: the windows' settings (for the evidence).
        rank_scores: a window's :class:`Scored` -> (C,) scores it is ranked by per category (the moderation core's
            decision score: evaluated signals' where a category has them, else the combined score).
    """

    def __init__(self, categories: Sequence[str], config: WindowConfig,
                 rank_scores: Callable[[Scored], np.ndarray]):
        self.categories = list(categories)
        self.config = config
        self.rank_scores = rank_scores
        self.fused: np.ndarray | None = None
        self.attribution: dict[str, np.ndarray] = {}
        # Per category, the highest score its evaluated encoded signals gave alone in any part (they can differ from
        # part to part: a podcast's text is one part, its windows' audio the others).
        self.evaluated: dict[int, float] = {}
        self.modalities: set[str] = set()
        self.embedding_sum: np.ndarray | None = None
        self.parts = 0
        self.segments: list[Segment] = []
        self.segment_scores: list[np.ndarray] = []
        self.covered_until = 0.0
        self.windows: list[_WindowRecord] = []
        self.language: str | None = None
        self.speech_s: float | None = None
        self.duration_s = 0.0
        self.policy = None
        self.pictured: Scored | None = None  # the part with pictures (the item's image), read and seen once

    def add(self, window: Window, scored: Scored, last: bool) -> None:
        """One window's scores (``last``: no window follows; its segments may run to its end)."""
        kept = self._keep_segments(window, scored, last)
        speech = np.max(np.stack([self.segment_scores[n] for n in kept]), axis=0) if kept else None
        own = replace(scored, speech_scores=speech, segment_scores=[self.segment_scores[n] for n in kept] or None,
                      transcript=None)
        self.windows.append(_WindowRecord(window.start_s, window.end_s, np.asarray(self.rank_scores(own)), kept))
        self.duration_s = max(self.duration_s, window.end_s)
        if scored.transcript is not None:
            self.language = self.language or scored.transcript.language
            if scored.transcript.speech_s is not None:
                # VAD's speech time over the windows' own stretches (the overlap counted once, pro rata).
                share = (window.end_s - window.start_s) if last else min(self.config.hop_s, window.end_s - window.start_s)
                fraction = share / max(window.end_s - window.start_s, 1e-9)
                self.speech_s = (self.speech_s or 0.0) + scored.transcript.speech_s * fraction
        self.add_part(scored)

    def add_part(self, scored: Scored) -> None:
        """Scores that are part of the item but of no window (its text or image, scored once)."""
        scores = np.asarray(scored.scores)
        if self.fused is None:
            self.fused = scores.copy()
            self.attribution = {m: np.asarray(v).copy() for m, v in scored.attribution.items()}
        else:
            higher = scores > self.fused
            self.fused = np.where(higher, scores, self.fused)
            for modality, values in scored.attribution.items():
                mine = self.attribution.setdefault(modality, np.zeros_like(self.fused))
                self.attribution[modality] = np.where(higher, np.asarray(values), mine)
            for modality in set(self.attribution) - set(scored.attribution):
                self.attribution[modality] = np.where(higher, 0.0, self.attribution[modality])
        encoded = frozenset(scored.encoded)
        if scored.policy is not None:
            for j, category in enumerate(self.categories):
                alone = scored.policy.trusted(category) & encoded
                if alone:
                    value = float((scored.scores if alone == encoded else scored.subset_scores[alone])[j])
                    self.evaluated[j] = max(self.evaluated.get(j, value), value)
        self.modalities |= set(scored.encoded)
        if scored.embedding is not None:
            embedding = np.asarray(scored.embedding, dtype=np.float64)
            self.embedding_sum = embedding if self.embedding_sum is None else self.embedding_sum + embedding
            self.parts += 1
        self.policy = self.policy or scored.policy
        if scored.read_texts is not None or scored.pictures_seen is not None:
            self.pictured = scored

    def _keep_segments(self, window: Window, scored: Scored, last: bool) -> list[int]:
        """The window's segments heard whole and not kept before, appended to the item's; their indices."""
        if scored.transcript is None or not scored.segment_scores:
            return []
        kept = []
        length = window.end_s - window.start_s
        for segment, scores in zip(scored.transcript.segments, scored.segment_scores):
            if not last and segment.end_s >= length - EDGE_S:
                continue  # cut by this window's end: the next window hears it whole
            whole = shifted(segment, window.start_s)
            if (whole.start_s + whole.end_s) / 2 <= self.covered_until:
                continue  # the previous window kept it
            self.covered_until = max(self.covered_until, whole.end_s)
            kept.append(len(self.segments))
            self.segments.append(whole)
            self.segment_scores.append(np.asarray(scores))
        return kept

    def scored(self) -> Scored:
        """The whole item's :class:`Scored`: the highest score per category over its windows and parts."""
        if self.fused is None:
            raise ValueError("no windows were scored")
        speech = np.max(np.stack(self.segment_scores), axis=0) if self.segment_scores else None
        transcript = Transcript(language=self.language, duration_s=self.duration_s,
                                segments=tuple(self.segments), speech_s=self.speech_s) if self.language or \
            self.segments else None
        embedding = self.embedding_sum / self.parts if self.parts else None
        return Scored({m: {} for m in sorted(self.modalities)}, self.fused, self.attribution, embedding=embedding,
                      subset_scores=self.subset_scores(), transcript=transcript, speech_scores=speech,
                      segment_scores=list(self.segment_scores) or None, policy=self.policy,
                      windows=self.evidence(), read_texts=self.pictured.read_texts if self.pictured else None,
                      pictures_seen=self.pictured.pictures_seen if self.pictured else None,
                      expert_scores=dict(self.pictured.expert_scores) if self.pictured else {})

    def subset_scores(self) -> dict[frozenset[str], np.ndarray]:
        """The evaluated encoded signals' scores, keyed as the moderation core reads them for the whole item (the
        evaluated signals among all the item's encoded ones, where those are fewer)."""
        out: dict[frozenset[str], np.ndarray] = {}
        encoded = frozenset(self.modalities)
        for j, category in enumerate(self.categories):
            alone = self.policy.trusted(category) & encoded if self.policy is not None else frozenset()
            if alone and alone != encoded and j in self.evaluated:
                out.setdefault(alone, np.zeros(len(self.categories), np.float32))[j] = self.evaluated[j]
        return out

    def evidence(self) -> dict[str, Any]:
        """The windows' settings and count, and per category the worst windows with the sentence that made them."""
        worst = {}
        for j, category in enumerate(self.categories):
            ranked = sorted(self.windows, key=lambda w: -float(w.rank[j]))[:self.config.top_windows]
            worst[category] = [self._window_json(w, j) for w in ranked]
        return {"window_s": self.config.window_s, "hop_s": self.config.hop_s, "count": len(self.windows),
                "duration_s": round(self.duration_s, 3), "worst": worst}

    def _window_json(self, window: _WindowRecord, j: int) -> dict[str, Any]:
        out: dict[str, Any] = {"start_s": round(window.start_s, 3), "end_s": round(window.end_s, 3),
                               "score": round(float(window.rank[j]), 6)}
        if window.segments:
            n = max(window.segments, key=lambda i: float(self.segment_scores[i][j]))
            segment = self.segments[n]
            out["excerpt"] = segment.text.strip()[:EXCERPT_CHARS]
            out["span"] = {"start_s": round(segment.start_s, 3), "end_s": round(segment.end_s, 3),
                           "score": round(float(self.segment_scores[n][j]), 6)}
        return out
