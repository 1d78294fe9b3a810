"""OCR with Tesseract (Debian's ``tesseract-ocr``, Apache-2.0; `make ocr-tools` installs it), run as a
subprocess on each picture: fast on clean text, weaker on text over photos. ``tessdata_dir`` points at other
trained data (``language`` names it)."""

from __future__ import annotations

import csv
import io
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

import numpy as np

from tripwire.common.config import ConfigError
from tripwire.experts.ocr import OCR_EXPERTS, ImageText, TextLine, read_pictures
from tripwire.experts.weights import WeightsRecord

DEFAULT_TESSDATA = ("/usr/share/tesseract-ocr/5/tessdata", "/usr/share/tesseract-ocr/4.00/tessdata")


def tesseract_binary() -> str:
    """The ``tesseract`` executable, or a ConfigError saying how to install it."""
    path = shutil.which("tesseract")
    if path is None:
        raise ConfigError("ocr: the tesseract engine needs Debian's tesseract-ocr (`make ocr-tools` installs it)")
    return path


def _tessdata(tessdata_dir: str | None, language: str) -> Path:
    candidates = [Path(tessdata_dir)] if tessdata_dir else [Path(p) for p in DEFAULT_TESSDATA]
    for folder in candidates:
        if (folder / f"{language}.traineddata").is_file():
            return folder
    raise ConfigError(f"ocr: no {language}.traineddata in {[str(c) for c in candidates]} "
                      "(`make ocr-tools` installs English)")


@OCR_EXPERTS.register("tesseract")
class TesseractOcr:
    """Args:
        language: the trained data to read with (``eng``).
        tessdata_dir: where that data lies (default: Debian's).
        page_mode: Tesseract's page segmentation mode (6: one block of text, which reads text over noise that
            the automatic mode 3 misses; 11: sparse text).
        min_confidence: lines whose words average less confidence (0-1) are dropped.
        check_text, min_run: the cheap text-presence check first (:func:`tripwire.experts.ocr.has_text`).
        timeout_s: the longest one picture may take.
    """

    def __init__(self, language: str = "eng", tessdata_dir: str | None = None, page_mode: int = 6,
                 min_confidence: float = 0.6, check_text: bool = True, min_run: int = 6,
                 timeout_s: float = 60.0):
        self.binary = tesseract_binary()
        self.tessdata = _tessdata(tessdata_dir, language)
        self.language = language
        self.page_mode = page_mode
        self.min_confidence = min_confidence
        self.check_text = check_text
        self.min_run = min_run
        self.timeout_s = timeout_s
        self._weights = self.weights_record(language=language, tessdata_dir=tessdata_dir)

    @property
    def weights(self) -> WeightsRecord:
        return self._weights

    @classmethod
    def weights_record(cls, language: str = "eng", tessdata_dir: str | None = None, **_: object) -> WeightsRecord:
        folder = _tessdata(tessdata_dir, language)
        record = WeightsRecord.of_directory(cls.registry_name, folder)
        return WeightsRecord(record.expert, record.path, "tesseract-ocr", None,
                             {name: sha for name, sha in record.files.items() if name == f"{language}.traineddata"})

    def read(self, pictures: Sequence[np.ndarray]) -> list[ImageText]:
        return read_pictures(pictures, self.check_text, self.min_run, self._one)

    def _one(self, rgb: np.ndarray) -> ImageText:
        from PIL import Image

        height, width = rgb.shape[:2]
        png = io.BytesIO()
        Image.fromarray(rgb).save(png, format="PNG", compress_level=1)
        done = subprocess.run(
            [self.binary, "stdin", "stdout", "-l", self.language, "--tessdata-dir", str(self.tessdata),
             "--psm", str(self.page_mode), "tsv"],
            input=png.getvalue(), capture_output=True, timeout=self.timeout_s, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"tesseract failed ({done.returncode}): {done.stderr.decode(errors='replace')[-300:]}")
        # Tesseract deskews the page itself and numbers its blocks and lines in reading order.
        return ImageText(width, height, tuple(self._lines(done.stdout.decode("utf-8", errors="replace"))))

    def _lines(self, tsv: str) -> list[TextLine]:
        words: dict[tuple[str, str, str], list[tuple[str, tuple[int, int, int, int], float]]] = {}
        for row in csv.DictReader(io.StringIO(tsv), delimiter="\t", quoting=csv.QUOTE_NONE):
            text = (row.get("text") or "").strip()
            if row.get("level") != "5" or not text:
                continue
            left, top, w, h = (int(row[k]) for k in ("left", "top", "width", "height"))
            words.setdefault((row["block_num"], row["par_num"], row["line_num"]), []).append(
                (text, (left, top, left + w, top + h), max(0.0, float(row["conf"])) / 100))
        lines = []
        for members in words.values():
            confidence = sum(c for *_, c in members) / len(members)
            if confidence < self.min_confidence:
                continue
            boxes = [b for _, b, _ in members]
            lines.append(TextLine(" ".join(t for t, _, _ in members),
                                  (min(b[0] for b in boxes), min(b[1] for b in boxes),
                                   max(b[2] for b in boxes), max(b[3] for b in boxes)), round(confidence, 4)))
        return lines
