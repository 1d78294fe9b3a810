"""Picture experts (OCR and nudity) with their real models: every registered engine reads rendered text with boxes;
the text read is scored by the checkpoint's own text model and evidenced where it was (a box, a frame's time); the
nudity probability speaks to ``sexual`` only; neither decides beyond review until the policy names it evaluated."""

from __future__ import annotations

import dataclasses
import json
import random
import shutil

import numpy as np
import pytest

from helpers import drawn_card, read_words, save_tiny_checkpoint
from tripwire.common.config import from_dict, read_yaml, to_dict
from tripwire.data.rendered import RenderRecipe, bundled_photos, render, video_with_text
from tripwire.data.sample import Sample
from tripwire.experts import NUDITY_EXPERTS, OCR_EXPERTS, ImageText, NudityReading, has_text
from tripwire.experts.nudity import grid_crops
from tripwire.experts.ocr import TextLine, reading_order
from tripwire.model.checkpoint import CheckpointManifest
from tripwire.model.safety_model import ComponentConfig
from tripwire.moderation.moderator import Moderator
from tripwire.policy import Policy, default_resource

THREAT = "We will kill you tomorrow"


def _engine(name):
    if name == "tesseract" and shutil.which("tesseract") is None:
        pytest.skip("tesseract-ocr is not installed (make ocr-tools)")
    return OCR_EXPERTS.get(name)()


@pytest.mark.parametrize("name", OCR_EXPERTS.names())
def test_every_ocr_engine_reads_lines_with_boxes_in_reading_order(name):
    engine = _engine(name)
    text = "Go back where you came from, nobody wants you here and everyone knows it"
    picture, drawn = drawn_card(text)
    flat = np.full((300, 400, 3), 200, np.uint8)
    read, blank = engine.read([picture, flat])
    assert read_words(" ".join(b.text for b in read.blocks())) == read_words(text)
    assert len(read.blocks()) == 1 and len(read.lines) == len(drawn["boxes"]) > 1  # wrapped lines: one text
    for line, truth in zip(read.lines, drawn["boxes"]):
        x0, y0, x1, y1 = line.box
        assert 0 <= x0 < x1 <= read.width and 0 <= y0 < y1 <= read.height
        assert abs(y0 - truth[1]) <= 12 and abs(y1 - truth[3]) <= 12  # the box is where the line was drawn
    assert blank.lines == () and not blank.checked  # the cheap check spared the OCR call
    assert ImageText.from_json(json.loads(json.dumps(read.to_json()))) == read
    assert engine.weights.files and all(len(sha) == 64 for sha in engine.weights.files.values())


def test_a_tilted_picture_is_read_along_its_lines():
    text = "The weather was lovely today and the whole family went down to the beach"
    picture, _ = drawn_card(text, rotation=-4.0, size=36)
    [read] = _engine("rapidocr").read([picture])
    assert read_words(" ".join(b.text for b in read.blocks())) == read_words(text) and read.angle > 0.03


def test_reading_order_and_blocks():
    lines = [TextLine("world", (120, 10, 200, 30), 1.0), TextLine("hello", (10, 12, 100, 31), 1.0),
             TextLine("second line", (10, 40, 150, 60), 1.0), TextLine("far below", (10, 300, 150, 320), 1.0)]
    ordered = reading_order(lines)
    assert [line.text for line in ordered] == ["hello", "world", "second line", "far below"]
    blocks = ImageText(400, 400, ordered).blocks()
    assert [b.text for b in blocks] == ["hello world second line", "far below"]
    assert blocks[0].box == (10, 10, 200, 60)


def test_the_text_check_passes_text_and_spares_flat_pictures():
    from PIL import Image

    picture, _ = drawn_card("Some words drawn on a plain card for the check")
    assert has_text(picture)
    assert not has_text(np.zeros((200, 300, 3), np.uint8))
    gradient = np.repeat(np.linspace(0, 255, 300, dtype=np.uint8)[None, :, None], 200, axis=0).repeat(3, axis=2)
    assert not has_text(gradient)
    # A short line over a large photograph: a few percent of the picture, but a line of strokes.
    photos = bundled_photos()
    recipe = RenderRecipe(layouts=("meme",), sizes=(28,), rotations=(3.0,), jpeg_qualities=(None,))
    assert all(has_text(np.asarray(render("Go for it!", random.Random(seed), recipe, photos)[0])) for seed in range(4))
    # Most photographs cost no OCR (3 of these 15 pass: texture that lines its strokes up).
    assert sum(has_text(np.asarray(Image.open(p).convert("RGB"))) for p in photos) <= 3


@pytest.mark.parametrize("name", NUDITY_EXPERTS.names())
def test_every_nudity_engine_scores_benign_photos_low(name):
    from PIL import Image

    engine = NUDITY_EXPERTS.get(name)()
    photos = [np.asarray(Image.open(p).convert("RGB")) for p in bundled_photos()[:6]]
    readings = engine.detect(photos)
    assert len(readings) == len(photos) and all(0 <= r.score < 0.3 and r.regions == () for r in readings)
    assert NudityReading.from_json(json.loads(json.dumps(readings[0].to_json()))) == readings[0]
    assert engine.weights.files and engine.weights.package


def test_crops_cover_the_picture_with_overlap():
    crops = grid_crops(400, 300)
    assert len(crops) == 4 and crops[0][:2] == (0, 0) and crops[-1][2:] == (400, 300)
    assert crops[0][2] > crops[1][0]  # neighbours overlap


@pytest.fixture(scope="module")
def picture_checkpoint(tiny_model_config, tmp_path_factory):
    config = dataclasses.replace(tiny_model_config, experts={"ocr": ComponentConfig("rapidocr"),
                                                             "nudity": ComponentConfig("opennsfw")})
    return save_tiny_checkpoint(config, tmp_path_factory.mktemp("picture-ckpt") / "ckpt")


def test_text_in_a_picture_is_scored_as_typed_and_evidenced_with_its_box(picture_checkpoint, tmp_path):
    from PIL import Image

    manifest = CheckpointManifest.read(picture_checkpoint)
    assert set(manifest.experts) == {"ocr", "nudity"} and manifest.experts["ocr"].weights["package"] == "rapidocr"
    picture, drawn = drawn_card(THREAT, size=36)
    Image.fromarray(picture).save(tmp_path / "threat.png")
    moderator = Moderator.local(picture_checkpoint, policy=Policy.load())
    seen, typed = moderator.moderate_sync([Sample.from_row({"id": "p", "image": str(tmp_path / "threat.png")}),
                                           Sample.from_row({"id": "t", "text": THREAT})])
    assert seen.modalities == ["image", "image_text", "nudity"]
    evidence = seen.evidence["image_text"]
    assert read_words(evidence["text"]) == read_words(THREAT) and "frame_s" not in evidence["blocks"][0]
    x0, y0, x1, y1 = evidence["blocks"][0]["box"]
    assert abs(y0 - drawn["boxes"][0][1]) <= 12 and x1 > x0
    [read] = moderator.moderate_sync([Sample.from_row({"id": "r", "text": evidence["blocks"][0]["text"]})])
    for category, score in seen.scores.items():
        assert score >= read.scores[category] - 1e-5
        assert evidence["worst"][category]["score"] == pytest.approx(read.scores[category], abs=1e-5)
        if seen.attribution[category]["driven_by"] == "image_text":
            assert score == pytest.approx(read.scores[category], abs=1e-5)
    # Nudity speaks to sexual only, and a card is not nude.
    assert seen.evidence["nudity"]["score"] < 0.3 and seen.evidence["nudity"]["pictures"][0]["regions"] == []
    assert seen.attribution["hate"]["contributions"]["nudity"] == 0.0


def test_picture_signals_are_held_at_review_until_the_policy_names_them(picture_checkpoint, tmp_path):
    from PIL import Image

    Image.fromarray(drawn_card(THREAT, size=36)[0]).save(tmp_path / "threat.png")
    raw = read_yaml(default_resource("policy.yaml"))
    evaluated = raw["signals"].pop("image_text")  # the bundled policy names it (bench.bench_pictures rendered)
    raw.update(version="block-all", markets={}, categories={c: {"review": 0.0, "block": 0.0} for c in raw["categories"]})
    moderator = Moderator.local(picture_checkpoint, policy=from_dict(Policy, raw))
    sample = Sample.from_row({"id": "p", "image": str(tmp_path / "threat.png")})
    [held] = moderator.moderate_sync([sample])
    assert held.action == "review"
    assert set(held.evidence["unevaluated_signals"]["hate"]["signals"]) == {"image", "image_text"}  # nudity: silent
    assert set(held.evidence["unevaluated_signals"]["sexual"]["signals"]) == {"image", "image_text", "nudity"}
    raw.update(version="text-read-evaluated", signals={**raw["signals"], "image_text": evaluated})
    moderator.set_policy(from_dict(Policy, raw))
    [decided] = moderator.moderate_sync([sample])
    assert decided.action == "block"


def test_text_in_video_frames_is_evidenced_at_the_frames_time(tiny_model_config, tmp_path):
    """A text-only checkpoint with OCR reads pictures and video frames it has no encoder for."""
    config = dataclasses.replace(tiny_model_config, encoders={"text": tiny_model_config.encoders["text"]},
                                 experts={"ocr": ComponentConfig("rapidocr")})
    moderator = Moderator.local(save_tiny_checkpoint(config, tmp_path / "ckpt"), policy=Policy.load())
    video = video_with_text(tmp_path / "clip.mp4", THREAT, bundled_photos()[0], seconds=4.0, shown=(2.0, 3.0))
    [result] = moderator.moderate_sync([Sample.from_row({"id": "v", "video": str(video)})])
    assert result.modalities == ["image_text"]
    times = [b["frame_s"] for b in result.evidence["image_text"]["blocks"] if "kill" in b["text"].lower()]
    assert times and all(2.0 <= t < 3.0 for t in times)  # 4 sampled frames: one falls in the 2-3 s it is shown


def test_a_scans_stages_carry_the_pictures_to_the_same_result(picture_checkpoint, tmp_path):
    from PIL import Image

    from helpers import assert_same_result
    from tripwire.moderation.result import ModerationResult
    from tripwire.scan.stages import ModerateBatch, prepare_batch

    Image.fromarray(drawn_card(THREAT, size=36)[0]).save(tmp_path / "threat.png")
    samples = [Sample.from_row({"id": "p", "image": str(tmp_path / "threat.png"), "text": "look at this"}),
               Sample.from_row({"id": "t", "text": "nothing drawn"})]
    manifest = CheckpointManifest.read(picture_checkpoint)
    batch = prepare_batch({"id": np.asarray([s.id for s in samples], object),
                           "record": np.asarray([json.dumps(s.to_row()) for s in samples], object)},
                          json.dumps(to_dict(manifest.preprocessing())), tuple(manifest.modalities), str(tmp_path),
                          str(tmp_path / "q"), None, pictures=True)
    rows = ModerateBatch(picture_checkpoint, None, str(tmp_path / "scan"))(batch).to_pylist()
    expected = Moderator.local(picture_checkpoint).moderate_sync(samples)
    for row, want in zip(rows, expected):
        assert_same_result(ModerationResult.from_row(row).replace(embedding=None), want)
    assert "image_text" in expected[0].evidence and "image_text" not in expected[1].evidence


def test_a_gpu_this_onnxruntime_cannot_use_is_refused_naming_the_field():
    import onnxruntime

    from tripwire.common.config import ConfigError

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has CUDA")
    with pytest.raises(ConfigError, match="ocr.args.use_gpu: use_gpu needs onnxruntime with CUDA"):
        OCR_EXPERTS.get("rapidocr")(use_gpu=True)
    with pytest.raises(ConfigError, match="nudity.args.use_gpu"):
        NUDITY_EXPERTS.get("opennsfw")(use_gpu=True)


def test_pictures_too_small_for_text_are_not_given_to_picture_experts(tiny_model_config, tmp_path):
    from PIL import Image

    from tripwire.data.preprocess import Preprocessor

    preprocessor = Preprocessor(tiny_model_config.preprocessing, ("text", "image"), pictures=True)
    Image.new("RGB", (24, 24), "white").save(tmp_path / "thumb.png")
    Image.new("RGB", (2000, 400), "white").save(tmp_path / "banner.png")
    thumb = preprocessor.sample(Sample.from_row({"id": "t", "image": str(tmp_path / "thumb.png")}))
    banner = preprocessor.sample(Sample.from_row({"id": "b", "image": str(tmp_path / "banner.png")}))
    assert "pictures" not in thumb and "image" in thumb  # under min_side (32): the encoder still sees it
    assert banner["pictures"][0].shape == (256, 1280, 3) and banner["picture_times"] == [None]  # max_side 1280
