"""Deterministic train/validation/test splits: stratified per category, optionally grouped.

A split is decided from labels and a group key only (no media is read), so it can be computed in one light
pass over a manifest of any size before the heavy decode stream starts. Rows sharing a group key (an author,
a source, or the same normalised text, i.e. near-duplicates) always land in the same split, so a model is
never validated on a near-copy of what it trained on. Within that constraint, every split receives its share
of each category's positives (greedy iterative stratification, rarest category first) and of the rows.

The assignment is a pure function of the rows, the fractions and the seed: the same corpus gives the same
split on any machine and in any read order.
"""

from __future__ import annotations

import hashlib
import json
import posixpath
import re
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

SPLITS = ("train", "val", "test")
_NOT_WORD = re.compile(r"[\W_]+", re.UNICODE)


def near_duplicate_key(text: str | None) -> str:
    """Text normalised so that case, punctuation, spacing and emoji-only edits give the same key."""
    return _NOT_WORD.sub(" ", (text or "").lower()).strip()


def stable_hash(value: str, seed: int = 0) -> int:
    """A 63-bit hash that is the same in every process (Python's ``hash`` is salted per process)."""
    digest = hashlib.sha256(f"{seed}:{value}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def group_key(sample_id: str, text: str | None, meta: dict | None, group_by: str | None) -> str:
    """The key rows are grouped by.

    Args:
        sample_id: the row id (the group when ``group_by`` is None: every row alone).
        text: the row's text (for ``group_by="text"``).
        meta: the row's ``meta`` mapping (for ``group_by="meta.<field>"``).
        group_by: None, ``"text"`` (near-duplicate text) or ``"meta.<field>"``. A row without the field is
            its own group.
    """
    if group_by is None:
        return f"id:{sample_id}"
    if group_by == "text":
        key = near_duplicate_key(text)
        return f"text:{key}" if key else f"id:{sample_id}"
    value = (meta or {}).get(group_by.removeprefix("meta."))
    return f"meta:{value}" if value not in (None, "") else f"id:{sample_id}"


@dataclass
class _Group:
    key: str
    ids: list[str] = field(default_factory=list)
    positives: np.ndarray | None = None


def assign_splits(rows: Iterable[tuple[str, str, Sequence[int]]], fractions: dict[str, float],
                  seed: int = 0) -> dict[str, str]:
    """Assigns every row id to a split.

    Args:
        rows: ``(id, group key, labels)`` with labels one entry per category: 1, 0, or -1 for unknown.
        fractions: split name -> fraction of rows, summing to 1 (``{"train": .8, "val": .2}``).
        seed: changes which groups go where, never the balance.

    Returns:
        id -> split name.
    """
    names = [name for name in fractions if fractions[name] > 0]
    if abs(sum(fractions.values()) - 1.0) > 1e-6:
        raise ValueError(f"split fractions must sum to 1, got {fractions}")
    groups: dict[str, _Group] = {}
    for sample_id, key, labels in rows:
        positive = (np.asarray(labels) == 1).astype(np.int64)
        group = groups.get(key)
        if group is None:
            group = groups[key] = _Group(key, positives=np.zeros_like(positive))
        group.ids.append(sample_id)
        group.positives += positive
    if not groups:
        return {}
    total_rows = sum(len(g.ids) for g in groups.values())
    total_positives = sum(g.positives for g in groups.values())
    share = np.array([fractions[name] for name in names])
    want_rows = share * total_rows
    want_positives = share[:, None] * total_positives[None, :]
    have_rows = np.zeros(len(names))
    have_positives = np.zeros_like(want_positives, dtype=np.float64)
    # Rarest category first: a rare category's few positive groups are placed while every split still
    # needs them. Larger groups before smaller ones (they are the hardest to fit); the seed breaks ties.
    rarity = np.where(total_positives > 0, total_positives, np.inf)

    def order(group: _Group):
        present = np.nonzero(group.positives)[0]
        rarest = float(rarity[present].min()) if present.size else np.inf
        return (rarest, -len(group.ids), stable_hash(group.key, seed))

    assignment: dict[str, str] = {}
    for group in sorted(groups.values(), key=order):
        present = np.nonzero(group.positives)[0]
        row_need = (want_rows - have_rows) / np.maximum(want_rows, 1e-9)
        if present.size:
            category = present[np.argmin(rarity[present])]
            need = (want_positives[:, category] - have_positives[:, category]) / np.maximum(
                want_positives[:, category], 1e-9)
        else:
            need = row_need
        # Highest relative need wins; row need then the seeded hash break ties.
        tiebreak = [stable_hash(f"{group.key}|{name}", seed) for name in names]
        best = max(range(len(names)), key=lambda i: (round(float(need[i]), 9), round(float(row_need[i]), 9),
                                                     tiebreak[i]))
        have_rows[best] += len(group.ids)
        have_positives[best] += group.positives
        for sample_id in group.ids:
            assignment[sample_id] = names[best]
    return assignment


def id_keys(ids: Iterable[str]) -> np.ndarray:
    """Sorted stable hashes of ``ids``: a compact membership table for batch filters (:func:`in_split`)."""
    return np.sort(np.fromiter((stable_hash(str(i)) for i in ids), dtype=np.int64))


def split_keys(assignment: dict[str, str], split: str) -> np.ndarray:
    """:func:`id_keys` of the ids in ``split``."""
    return id_keys(i for i, s in assignment.items() if s == split)


def in_split(ids: Sequence[str], keys: np.ndarray) -> np.ndarray:
    """Boolean mask: which of ``ids`` are members of the split whose :func:`split_keys` are ``keys``."""
    hashes = np.fromiter((stable_hash(str(i)) for i in ids), dtype=np.int64, count=len(ids))
    if keys.size == 0:
        return np.zeros(len(ids), dtype=bool)
    positions = np.minimum(np.searchsorted(keys, hashes), keys.size - 1)
    return keys[positions] == hashes


def preset_split(meta: dict | None, split_by: str | None) -> str:
    """The split a row names for itself in ``meta.<field>`` (``split_by``), or "" when it names none.

    A value that is not a split name (``train``, ``val``, ``test``) names none.
    """
    if not split_by:
        return ""
    value = (meta or {}).get(split_by.removeprefix("meta."))
    return value if value in SPLITS else ""


def split_columns(records: Sequence[str], categories: Sequence[str], group_by: str | None,
                  split_by: str | None = None) -> dict[str, list]:
    """What the split needs from raw manifest records (JSON strings): id, group key, label vector and the
    split the row names for itself (``preset``: see :func:`preset_split`).

    Reads no media. A record that is not a JSON object comes back with ``parsed`` False and no split of its
    own: it joins the training stream, where preprocessing quarantines it with its reason.
    """
    ids, groups, labels, parsed, presets = [], [], [], [], []
    for record in records:
        try:
            row = json.loads(record)
        except json.JSONDecodeError:
            row = None
        parsed.append(isinstance(row, dict))
        if not parsed[-1]:
            ids.append("")
            groups.append("")
            labels.append([-1] * len(categories))
            presets.append("")
            continue
        known = row.get("labels") if isinstance(row.get("labels"), dict) else {}
        sample_id = str(row.get("id", ""))
        meta = row.get("meta") if isinstance(row.get("meta"), dict) else {}
        ids.append(sample_id)
        groups.append(group_key(sample_id, row.get("text") if isinstance(row.get("text"), str) else None,
                                meta, group_by))
        labels.append([known.get(c) if known.get(c) in (0, 1) else -1 for c in categories])
        presets.append(preset_split(meta, split_by))
    return {"id": ids, "group": groups, "labels": labels, "parsed": parsed, "preset": presets}


def write_splits(assignment: dict[str, str], uri: str) -> None:
    """Saves ``id -> split`` as Parquet (``id``, ``split``), beside the run and the exported model."""
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.table({"id": list(assignment), "split": list(assignment.values())})
    fs, path = fsspec.core.url_to_fs(uri)
    fs.makedirs(posixpath.dirname(path), exist_ok=True)
    with fs.open(path, "wb") as handle:
        pq.write_table(table, handle)


def read_splits(uri: str) -> dict[str, str]:
    """``id -> split`` as written by :func:`write_splits` (e.g. ``<model_dir>/splits.parquet``)."""
    import fsspec

    from tripwire.storage.parquet import read_table

    with fsspec.open(uri, "rb") as handle:
        table = read_table(handle)
    return dict(zip(table.column("id").to_pylist(), table.column("split").to_pylist()))
