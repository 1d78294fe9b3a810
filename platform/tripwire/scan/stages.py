"""The scan's two Ray Data stages: decode + preprocess in CPU tasks, the moderation core in a model actor pool.

Preprocessing (:func:`prepare_batch`) runs as stateless tasks that scale with the cluster's CPUs; the
model (:class:`ModerateBatch`) runs in long-lived actors, on GPUs when they have them. Between the two,
rows travel as :func:`scan_columns` (the text's tokens, and each media modality only where the row has it), plus
the item's id, market and video frame timestamps.

Long media (audio or video past the media limits, within the windows' limits) is not decoded by the first stage:
its row carries the item (``long_record``, media URIs made absolute) to the model actor, which streams it window
by window (:meth:`tripwire.moderation.moderator.Moderator.moderate_long`), so a row never holds an hour of audio.
"""

from __future__ import annotations

import datetime
import functools
import json
import pickle
from typing import Any

import numpy as np
import pyarrow as pa

from tripwire.data.sample import MODALITIES
from tripwire.common.config import from_dict
from tripwire.data.longform import media_seconds
from tripwire.data.media import MediaError
from tripwire.data.preprocess import PreprocessingConfig, Preprocessor
from tripwire.data.sample import Sample, resolve_uri
from tripwire.data.quarantine import write_quarantine
from tripwire.data.rows import prepare_records, quarantine_row
from tripwire.experts.speech import SAMPLE_RATE
from tripwire.scan.progress import ItemProgress


@functools.lru_cache(maxsize=4)
def _preprocessor(preprocessing_json: str, modalities: tuple[str, ...], speech: bool = False,
                  pictures: bool = False) -> Preprocessor:
    """One Preprocessor per worker process and setting (the tokenizer and mel filters take a while to build)."""
    return Preprocessor(from_dict(PreprocessingConfig, json.loads(preprocessing_json)), modalities,
                        SAMPLE_RATE if speech else None, pictures)


def prepare_batch(batch: dict[str, np.ndarray], preprocessing_json: str, modalities: tuple[str, ...],
                  base_uri: str, quarantine_dir: str, market: str | None, speech: bool = False,
                  pictures: bool = False) -> dict[str, np.ndarray]:
    """Manifest records -> collated model inputs (bad rows to the quarantine, with their reason).

    Args:
        batch: ``{"id", "record"}`` columns (:func:`tripwire.data.sample.to_records`).
        preprocessing_json: the checkpoint's :class:`PreprocessingConfig` as JSON (tokenizer path made local).
        modalities: the model's modalities.
        base_uri: the manifest's folder, for relative media URIs.
        quarantine_dir: where bad rows go.
        market: the market every item is decided for (None: each item's ``meta.market``).
        speech: the checkpoint names a speech expert: each row keeps its audio's 16 kHz waveform (``speech``,
            empty where it has none) for the moderation actors' expert.
        pictures: the checkpoint names picture experts (OCR, nudity): each row keeps its image and video
            frames as RGB (``pictures``, pickled; empty where it has none).
    """
    preprocessor = _preprocessor(preprocessing_json, tuple(modalities), speech, pictures)
    good, bad = prepare_records(batch["id"], batch["record"], lambda s: _prepared_or_long(preprocessor, s, base_uri))
    write_quarantine(quarantine_dir, bad)
    items = [prepared for _, prepared in good]
    out = scan_columns(preprocessor, items)
    if "video" in modalities:  # the frames' times, for the evidence
        frames = preprocessor.config.video.num_frames
        out["video_timestamps"] = np.asarray([np.asarray(p.get("video_timestamps", np.zeros(frames)), np.float64)
                                              for p in items]).reshape(len(items), frames)
    if speech:  # ragged: Ray Data carries them as a variable-shaped tensor column
        waves = np.empty(len(items), dtype=object)  # one entry per row, whatever the lengths
        for i, p in enumerate(items):
            waves[i] = np.asarray(p.get("speech", np.zeros(0, np.float32)), np.float32)
        out["speech"] = waves
        out["has_speech"] = np.asarray(["speech" in p for p in items], dtype=bool)
    if pictures:  # ragged and of several shapes per row: one pickled list of arrays per row
        out["pictures"] = np.asarray([pickle.dumps((p.get("pictures", []), p.get("picture_times", [])),
                                                   protocol=5) for p in items], dtype=object)
    out["long_record"] = np.asarray([json.dumps(p[LONG]) if LONG in p else "" for p in items], dtype=object)
    out["id"] = np.asarray([s.id for s, _ in good], dtype=object)
    out["market"] = np.asarray([market or s.meta.get("market") for s, _ in good], dtype=object)
    return out


LONG = "long_record"


def scan_columns(preprocessor: Preprocessor, items: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """Prepared items -> the columns that go to the model actors: ``present_<modality>`` flags, the text's token
    columns (fixed shape, a few hundred bytes), and each media modality as one array per row, empty where the row
    lacks it. Training's :meth:`Preprocessor.collate` gives an absent modality its zero placeholder instead; here,
    where a catalogue mixes text, pictures and video, an image row would carry a video's worth of zeros (221 KB
    with the demo's settings, eight times its own image) through the object store."""
    out: dict[str, np.ndarray] = {}
    placeholders = preprocessor.empty_item()
    for modality in preprocessor.modalities:
        out[f"present_{modality}"] = np.asarray([modality in item for item in items], dtype=bool)
        if modality == "text":
            no_text = np.zeros(preprocessor.config.text.max_length, np.int64)
            for key in ("input_ids", "attention_mask"):
                rows = [item["text"][key] if "text" in item else no_text for item in items]
                out[f"text_{key}"] = np.stack(rows) if rows else no_text[None][:0]
            continue
        # Ragged, so Ray Data carries it as a variable-shaped tensor: of one dtype and number of dimensions.
        placeholder = placeholders[modality]
        absent = np.zeros((0,) * placeholder.ndim, placeholder.dtype)
        column = np.empty(len(items), dtype=object)
        for i, item in enumerate(items):
            column[i] = item.get(modality, absent)
        out[modality] = column
    return out


def _prepared_or_long(preprocessor: Preprocessor, sample: Sample, base_uri: str) -> dict[str, Any]:
    """The sample prepared, or, for long media, ``{LONG: its row}`` (its length checked against the windows'
    limits from the header; its media URIs absolute) for the model actor to stream."""
    try:
        return preprocessor.sample(sample, base_uri)
    except MediaError as exc:
        if exc.field not in ("audio", "video") or exc.reason not in ("too_long", "too_large"):
            raise
    field = "audio" if sample.audio is not None else "video"
    windows = preprocessor.config.windows
    media_seconds(field, getattr(sample, field), base_uri, windows)  # too_large or too_long past the windows'
    row = sample.to_row()
    for name in ("image", "audio", "video"):
        if isinstance(row[name], str) and not row[name].startswith("data:"):
            row[name] = resolve_uri(row[name], base_uri)
        elif isinstance(row[name], bytes):
            raise MediaError(name, "too_large", "long media must be given by URI, not inline")
    return {LONG: row}


def rows_from_batch(batch: dict[str, Any], modalities: tuple[str, ...]) -> list[dict[str, Any]]:
    """:func:`prepare_batch`'s columns -> one prepared item per row (what :meth:`Preprocessor.sample` returned)."""
    items = []
    for i in range(len(batch["id"])):
        item: dict[str, Any] = {}
        for modality in modalities:
            if not batch[f"present_{modality}"][i]:
                continue
            if modality == "text":
                item["text"] = {"input_ids": batch["text_input_ids"][i], "attention_mask": batch["text_attention_mask"][i]}
            else:
                item[modality] = batch[modality][i]
        if "video" in item:
            item["video_timestamps"] = list(batch["video_timestamps"][i])
        if "has_speech" in batch and batch["has_speech"][i]:
            item["speech"] = np.asarray(batch["speech"][i], np.float32)
        if "pictures" in batch:
            pictures, times = pickle.loads(batch["pictures"][i])  # written by prepare_batch, in this scan
            if pictures:
                item["pictures"], item["picture_times"] = pictures, times
        items.append(item)
    return items


class ModerateBatch:
    """Ray Data actor: the moderation core with the model in this process (a GPU when the actor has one).

    Args:
        checkpoint: the model's checkpoint URI.
        policy: a policy YAML (None: the checkpoint's, :meth:`CheckpointManifest.policy`).
        out: the scan's output folder: how far each long item has got is written there
            (:mod:`tripwire.scan.progress`), and a long item that turns out unusable part-way (damage its header
            did not show) goes to its quarantine.
    """

    def __init__(self, checkpoint: str, policy: str | None, out: str):
        import torch

        from tripwire.model.checkpoint import CheckpointManifest
        from tripwire.moderation.moderator import Moderator

        torch.set_num_threads(1)
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.moderator = Moderator.local(checkpoint, CheckpointManifest.read(checkpoint).policy(policy), device)
        self.modalities = tuple(m for m in MODALITIES if m in self.moderator.modalities)
        self.out = out

    def __call__(self, batch: dict[str, np.ndarray]) -> pa.Table:
        from tripwire.scan.output import QUARANTINE, result_rows, result_schema

        ids = [str(i) for i in batch["id"]]
        markets = [m if isinstance(m, str) else None for m in batch["market"]]
        records = batch.get(LONG, np.asarray([""] * len(ids), dtype=object))
        items = rows_from_batch(batch, self.modalities)
        short = [i for i, record in enumerate(records) if not record]
        results = dict(zip(short, self.moderator.moderate_prepared_sync(
            [ids[i] for i in short], [items[i] for i in short], [markets[i] for i in short], with_embedding=True)))
        for i, record in enumerate(records):
            if record:
                try:
                    results[i] = self._long(Sample.from_row(json.loads(record)), markets[i])
                except MediaError as exc:
                    write_quarantine(f"{self.out.rstrip('/')}/{QUARANTINE}", [quarantine_row(ids[i], record, exc)])
        rows = result_rows([results[i] for i in sorted(results)], datetime.datetime.now(datetime.timezone.utc))
        schema = result_schema(self.moderator.categories).append(pa.field("action", pa.string()))
        return pa.Table.from_pylist(rows, schema=schema)

    def _long(self, sample: Sample, market: str | None):
        progress = ItemProgress(self.out, sample.id)
        try:
            return self.moderator.moderate_long_sync(sample, None, market, progress.update, with_embedding=True)
        finally:
            progress.finish()
