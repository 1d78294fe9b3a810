"""Slices of an evaluation: items grouped by one field (``language=en``) or a combination (``language=en&market=DE``)."""

from __future__ import annotations

from collections import Counter
from typing import Iterator, Mapping, Sequence

import numpy as np


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
