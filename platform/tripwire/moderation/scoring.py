"""The compute kernels of scoring: encoders and the fusion head over many requests' inputs at once.

The same functions run in the Serve deployments (one deployment per part) and in this process
(:class:`tripwire.moderation.moderator.LocalBackend`), so both paths compute identical numbers. Every encoder
output is one dict per request: ``{"embedding": array, **evidence}`` (evidence as the encoder's
``forward_with_evidence`` names it, e.g. ``time_profile`` or ``frame_weights``).

An encoder either runs whole (:func:`encode_batch`) or, when it declares a ``serving_upstream``
modality, in two parts: each input row through the upstream encoder (:func:`encode_batch` with
``rows=True``), then its own :func:`head_batch` over those row embeddings.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from tripwire.model.calibration import PlattCalibration


def _row_flags(rows: bool | Sequence[bool], n: int) -> list[bool]:
    return [rows] * n if isinstance(rows, bool) else [bool(r) for r in rows]


def stack_inputs(modality: str, items: Sequence[Any], rows: bool | Sequence[bool] = False) -> tuple[Any, list[int]]:
    """Stacks per-request encoder inputs into one batch; returns it and each request's row count.

    A request flagged in ``rows`` carries a stack of rows for this encoder (a video's K frames sent to
    the image encoder); the others carry one input each, which counts as one row.
    """
    if modality == "text":
        return {k: torch.as_tensor(np.stack([item[k] for item in items])) for k in items[0]}, [1] * len(items)
    flags = _row_flags(rows, len(items))
    arrays = [np.asarray(item, dtype=np.float32) for item in items]
    if not any(flags):
        return torch.as_tensor(np.stack(arrays)), [1] * len(arrays)
    arrays = [a if flag else a[None] for a, flag in zip(arrays, flags)]
    return torch.as_tensor(np.concatenate(arrays)), [len(a) for a in arrays]


@torch.no_grad()
def encode_batch(encoder: torch.nn.Module, modality: str, items: Sequence[Any],
                 device: torch.device | str = "cpu", rows: bool | Sequence[bool] = False) -> list[dict[str, np.ndarray]]:
    """Runs one encoder whole over many requests' inputs (one forward pass) and splits the outputs back.

    Args:
        encoder: a :class:`tripwire.model.encoders.Encoder`.
        modality: the modality of the inputs (text inputs are dicts of token arrays).
        items: one input per request, or (where ``rows`` flags it) a stack of rows.
        rows: per request (or for all): it carries rows for this encoder, the frames of a split video
            encoder; its output then holds one embedding per row, ``(rows, D)``, and no evidence.
    """
    flags = _row_flags(rows, len(items))
    batch, counts = stack_inputs(modality, items, flags)
    batch = {k: v.to(device) for k, v in batch.items()} if isinstance(batch, dict) else batch.to(device)
    embeddings, evidence = encoder.forward_with_evidence(batch)
    embeddings = embeddings.float().cpu().numpy()
    evidence = {k: v.float().cpu().numpy() for k, v in evidence.items()}
    pieces, start = [], 0
    for count, flag in zip(counts, flags):
        if flag:
            pieces.append({"embedding": embeddings[start:start + count]})
        else:
            pieces.append({"embedding": embeddings[start], **{k: v[start] for k, v in evidence.items()}})
        start += count
    return pieces


@torch.no_grad()
def head_batch(encoder: torch.nn.Module, upstream: Sequence[Mapping[str, np.ndarray]],
               device: torch.device | str = "cpu") -> list[dict[str, np.ndarray]]:
    """A split encoder's own part: its ``head`` over each request's upstream row embeddings ``(rows, D)``."""
    stacked = torch.as_tensor(np.stack([np.atleast_2d(u["embedding"]) for u in upstream])).to(device)
    embeddings, evidence = encoder.head(stacked)
    embeddings = embeddings.float().cpu().numpy()
    evidence = {k: v.float().cpu().numpy() for k, v in evidence.items()}
    return [{"embedding": embeddings[i], **{k: v[i] for k, v in evidence.items()}} for i in range(len(upstream))]


@torch.no_grad()
def fuse_batch(fusion: torch.nn.Module, requests: Sequence[Mapping[str, np.ndarray]],
               calibration: PlattCalibration | None = None) -> list[dict[str, np.ndarray]]:
    """Fusion head over many requests, each a dict of the embeddings it has.

    Returns per request its calibrated ``scores`` (C,), ``attribution`` (modality -> (C,)), the
    leave-one-modality-out contribution of each present modality, and the fused ``embedding`` (D,).
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
    fused = fusion.embed(embeddings, present)
    scores = probabilities(fusion.classify(fused))
    attribution = {m: a.numpy() for m, a in
                   fusion.modality_attribution(embeddings, present, probabilities, scores=scores).items()}
    scores, fused = scores.numpy(), fused.numpy().astype(np.float32)
    return [{"scores": scores[i], "attribution": {m: attribution[m][i] for m in requests[i] if m in attribution},
             "embedding": fused[i]} for i in range(n)]


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
