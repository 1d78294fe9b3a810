"""OCR with RapidOCR (``rapidocr``, Apache-2.0): PP-OCR text detection, orientation and recognition models on
onnxruntime, offline, with the models inside the pinned wheel; ``model_dir`` points at another directory holding
the same three files (bigger or other-language PP-OCR models)."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from tripwire.common.config import ConfigError
from tripwire.experts.kinds import onnx_providers
from tripwire.experts.ocr import OCR_EXPERTS, ImageText, TextLine, read_pictures, reading_order
from tripwire.experts.weights import WeightsRecord

BUNDLED_PACKAGE = "rapidocr"
MODEL_FILES = {"det": "PP-OCRv6_det_small.onnx", "rec": "PP-OCRv6_rec_small.onnx",
               "cls": "ch_ppocr_mobile_v2.0_cls_mobile.onnx"}


def bundled_model_dir() -> Path:
    """The PP-OCR models inside the pinned ``rapidocr`` wheel."""
    try:
        import rapidocr
    except ImportError as exc:
        raise ConfigError("ocr: the rapidocr engine needs the rapidocr package (`make setup` installs it)") from exc
    return Path(rapidocr.__file__).parent / "models"


@OCR_EXPERTS.register("rapidocr")
class RapidOcr:
    """Args:
        model_dir: a directory with the detection, recognition and orientation models (default: the wheel's).
        min_confidence: lines read with less confidence are dropped.
        cpu_threads: onnxruntime threads per call (one per replica keeps replicas from fighting over cores).
        check_text: run the cheap text-presence check first (:func:`tripwire.experts.ocr.has_text`).
        min_run: that check's threshold (cells of strokes in a row).
        max_side: pictures are scaled down to this long side first (the boxes are mapped back).
        detect_side, detect_limit: the detector sees the picture with its ``min`` or ``max`` side at
            ``detect_side`` (``min``, the engine's default, scales a wide banner up: slow, and no better on
            text of a readable size; ``max`` bounds the cost by the picture's long side).
        use_gpu: onnxruntime's CUDA provider.
    """

    def __init__(self, model_dir: str | None = None, min_confidence: float = 0.6, cpu_threads: int = 1,
                 check_text: bool = True, min_run: int = 6, max_side: int = 1280, detect_side: int = 960,
                 detect_limit: str = "max", use_gpu: bool = False):
        from rapidocr import RapidOCR

        if detect_limit not in ("min", "max"):
            raise ConfigError(f"ocr.args.detect_limit: {detect_limit!r} is not 'min' or 'max'")
        onnx_providers(use_gpu, "ocr.args.use_gpu")  # refuses a GPU this onnxruntime cannot use
        folder = Path(model_dir) if model_dir else bundled_model_dir()
        missing = [name for name in MODEL_FILES.values() if not (folder / name).is_file()]
        if missing:
            raise ConfigError(f"ocr.model_dir: {folder} lacks {missing}")
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # it warns of every picture it finds no text in
        params: dict[str, Any] = {
            "Global.log_level": "error", "Global.text_score": min_confidence, "Global.max_side_len": max_side,
            "Det.model_path": str(folder / MODEL_FILES["det"]), "Rec.model_path": str(folder / MODEL_FILES["rec"]),
            "Cls.model_path": str(folder / MODEL_FILES["cls"]),
            "Det.limit_side_len": detect_side, "Det.limit_type": detect_limit,
            "EngineConfig.onnxruntime.intra_op_num_threads": cpu_threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
            "EngineConfig.onnxruntime.use_cuda": use_gpu}
        self.engine = RapidOCR(params=params)
        logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # its constructor resets the level
        self._weights = self.weights_record(model_dir)
        self.min_confidence = min_confidence
        self.check_text = check_text
        self.min_run = min_run
        self._lock = threading.Lock()

    @property
    def weights(self) -> WeightsRecord:
        return self._weights

    @classmethod
    def weights_record(cls, model_dir: str | None = None, **_: object) -> WeightsRecord:
        folder = Path(model_dir) if model_dir else bundled_model_dir()
        return WeightsRecord.of_directory(cls.registry_name, folder, None if model_dir else BUNDLED_PACKAGE)

    def read(self, pictures: Sequence[np.ndarray]) -> list[ImageText]:
        return read_pictures(pictures, self.check_text, self.min_run, self._one)

    def _one(self, rgb: np.ndarray) -> ImageText:
        height, width = rgb.shape[:2]
        with self._lock:
            output = self.engine(rgb[..., ::-1].copy())  # the engine takes OpenCV's BGR order
        if output.boxes is None or output.txts is None:
            return ImageText(width, height, ())
        lines, slopes = [], []
        for quad, text, score in zip(output.boxes, output.txts, output.scores):
            text = str(text).strip()
            if not text or float(score) < self.min_confidence:
                continue
            xs, ys = np.asarray(quad)[:, 0], np.asarray(quad)[:, 1]
            box = (max(0, int(np.floor(xs.min()))), max(0, int(np.floor(ys.min()))),
                   min(width, int(np.ceil(xs.max()))), min(height, int(np.ceil(ys.max()))))
            lines.append(TextLine(text, box, round(float(score), 4)))
            top = np.asarray(quad)[1] - np.asarray(quad)[0]  # the quad runs clockwise from the text's top left
            slopes.append(float(np.arctan2(top[1], top[0])))
        angle = round(float(np.median(slopes)), 6) if slopes else 0.0
        return ImageText(width, height, reading_order(lines, angle), angle=angle)
