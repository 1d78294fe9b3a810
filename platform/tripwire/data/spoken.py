"""Spoken copies of text items, for golden sets that measure the speech path on real text.

Each text is read out by Debian's espeak-ng (``make speech-tools``) in a voice, rate and pitch drawn from a
:class:`SpeechRecipe` with the recipe's seed, optionally with white noise at a signal-to-noise ratio, and
saved as 16 kHz mono FLAC. The same recipe and texts give the same files, byte for byte, so the golden set's
hash holds.
"""

from __future__ import annotations

import io
import random
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from tripwire.common.config import ConfigError
from tripwire.data.preprocess import resampled
from tripwire.data.sample import Sample


@dataclass(frozen=True)
class SpeechRecipe:
    """How texts are spoken: each item draws one voice, rate (words per minute), pitch (0-99) and noise level
    (dB SNR; None is clean) from these, with ``seed``."""

    voices: tuple[str, ...] = ("en-us", "en-gb", "en-us+f2", "en-gb+m3")
    rates: tuple[int, ...] = (140, 160, 180)
    pitches: tuple[int, ...] = (35, 50, 65)
    noise_snr_db: tuple[float | None, ...] = (None, 20.0, 10.0)
    sample_rate: int = 16000
    seed: int = 0

    def __post_init__(self):
        if not (self.voices and self.rates and self.pitches and self.noise_snr_db):
            raise ConfigError("a speech recipe needs at least one voice, rate, pitch and noise level")


def speakable(text: str) -> str:
    """What a person would read out of a post: no @USER, URL or hashtag marks, no emoji."""
    text = re.sub(r"@USER|URL|#", " ", text)
    text = re.sub(r"[^A-Za-z0-9'.,!? ]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


ESPEAK_RATE = 22050  # espeak-ng's own output rate: asking for it resamples nothing


def speak(text: str, voice: str, rate: int, pitch: int = 50, sample_rate: int = 16000) -> np.ndarray:
    """``text`` read by espeak-ng (pitch 50 is its default), as float32 mono at ``sample_rate``."""
    import soundfile

    if shutil.which("espeak-ng") is None:
        raise ConfigError("espeak-ng is not installed (make speech-tools)")
    spoken = subprocess.run(["espeak-ng", "-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout", text],
                            check=True, capture_output=True).stdout
    wave, rate_hz = soundfile.read(io.BytesIO(spoken), dtype="float32")
    return resampled(wave, rate_hz, sample_rate).numpy()


def with_noise(wave: np.ndarray, snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """White noise added at ``snr_db`` below the speech's power (None: the wave as it is)."""
    if snr_db is None or not len(wave):
        return wave
    power = float(np.mean(wave ** 2)) or 1e-8
    noise = rng.standard_normal(len(wave)).astype(np.float32) * np.sqrt(power / 10 ** (snr_db / 10))
    return np.clip(wave + noise, -1.0, 1.0).astype(np.float32)


def spoken_rows(samples: Iterable[Sample], out_dir: str | Path, recipe: SpeechRecipe) -> list[dict[str, Any]]:
    """Speaks every sample's text into ``out_dir/audio/<n>.flac``; returns the manifest rows (audio, the labels,
    and ``meta``: the text spoken, voice, rate, pitch and noise). Samples without speakable text are left out."""
    import soundfile

    out = Path(out_dir)
    (out / "audio").mkdir(parents=True, exist_ok=True)
    rows = []
    for n, sample in enumerate(samples):
        text = speakable(sample.text or "")
        if len(text.split()) < 2:
            continue
        pick = random.Random(f"{recipe.seed}:{sample.id}")
        voice, rate, pitch = pick.choice(recipe.voices), pick.choice(recipe.rates), pick.choice(recipe.pitches)
        snr = pick.choice(recipe.noise_snr_db)
        wave = with_noise(speak(text, voice, rate, pitch, recipe.sample_rate), snr,
                          np.random.default_rng(pick.getrandbits(32)))
        name = f"audio/{n:06d}.flac"
        soundfile.write(str(out / name), wave, recipe.sample_rate, format="FLAC")
        rows.append({"id": f"spoken-{sample.id}", "audio": name, "labels": dict(sample.labels),
                     "meta": {**sample.meta, "spoken_text": text, "voice": voice, "rate": rate, "pitch": pitch,
                              "noise_snr_db": snr}})
    return rows
