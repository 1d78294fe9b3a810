"""Text drawn into pictures and video frames, for golden sets that measure the OCR path on real text.

Each text is drawn in a font, size, colour, layout, rotation and JPEG quality drawn from a :class:`RenderRecipe`
with the recipe's seed. Layouts: ``card`` (text on a plain or graded background), ``meme`` (outlined white text
over a photo, split between top and bottom as memes are) and ``caption`` (a photo with the text on a band below).
The photos behind the text are real ones nobody made for Tripwire (:func:`bundled_photos`). Fonts come from
matplotlib's wheel (DejaVu, STIX), so nothing depends on the machine's fonts. The same recipe and texts give the
same files, byte for byte.
"""

from __future__ import annotations

import random
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from tripwire.common.config import ConfigError
from tripwire.data.sample import Sample

PHOTOS_SOURCE = ("photographs shipped inside pinned wheels: scikit-image's data folder (astronaut, coffee, chelsea, "
                 "rocket, motorcycle, ...), scikit-learn's china.jpg and flower.jpg, matplotlib's grace_hopper.jpg")
_NOT_PHOTOS = {"chessboard_GRAY", "chessboard_RGB", "phantom", "logo", "microaneurysms", "text", "page",
               "horse", "color", "clock_motion", "cell", "camera", "coins", "moon"}  # drawings, scans, grey or text


def bundled_pictures() -> list[Path]:
    """Every picture that installs with pinned wheels (no download): scikit-image's data folder, scikit-learn's
    sample photographs, matplotlib's portrait of Grace Hopper. Benign pictures nobody made for Tripwire."""
    import importlib.util

    import matplotlib
    import sklearn

    spec = importlib.util.find_spec("skimage")
    folder = Path(spec.origin).parent / "data" if spec and spec.origin else None
    paths = sorted(p for p in folder.glob("*") if p.suffix in (".png", ".jpg")) if folder else []
    paths += sorted((Path(sklearn.__file__).parent / "datasets" / "images").glob("*.jpg"))
    paths.append(Path(matplotlib.__file__).parent / "mpl-data" / "sample_data" / "grace_hopper.jpg")
    return [p for p in paths if p.is_file()]


def bundled_photos() -> list[Path]:
    """The colour photographs among :func:`bundled_pictures` (for backgrounds: no drawings, scans or text)."""
    return [p for p in bundled_pictures() if p.stem not in _NOT_PHOTOS]


def font_path(name: str) -> Path:
    import matplotlib

    path = Path(matplotlib.__file__).parent / "mpl-data" / "fonts" / "ttf" / f"{name}.ttf"
    if not path.is_file():
        raise ConfigError(f"font {name!r}: no {path.name} in matplotlib's fonts")
    return path


def printable(text: str) -> str:
    """What the fonts can draw of a post: emoji and other symbols out, spaces collapsed."""
    text = re.sub(r"[^\x20-\x7E\u00C0-\u017F]+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


@dataclass(frozen=True)
class RenderRecipe:
    """How texts are drawn: each item draws one of each from these with ``seed``."""

    fonts: tuple[str, ...] = ("DejaVuSans", "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSansMono", "STIXGeneral")
    sizes: tuple[int, ...] = (22, 28, 36)
    layouts: tuple[str, ...] = ("card", "card", "meme", "caption")
    # (text, background) for cards; memes draw white text outlined in black.
    colours: tuple[tuple[str, str], ...] = (("#000000", "#ffffff"), ("#ffffff", "#1d2b53"), ("#b00020", "#fff4d6"),
                                            ("#202020", "#c8e6c9"))
    rotations: tuple[float, ...] = (0.0, 0.0, -4.0, 3.0)
    jpeg_qualities: tuple[int | None, ...] = (None, 85, 60)
    width: int = 640
    seed: int = 0

    def __post_init__(self):
        if not (self.fonts and self.sizes and self.layouts and self.colours and self.rotations and self.jpeg_qualities):
            raise ConfigError("a render recipe needs at least one font, size, layout, colour, rotation and quality")
        unknown = set(self.layouts) - {"card", "meme", "caption"}
        if unknown:
            raise ConfigError(f"render recipe layouts: unknown {sorted(unknown)}; known: card, meme, caption")


def _wrapped(text: str, font, width: int) -> list[str]:
    average = max(1.0, font.getlength("abcdefghijklmnopqrstuvwxyz") / 26)
    return textwrap.wrap(text, max(8, int(width / average))) or [""]


def _outlined(draw, xy, line, font, fill, outline):
    draw.text(xy, line, font=font, fill=fill, stroke_width=max(1, font.size // 12), stroke_fill=outline)


def render(text: str, rng: random.Random, recipe: RenderRecipe, photos: Sequence[Path]) -> tuple[Any, dict]:
    """``text`` drawn as ``recipe`` draws it with ``rng``: the PIL picture and what was drawn (layout, font, ...,
    and ``boxes``: each line's box before rotation)."""
    from PIL import Image, ImageDraw, ImageFont

    layout, font_name, size = rng.choice(recipe.layouts), rng.choice(recipe.fonts), rng.choice(recipe.sizes)
    colour, background = rng.choice(recipe.colours)
    rotation, quality = rng.choice(recipe.rotations), rng.choice(recipe.jpeg_qualities)
    photo = rng.choice(list(photos)) if photos and layout != "card" else None
    if layout != "card" and photo is None:
        layout = "card"
    font = ImageFont.truetype(str(font_path(font_name)), size)
    width, margin = recipe.width, 24
    lines = _wrapped(text, font, width - 2 * margin)
    step = int(size * 1.3)
    boxes = []
    if layout == "card":
        height = max(120, 2 * margin + step * len(lines))
        picture = Image.new("RGB", (width, height), background)
        draw = ImageDraw.Draw(picture)
        for n, line in enumerate(lines):
            xy = (margin, margin + n * step)
            draw.text(xy, line, font=font, fill=colour)
            boxes.append(draw.textbbox(xy, line, font=font))
    else:
        with Image.open(photo) as source:
            back = source.convert("RGB")
        back = back.resize((width, max(200, int(back.height * width / back.width))), Image.BILINEAR)
        if layout == "meme":
            picture = back
            draw = ImageDraw.Draw(picture)
            top = lines[:(len(lines) + 1) // 2]
            bottom = lines[len(top):]
            rows = [(margin + n * step, line) for n, line in enumerate(top)]
            rows += [(picture.height - margin - (len(bottom) - n) * step, line) for n, line in enumerate(bottom)]
            for y, line in rows:
                x = max(margin, (width - int(font.getlength(line))) // 2)
                _outlined(draw, (x, y), line, font, "#ffffff", "#000000")
                boxes.append(draw.textbbox((x, y), line, font=font, stroke_width=max(1, font.size // 12)))
        else:  # caption: the photo, and a band below it with the text
            band = 2 * margin + step * len(lines)
            picture = Image.new("RGB", (width, back.height + band), background)
            picture.paste(back, (0, 0))
            draw = ImageDraw.Draw(picture)
            for n, line in enumerate(lines):
                xy = (margin, back.height + margin + n * step)
                draw.text(xy, line, font=font, fill=colour)
                boxes.append(draw.textbbox(xy, line, font=font))
    if rotation:
        fill = "#ffffff" if layout != "card" else background
        picture = picture.rotate(rotation, resample=Image.BICUBIC, expand=True, fillcolor=fill)
    drawn = {"layout": layout, "font": font_name, "size": size, "colour": colour,
             "background": background if layout != "meme" else None, "rotation": rotation, "jpeg_quality": quality,
             "photo": photo.name if photo is not None else None, "boxes": [list(map(int, b)) for b in boxes]}
    return picture, drawn


def save_picture(picture, path: Path, quality: int | None) -> Path:
    """PNG, or JPEG at ``quality`` (the re-encoding a platform's upload applies)."""
    if quality is None:
        path = path.with_suffix(".png")
        picture.save(path, format="PNG", optimize=False)
    else:
        path = path.with_suffix(".jpg")
        picture.save(path, format="JPEG", quality=quality)
    return path


def rendered_rows(samples: Iterable[Sample], out_dir: str | Path, recipe: RenderRecipe) -> list[dict[str, Any]]:
    """Draws every sample's text into ``out_dir/image/<n>.png|jpg``; returns the manifest rows (image, the labels,
    and ``meta``: the text drawn and how). Samples without printable text are left out."""
    out = Path(out_dir)
    (out / "image").mkdir(parents=True, exist_ok=True)
    photos = bundled_photos()
    rows = []
    for n, sample in enumerate(samples):
        text = printable(sample.text or "")
        if len(text.split()) < 2:
            continue
        rng = random.Random(f"{recipe.seed}:{sample.id}")
        picture, drawn = render(text, rng, recipe, photos)
        path = save_picture(picture, out / "image" / f"{n:06d}", drawn["jpeg_quality"])
        rows.append({"id": f"rendered-{sample.id}", "image": f"image/{path.name}", "labels": dict(sample.labels),
                     "meta": {**sample.meta, "rendered_text": text, **drawn}})
    return rows


def text_video(path: str | Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """RGB frames (all one size, even sides) encoded as an MPEG-4 video at ``fps``."""
    import av

    path = Path(path)
    height, width = frames[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=int(round(fps)))
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"qscale": "3"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def video_with_text(path: str | Path, text: str, photo: Path, seconds: float, shown: tuple[float, float],
                    fps: float = 4.0, size: tuple[int, int] = (480, 272), font: str = "DejaVuSans-Bold") -> Path:
    """A short video of a photo, slowly panning, with ``text`` drawn over it from ``shown[0]`` to ``shown[1]``
    seconds (a caption or an on-screen message)."""
    from PIL import Image, ImageDraw, ImageFont

    width, height = size
    with Image.open(photo) as source:
        back = source.convert("RGB").resize((width + 64, height), Image.BILINEAR)
    face = ImageFont.truetype(str(font_path(font)), 22)
    lines = _wrapped(text, face, width - 40)
    frames = []
    for n in range(int(round(seconds * fps))):
        t = n / fps
        frame = back.crop((int(64 * t / seconds), 0, int(64 * t / seconds) + width, height))
        if shown[0] <= t < shown[1]:
            draw = ImageDraw.Draw(frame)
            for k, line in enumerate(lines):
                _outlined(draw, (20, height - 30 - (len(lines) - k) * 28), line, face, "#ffffff", "#000000")
        frames.append(np.asarray(frame))
    return text_video(path, frames, fps)
