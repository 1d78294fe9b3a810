"""Online scoring logic shared by the Serve deployments and the in-process scorer.

Keeping batching, fusion and decision logic here (not in ``deployments/``) lets tests and benchmarks
run the exact code that serves traffic, in-process, and compare it with the HTTP path.
"""

from __future__ import annotations

import threading
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from tripwire.calibration import PlattCalibration
from tripwire.policy import Policy
from tripwire.preprocess import Preprocessor
from tripwire.sample import Sample



class LockedPreprocessor:
    """A Preprocessor safe to call from worker threads (fast tokenizers must not be used concurrently)."""

    def __init__(self, preprocessor: Preprocessor):
        self.preprocessor = preprocessor
        self._lock = threading.Lock()

    def sample(self, sample: Sample) -> dict[str, Any]:
        with self._lock:
            return self.preprocessor.sample(sample)


def stack_inputs(modality: str, items: Sequence[Any]) -> tuple[Any, list[int]]:
    """Stacks per-request encoder inputs into one batch; returns it and each request's row count.

    Image requests may carry several rows (video frames sent to the image encoder); text inputs are dicts.
    """
    if modality == "text":
        return {k: torch.as_tensor(np.stack([item[k] for item in items])) for k in items[0]}, [1] * len(items)
    arrays = [np.asarray(item, dtype=np.float32) for item in items]
    if modality == "image":
        arrays = [a[None] if a.ndim == 3 else a for a in arrays]
        return torch.as_tensor(np.concatenate(arrays)), [len(a) for a in arrays]
    return torch.as_tensor(np.stack(arrays)), [1] * len(arrays)


@torch.no_grad()
def encode_batch(encoder: torch.nn.Module, modality: str, items: Sequence[Any],
                 device: torch.device | str = "cpu", time_profile: bool = False) -> list[Any]:
    """Runs one encoder over many requests' inputs at once and splits the embeddings back per request.

    With ``time_profile`` (encoders that have ``forward_with_time_profile``, e.g. audio), each request gets
    ``{"embedding", "time_profile"}`` instead of its embedding alone.
    """
    batch, counts = stack_inputs(modality, items)
    batch = {k: v.to(device) for k, v in batch.items()} if isinstance(batch, dict) else batch.to(device)
    profiles = None
    if time_profile:
        embeddings, profiles = encoder.forward_with_time_profile(batch)
        profiles = profiles.float().cpu().numpy()
    else:
        embeddings = encoder(batch)
    out = embeddings.float().cpu().numpy()
    pieces, start = [], 0
    for count in counts:  # a request with several rows (video frames) gets them stacked
        rows = slice(start, start + count) if count > 1 else start
        pieces.append(out[rows] if profiles is None else {"embedding": out[rows], "time_profile": profiles[rows]})
        start += count
    return pieces


@torch.no_grad()
def fuse_batch(fusion: torch.nn.Module, requests: Sequence[Mapping[str, np.ndarray]],
               calibration: PlattCalibration | None = None) -> list[dict[str, np.ndarray]]:
    """Fusion head over many requests, each a dict of the embeddings it has.

    Returns per request its calibrated ``scores`` (C,) and ``attribution`` (modality -> (C,)), the
    leave-one-modality-out contribution of each present modality.
    """
    probabilities = (calibration or PlattCalibration.identity(fusion.num_categories)).probabilities
    n = len(requests)
    embeddings, present = {}, {}
    for modality in fusion.modalities:
        rows = [r.get(modality) for r in requests]
        if all(r is None for r in rows):
            continue
        dim = fusion.encoder_dims[modality]
        embeddings[modality] = torch.as_tensor(np.stack([
            np.asarray(r, dtype=np.float32) if r is not None else np.zeros(dim, np.float32) for r in rows]))
        present[modality] = torch.tensor([r is not None for r in rows])
    scores = probabilities(fusion(embeddings, present))
    attribution = {m: a.numpy() for m, a in
                   fusion.modality_attribution(embeddings, present, probabilities, scores=scores).items()}
    scores = scores.numpy()
    return [{"scores": scores[i], "attribution": {m: attribution[m][i] for m in requests[i] if m in attribution}}
            for i in range(n)]


def top_time_window(profile: np.ndarray, num_frames: int, hop_length: int, sample_rate: int,
                    clip_seconds: float) -> dict[str, float]:
    """The stretch of an audio clip whose features were strongest, in seconds from its start."""
    step = int(np.argmax(profile))
    seconds_per_step = num_frames / len(profile) * hop_length / sample_rate
    return {"start_s": round(step * seconds_per_step, 3),
            "end_s": round(min(clip_seconds, (step + 1) * seconds_per_step), 3),
            "weight": round(float(profile[step]), 4)}


def explain(categories: Sequence[str], scores: np.ndarray, attribution: Mapping[str, np.ndarray]) -> dict[str, dict]:
    """Per category: the modality that raised its score most, and every present modality's contribution."""
    result = {}
    for j, category in enumerate(categories):
        contributions = {m: round(float(a[j]), 6) for m, a in attribution.items()}
        driver = max(contributions, key=contributions.get) if contributions else None
        result[category] = {"driven_by": driver, "contributions": contributions}
    return result


def decide(policy: Policy, categories: Sequence[str], scores: np.ndarray, market: str | None) -> dict[str, Any]:
    decision = policy.decide({c: float(s) for c, s in zip(categories, scores)}, market)
    return decision.to_dict()



class InProcessScorer:
    """The whole model in this process: the reference that the Serve graph must match (parity tests,
    the demo's check, and the in-process baseline of the serving benchmark)."""

    def __init__(self, checkpoint: str):
        from tripwire.checkpoint import CheckpointManifest, load_model

        self.manifest = CheckpointManifest.read(checkpoint)
        self.model = load_model(checkpoint)
        self.preprocessor = Preprocessor(self.manifest.preprocessing(), self.manifest.modalities)
        self.calibration = self.manifest.calibration

    @torch.no_grad()
    def score_processed(self, processed: Sequence[dict[str, Any]]) -> np.ndarray:
        """Scores preprocessed items as one batch; returns (N, C) probabilities."""
        from tripwire.preprocess import batch_to_model_inputs

        inputs, present = batch_to_model_inputs(self.preprocessor.collate(processed))
        return self.calibration.probabilities(self.model(inputs, present)).numpy()

    def score(self, samples: Sequence[Sample], base_uri: str | None = None) -> np.ndarray:
        return self.score_processed([self.preprocessor.sample(s, base_uri) for s in samples])
