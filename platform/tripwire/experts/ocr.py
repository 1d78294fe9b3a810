"""The OCR expert's interface: an RGB picture -> the lines of text drawn in it, each with its box.

What is read is scored by the checkpoint's own text model (:mod:`tripwire.moderation`), as typed text and
transcripts are, a block of lines at a time: a sentence wrapped over three lines is one text, as it was typed.
A cheap check (:func:`has_text`) runs first, so a photo without text costs no OCR.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Protocol, Sequence

import numpy as np

from tripwire.common.registry import Registry
from tripwire.experts.weights import WeightsRecord

OCR_EXPERTS: Registry = Registry("ocr expert")

Box = tuple[int, int, int, int]  # x0, y0, x1, y1 in the picture's pixels (x1, y1 exclusive)


@dataclass(frozen=True)
class TextLine:
    """One line of text read from a picture: its words, where it is, and the engine's confidence (0-1)."""

    text: str
    box: Box
    confidence: float  # engines round it to 4 places, so JSON carries it exactly


@dataclass(frozen=True)
class ImageText:
    """What was read in one picture.

    Attributes:
        width, height: the picture's size in pixels (the boxes' frame).
        lines: the lines read, in reading order (top to bottom, then left to right).
        checked: the text-presence check's verdict (False: OCR did not run, ``lines`` is empty).
    """

    width: int
    height: int
    lines: tuple[TextLine, ...] = ()
    checked: bool = True
    angle: float = 0.0  # the text's slope in radians (a tilted picture's lines run at it)

    @property
    def text(self) -> str:
        return "\n".join(line.text for line in self.lines)

    def blocks(self, gap: float = 0.9) -> list["TextBlock"]:
        """The lines grouped into blocks a reader reads as one text: a line joins the block before it when it is
        on the same row as that block's last line, or starts within ``gap`` line heights below it and overlaps it
        sideways."""
        out: list[list[TextLine]] = []
        for line in self.lines:
            if out:
                last = out[-1][-1]
                height = _line_height(last, self.angle)
                (x0, y0), (x1, y1) = _along(last, self.angle), _along(line, self.angle)
                half = (last.box[2] - last.box[0] + line.box[2] - line.box[0]) / 2
                same_row = abs(y1 - y0) <= height / 2  # a line the engine read in pieces
                if same_row or (0 < y1 - y0 <= (1 + gap) * height and abs(x1 - x0) < half):
                    out[-1].append(line)
                    continue
            out.append([line])
        return [TextBlock.of(lines) for lines in out]

    def to_json(self) -> dict[str, Any]:
        return {"width": self.width, "height": self.height, "checked": self.checked, "angle": self.angle,
                "lines": [{"text": line.text, "box": list(line.box), "confidence": line.confidence}
                          for line in self.lines]}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "ImageText":
        return cls(width=int(data["width"]), height=int(data["height"]), checked=bool(data.get("checked", True)),
                   angle=float(data.get("angle", 0.0)),
                   lines=tuple(TextLine(str(line["text"]), tuple(int(v) for v in line["box"]),  # type: ignore[arg-type]
                                        float(line["confidence"])) for line in data.get("lines", ())))


@dataclass(frozen=True)
class TextBlock:
    """Lines read as one text: joined by spaces, boxed by their union."""

    text: str
    box: Box
    lines: tuple[TextLine, ...] = field(default_factory=tuple)

    @classmethod
    def of(cls, lines: Sequence[TextLine]) -> "TextBlock":
        box = (min(line.box[0] for line in lines), min(line.box[1] for line in lines),
               max(line.box[2] for line in lines), max(line.box[3] for line in lines))
        return cls(" ".join(line.text for line in lines), box, tuple(lines))


def whole_text(blocks: Sequence[TextBlock]) -> str:
    """A picture's blocks as one text, in reading order: a meme's top and bottom lines are one sentence. The
    moderation core scores it beside each block; a training job trains on it (:mod:`tripwire.training.pictures`)."""
    return " ".join(block.text for block in blocks)


def _along(line: TextLine, angle: float) -> tuple[float, float]:
    """The line's centre in the text's own frame (x along the lines, y down across them)."""
    cos, sin = np.cos(angle), np.sin(angle)
    x, y = (line.box[0] + line.box[2]) / 2, (line.box[1] + line.box[3]) / 2
    return x * cos + y * sin, -x * sin + y * cos


def _line_height(line: TextLine, angle: float) -> float:
    # A tilted line's upright box is taller than the line by its length times the slope.
    width, tall = line.box[2] - line.box[0], line.box[3] - line.box[1]
    return max(1.0, tall - width * abs(np.sin(angle))) / max(abs(np.cos(angle)), 0.5)


def reading_order(lines: Sequence[TextLine], angle: float = 0.0) -> tuple[TextLine, ...]:
    """Lines top to bottom; lines on one row (their centres within half a line height) left to right. ``angle``
    (radians, the text's slope) reads a tilted picture along its lines, not along the picture's edges."""
    rows: list[list[TextLine]] = []
    for line in sorted(lines, key=lambda item: _along(item, angle)[1]):
        if rows:
            first = rows[-1][0]
            if abs(_along(line, angle)[1] - _along(first, angle)[1]) <= _line_height(first, angle) / 2:
                rows[-1].append(line)
                continue
        rows.append([line])
    return tuple(line for row in rows for line in sorted(row, key=lambda item: _along(item, angle)[0]))


def has_text(rgb: np.ndarray, min_run: int = 6, side: int = 384) -> bool:
    """A cheap check (about a millisecond) that a picture may hold text, run before OCR.

    Printed and drawn text is a line of dense, high-contrast strokes: in a grey copy scaled to ``side`` pixels, cut
    into 8-pixel cells, a cell holds a stroke where the brightness jumps sharply back and forth in it, and a line of
    text makes a run of such cells along a row (a one-cell gap, the space between words, does not end it). The check
    passes where some row has a run of at least ``min_run`` cells. Smooth photos and flat artwork have none, and
    busy texture (foliage, fabric) rarely lines its strokes up; a busy photo that does costs an OCR call that finds
    nothing. Measured on OLID tweets drawn by :mod:`tripwire.data.rendered` (``bench.bench_pictures cost``), it
    passes every one, while it spares most of the bundled photographs. It misses text too small to make strokes at
    ``side`` pixels and text running down the picture (vertical lettering); ``check_text: false`` reads every
    picture.
    """
    from PIL import Image

    grey = Image.fromarray(np.ascontiguousarray(rgb[..., :3])).convert("L")
    scale = side / max(grey.size)
    if scale < 1:
        grey = grey.resize((max(1, round(grey.width * scale)), max(1, round(grey.height * scale))), Image.BILINEAR)
    pixels = np.asarray(grey, dtype=np.int16)
    cells = 8
    jumps = np.abs(np.diff(pixels, axis=1)) >= 64  # a stroke's edge: a sharp step in brightness
    h, w = (jumps.shape[0] // cells) * cells, (jumps.shape[1] // cells) * cells
    if not h or w // cells < min_run:
        return False
    # A letter's strokes give several edges per cell; a lone object's outline gives one or two.
    stroke = jumps[:h, :w].reshape(h // cells, cells, w // cells, cells).sum(axis=(1, 3)) >= 6
    bridged = stroke.copy()
    bridged[:, 1:-1] |= stroke[:, :-2] & stroke[:, 2:]  # the gap between two words
    return longest_run(bridged) >= min_run


def longest_run(rows: np.ndarray) -> int:
    """The longest run of True along any row of a 2-D boolean array."""
    edges = np.diff(np.pad(rows.astype(np.int8), ((0, 0), (1, 1))), axis=1)
    starts, ends = np.nonzero(edges == 1), np.nonzero(edges == -1)
    # Each row has as many starts as ends, in order, so they pair up across the flattened lists.
    return int((ends[1] - starts[1]).max()) if len(starts[1]) else 0


def read_pictures(pictures: Sequence[np.ndarray], check_text: bool, min_run: int,
                  read_one: Callable[[np.ndarray], ImageText]) -> list[ImageText]:
    """Each picture as (H, W, 3) uint8 RGB through the text-presence check (when ``check_text``), then, where it
    passes, through an engine's ``read_one``."""
    out = []
    for picture in pictures:
        rgb = np.ascontiguousarray(picture[..., :3], dtype=np.uint8)
        passes = not check_text or has_text(rgb, min_run)
        out.append(read_one(rgb) if passes else ImageText(rgb.shape[1], rgb.shape[0], (), checked=False))
    return out


class OcrExpert(Protocol):
    """A registered OCR expert. Constructed from its config args; one call at a time per instance."""

    registry_name: str

    @property
    def weights(self) -> WeightsRecord:
        """The weights (or engine data) it runs with."""

    @classmethod
    def weights_record(cls, **args: Any) -> WeightsRecord:
        """The weights an instance built with ``args`` would run with (hashed from disk, nothing loaded)."""

    def read(self, pictures: Sequence[np.ndarray]) -> list[ImageText]:
        """The text in (H, W, 3) uint8 RGB pictures, one :class:`ImageText` per picture."""
