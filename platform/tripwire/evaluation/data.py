"""What an evaluation measures on: a golden set's labels and slice fields, joined with a scan's results.

Labels and slice fields are read by streaming the manifest (no media is opened); results are read column
by column from the scan's Parquet files (ids, scores, reasons). Memory is O(items x categories) numbers
plus one short string per item and slice field, whatever the media's size.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Sequence

import fsspec
import numpy as np

from tripwire.common.config import ConfigError
from tripwire.evaluation.metrics import EvalArrays
from tripwire.storage.parquet import read_table
from tripwire.policy import Action
from tripwire.data.sample import Sample
from tripwire.scan.output import PARTITION, RESULTS

META_SLICE_FIELDS = ("language", "market", "content_type", "source")


@dataclass
class GoldenLabels:
    """A golden set's ids (manifest order), labels (N, C: 1 / 0 / -1 unknown) and slice field values."""

    ids: list[str]
    labels: np.ndarray
    fields: dict[str, np.ndarray]
    unreadable: int  # rows that are not valid samples (the scan quarantines them with their reason)


def _field_value(sample: Sample, name: str) -> str | None:
    if name == "modalities":
        return "+".join(sorted(sample.modalities)) or None
    key = name[5:] if name.startswith("meta.") else name
    value = sample.meta.get(key)
    return None if value is None else str(value)


def read_labels(manifest: str, categories: Sequence[str], fields: Sequence[str]) -> GoldenLabels:
    """Streams the manifest's labels for ``categories`` and the values of the slice ``fields``."""
    ids, rows, values = [], [], {f: [] for f in fields}
    index = {c: j for j, c in enumerate(categories)}
    unreadable, seen = 0, set()
    with fsspec.open(manifest, "r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                sample = Sample.from_row(json.loads(line))
            except (ValueError, json.JSONDecodeError):
                unreadable += 1
                continue
            unknown = sorted(set(sample.labels) - set(index))
            if unknown:
                raise ConfigError(f"{manifest}: line {number} ({sample.id}): labels {unknown} are not categories "
                                  f"of the model's taxonomy")
            if sample.id in seen:
                raise ConfigError(f"{manifest}: line {number}: id {sample.id!r} appears twice; golden ids must be unique")
            seen.add(sample.id)
            row = np.full(len(categories), -1, dtype=np.int8)
            for category, value in sample.labels.items():
                row[index[category]] = value
            ids.append(sample.id)
            rows.append(row)
            for name in fields:
                values[name].append(_field_value(sample, name))
    labels = np.vstack(rows) if rows else np.zeros((0, len(categories)), np.int8)
    return GoldenLabels(ids, labels, {f: np.asarray(v, dtype=object) for f, v in values.items()}, unreadable)


def read_scored(scan_out: str, categories: Sequence[str]) -> dict[str, tuple[np.ndarray, np.ndarray, int]]:
    """id -> (scores (C,), category actions (C,), the item's action index) from a scan's results."""
    fs, path = fsspec.core.url_to_fs(scan_out)
    folder = f"{path}/{RESULTS}"
    files = sorted(fs.glob(f"{folder}/**/part-*.parquet")) if fs.exists(folder) else []
    level = {a.label: int(a) for a in Action}
    column = {c: j for j, c in enumerate(categories)}
    out = {}
    for file in files:
        action = level[file.rsplit(f"{PARTITION}=", 1)[1].split("/", 1)[0]]
        with fs.open(file, "rb") as handle:
            table = read_table(handle, columns=["id", "scores", "reasons"])
        for row in table.to_pylist():
            scores = np.array([row["scores"][c] for c in categories], np.float64)
            acted = np.zeros(len(categories), np.int8)
            for reason in row["reasons"]:
                if reason["category"] in column:
                    acted[column[reason["category"]]] = level[reason["action"]]
            out[row["id"]] = (scores, acted, action)
    return out


def join(labels: GoldenLabels, scored: dict[str, tuple[np.ndarray, np.ndarray, int]], categories: Sequence[str]
         ) -> tuple[EvalArrays, list[str]]:
    """The labelled items that were scored, in manifest order, as :class:`EvalArrays`; and the ids that
    were not scored (quarantined by the scan)."""
    keep = np.array([i in scored for i in labels.ids], dtype=bool)
    kept_ids = [i for i, k in zip(labels.ids, keep) if k]
    missing = [i for i, k in zip(labels.ids, keep) if not k]
    c = len(categories)
    scores = np.array([scored[i][0] for i in kept_ids]).reshape(len(kept_ids), c)
    category_actions = np.array([scored[i][1] for i in kept_ids]).reshape(len(kept_ids), c)
    actions = np.array([scored[i][2] for i in kept_ids], dtype=np.int8)
    arrays = EvalArrays(labels.labels[keep], scores, category_actions, actions,
                        {f: v[keep] for f, v in labels.fields.items()}, np.asarray(kept_ids, dtype=object))
    return arrays, missing
