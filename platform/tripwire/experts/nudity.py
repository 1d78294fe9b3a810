"""The nudity expert's interface: an RGB picture -> the probability that it shows nudity, and where.

The probability is a signal for ``sexual`` (and the categories a policy maps it to), beside what the trained model
says; the regions are evidence a reviewer sees, blurred.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, Protocol, Sequence

import numpy as np

from tripwire.common.registry import Registry
from tripwire.experts.ocr import Box
from tripwire.experts.weights import WeightsRecord

NUDITY_EXPERTS: Registry = Registry("nudity expert")


@dataclass(frozen=True)
class Region:
    """A part of the picture and the expert's probability for it alone."""

    box: Box
    score: float


@dataclass(frozen=True)
class NudityReading:
    """One picture's nudity probability (0-1), its size, and the regions that scored highest (where the whole
    picture scored high enough for the expert to look closer; empty otherwise)."""

    score: float
    width: int
    height: int
    regions: tuple[Region, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"score": round(self.score, 6), "width": self.width, "height": self.height,
                "regions": [{"box": list(r.box), "score": round(r.score, 6)} for r in self.regions]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "NudityReading":
        return cls(float(data["score"]), int(data["width"]), int(data["height"]),
                   tuple(Region(tuple(int(v) for v in r["box"]), float(r["score"]))  # type: ignore[arg-type]
                         for r in data.get("regions", ())))


def grid_crops(width: int, height: int, cells: int = 2) -> list[Box]:
    """Overlapping crops that localise a whole-picture classifier: a ``cells`` x ``cells`` grid of crops each
    half again as large as a cell (so what straddles a cell edge lies whole in some crop)."""
    out = []
    cw, ch = width / cells, height / cells
    for row in range(cells):
        for col in range(cells):
            x0, y0 = max(0.0, (col - 0.25) * cw), max(0.0, (row - 0.25) * ch)
            x1, y1 = min(float(width), (col + 1.25) * cw), min(float(height), (row + 1.25) * ch)
            out.append((int(x0), int(y0), int(np.ceil(x1)), int(np.ceil(y1))))
    return out


class NudityExpert(Protocol):
    """A registered nudity expert. Constructed from its config args; one call at a time per instance."""

    registry_name: str

    @property
    def weights(self) -> WeightsRecord:
        """The weights it runs with."""

    @classmethod
    def weights_record(cls, **args: Any) -> WeightsRecord:
        """The weights an instance built with ``args`` would run with (hashed from disk, nothing loaded)."""

    def detect(self, pictures: Sequence[np.ndarray]) -> list[NudityReading]:
        """One reading per (H, W, 3) uint8 RGB picture."""
