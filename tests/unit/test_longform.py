"""Long media: streamed in overlapping windows with bounded memory, refused past its limits before decoding, folded
into one item (each sentence once, the worst windows with their times), and the job store that carries it through
the asynchronous API."""

from __future__ import annotations

import time

import numpy as np
import pytest
import soundfile

from tripwire.common.config import ConfigError
from tripwire.data.longform import WindowConfig, audio_windows, media_seconds
from tripwire.data.media import MediaError
from tripwire.experts import Transcript
from tripwire.experts.speech import Segment
from tripwire.moderation.scored import Scored
from tripwire.moderation.windowed import WindowFold
from tripwire.serving.jobs import JobStore

RATE = 16000


def _ramp(path, seconds: float, rate: int = RATE, fmt: str = "FLAC") -> str:
    """Audio whose every sample says where it is (its value rises with time), written in blocks."""
    n = int(seconds * rate)
    with soundfile.SoundFile(str(path), "w", samplerate=rate, channels=1, format=fmt, subtype="PCM_24") as out:
        for start in range(0, n, rate * 10):
            out.write((np.arange(start, min(start + rate * 10, n)) / n * 0.9).astype(np.float32))
    return str(path)


def test_long_audio_streams_as_overlapping_windows_holding_one_window(tmp_path):
    path = _ramp(tmp_path / "ramp.flac", 70.0)
    config = WindowConfig(window_s=30.0, hop_s=25.0)
    windows = list(audio_windows("audio", path, None, config))
    assert [(w.start_s, w.end_s) for w in windows] == [(0.0, 30.0), (25.0, 55.0), (50.0, 70.0)]
    assert max(len(w.wave) for w in windows) == 30 * RATE  # what a window holds, whatever the media's length
    for w in windows:  # each window is the media's own samples at that time (the ramp says where it is)
        assert w.wave[0] == pytest.approx(w.start_s / 70.0 * 0.9, abs=1e-3)
        assert w.wave[-1] == pytest.approx(w.end_s / 70.0 * 0.9, abs=1e-3)
    # A tail the previous window already covered is not a window of its own; short media is one window.
    assert [(w.start_s, w.end_s) for w in audio_windows("audio", _ramp(tmp_path / "55.flac", 55.0), None, config)] \
        == [(0.0, 30.0), (25.0, 55.0)]
    [short] = audio_windows("audio", _ramp(tmp_path / "short.wav", 4.0, rate=44100, fmt="WAV"), None, config)
    assert (short.start_s, short.end_s, len(short.wave)) == (0.0, 4.0, 4 * RATE)  # resampled to 16 kHz


def test_long_media_is_refused_past_its_limits_naming_the_field(tmp_path):
    path = _ramp(tmp_path / "ramp.flac", 12.0)
    assert media_seconds("audio", path, None, WindowConfig()) == pytest.approx(12.0)
    windows = audio_windows("video", path, None, WindowConfig(max_seconds=10.0))
    with pytest.raises(MediaError, match="video: too_long: 12.0s > limit 10.0s"):
        next(windows)  # from the header, before any decoding
    with pytest.raises(MediaError, match="too_large"):
        next(audio_windows("audio", path, None, WindowConfig(max_bytes=100)))
    with pytest.raises(MediaError, match="missing_file"):
        next(audio_windows("audio", str(tmp_path / "nope.flac"), None, WindowConfig()))
    (tmp_path / "junk.flac").write_bytes(b"fLaC" + bytes(range(256)) * 40)
    with pytest.raises(MediaError, match="audio: (corrupt|no_audio_stream)"):
        next(audio_windows("audio", str(tmp_path / "junk.flac"), None, WindowConfig()))
    with pytest.raises(ConfigError, match="hop_s"):
        WindowConfig(window_s=10.0, hop_s=12.0)


def _scored(fused: list[float], segments: list[tuple[str, float, float, list[float]]] | None = None,
            audio_share: float = 1.0) -> Scored:
    scores = np.asarray(fused, np.float32)
    transcript = Transcript("en", 30.0, tuple(Segment(text, start, end) for text, start, end, _ in segments or ()),
                            speech_s=10.0) if segments is not None else None
    return Scored({"audio": {}}, scores, {"audio": scores * audio_share}, embedding=np.ones(4),
                  transcript=transcript, segment_scores=[np.asarray(s, np.float32) for *_, s in segments or ()] or None)


def test_windows_fold_into_the_highest_score_with_each_sentence_once():
    from tripwire.data.longform import Window

    config = WindowConfig(window_s=30.0, hop_s=25.0, top_windows=2)
    fold = WindowFold(["hate", "violence"], config, rank_scores=lambda s: np.maximum(
        s.scores, s.speech_scores if s.speech_scores is not None else 0))
    empty = np.zeros(0, np.float32)
    # Window 0 hears "hello" whole and "cut" cut by its end; window 1 hears "cut" whole (and "hello" not at all),
    # "threat" at 40-43 s and "again" at 51-53 s, in the overlap with window 2, which hears "again" too, and "bye".
    fold.add(Window(0, 0.0, 30.0, empty), _scored([0.1, 0.2], [("hello", 2.0, 4.0, [0.1, 0.1]),
                                                              ("cut", 28.0, 29.8, [0.9, 0.9])]), last=False)
    fold.add(Window(1, 25.0, 55.0, empty), _scored([0.3, 0.1], [("cut whole", 3.0, 6.0, [0.2, 0.3]),
                                                               ("threat", 15.0, 18.0, [0.1, 0.8]),
                                                               ("again", 26.0, 28.0, [0.0, 0.0])]), last=False)
    fold.add(Window(2, 50.0, 70.0, empty), _scored([0.2, 0.05], [("again", 1.1, 3.0, [0.0, 0.0]),
                                                                ("bye", 5.0, 7.0, [0.05, 0.05])]), last=True)
    scored = fold.scored()
    assert [(s.text, s.start_s, s.end_s) for s in scored.transcript.segments] == [
        ("hello", 2.0, 4.0), ("cut whole", 28.0, 31.0), ("threat", 40.0, 43.0), ("again", 51.0, 53.0),
        ("bye", 55.0, 57.0)]
    assert scored.scores.tolist() == pytest.approx([0.3, 0.2])  # the fused inputs: the highest window's
    assert scored.speech_scores.tolist() == pytest.approx([0.2, 0.8])  # the kept sentences' highest
    assert scored.embedding.tolist() == [1.0] * 4
    worst = scored.windows["worst"]
    assert scored.windows["count"] == 3 and scored.windows["duration_s"] == 70.0
    assert [(w["start_s"], w["end_s"]) for w in worst["violence"]] == [(25.0, 55.0), (0.0, 30.0)]
    assert worst["violence"][0]["excerpt"] == "threat"
    assert worst["violence"][0]["span"] == {"start_s": 40.0, "end_s": 43.0, "score": 0.8}
    assert worst["hate"][0]["start_s"] == 25.0 and worst["hate"][0]["score"] == pytest.approx(0.3)


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def job_store_url(request, tmp_path):
    return str(tmp_path / "jobs.db") if request.param == "sqlite" else request.getfixturevalue("pg_database")


def test_jobs_are_claimed_once_renewed_and_taken_up_again_after_a_lost_lease(job_store_url):
    store = JobStore(job_store_url, max_attempts=2)
    job = store.submit({"audio": "file:///media/a.flac"})
    assert store.get(job.id).status == "queued" and store.get("nope") is None
    first = store.claim("replica-a", lease_s=0.2)
    assert first.id == job.id and first.status == "running" and first.attempts == 1
    assert store.claim("replica-b", lease_s=0.2) is None  # under replica-a's lease
    assert store.renew(job.id, "replica-a", 0.2, 12.5, 100.0)
    assert store.get(job.id).to_json()["progress"] == {"done_s": 12.5, "total_s": 100.0, "fraction": 0.125}
    time.sleep(0.3)  # replica-a stops renewing (lost)
    second = store.claim("replica-b", lease_s=30)
    assert second.id == job.id and second.attempts == 2
    assert not store.renew(job.id, "replica-a", 30, 50.0, 100.0)  # no longer replica-a's
    assert not store.finish(job.id, "replica-a", {"id": "late"})  # its result is dropped
    assert store.finish(job.id, "replica-b", {"id": "a"}, 100.0, 100.0)
    done = store.get(job.id).to_json()
    assert done["status"] == "done" and done["result"] == {"id": "a"} and done["progress"]["fraction"] == 1.0
    # A job its replicas keep dying on fails after max_attempts claims instead of going round for ever.
    poison = store.submit({"audio": "file:///media/b.flac"})
    for _ in range(2):
        assert store.claim("replica-c", lease_s=0.01).id == poison.id
        time.sleep(0.02)
    assert store.claim("replica-c", lease_s=0.01) is None
    failed = store.get(poison.id)
    assert failed.status == "failed" and failed.error["reason"] == "abandoned"
    broken = store.submit({"audio": "file:///media/c.flac"})
    store.claim("replica-c", lease_s=30)
    assert store.fail(broken.id, "replica-c", {"field": "audio", "reason": "corrupt", "message": "audio: corrupt"})
    assert store.get(broken.id).to_json()["error"]["reason"] == "corrupt"


def test_a_scan_says_how_far_each_long_item_has_got(tmp_path):
    from tripwire.scan.progress import ItemProgress, ProgressWatch, read_progress

    said = []
    watch = ProgressWatch(str(tmp_path), said.append, every_s=0.05)
    progress = ItemProgress(str(tmp_path), "episode/7")  # ids are not file names
    progress.update(750.0, 3600.0)
    deadline = time.monotonic() + 5
    while not said and time.monotonic() < deadline:
        time.sleep(0.05)
    assert read_progress(str(tmp_path)) == {"episode/7": (750.0, 3600.0)}
    progress.update(3700.0, None)
    while len(said) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    progress.finish()
    watch.close()
    assert said[:2] == ["[scan] episode/7: 12:30 of 1:00:00 scored (21%)", "[scan] episode/7: 1:01:40 scored"]
    assert read_progress(str(tmp_path)) == {}


def test_sentences_are_cut_at_their_ends_and_pauses_and_read_the_same_after_json():
    from tripwire.experts.speech import Word

    words = [Word(" Good", 0.0, 0.3), Word(" morning.", 0.3, 0.8), Word(" I", 1.0, 1.1), Word(" will", 1.1, 1.3),
             Word(" call", 1.3, 1.6), Word(" you", 3.0, 3.2), Word(" soon!", 3.2, 3.6)]
    transcript = Transcript("en", 4.0, (Segment(" Good morning. I will call you soon!", 0.0, 3.6, tuple(words)),))
    sentences = transcript.by_sentence()
    assert [(s.text, s.start_s, s.end_s) for s in sentences.segments] == [
        ("Good morning.", 0.0, 0.8), ("I will call", 1.0, 1.6), ("you soon!", 3.0, 3.6)]  # a 1.4 s pause cuts too
    assert Transcript.from_json(transcript.to_json()).by_sentence().segments == tuple(
        Segment(s.text, s.start_s, s.end_s, tuple(Word(w.text.strip(), w.start_s, w.end_s) for w in s.words))
        for s in sentences.segments)
