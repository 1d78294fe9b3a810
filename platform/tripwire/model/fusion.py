"""Fusion heads: combine whichever modality embeddings are present into one logit per category."""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

import torch
import torch.nn.functional as F
from torch import nn

from tripwire.data.sample import MODALITIES
from tripwire.common.registry import Registry

FUSION_HEADS: Registry = Registry("fusion head")


class _Block(nn.Module):
    """Pre-norm self-attention block over modality tokens with a key mask (absent tokens get no weight)."""

    def __init__(self, d_model: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.norm1 = nn.LayerNorm(d_model)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.out = nn.Linear(d_model, d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, 2 * d_model), nn.GELU(), nn.Linear(2 * d_model, d_model))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        n, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(n, t, 3, self.num_heads, d // self.num_heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=keep[:, None, None, :])
        x = x + self.dropout(self.out(attn.transpose(1, 2).reshape(n, t, d)))
        return x + self.dropout(self.mlp(self.norm2(x)))


@FUSION_HEADS.register("attention")
class AttentionFusionHead(nn.Module):
    """Masked attention fusion: a learned summary token attends over one token per present modality.

    Absent modalities are masked out of attention (not zero-filled into the features), so the head's
    output for an item depends only on the modalities it has, and cross-modal combinations (benign text +
    benign image that together violate) are learnable.

    Args:
        encoder_dims: modality -> embedding size of its encoder; fixes which inputs the head accepts.
        num_categories: number of policy categories (one logit each).
        d_model: width of the fusion tokens.
        num_heads: attention heads.
        num_layers: attention blocks.
        dropout: dropout inside the blocks and on the modality tokens.
    """

    def __init__(self, encoder_dims: Mapping[str, int], num_categories: int, d_model: int = 128,
                 num_heads: int = 4, num_layers: int = 1, dropout: float = 0.1):
        super().__init__()
        if d_model % num_heads:
            raise ValueError(f"d_model {d_model} must be divisible by num_heads {num_heads}")
        # A canonical modality order: token i always uses modality_embedding[i], however the dict was ordered.
        order = sorted(encoder_dims, key=lambda m: (MODALITIES.index(m) if m in MODALITIES else len(MODALITIES), m))
        self.encoder_dims = {m: int(encoder_dims[m]) for m in order}
        self.modalities = list(self.encoder_dims)
        self.num_categories = int(num_categories)
        self.hparams = {"d_model": d_model, "num_heads": num_heads, "num_layers": num_layers, "dropout": dropout}
        self.proj = nn.ModuleDict({m: nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d_model)) for m, d in self.encoder_dims.items()})
        self.modality_embedding = nn.Parameter(torch.randn(len(self.modalities), d_model) / math.sqrt(d_model))
        self.summary = nn.Parameter(torch.zeros(1, 1, d_model))
        self.token_dropout = nn.Dropout(dropout)
        self.blocks = nn.ModuleList(_Block(d_model, num_heads, dropout) for _ in range(num_layers))
        self.norm = nn.LayerNorm(d_model)
        self.classifier = nn.Linear(d_model, num_categories)

    @classmethod
    def from_encoders(cls, encoders: Mapping[str, nn.Module], num_categories: int, **kwargs: Any):
        """Builds the head for a dict of encoders, reading each one's ``out_dim``."""
        dims = {}
        for modality, encoder in encoders.items():
            if not getattr(encoder, "out_dim", 0):
                raise ValueError(f"encoder for {modality!r} has no positive out_dim")
            dims[modality] = encoder.out_dim
        return cls(dims, num_categories, **kwargs)

    def _check(self, embeddings: Mapping[str, torch.Tensor]) -> int:
        unknown = sorted(set(embeddings) - set(self.modalities))
        if unknown:
            raise KeyError(f"fusion head accepts {self.modalities}, got unknown modalities {unknown}")
        if not embeddings:
            raise ValueError("fusion head needs at least one modality embedding")
        sizes = set()
        for modality, emb in embeddings.items():
            if emb.dim() != 2 or emb.shape[1] != self.encoder_dims[modality]:
                raise ValueError(f"{modality} embedding has shape {tuple(emb.shape)}, expected (N, {self.encoder_dims[modality]})")
            sizes.add(emb.shape[0])
        if len(sizes) != 1:
            raise ValueError(f"embeddings disagree on batch size: {sorted(sizes)}")
        return sizes.pop()

    def forward(self, embeddings: Mapping[str, torch.Tensor],
                present: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """Returns logits (N, num_categories).

        Args:
            embeddings: modality -> (N, dim) embeddings; modalities left out are absent for every row.
            present: modality -> (N,) bool, which rows actually have that modality (default: all).
        """
        return self.classify(self.embed(embeddings, present))

    def classify(self, fused: torch.Tensor) -> torch.Tensor:
        """Logits (N, num_categories) from :meth:`embed`'s fused embeddings."""
        return self.classifier(fused)

    def embed(self, embeddings: Mapping[str, torch.Tensor],
              present: Mapping[str, torch.Tensor] | None = None) -> torch.Tensor:
        """The fused embedding (N, d_model) the classifier reads: the summary token after the blocks.

        Active learning clusters items by it (near-duplicates land together whatever modality carries them).
        """
        n = self._check(embeddings)
        anchor = next(iter(embeddings.values()))
        tokens = [self.summary.expand(n, -1, -1)]
        keep = [torch.ones(n, 1, dtype=torch.bool, device=anchor.device)]
        for i, modality in enumerate(self.modalities):
            if modality not in embeddings:
                continue
            token = self.proj[modality](embeddings[modality]) + self.modality_embedding[i]
            tokens.append(self.token_dropout(token).unsqueeze(1))
            mask = present[modality] if present is not None and modality in present else torch.ones(n, dtype=torch.bool, device=anchor.device)
            keep.append(mask.reshape(n, 1).bool())
        x, keep_mask = torch.cat(tokens, 1), torch.cat(keep, 1)
        for block in self.blocks:
            x = block(x, keep_mask)
        return self.norm(x[:, 0])

    def export_args(self) -> dict[str, Any]:
        return {"encoder_dims": self.encoder_dims, "num_categories": self.num_categories, **self.hparams}

    @torch.no_grad()
    def modality_attribution(self, embeddings: Mapping[str, torch.Tensor], present: Mapping[str, torch.Tensor],
                             probabilities: Callable[[torch.Tensor], torch.Tensor] = torch.sigmoid,
                             scores: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Leave-one-modality-out: how much each present modality raises each category's score.

        Args:
            embeddings: modality -> (N, dim).
            present: modality -> (N,) bool.
            probabilities: logits -> scores (the model's calibration; raw sigmoid by default).
            scores: ``probabilities`` of the head's output with every present modality, when the caller
                already has them (the scorer does), so that forward pass is not run twice.

        Returns:
            modality -> (N, num_categories) of ``score(all) - score(all but this modality)``; rows where the
            modality is absent get 0. When the modality is the only one present, the reference is the head's
            output with no modality at all.
        """
        base = probabilities(self.forward(embeddings, present)) if scores is None else scores
        result = {}
        for modality in embeddings:
            without = dict(present)
            without[modality] = torch.zeros_like(present[modality])
            delta = base - probabilities(self.forward(embeddings, without))
            result[modality] = delta * present[modality].unsqueeze(1).to(delta.dtype)
        return result
