"""A training job with too many bad rows fails with the reason, streaming or with its preprocessing cached; a job
trains its text model on the text read in pictures. (Reproducibility and resuming by run name: test_cluster.py; a
killed worker: test_train_faults.py.)"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from helpers import epochs_in


@pytest.mark.parametrize("cached", [False, True], ids=["streaming", "cached_preprocessing"])
def test_too_many_bad_rows_fail_the_job_with_reasons(trained, cores_for_training, tmp_path, cached):
    from pipelines.train import run
    from tripwire.data.quarantine import QuarantineLimitExceeded

    cfg, _ = trained  # the session corpus has 3 bad rows (its last lines) in ~160
    # Its first 40 rows and the 3 bad ones, beside it (the media paths are relative): an epoch of 40 rows shows them.
    lines = Path(cfg.data.manifest).read_text().splitlines(keepends=True)
    subset = Path(cfg.data.manifest).with_name(f"strict-{'cached' if cached else 'streaming'}.jsonl")
    subset.write_text("".join(lines[:40] + lines[-3:]))
    strict = dataclasses.replace(cfg, run_name="strict", storage_path=str(tmp_path / "ray"),
                                 export_dir=str(tmp_path / "model"),
                                 data=dataclasses.replace(cfg.data, manifest=str(subset), max_quarantine_fraction=0.01,
                                                          cache_preprocessed=cached),
                                 fit=dataclasses.replace(cfg.fit, num_workers=1))
    with pytest.raises(QuarantineLimitExceeded, match=r"3 of \d+ rows .*corrupt.*invalid_row"):
        run(strict)
    trained_epochs = [r["epoch"] for r in epochs_in(Path(strict.storage_path) / strict.run_name)]
    # Streaming, the first epoch reveals the bad rows and the job stops after it; with the preprocessed
    # data cached, they are known before training starts.
    assert trained_epochs == ([] if cached else [0])
    assert not Path(strict.export_dir).exists()  # and exported nothing


def test_a_job_trains_its_text_model_on_the_text_read_in_pictures(trained, cores_for_training, tmp_path):
    """``data.text_in_pictures``: screenshots whose labels are about their words are read by the OCR expert in Ray
    Data and reach training as the text read; a picture with nothing to read is quarantined with the reason."""
    import json
    import random

    import numpy as np
    from PIL import Image

    from pipelines.train import run
    from tripwire.data.rendered import RenderRecipe, render
    from tripwire.model.safety_model import ComponentConfig
    from tripwire.training.config import TextInPicturesConfig

    cfg, _ = trained
    recipe = RenderRecipe(layouts=("card",), sizes=(30,), rotations=(0.0,), jpeg_qualities=(None,))
    texts = {1: ["We will kill you tomorrow", "Nobody wants you here, leave", "You are a worthless idiot"],
             0: ["See you at the station", "Lovely evening by the lake", "Thanks for the recipe"]}
    cards = []
    for label, lines in texts.items():
        for n, text in enumerate(lines):
            path = tmp_path / f"card-{label}-{n}.png"
            Image.fromarray(np.asarray(render(text, random.Random(n), recipe, [])[0])).save(path)
            cards.append({"id": f"card-{label}-{n}", "image": str(path), "labels": {"harassment": label},
                          "meta": {"split": "val", "screenshot": True}})
    Image.new("RGB", (200, 120), "white").save(tmp_path / "blank.png")
    cards.append({"id": "blank", "image": str(tmp_path / "blank.png"), "labels": {"harassment": 0},
                  "meta": {"split": "val", "screenshot": True}})
    corpus = Path(cfg.data.manifest).read_text().splitlines()[:32]  # good rows (the corpus's bad ones are last)
    subset = Path(cfg.data.manifest).with_name("screenshots.jsonl")
    subset.write_text("\n".join(corpus + [json.dumps(card) for card in cards]) + "\n")
    reading = dataclasses.replace(
        cfg, run_name="screenshots", storage_path=str(tmp_path / "ray"), export_dir=str(tmp_path / "model"),
        data=dataclasses.replace(cfg.data, manifest=str(subset), text_in_pictures=TextInPicturesConfig(
            rows="meta.screenshot", cpus_per_actor=1.0)),
        model=dataclasses.replace(cfg.model, experts={"ocr": ComponentConfig("rapidocr")}),
        fit=dataclasses.replace(cfg.fit, num_workers=1, epochs=1))
    summary = run(reading)
    assert summary["read_from_pictures"]["rows"] == 6
    assert summary["quarantine_reasons"] == {"no_text_read": 1}
    # The six read screenshots were validated on with the corpus's validation rows, as text.
    validation = [json.loads(line) for line in corpus if json.loads(line).get("meta", {}).get("split") == "val"]
    harassment = summary["val_metrics"]["harassment"]
    assert harassment["support"] == sum("harassment" in row["labels"] for row in validation) + 6
    assert harassment["positives"] == sum(row["labels"].get("harassment", 0) for row in validation) + 3
