"""Slices of an evaluation: items grouped by one field (``language=en``) or a combination (``language=en&market=DE``)."""

from __future__ import annotations

from collections import Counter
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from tripwire.evaluation.metrics import EvalArrays, summarize

if TYPE_CHECKING:
    from tripwire.evaluation.config import EvalConfig


def slice_masks(fields: Mapping[str, np.ndarray], specs: Sequence[str], max_values: int
                ) -> Iterator[tuple[str, dict[str, str], np.ndarray]]:
    """(name, field values, mask) per slice: for each spec, its value combinations present in the data,
    largest first, at most ``max_values`` of them. Items without a value for a field are in none of its slices."""
    for spec in specs:
        names = spec.split("&")
        columns = [fields[n] for n in names]
        combos = Counter(tuple(values) for values in zip(*columns) if all(v is not None for v in values))
        for combo, _ in sorted(combos.items(), key=lambda kv: (-kv[1], kv[0]))[:max_values]:
            mask = np.ones(len(columns[0]), dtype=bool)
            for column, value in zip(columns, combo):
                mask &= column == value
            values = dict(zip(names, combo))
            yield "&".join(f"{n}={v}" for n, v in values.items()), values, mask


def slice_seed(name: str) -> int:
    """A stable per-slice offset for the bootstrap's seed (the same slice resamples alike in every run)."""
    import zlib

    return zlib.crc32(name.encode())


def empty_slice_specs(fields: Mapping[str, np.ndarray], specs: Sequence[str]) -> list[str]:
    """The specs no item has values for (a misspelt ``meta.<key>``, a field the set does not carry): reported
    by name, so an empty slice is not mistaken for a slice that was fine."""
    def has_values(spec: str) -> bool:
        present = np.ones(len(fields[spec.split("&")[0]]), dtype=bool)
        for name in spec.split("&"):
            present &= np.array([value is not None for value in fields[name]], dtype=bool)
        return bool(present.any())

    return [spec for spec in specs if not has_values(spec)]


def measure(arrays: EvalArrays, categories: Sequence[str], config: "EvalConfig",
            thresholds: Mapping[str, Mapping[str, float | None]] | None = None) -> dict[str, Any]:
    """Overall and per-slice summaries of one evaluated set (the part of an evaluation report a comparison repeats).

    A slice with fewer than ``config.min_slice_items`` items is too small as a whole
    (``{"fields", "items", "too_small": True}``); within a measured slice, a category with fewer than
    ``config.min_slice_positives`` positives or ``config.min_slice_negatives`` negatives is too small on
    its own (its entry says why, without metrics) and is left out of the slice's macro and micro figures.
    """
    args = (categories, config.positive_level, config.target_precision, config.bootstrap)
    overall = summarize(arrays, *args, thresholds=thresholds)
    slices: dict[str, Any] = {spec: {"fields": {}, "items": 0, "too_small": True, "empty": "no item has a value for it"}
                              for spec in empty_slice_specs(arrays.fields, config.slices)}
    for name, values, mask in slice_masks(arrays.fields, config.slices, config.max_slice_values):
        items = int(mask.sum())
        if items < config.min_slice_items:
            slices[name] = {"fields": values, "items": items, "too_small": True}
        else:
            slices[name] = {"fields": values, "too_small": False,
                            **summarize(arrays.subset(mask), *args, seed_offset=slice_seed(name),
                                        min_positives=config.min_slice_positives,
                                        min_negatives=config.min_slice_negatives)}
    return {"overall": overall, "slices": slices}
