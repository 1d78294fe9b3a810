"""Per-modality preprocessing, one module for Ray Data (training, batch scoring) and Serve (online).

The settings live in the checkpoint manifest, so training and serving apply the identical transform. A
preprocessed item is a dict of numpy arrays; :func:`collate` stacks items into the flat, fixed-shape
batch that Ray Data carries and the model consumes. A batch has columns for the preprocessor's
modalities only (a text-only model's batches carry no image, audio or video zeros); within it, a row
lacking one of them holds a zero placeholder with ``present_<modality>`` False, and the model masks it.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np
import torch

from tripwire.data.sample import MODALITIES
from tripwire.common.config import ConfigError
from tripwire.data.longform import WindowConfig
from tripwire.data.media import MediaError, MediaLimits, check_text, decode_audio, decode_image, decode_video
from tripwire.data.sample import Sample, read_media
from tripwire.data.textnorm import check_normalizers, normalize


@dataclass(frozen=True)
class TextPreprocessing:
    """Tokenisation. ``tokenizer`` is a local directory (in a checkpoint: ``tokenizer``, inside it).

    ``normalize`` names :mod:`tripwire.data.textnorm` steps applied before tokenising (e.g. ``emoji_names``,
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
class PicturePreprocessing:
    """What picture experts (OCR, nudity) are given of each image and sampled video frame: the RGB picture scaled
    to at most ``max_side`` on its long side (large enough for text, bounded in memory); pictures whose short side
    is under ``min_side`` are not given them (no text is legible there, and a thumbnail is no evidence)."""

    max_side: int = 1280
    min_side: int = 32

    def __post_init__(self):
        if not 1 <= self.min_side <= self.max_side:
            raise ConfigError(f"min_side, max_side: need 1 <= min_side <= max_side, got {self.min_side}, {self.max_side}")


@dataclass(frozen=True)
class PreprocessingConfig:
    """All preprocessing settings; saved in every checkpoint manifest."""

    text: TextPreprocessing = field(default_factory=TextPreprocessing)
    image: ImagePreprocessing = field(default_factory=ImagePreprocessing)
    audio: AudioPreprocessing = field(default_factory=AudioPreprocessing)
    video: VideoPreprocessing = field(default_factory=VideoPreprocessing)
    limits: MediaLimits = field(default_factory=MediaLimits)
    windows: WindowConfig = field(default_factory=WindowConfig)  # long media (over the limits' seconds)
    pictures: PicturePreprocessing = field(default_factory=PicturePreprocessing)  # for picture experts


class Preprocessor:
    """Turns samples into model-ready arrays. Build one per process (it holds the tokenizer and mel filters).

    Safe to call from many threads: only the tokenizer call is serialised (a fast tokenizer must not be
    used concurrently), so decoding media in one thread never holds up text in another.

    Args:
        config: the preprocessing settings (from the checkpoint or the training config).
        modalities: the modalities the model has encoders for; others are rejected.
        speech_rate: keep each audio's (and video soundtrack's) waveform at this rate as ``speech`` for a
            speech expert (None: the model has none).
        pictures: keep each image, and each sampled video frame, as RGB (``config.pictures``) for picture
            experts (OCR, nudity): ``pictures``, with ``picture_times`` (None for an image, seconds for a frame).
    """

    def __init__(self, config: PreprocessingConfig, modalities: Sequence[str] = MODALITIES,
                 speech_rate: int | None = None, pictures: bool = False):
        import torchaudio
        from transformers import AutoTokenizer

        self.config = config
        self.modalities = tuple(modalities)
        self.speech_rate = speech_rate
        self.pictures = pictures
        self.tokenizer = AutoTokenizer.from_pretrained(config.text.tokenizer) if "text" in self.modalities else None
        self._tokenizer_lock = threading.Lock()
        audio = config.audio
        self._mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=audio.sample_rate, n_fft=audio.n_fft, hop_length=audio.hop_length, n_mels=audio.n_mels
        )
        self._to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=80.0)
        self._mean = np.asarray(config.image.mean, dtype=np.float32)[:, None, None]
        self._std = np.asarray(config.image.std, dtype=np.float32)[:, None, None]

    def __getstate__(self) -> dict[str, Any]:
        # A lock cannot be pickled (DataLoader workers under spawn, Ray actors); each copy gets its own.
        state = dict(self.__dict__)
        del state["_tokenizer_lock"]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._tokenizer_lock = threading.Lock()

    # -- one modality at a time -------------------------------------------------------------------
    def text(self, texts: Sequence[str]) -> dict[str, np.ndarray]:
        """Tokenises to fixed ``max_length`` (padding never depends on the batch, for parity)."""
        steps = self.config.text.normalize
        if steps:
            texts = [normalize(t, steps) for t in texts]
        with self._tokenizer_lock:
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
        cfg = self.config.audio
        wave = resampled(waveform, sample_rate, cfg.sample_rate)
        n = cfg.num_samples
        wave = wave[:n] if wave.numel() >= n else torch.nn.functional.pad(wave, (0, n - wave.numel()))
        mel = self._to_db(self._mel(wave) + 1e-10)
        mel = (mel - mel.mean()) / (mel.std() + 1e-5)
        return mel.unsqueeze(0).numpy().astype(np.float32)

    def speech(self, waveform: np.ndarray, sample_rate: int) -> np.ndarray:
        """Mono waveform at any rate -> float32 at ``speech_rate`` (what a speech expert takes)."""
        return resampled(waveform, sample_rate, self.speech_rate).numpy()

    def picture(self, rgb: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 -> the same picture with its long side at most ``config.pictures.max_side`` (what
        picture experts read: large enough for text, bounded in memory)."""
        from PIL import Image

        scale = self.config.pictures.max_side / max(rgb.shape[:2])
        if scale >= 1:
            return np.ascontiguousarray(rgb[..., :3], dtype=np.uint8)
        size = (max(1, round(rgb.shape[1] * scale)), max(1, round(rgb.shape[0] * scale)))
        return np.asarray(Image.fromarray(np.ascontiguousarray(rgb[..., :3])).resize(size, Image.BILINEAR))

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
        # Audio a model has no audio encoder for is still heard by its speech expert, if it has one; pictures and
        # frames are still read by its picture experts.
        heard = {"audio"} if self.speech_rate else set()
        seen = {"image", "video"} if self.pictures else set()
        unsupported = [m for m in present if m not in self.modalities and m not in heard | seen]
        if unsupported:
            raise MediaError(unsupported[0], "unsupported_modality", f"this model has no {unsupported[0]} encoder")
        out: dict[str, Any] = {}
        if sample.text is not None:
            check_text(sample.text, limits)
            out["text"] = {k: v[0] for k, v in self.text([sample.text]).items()}
        if sample.image is not None:
            rgb = decode_image(read_media("image", sample.image, base_uri, limits.max_image_bytes), limits)
            if "image" in self.modalities:
                out["image"] = self.image(rgb)
            if self.pictures and min(rgb.shape[:2]) >= self.config.pictures.min_side:
                out["pictures"], out["picture_times"] = [self.picture(rgb)], [None]
        if sample.audio is not None:
            wave, rate = decode_audio(read_media("audio", sample.audio, base_uri, limits.max_audio_bytes), limits)
            if "audio" in self.modalities:
                out["audio"] = self.audio(wave, rate)
            if self.speech_rate:
                out["speech"] = self.speech(wave, rate)
        if sample.video is not None:
            # The soundtrack fills the audio slot only for a model with an audio encoder and an item without
            # audio of its own; otherwise it would be decoded for nothing (and could refuse the item).
            soundtrack = "audio" in self.modalities and "audio" not in out
            speech = bool(self.speech_rate) and "speech" not in out
            clip = decode_video(read_media("video", sample.video, base_uri, limits.max_video_bytes),
                                self.config.video.num_frames, limits, with_audio=soundtrack or speech)
            if "video" in self.modalities:
                out["video"] = self.video(clip.frames)
                out["video_timestamps"] = clip.timestamps
            if self.pictures:
                kept = [(f, t) for f, t in zip(clip.frames, clip.timestamps)
                        if min(f.shape[:2]) >= self.config.pictures.min_side]
                out.setdefault("pictures", []).extend(self.picture(f) for f, _ in kept)
                out.setdefault("picture_times", []).extend(round(float(t), 3) for _, t in kept)
            if clip.audio is not None:
                if soundtrack:
                    out["audio"] = self.audio(clip.audio, clip.sample_rate)
                if speech:
                    out["speech"] = self.speech(clip.audio, clip.sample_rate)
        return out

    def empty_item(self) -> dict[str, np.ndarray]:
        """Zero placeholders for this preprocessor's modalities, the shapes :func:`collate` stacks.

        Only these modalities get columns: a model never reads the others, and their zeros would
        dominate every batch (with the demo's settings a text-only row would carry 274 KB of them next to
        1.5 KB of OLID-length tokens).
        """
        cfg = self.config
        size = cfg.image.size
        shapes = {
            "text": {"text_input_ids": (cfg.text.max_length, np.int64),
                     "text_attention_mask": (cfg.text.max_length, np.int64)},
            "image": {"image": ((3, size, size), np.float32)},
            "audio": {"audio": ((1, cfg.audio.n_mels, cfg.audio.num_frames), np.float32)},
            "video": {"video": ((cfg.video.num_frames, 3, size, size), np.float32)},
        }
        return {column: np.zeros(shape, dtype) for m in self.modalities for column, (shape, dtype) in shapes[m].items()}

    def collate(self, items: Sequence[dict[str, Any]]) -> dict[str, np.ndarray]:
        """Stacks preprocessed items into one flat batch with ``present_<modality>`` flags.

        Columns exist for this preprocessor's modalities only (:meth:`sample` never yields others); a
        row lacking one gets its zero placeholder, since Ray Data needs fixed shapes per column.
        """
        empty = self.empty_item()
        columns: dict[str, list] = {k: [] for k in empty}
        present: dict[str, list] = {m: [] for m in self.modalities}
        for item in items:
            for modality in self.modalities:
                present[modality].append(modality in item)
            for column, value in _item_columns(item, self.modalities, empty).items():
                columns[column].append(value)
        batch = {k: np.stack(v) if v else np.zeros((0, *empty[k].shape), empty[k].dtype) for k, v in columns.items()}
        batch.update({f"present_{m}": np.asarray(v, dtype=bool) for m, v in present.items()})
        return batch


def resampled(waveform: np.ndarray, rate: int, target: int) -> torch.Tensor:
    """A mono waveform as a float32 tensor at ``target`` Hz."""
    import torchaudio.functional as AF

    wave = torch.from_numpy(np.ascontiguousarray(waveform, dtype=np.float32))
    return AF.resample(wave, rate, target) if rate != target else wave


def _item_columns(item: dict[str, Any], modalities: Sequence[str], empty: dict[str, np.ndarray]) -> dict[str, Any]:
    """One item's value for each batch column, its placeholder where the item lacks the modality."""
    out = {}
    for modality in modalities:
        if modality == "text":
            text = item.get("text")
            out["text_input_ids"] = text["input_ids"] if text else empty["text_input_ids"]
            out["text_attention_mask"] = text["attention_mask"] if text else empty["text_attention_mask"]
        else:
            out[modality] = item.get(modality, empty[modality])
    return out


def batch_modalities(batch: dict[str, Any]) -> list[str]:
    """The modalities a flat batch carries (those with a ``present_<modality>`` column), in canonical order."""
    return [m for m in MODALITIES if f"present_{m}" in batch]


def batch_to_model_inputs(batch: dict[str, Any]) -> tuple[dict[str, Any], dict[str, torch.Tensor]]:
    """Splits a flat batch (numpy or torch) into per-modality model inputs and presence masks.

    Only the modalities the batch carries are built; a model's batches carry all of its modalities
    (its preprocessor makes them), which is what ``SafetyModel.forward`` reads.
    """

    def tensor(x):
        return x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))

    inputs: dict[str, Any] = {}
    present: dict[str, torch.Tensor] = {}
    for modality in batch_modalities(batch):
        if modality == "text":
            inputs["text"] = {"input_ids": tensor(batch["text_input_ids"]),
                              "attention_mask": tensor(batch["text_attention_mask"])}
        else:
            inputs[modality] = tensor(batch[modality])
        present[modality] = tensor(batch[f"present_{modality}"]).bool()
    return inputs, present
