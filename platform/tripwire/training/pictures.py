"""Text in pictures for training (``data.text_in_pictures``): rows whose labels are about the words drawn in their
pictures (screenshots of comments, captioned memes, rendered text) are read by the model's OCR expert in a Ray
Data actor pool, and train the text model on what was read.

Serving scores text read in a picture with the text encoder and the fusion head alone
(:meth:`tripwire.moderation.moderator.Moderator.score`), so a selected row becomes a text-only row: its text is
everything read in its pictures (an image, or a video's sampled frames, as serving samples them), each picture's
blocks as one text (:func:`tripwire.experts.ocr.whole_text`), a text repeated across frames once. The text model
thus learns from the words as the engine reads them, misreadings included. Its other media are dropped: the row's
labels are about its text. A selected row where nothing is read is quarantined (``no_text_read``); bad media is
quarantined with its reason, as preprocessing does.

The stage runs once per job, before the splits are filtered and preprocessed, and its output (manifest records,
text only where read) is kept in Ray's object store: OCR costs a third of a second a picture, so it must not run
every epoch. Thousands of pictures take many minutes, so each actor writes how far it has got to the run's folder
after every batch (``text_in_pictures/progress/``) and the driver says the total every ``PROGRESS_EVERY_S``.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import threading
import time
import uuid
from typing import Any, Sequence

import numpy as np

from tripwire.common.config import from_dict, to_dict
from tripwire.common.progress import Say
from tripwire.data.media import MediaError
from tripwire.data.quarantine import write_quarantine
from tripwire.data.rows import quarantine_row
from tripwire.data.sample import Sample
from tripwire.experts import ImageText, whole_text

logger = logging.getLogger(__name__)

READ_FROM = "text_read_from"  # the meta field a rewritten row names its source in: "image" or "video"
PROGRESS_EVERY_S = 30.0


def pictures_text(readings: Sequence[ImageText]) -> str:
    """What the pictures of one row say: each picture's blocks as one text, in order, each distinct text once (a
    caption shown across a video's frames is read in each)."""
    texts = [whole_text(reading.blocks()) for reading in readings]
    return " ".join(dict.fromkeys(text for text in texts if text))


def selected(sample: Sample, rows: str) -> bool:
    """Whether ``data.text_in_pictures.rows`` picks this row: it has a picture (an image or a video) and, for
    ``meta.<field>``, that field is true."""
    if sample.image is None and sample.video is None:
        return False
    return rows == "all" or bool(sample.meta.get(rows.removeprefix("meta.")))


class ReadTextInPictures:
    """Ray Data ``map_batches`` UDF: ``{"id", "record"}`` manifest rows -> the same columns, each selected row's
    record rewritten as the text read in its pictures, plus ``read_from_pictures`` (bool) per row.

    Args:
        expert: the model's ``experts.ocr`` (a :class:`~tripwire.model.safety_model.ComponentConfig` as a dict).
        preprocessing: the model's :class:`~tripwire.data.preprocess.PreprocessingConfig` as a dict (media limits,
            video frame sampling, ``pictures``: what OCR is given, as in serving).
        rows: ``data.text_in_pictures.rows``.
        base_uri: the manifest's folder, for relative media URIs.
        quarantine_dir: where unusable selected rows go; None to only drop them.
        progress_dir: where this actor writes how many rows it has seen and read (:func:`progress_line`); None
            to write nothing.
    """

    def __init__(self, expert: dict, preprocessing: dict, rows: str, base_uri: str, quarantine_dir: str | None,
                 progress_dir: str | None = None):
        from tripwire.data.preprocess import PreprocessingConfig, Preprocessor
        from tripwire.experts import load_expert
        from tripwire.model.safety_model import ComponentConfig

        self.expert = load_expert("ocr", from_dict(ComponentConfig, expert))
        # No encoders: only the pictures (the image, the video's sampled frames) are decoded.
        self.preprocessor = Preprocessor(from_dict(PreprocessingConfig, preprocessing), (), pictures=True)
        self.rows = rows
        self.base_uri = base_uri
        self.quarantine_dir = quarantine_dir
        self.progress = f"{progress_dir.rstrip('/')}/{uuid.uuid4().hex}.json" if progress_dir else None
        self.seen, self.read = 0, 0

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from tripwire.experts import run_expert

        out: list[list[Any]] = []  # [id, record, read_from_pictures] per row kept
        wanted: list[tuple[list[Any], Sample, int]] = []  # (its output row, sample, how many pictures)
        pictures: list[np.ndarray] = []
        bad: list[dict[str, str]] = []
        for row_id, record in zip(batch["id"], batch["record"]):
            sample = _parsed(record)
            if sample is None or not selected(sample, self.rows):  # unparseable rows are quarantined downstream
                out.append([row_id, record, False])
                continue
            try:
                seen = self.preprocessor.sample(dataclasses.replace(sample, text=None, audio=None), self.base_uri)
            except MediaError as exc:
                bad.append(quarantine_row(str(row_id), record, exc))
                continue
            found = seen.get("pictures", [])
            if not found:
                bad.append({"id": sample.id, "reason": "no_text_read", "detail": "its pictures are under "
                            f"pictures.min_side ({self.preprocessor.config.pictures.min_side} px): too small to read"})
                continue
            out.append([row_id, None, True])
            wanted.append((out[-1], sample, len(found)))
            pictures += found
        readings = run_expert("ocr", self.expert, pictures) if pictures else []
        start = 0
        for row, sample, count in wanted:
            text = pictures_text(readings[start:start + count])
            start += count
            if not text:
                bad.append({"id": sample.id, "reason": "no_text_read",
                            "detail": f"the OCR engine read no text in its {count} picture(s)"})
                continue
            source = "image" if sample.image is not None else "video"
            row[1] = json.dumps(dataclasses.replace(sample, text=text, image=None, audio=None, video=None,
                                                    meta={**sample.meta, READ_FROM: source}).to_row())
        if bad and self.quarantine_dir:
            write_quarantine(self.quarantine_dir, bad)
        kept = [row for row in out if row[1] is not None]
        self.seen += len(batch["id"])
        self.read += sum(1 for row in kept if row[2])
        if self.progress:
            _write_json(self.progress, {"seen": self.seen, "read": self.read})
        return {"id": np.asarray([row[0] for row in kept], dtype=object),
                "record": np.asarray([row[1] for row in kept], dtype=object),
                "read_from_pictures": np.asarray([row[2] for row in kept], dtype=bool)}


def _write_json(path: str, data: dict) -> None:
    import fsspec

    fs, local = fsspec.core.url_to_fs(path)
    fs.makedirs(local.rsplit("/", 1)[0], exist_ok=True)
    with fs.open(local, "w") as handle:
        json.dump(data, handle)


def progress_line(progress_dir: str, total: int) -> str | None:
    """The stage's progress over all its actors, from what each wrote to ``progress_dir`` (None before any has)."""
    import fsspec

    fs, folder = fsspec.core.url_to_fs(progress_dir)
    seen = read = 0
    for path in fs.glob(f"{folder}/*.json") if fs.exists(folder) else []:
        try:
            with fs.open(path, "r") as handle:
                data = json.load(handle)
            seen, read = seen + int(data["seen"]), read + int(data["read"])
        except (OSError, ValueError, KeyError):
            continue  # being written
    if not seen:
        return None
    return f"[data] text in pictures: {seen}/{total} rows looked at ({100 * seen / max(total, 1):.0f}%), {read} read"


def _say_progress(progress_dir: str, total: int, say: Say, stop: threading.Event) -> None:
    last = None
    while not stop.wait(PROGRESS_EVERY_S):
        line = progress_line(progress_dir, total)
        if line and line != last:
            say(line)
            last = line


def _parsed(record: Any) -> Sample | None:
    try:
        return Sample.from_row(json.loads(record))
    except (ValueError, TypeError):
        return None


def read_text_in_pictures(raw, cfg, base_uri: str, quarantine_dir: str, num_rows: int, say: Say = logger.info):
    """The manifest's rows with ``cfg.data.text_in_pictures`` applied, read once into Ray's object store.

    Args:
        raw: the manifest as a Ray Dataset of ``{"id", "record"}`` rows.
        cfg: the job's :class:`~tripwire.training.config.TrainConfig`.
        base_uri: the manifest's folder.
        quarantine_dir: the job's quarantine.
        num_rows: the manifest's rows (for the progress lines).

    Returns:
        The rows (the same columns, ``read_from_pictures`` added), materialised, and ``{"rows": how many were read,
        "seconds": the stage's wall time}`` (for the job's summary).
    """
    import fsspec
    from ray.data import ActorPoolStrategy

    setting = cfg.data.text_in_pictures
    raw.context.execution_options.preserve_order = cfg.data.ordered
    progress_dir = f"{cfg.storage_path}/{cfg.run_name}/text_in_pictures/progress"
    fs, folder = fsspec.core.url_to_fs(progress_dir)
    if fs.exists(folder):  # an earlier attempt's counts
        fs.rm(folder, recursive=True)
    stop = threading.Event()
    watch = threading.Thread(target=_say_progress, args=(progress_dir, num_rows, say, stop), daemon=True)
    started = time.perf_counter()
    watch.start()
    try:
        read = raw.map_batches(
            ReadTextInPictures, batch_size=setting.batch_size, batch_format="numpy", num_cpus=setting.cpus_per_actor,
            fn_constructor_kwargs={"expert": to_dict(cfg.model.experts["ocr"]),
                                   "preprocessing": to_dict(cfg.model.preprocessing), "rows": setting.rows,
                                   "base_uri": base_uri, "quarantine_dir": quarantine_dir,
                                   "progress_dir": progress_dir},
            compute=ActorPoolStrategy(min_size=1, max_size=setting.actors)).materialize()
    finally:
        stop.set()
        watch.join(timeout=5)
    count = int(read.sum("read_from_pictures") or 0)  # None for no rows
    wall = time.perf_counter() - started
    say(f"[data] read the text in the pictures of {count} rows (text_in_pictures.rows: {setting.rows}) with "
        f"{cfg.model.experts['ocr'].name} in {wall:.1f}s ({count / max(wall, 1e-9):.2f} rows/s); the text model "
        "trains on what was read")
    return read, {"rows": count, "seconds": round(wall, 1)}
