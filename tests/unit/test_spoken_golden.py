"""Spoken golden sets: OLID's test tweets read out by espeak-ng, reproducibly from a seed, registered with
their recipe."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile

from helpers import REPO
from tripwire.data.sample import Sample
from tripwire.data.spoken import SpeechRecipe, speakable, spoken_rows

OLID = REPO.parent / "shared" / "datasets" / "olid"

needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None,
                                  reason="espeak-ng is not installed (make speech-tools)")


def test_what_is_read_out_of_a_post():
    assert speakable("@USER @USER You are a disgrace #MAGA 🤬 URL") == "You are a disgrace MAGA"


@needs_espeak
def test_the_recipe_draws_voices_and_noise_reproducibly(tmp_path):
    samples = [Sample(id=f"t{i}", text=f"this is sentence number {i} of the test", labels={"hate": i % 2})
               for i in range(4)] + [Sample(id="emoji", text="🤬 #")]
    recipe = SpeechRecipe(voices=("en-us", "en-gb"), noise_snr_db=(None, 10.0), seed=3)
    first, again = spoken_rows(samples, tmp_path / "a", recipe), spoken_rows(samples, tmp_path / "b", recipe)
    assert [r["id"] for r in first] == ["spoken-t0", "spoken-t1", "spoken-t2", "spoken-t3"]  # nothing to say: left out
    assert first == again and all((tmp_path / "a" / r["audio"]).read_bytes() == (tmp_path / "b" / r["audio"]).read_bytes()
                                  for r in first)
    assert [r["labels"] for r in first] == [{"hate": i % 2} for i in range(4)]
    for row in first:
        wave, rate = soundfile.read(str(tmp_path / "a" / row["audio"]), dtype="float32")
        assert rate == 16000 and len(wave) > 16000 and row["meta"]["voice"] in ("en-us", "en-gb")
    clean = spoken_rows(samples[:1], tmp_path / "clean", SpeechRecipe(voices=("en-us",), noise_snr_db=(None,)))
    noisy = spoken_rows(samples[:1], tmp_path / "noisy", SpeechRecipe(voices=("en-us",), noise_snr_db=(10.0,)))
    assert (clean[0]["meta"]["rate"], clean[0]["meta"]["pitch"]) == (noisy[0]["meta"]["rate"], noisy[0]["meta"]["pitch"])
    a = soundfile.read(str(tmp_path / "clean" / clean[0]["audio"]), dtype="float32")[0]
    b = soundfile.read(str(tmp_path / "noisy" / noisy[0]["audio"]), dtype="float32")[0]
    noise = b - a
    snr = 10 * np.log10(np.mean(a ** 2) / np.mean(noise ** 2))
    assert 9.0 < snr < 11.0


@needs_espeak
@pytest.mark.skipif(not (OLID / "testset-levela.tsv").exists(), reason="../shared/datasets/olid is not here")
def test_spoken_olid_is_registered_with_its_recipe_and_hash(tmp_path):
    from pipelines.golden_sets import register_spoken_olid

    catalogue = str(tmp_path / "golden" / "catalogue.yaml")
    golden, new = register_spoken_olid(str(OLID), catalogue, limit=3)
    again, new_again = register_spoken_olid(str(OLID), catalogue, limit=3)
    assert new and not new_again and again.sha256 == golden.sha256 and golden.items == 3
    folder = Path(catalogue).parent / "spoken-olid-test-3"
    assert json.loads((folder / "recipe.json").read_text())["seed"] == 0 and "recipe" in golden.description
    rows = [json.loads(line) for line in (folder / "manifest.jsonl").read_text().splitlines()]
    assert all(set(r["labels"]) == {"harassment"} and r["meta"]["spoken_text"] for r in rows)


@needs_espeak
def test_episodes_put_the_offensive_sentence_where_their_rows_say(tmp_path):
    from tripwire.data.episodes import EpisodeRecipe, episode_rows

    benign = [Sample(id=f"b{i}", text=f"we talked about the garden and the weather number {i} today",
                     labels={"harassment": 0}) for i in range(6)]
    offensive = [Sample(id="o", text="you are a stupid worthless idiot and everyone hates you", labels={"harassment": 1})]
    recipe = EpisodeRecipe(episodes=2, minutes=0.4, seed=5)
    rows = episode_rows(benign + offensive, tmp_path / "a", recipe)
    assert rows == episode_rows(benign + offensive, tmp_path / "b", recipe)  # the same recipe: the same episodes
    assert (tmp_path / "a" / rows[0]["audio"]).read_bytes() == (tmp_path / "b" / rows[0]["audio"]).read_bytes()
    violating, clean = rows
    assert violating["labels"] == {"harassment": 1} and clean["labels"] == {"harassment": 0}
    assert clean["meta"]["violation"] is None
    where = violating["meta"]["violation"]
    assert where["text"] == offensive[0].text and 0.2 * 24 <= where["start_s"] < where["end_s"] <= violating["meta"]["duration_s"]
    wave, rate = soundfile.read(str(tmp_path / "a" / violating["audio"]), dtype="float32")
    assert rate == 16000 and len(wave) / rate == pytest.approx(violating["meta"]["duration_s"], abs=1e-3)
    assert violating["meta"]["duration_s"] >= 24.0
    # What is at the recorded time is that sentence as espeak-ng says it.
    from tripwire.data.spoken import speak

    start = int(where["start_s"] * rate)  # times are rounded to the millisecond (16 samples)

    def there(said: np.ndarray) -> bool:
        return abs(len(said) / rate - (where["end_s"] - where["start_s"])) < 0.002 and any(
            np.allclose(wave[start + shift:start + shift + len(said)], said, atol=1e-3) for shift in range(-16, 17))

    assert any(there(speak(offensive[0].text, voice, recipe.rate)) for voice in recipe.voices)
