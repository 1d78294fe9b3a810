"""Spoken "episodes" for measuring long media: minutes of benign talk, some with one violating sentence at a known
time, built reproducibly from real text.

An episode is OLID test tweets labelled not offensive, read out one after another by espeak-ng (two voices taking
turns, a pause drawn between sentences); a violating episode has one tweet labelled offensive spoken at a time drawn
in its middle 60 %. Each is written as 16 kHz mono FLAC while it is spoken (never held whole), and its manifest row
says where the violating sentence is (``meta.violation``: ``start_s``, ``end_s``, its text), which is what the
localisation figure is measured against. The same recipe and tweets give the same files, byte for byte.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from tripwire.common.config import ConfigError
from tripwire.data.sample import Sample
from tripwire.data.spoken import speak, speakable, with_noise


@dataclass(frozen=True)
class EpisodeRecipe:
    """How episodes are made (all draws from ``seed``).

    Attributes:
        episodes: how many.
        minutes: each episode's length (it ends after the sentence that reaches it).
        violating_share: the share of episodes with one offensive sentence.
        voices: espeak-ng voices taking turns, one sentence each.
        rate: words per minute.
        pause_s: the shortest and longest pause between sentences.
        noise_snr_db: white noise under the whole episode at this SNR (None: clean).
        min_words: tweets with fewer speakable words are not used.
        category: the label a violating episode carries (OLID's offensive maps to ``harassment``).
    """

    episodes: int = 20
    minutes: float = 3.0
    violating_share: float = 0.5
    voices: tuple[str, ...] = ("en-us", "en-gb+m3")
    rate: int = 165
    pause_s: tuple[float, float] = (0.3, 1.2)
    noise_snr_db: float | None = None
    min_words: int = 6
    category: str = "harassment"
    sample_rate: int = 16000
    seed: int = 0

    def __post_init__(self):
        if self.episodes < 1 or self.minutes <= 0 or not 0 <= self.violating_share <= 1:
            raise ConfigError("episodes >= 1, minutes > 0 and 0 <= violating_share <= 1 are required")
        if not self.voices or len(self.pause_s) != 2 or not 0 <= self.pause_s[0] <= self.pause_s[1]:
            raise ConfigError("voices: at least one; pause_s: [shortest, longest], 0 <= shortest <= longest")


def sentence_pools(samples: Sequence[Sample], recipe: EpisodeRecipe) -> tuple[list[str], list[str]]:
    """The tweets an episode is made of: (benign, offensive), each speakable with at least ``min_words`` words."""
    benign, offensive = [], []
    for sample in samples:
        text = speakable(sample.text or "")
        if len(text.split()) < recipe.min_words:
            continue
        label = sample.labels.get(recipe.category)
        if label == 0:
            benign.append(text)
        elif label == 1:
            offensive.append(text)
    if not benign or (recipe.violating_share > 0 and not offensive):
        raise ConfigError(f"episodes need tweets labelled {recipe.category} 0 (and 1) with {recipe.min_words}+ words")
    return benign, offensive


def write_episode(path: Path, rng: random.Random, benign: Sequence[str], violation: str | None,
                  recipe: EpisodeRecipe, speaker: Callable[..., np.ndarray] = speak) -> dict[str, Any]:
    """Speaks one episode into ``path``; returns its length and where its violating sentence is (None without)."""
    import soundfile

    rate = recipe.sample_rate
    target = recipe.minutes * 60.0
    insert_at = rng.uniform(0.2, 0.8) * target if violation is not None else None
    noise = np.random.default_rng(rng.getrandbits(32))
    written, turn, where = 0, 0, None
    with soundfile.SoundFile(str(path), "w", samplerate=rate, channels=1, format="FLAC") as out:
        while written < target * rate:
            text = rng.choice(benign)
            violating = insert_at is not None and where is None and written >= insert_at * rate
            if violating:
                text = violation
            wave = speaker(text, recipe.voices[turn % len(recipe.voices)], recipe.rate, sample_rate=rate)
            pause = np.zeros(int(rng.uniform(*recipe.pause_s) * rate), np.float32)
            if violating:
                where = {"start_s": round(written / rate, 3), "end_s": round((written + len(wave)) / rate, 3),
                         "text": text}
            out.write(with_noise(np.concatenate([wave, pause]), recipe.noise_snr_db, noise))
            written += len(wave) + len(pause)
            turn += 1
    return {"duration_s": round(written / rate, 3), "violation": where}


def episode_rows(samples: Sequence[Sample], out_dir: str | Path, recipe: EpisodeRecipe,
                 progress: Callable[[int, int], None] | None = None) -> list[dict[str, Any]]:
    """Writes ``recipe.episodes`` episodes into ``out_dir/audio/episode-<n>.flac``; returns their manifest rows
    (``labels``: the category 1 or 0; ``meta``: length, voices and the violating sentence's place and text)."""
    benign, offensive = sentence_pools(samples, recipe)
    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    violating = round(recipe.episodes * recipe.violating_share)
    rows = []
    for n in range(recipe.episodes):
        rng = random.Random(f"{recipe.seed}:episode:{n}")
        violation = rng.choice(offensive) if n < violating else None
        name = f"audio/episode-{n:04d}.flac"
        made = write_episode(out / name, rng, benign, violation, recipe)
        rows.append({"id": f"episode-{n:04d}", "audio": name, "labels": {recipe.category: int(violation is not None)},
                     "meta": {**made, "voices": list(recipe.voices), "rate": recipe.rate,
                              "noise_snr_db": recipe.noise_snr_db}})
        if progress is not None:
            progress(n + 1, recipe.episodes)
    return rows
