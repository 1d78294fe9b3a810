"""Whether a training job keeps its preprocessed rows in Ray's object store (``data.cache_preprocessed``).

Caching decodes the corpus once instead of every epoch, and finds bad rows before training starts; it
costs object-store memory (spilled to disk beyond it). ``auto`` caches when the estimated preprocessed
size fits ``data.cache_budget_mb`` and streams otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from tripwire.model.safety_model import ModelConfig
from tripwire.data.preprocess import PreprocessingConfig

# Bytes per element of the preprocessed arrays: token ids and masks are int64, media float32.
_INT64, _FLOAT32 = 8, 4


def modality_bytes(modality: str, preprocessing: PreprocessingConfig) -> int:
    """Bytes one row's preprocessed ``modality`` array(s) take, from the shapes the settings fix."""
    if modality == "text":
        return 2 * preprocessing.text.max_length * _INT64  # input_ids + attention_mask
    image_bytes = 3 * preprocessing.image.size ** 2 * _FLOAT32
    if modality == "image":
        return image_bytes
    if modality == "audio":
        return preprocessing.audio.n_mels * preprocessing.audio.num_frames * _FLOAT32
    if modality == "video":
        return preprocessing.video.num_frames * image_bytes
    raise ValueError(f"unknown modality {modality!r}")


def bytes_per_row(model: ModelConfig) -> int:
    """Estimated preprocessed bytes per row: the model's modalities only (batches carry no others);
    ids, labels and presence flags are a few bytes beside them and left out."""
    return sum(modality_bytes(m, model.preprocessing) for m in model.encoders)


@dataclass(frozen=True)
class CacheDecision:
    """The outcome: cache or stream, and a one-line reason for the job's log."""

    cache: bool
    reason: str


def decide_cache(setting: bool | str, num_rows: int, row_bytes: int, budget_mb: int) -> CacheDecision:
    """Decides ``data.cache_preprocessed``.

    Args:
        setting: True or False (forced) or ``"auto"``.
        num_rows: rows that would be cached (training + validation).
        row_bytes: :func:`bytes_per_row` of the model.
        budget_mb: ``data.cache_budget_mb``, in MiB.
    """
    if setting is True or setting is False:
        return CacheDecision(setting, f"data.cache_preprocessed={str(setting).lower()}")
    if setting != "auto":
        raise ValueError(f"cache_preprocessed: {setting!r} must be true, false or 'auto'")
    estimate_mb = num_rows * row_bytes / 2**20
    size = f"{num_rows} rows x {row_bytes / 1024:.0f} KiB = {estimate_mb:.0f} MiB"
    if estimate_mb <= budget_mb:
        return CacheDecision(True, f"auto: {size} fits data.cache_budget_mb={budget_mb}")
    return CacheDecision(False, f"auto: {size} exceeds data.cache_budget_mb={budget_mb}")
