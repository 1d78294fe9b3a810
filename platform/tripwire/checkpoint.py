"""Checkpoints: a directory of one safetensors file per component plus a JSON manifest. Never pickle.

Layout::

    manifest.json          architecture (registry names + flat args), preprocessing, taxonomy,
                           policy version, training-data fingerprint, metrics
    encoder-text.safetensors, encoder-image.safetensors, ...   one per encoder
    fusion.safetensors     the fusion head
    tokenizer/             the text tokenizer files

Any fsspec URI works for reading; each component loads on its own (a Serve encoder replica reads only
its own file).
"""

from __future__ import annotations

import dataclasses
import datetime
import json
import os
from pathlib import Path
from typing import Any

import fsspec
import torch
from safetensors.torch import load_file, save_file

from tripwire import MODALITIES
from tripwire.calibration import PlattCalibration
from tripwire.config import from_dict, to_dict
from tripwire.model.encoders import ENCODERS, Encoder, local_path
from tripwire.model.fusion import FUSION_HEADS
from tripwire.model.safety_model import SafetyModel, build_encoders
from tripwire.policy import Category, Taxonomy
from tripwire.preprocess import PreprocessingConfig, Preprocessor

FORMAT = "tripwire-checkpoint/1"
MANIFEST = "manifest.json"
TOKENIZER_DIR = "tokenizer"


def encoder_file(modality: str) -> str:
    return f"encoder-{modality}.safetensors"


FUSION_FILE = "fusion.safetensors"


def _component_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = module.own_state_dict() if hasattr(module, "own_state_dict") else module.state_dict()
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_checkpoint(model: SafetyModel, out_dir: str | Path, preprocessing: PreprocessingConfig,
                    taxonomy: Taxonomy, tokenizer=None, policy_version: str | None = None,
                    training: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                    calibration: dict[str, Any] | None = None) -> Path:
    """Writes ``model`` as a checkpoint directory (local path).

    Args:
        model: the (unwrapped) model.
        out_dir: destination directory, created if needed.
        preprocessing: the preprocessing the model was trained with.
        taxonomy: the taxonomy its outputs follow (order = ``model.categories``).
        tokenizer: the text tokenizer to save beside the weights (required when the model reads text).
        policy_version: the policy in force when trained (informational; serving may use another).
        training: run facts (config, data fingerprint, epochs, seed).
        metrics: validation metrics.
        calibration: :meth:`PlattCalibration.to_dict` (plus its report), applied to the head's logits by
            every scorer; None means raw sigmoids.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if list(model.categories) != taxonomy.names:
        raise ValueError(f"model categories {model.categories} do not match taxonomy {taxonomy.names}")
    components = {}
    for modality, encoder in model.encoders.items():
        save_file(_component_state(encoder), str(out / encoder_file(modality)))
        components[modality] = {"name": encoder.registry_name, "args": encoder.export_args(),
                                "out_dim": encoder.out_dim, "file": encoder_file(modality)}
    save_file(_component_state(model.fusion), str(out / FUSION_FILE))
    if "text" in model.encoders:
        if tokenizer is None:
            raise ValueError("a model with a text encoder needs its tokenizer saved with it")
        tokenizer.save_pretrained(str(out / TOKENIZER_DIR))
        preprocessing = dataclasses.replace(
            preprocessing, text=dataclasses.replace(preprocessing.text, tokenizer=TOKENIZER_DIR))
    manifest = {
        "format": FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "taxonomy": to_dict(taxonomy),
        "policy_version": policy_version,
        "encoders": components,
        "fusion": {"name": model.fusion.registry_name, "args": model.fusion.export_args(), "file": FUSION_FILE},
        "preprocessing": to_dict(preprocessing),
        "training": training or {},
        "metrics": metrics or {},
        "calibration": calibration,
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return out


@dataclasses.dataclass(frozen=True)
class CheckpointManifest:
    """The parsed ``manifest.json`` of a checkpoint at ``uri``."""

    uri: str
    data: dict[str, Any]

    @classmethod
    def read(cls, uri: str | Path) -> "CheckpointManifest":
        uri = str(uri).rstrip("/")
        try:
            with fsspec.open(f"{uri}/{MANIFEST}", "r") as handle:
                data = json.load(handle)
        except FileNotFoundError:
            raise FileNotFoundError(f"{uri}: not a Tripwire checkpoint (no {MANIFEST})") from None
        if data.get("format") != FORMAT:
            raise ValueError(f"{uri}: unsupported checkpoint format {data.get('format')!r}, expected {FORMAT}")
        return cls(uri, data)

    @property
    def taxonomy(self) -> Taxonomy:
        tax = self.data["taxonomy"]
        return Taxonomy(tax["version"], [Category(**c) for c in tax["categories"]])

    @property
    def categories(self) -> list[str]:
        return self.taxonomy.names

    @property
    def modalities(self) -> list[str]:
        """The model's modalities in canonical order (text, image, audio, video)."""
        return [m for m in MODALITIES if m in self.data["encoders"]]

    @property
    def version(self) -> str:
        """A short model version: the run name and the checkpoint's creation time."""
        run = self.data.get("training", {}).get("run_name", "model")
        return f"{run}@{self.data['created']}"

    def preprocessing(self) -> PreprocessingConfig:
        """The preprocessing config with the tokenizer path made local."""
        config = from_dict(PreprocessingConfig, self.data["preprocessing"])
        if "text" in self.modalities:
            tokenizer = local_path(f"{self.uri}/{config.text.tokenizer}")
            config = dataclasses.replace(config, text=dataclasses.replace(config.text, tokenizer=tokenizer))
        return config

    @property
    def calibration(self) -> PlattCalibration:
        """The score calibration saved with the model (identity when it has none)."""
        return PlattCalibration.from_dict(self.data.get("calibration"), len(self.categories))

    def file(self, name: str) -> str:
        return local_path(f"{self.uri}/{name}")


def load_preprocessor(uri: str | Path) -> Preprocessor:
    manifest = CheckpointManifest.read(uri)
    return Preprocessor(manifest.preprocessing(), manifest.modalities)


def load_encoders(uri: str | Path, modalities: list[str] | None = None) -> dict[str, Encoder]:
    """Loads the named encoders (default: all) with their weights, in eval mode.

    A frame-pooling video encoder brings its image frame encoder along (it needs it to run).
    """
    manifest = CheckpointManifest.read(uri)
    wanted = modalities or manifest.modalities
    unknown = sorted(set(wanted) - set(manifest.modalities))
    if unknown:
        raise KeyError(f"{manifest.uri}: no encoders for {unknown}; it has {manifest.modalities}")
    specs = manifest.data["encoders"]
    needed = set(wanted)
    if any(getattr(ENCODERS.get(specs[m]["name"]), "needs_frame_encoder", False) for m in wanted):
        needed.add("image")
    encoders = build_encoders({m: (specs[m]["name"], specs[m]["args"]) for m in needed})
    for modality, encoder in encoders.items():
        state = load_file(manifest.file(specs[modality]["file"]))
        if hasattr(encoder, "own_state_dict"):
            missing, unexpected = encoder.load_state_dict(state, strict=False)
            missing = [k for k in missing if not k.startswith(encoder.own_prefix_excluded)]
        else:
            missing, unexpected = encoder.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise ValueError(f"{manifest.uri}: {modality} weights do not fit: missing {missing[:5]}, unexpected {unexpected[:5]}")
        encoder.eval()
    return {m: encoders[m] for m in wanted}


def load_fusion(uri: str | Path) -> torch.nn.Module:
    """Loads the fusion head alone (what the fusion deployment needs)."""
    manifest = CheckpointManifest.read(uri)
    spec = manifest.data["fusion"]
    head = FUSION_HEADS.get(spec["name"])(**spec["args"])
    head.load_state_dict(load_file(manifest.file(spec["file"])))
    return head.eval()


def load_model(uri: str | Path) -> SafetyModel:
    """Loads the whole model in eval mode."""
    manifest = CheckpointManifest.read(uri)
    return SafetyModel(load_encoders(uri), load_fusion(uri), manifest.categories).eval()


def checkpoint_uri(path: str | Path) -> str:
    """Normalises a local path to an absolute one; URIs pass through."""
    text = str(path)
    return text if "://" in text else os.path.abspath(text)
