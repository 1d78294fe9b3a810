"""Training on text in pictures (``data.text_in_pictures``): the OCR stage of a training job, with the real rapidocr
engine, turns each selected row into the text read in its pictures (the text serving would score), leaves the
other rows as they are, and quarantines what it cannot read with the reason. (Through Ray Data and Ray Train:
tests/integration/test_train_runs.py.)"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from helpers import drawn_card, read_words
from tripwire.common.config import ConfigError, to_dict
from tripwire.data.rendered import bundled_photos, video_with_text
from tripwire.model.safety_model import ComponentConfig
from tripwire.training.pictures import READ_FROM, ReadTextInPictures, pictures_text, progress_line

THREAT = "We will kill you tomorrow"
CAPTION = "Lovely evening by the lake"


def _batch(rows: list[dict]) -> dict[str, np.ndarray]:
    return {"id": np.asarray([r["id"] for r in rows], object), "record": np.asarray([json.dumps(r) for r in rows], object)}


@pytest.fixture(scope="module")
def read_stage(tiny_model_config, tmp_path_factory):
    """The stage's UDF as a training job's actor builds it, over a folder of media, with its quarantine."""
    folder = tmp_path_factory.mktemp("pictures")
    udf = ReadTextInPictures(to_dict(ComponentConfig("rapidocr")), to_dict(tiny_model_config.preprocessing),
                             "meta.text_labelled", str(folder), str(folder / "quarantine"), str(folder / "progress"))
    return udf, folder


def test_selected_rows_train_on_the_text_read_and_the_others_pass_as_they_are(read_stage):
    from PIL import Image

    from tripwire.data.quarantine import read_quarantine

    udf, folder = read_stage
    Image.fromarray(drawn_card(THREAT, size=32)[0]).save(folder / "threat.png")
    Image.new("RGB", (240, 160), "white").save(folder / "blank.png")
    Image.new("RGB", (20, 20), "white").save(folder / "thumb.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    video_with_text(folder / "clip.mp4", CAPTION, bundled_photos()[0], seconds=4.0, shown=(0.0, 4.0))
    rows = [
        {"id": "threat", "image": "threat.png", "text": "look", "labels": {"harassment": 1},
         "meta": {"text_labelled": True, "source": "screenshots"}},
        {"id": "photo", "image": "threat.png", "labels": {"harassment": 0}},  # not selected: trains the image encoder
        {"id": "typed", "text": "typed words", "labels": {"harassment": 0}, "meta": {"text_labelled": True}},
        {"id": "clip", "video": "clip.mp4", "labels": {"harassment": 0}, "meta": {"text_labelled": True}},
        {"id": "blank", "image": "blank.png", "labels": {"harassment": 0}, "meta": {"text_labelled": True}},
        {"id": "thumb", "image": "thumb.png", "labels": {"harassment": 0}, "meta": {"text_labelled": True}},
        {"id": "broken", "image": "broken.png", "labels": {"harassment": 0}, "meta": {"text_labelled": True}},
    ]
    out = udf(_batch(rows))
    assert list(out["id"]) == ["threat", "photo", "typed", "clip"]
    assert list(out["read_from_pictures"]) == [True, False, False, True]
    threat, photo, typed, clip = (json.loads(r) for r in out["record"])
    assert read_words(threat["text"]) == read_words(THREAT)  # the typed "look" is not what the labels are about
    assert threat["image"] is None and threat["labels"] == {"harassment": 1}
    assert threat["meta"] == {"text_labelled": True, "source": "screenshots", READ_FROM: "image"}
    assert (photo, typed) == (rows[1], rows[2])  # their records untouched
    # The caption is shown in all 4 sampled frames and trained on once.
    assert read_words(clip["text"]) == read_words(CAPTION) and clip["video"] is None and clip["meta"][READ_FROM] == "video"
    reasons = {row["id"]: (row["reason"], row["detail"]) for row in read_quarantine(str(folder / "quarantine"))}
    assert reasons["blank"] == ("no_text_read", "the OCR engine read no text in its 1 picture(s)")
    assert reasons["thumb"][0] == "no_text_read" and "pictures.min_side (32 px)" in reasons["thumb"][1]
    assert reasons["broken"][0] == "corrupt" and set(reasons) == {"blank", "thumb", "broken"}
    # How far the actor has got, for the driver's progress lines (this fixture's UDF may have read other batches).
    assert udf.seen >= 7 and udf.read >= 2
    assert progress_line(str(folder / "progress"), 1000) == \
        f"[data] text in pictures: {udf.seen}/1000 rows looked at ({udf.seen / 10:.0f}%), {udf.read} read"


def test_the_text_trained_on_is_the_text_serving_scores(read_stage):
    """A picture with two blocks of text (a meme's top and bottom lines): training reads it as the moderation core's
    last scored text, all its blocks as one."""
    from PIL import Image, ImageDraw, ImageFont

    from tripwire.data.rendered import font_path
    from tripwire.moderation.moderator import Moderator

    udf, folder = read_stage
    picture = Image.new("RGB", (420, 300), "white")
    draw = ImageDraw.Draw(picture)
    face = ImageFont.truetype(str(font_path("DejaVuSans")), 28)
    draw.text((20, 20), "when they say", font=face, fill="black")
    draw.text((20, 240), "we will find you", font=face, fill="black")
    picture.save(folder / "meme.png")
    rgb = np.asarray(picture)
    readings = udf.expert.read([rgb])
    served = Moderator.text_blocks([(0, None, rgb)], readings)
    assert len(served) == 3  # each block, then both as one
    [row] = [json.loads(r) for r in udf(_batch([{"id": "m", "image": "meme.png", "meta": {"text_labelled": True}}]))["record"]]
    assert row["text"] == served[-1][1][0] == pictures_text(readings)
    assert read_words(row["text"]) == read_words("when they say we will find you")


def test_a_job_that_reads_pictures_needs_an_ocr_engine(tiny_model_config):
    from tripwire.common.config import from_dict
    from tripwire.training.config import TrainConfig

    base = {"model": to_dict(tiny_model_config), "data": {"text_in_pictures": {"rows": "meta.text_labelled"}}}
    with pytest.raises(ConfigError, match=r"data.text_in_pictures: needs model.experts.ocr \(the engine that reads"):
        from_dict(TrainConfig, base)
    with_ocr = dataclasses.replace(tiny_model_config, experts={"ocr": ComponentConfig("rapidocr")})
    assert from_dict(TrainConfig, {**base, "model": to_dict(with_ocr)}).data.text_in_pictures.rows == "meta.text_labelled"
    with pytest.raises(ConfigError, match="text_in_pictures.rows: 'labelled' must be 'all' or 'meta.<field>'"):
        from_dict(TrainConfig, {"model": to_dict(with_ocr), "data": {"text_in_pictures": {"rows": "labelled"}}})
