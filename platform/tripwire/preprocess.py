"""Per-modality preprocessing, one module for Ray Data (training, batch scoring) and Serve (online).

The settings live in the checkpoint manifest, so training and serving apply the identical transform. A
preprocessed item is a dict of numpy arrays; :func:`collate` stacks items into the flat, fixed-shape
batch that Ray Data carries and the model consumes (absent modalities are zero placeholders with a
``present_<modality>`` flag, and the model masks them out).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from tripwire import MODALITIES
from tripwire.config import ConfigError
from tripwire.media import MediaError, MediaLimits, check_text, decode_audio, decode_image, decode_video
from tripwire.sample import Sample, read_media
from tripwire.textnorm import check_normalizers, normalize


@dataclass(frozen=True)
class TextPreprocessing:
    """Tokenisation. ``tokenizer`` is a local directory (in a checkpoint: ``tokenizer``, inside it).

    ``normalize`` names :mod:`tripwire.textnorm` steps applied before tokenising (e.g. ``emoji_names``,
    ``hashtag_words``); empty keeps the text as given.
    """

    tokenizer: str = ""
    max_length: int = 32
    normalize: tuple[str, ...] = ()

    def __post_init__(self):
        if self.max_length < 4:
            raise ConfigError(f"max_length: {self.max_length} is too short (at least 4)")
        try:
            check_normalizers(self.normalize)
        except ValueError as exc:
            raise ConfigError(f"normalize: {exc}") from None


@dataclass(frozen=True)
class ImagePreprocessing:
    """Resize to ``size``x``size`` (bilinear, no crop), scale to [0, 1], normalise per channel."""

    size: int = 48
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)

    def __post_init__(self):
        if self.size < 8:
            raise ConfigError(f"size: {self.size} is too small (at least 8)")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ConfigError("mean/std: need three values each, std > 0")


@dataclass(frozen=True)
class AudioPreprocessing:
    """Mono, resampled to ``sample_rate``, cut or padded to ``clip_seconds``, log-mel spectrogram."""

    sample_rate: int = 16000
    clip_seconds: float = 1.0
    n_mels: int = 64
    n_fft: int = 400
    hop_length: int = 160

    def __post_init__(self):
        if self.sample_rate < 4000 or self.clip_seconds <= 0 or self.n_mels < 8:
            raise ConfigError("sample_rate >= 4000, clip_seconds > 0 and n_mels >= 8 are required")

    @property
    def num_samples(self) -> int:
        return int(round(self.sample_rate * self.clip_seconds))

    @property
    def num_frames(self) -> int:
        return self.num_samples // self.hop_length + 1


@dataclass(frozen=True)
class VideoPreprocessing:
    """``num_frames`` frames sampled uniformly over the clip, each preprocessed like an image."""

    num_frames: int = 8

    def __post_init__(self):
        if self.num_frames < 1:
            raise ConfigError(f"num_frames: must be at least 1, got {self.num_frames}")


@dataclass(frozen=True)
class PreprocessingConfig:
    """All preprocessing settings; saved in every checkpoint manifest."""

    text: TextPreprocessing = field(default_factory=TextPreprocessing)
    image: ImagePreprocessing = field(default_factory=ImagePreprocessing)
    audio: AudioPreprocessing = field(default_factory=AudioPreprocessing)
    video: VideoPreprocessing = field(default_factory=VideoPreprocessing)
    limits: MediaLimits = field(default_factory=MediaLimits)


class Preprocessor:
    """Turns samples into model-ready arrays. Build one per process (it holds the tokenizer and mel filters).

    Args:
        config: the preprocessing settings (from the checkpoint or the training config).
        modalities: the modalities the model has encoders for; others are rejected.
    """

    def __init__(self, config: PreprocessingConfig, modalities: Sequence[str] = MODALITIES):
        import torchaudio
        from transformers import AutoTokenizer

        self.config = config
        self.modalities = tuple(modalities)
        self.tokenizer = AutoTokenizer.from_pretrained(config.text.tokenizer) if "text" in self.modalities else None
        audio = config.audio
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=audio.sample_rate, n_fft=audio.n_fft, hop_length=audio.hop_length, n_mels=audio.n_mels
        )
        self._to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0)
        self._mean = np.asarray(config.image.mean, dtype=np.float32)[:, None, None]
        self._std = np.asarray(config.image.std, dtype=np.float32)[:, None, None]

    # -- one modality at a time -------------------------------------------------------------------
    def text(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Tokenises to fixed ``max_length`` (padding never depends on the batch, for parity)."""
        steps = self.config.text.normalize
        if steps:
            texts = [normalize(t, steps) for t in texts]
        enc = self.tokenizer(list(texts), padding="max_length", truncation=True,
                             max_length=self.config.text.max_length, return_tensors="np")
        return {"input_ids": enc["input_ids"].astype(np.int64), "attention_mask": enc["attention_mask"].astype(np.int64)}

    def image(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> (3, S, S) float32, normalised."""
        from PIL import Image

        size = self.config.image.size
        if rgb.shape[:2] != (size, size):
            rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.BILINEAR))
        chw = rgb.astype(np.float32).transpose(2, 0, 1) / 255.0
        return (chw - self._mean) / self._std

    def audio(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono waveform at any rate -> (1, n_mels, frames) float32 log-mel, standardised per clip."""
        import torchaudio.functional as AF

        cfg = self.config.audio
        wave = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
        if sample_rate != cfg.sample_rate:
            wave = AF.resample(wave, sample_rate, cfg.sample_rate)
        n = cfg.num_samples
        wave = wave[:n] if wave.numel() >= n else torch.nn.functional.pad(wave, (0, n - wave.numel()))
        mel = self._to_db(self._mel(wave) + 1e-10)
        mel = (mel - mel.mean()) / (mel.std() + 1e-5)
        return mel.unsqueeze(0).numpy().astype(np.float32)

    def video(self, frames: Sequence[np.ndarray]) -> np.ndarray:
        """K RGB frames -> (K, 3, S, S) float32."""
        return np.stack([self.image(f) for f in frames])

    # -- whole samples ----------------------------------------------------------------------------
    def sample(self, sample: Sample, base_uri: str | None = None) -> dict[str, Any]:
        """Fetches, decodes and preprocesses every modality of a sample.

        Returns:
            ``{"text": {...}, "image": array, "audio": array, "video": array, "video_timestamps": [...]}``
            with only the modalities present. A video's soundtrack fills ``audio`` when the sample has
            no audio of its own.

        Raises:
            MediaError: naming the field, for anything unreadable, corrupt or over a limit.
        """
        limits = self.config.limits
        present = sample.modalities
        if not present:
            raise MediaError("item", "empty", "the item has no text, image, audio or video")
        unsupported = [m for m in present if m not in self.modalities]
        if unsupported:
            raise MediaError(unsupported[0], "unsupported_modality", f"this model has no {unsupported[0]} encoder")
        out: dict[str, Any] = {}
        if sample.text is not None:
            check_text(sample.text, limits)
            out["text"] = {k: v[0] for k, v in self.text([sample.text]).items()}
        if sample.image is not None:
            out["image"] = self.image(decode_image(read_media("image", sample.image, base_uri), limits))
        if sample.audio is not None:
            wave, rate = decode_audio(read_media("audio", sample.audio, base_uri), limits)
            out["audio"] = self.audio(wave, rate)
        if sample.video is not None:
            clip = decode_video(read_media("video", sample.video, base_uri), self.config.video.num_frames, limits)
            out["video"] = self.video(clip.frames)
            out["video_timestamps"] = clip.timestamps
            if clip.audio is not None and "audio" not in out and "audio" in self.modalities:
                out["audio"] = self.audio(clip.audio, clip.sample_rate)
        return out

    def empty_item(self) -> dict[str, np.ndarray]:
        """Zero placeholders for every modality, the shapes :func:`collate` stacks."""
        cfg = self.config
        size = cfg.image.size
        return {
            "text_input_ids": np.zeros(cfg.text.max_length, np.int64),
            "text_attention_mask": np.zeros(cfg.text.max_length, np.int64),
            "image": np.zeros((3, size, size), np.float32),
            "audio": np.zeros((1, cfg.audio.n_mels, cfg.audio.num_frames), np.float32),
            "video": np.zeros((cfg.video.num_frames, 3, size, size), np.float32),
        }

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Stacks preprocessed items into one flat batch with ``present_<modality>`` flags."""
        empty = self.empty_item()
        columns: dict[str, list] = {k: [] for k in empty}
        present: dict[str, list] = {m: [] for m in MODALITIES}
        for item in items:
            for modality in MODALITIES:
                present[modality].append(modality in item)
            text = item.get("text")
            columns["text_input_ids"].append(text["input_ids"] if text else empty["text_input_ids"])
            columns["text_attention_mask"].append(text["attention_mask"] if text else empty["text_attention_mask"])
            for modality in ("image", "audio", "video"):
                columns[modality].append(item.get(modality, empty[modality]))
        batch = {k: np.stack(v) for k, v in columns.items()}
        batch.update({f"present_{m}": np.asarray(v, dtype=bool) for m, v in present.items()})
        return batch


def batch_to_model_inputs(batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Splits a flat batch (numpy or torch) into per-modality model inputs and presence masks."""

    def tensor(x):
        return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))

    inputs = {
        "text": {"input_ids": tensor(batch["text_input_ids"]), "attention_mask": tensor(batch["text_attention_mask"])},
        "image": tensor(batch["image"]),
        "audio": tensor(batch["audio"]),
        "video": tensor(batch["video"]),
    }
    present = {m: tensor(batch[f"present_{m}"]).bool() for m in MODALITIES}
    return inputs, present
