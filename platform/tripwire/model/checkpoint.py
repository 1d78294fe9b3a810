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
from typing import Any, Mapping

import fsspec
import torch
from safetensors.torch import load_file, save_file

from tripwire.data.sample import MODALITIES
from tripwire.model.calibration import PlattCalibration
from tripwire.common.config import ConfigError, from_dict, to_dict
from tripwire.model.encoders import ENCODERS, Encoder, local_path
from tripwire.experts import expert_class
from tripwire.model.fusion import FUSION_HEADS
from tripwire.model.safety_model import SafetyModel, build_encoders
from tripwire.policy import Policy, Taxonomy
from tripwire.data.preprocess import PreprocessingConfig

FORMAT = "tripwire-checkpoint/1"
MANIFEST = "manifest.json"
# Thresholds chosen on the checkpoint's own validation split at training (tripwire.evaluation.thresholds).
RECOMMENDED_POLICY = "policy.recommended.yaml"
TOKENIZER_DIR = "tokenizer"


def encoder_file(modality: str) -> str:
    return f"encoder-{modality}.safetensors"


FUSION_FILE = "fusion.safetensors"


class CheckpointError(ConfigError):
    """A checkpoint's manifest is unreadable or does not match its schema; the message names the file
    and the field (``runs/demo/model/manifest.json: encoders.text.file: required field is missing``)."""


@dataclasses.dataclass(frozen=True)
class ComponentSpec:
    """One saved component: its registry name, flat constructor args and weights file."""

    name: str
    file: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    out_dim: int | None = None  # encoders record their embedding size; the fusion head has none


@dataclasses.dataclass(frozen=True)
class ExpertSpec:
    """A pretrained expert the model scores through: its registry name, args, and the weights it was trained
    and calibrated with (:class:`tripwire.experts.WeightsRecord` as plain data)."""

    name: str
    args: dict[str, Any] = dataclasses.field(default_factory=dict)
    weights: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class TrainingInfo:
    """Facts about the run that produced the checkpoint (all optional: hand-built checkpoints have few)."""

    run_name: str | None = None
    epoch: int | None = None
    seed: int | None = None
    resumed_from_epoch: int | None = None
    data_fingerprint: str | None = None
    num_workers: int | None = None
    config: dict[str, Any] | None = None  # the TrainConfig as plain data


@dataclasses.dataclass(frozen=True)
class ManifestSpec:
    """The schema of ``manifest.json``."""

    format: str
    created: str
    taxonomy: Taxonomy
    encoders: dict[str, ComponentSpec]
    fusion: ComponentSpec
    preprocessing: PreprocessingConfig
    policy_version: str | None = None
    training: TrainingInfo = dataclasses.field(default_factory=TrainingInfo)
    metrics: dict[str, Any] = dataclasses.field(default_factory=dict)  # category -> metric -> value
    calibration: dict[str, Any] | None = None  # PlattCalibration.to_dict() plus its report; None = raw sigmoids
    experts: dict[str, ExpertSpec] = dataclasses.field(default_factory=dict)  # kind ("speech", "ocr", ...) -> expert

    def __post_init__(self):
        if self.format != FORMAT:
            raise ConfigError(f"format: unsupported checkpoint format {self.format!r}, expected {FORMAT}")
        if not self.encoders:
            raise ConfigError("encoders: the checkpoint has no encoders")
        unknown = sorted(set(self.encoders) - set(MODALITIES))
        if unknown:
            raise ConfigError(f"encoders: unknown modalities {unknown}; allowed: {list(MODALITIES)}")
        for modality, spec in self.encoders.items():
            if spec.name not in ENCODERS:
                raise ConfigError(f"encoders.{modality}.name: unknown encoder {spec.name!r}; registered: {ENCODERS.names()}")
            if getattr(ENCODERS.get(spec.name), "needs_frame_encoder", False) and "image" not in self.encoders:
                raise ConfigError(f"encoders.{modality}: {spec.name!r} needs the image encoder, which is missing")
        if self.fusion.name not in FUSION_HEADS:
            raise ConfigError(f"fusion.name: unknown fusion head {self.fusion.name!r}; registered: {FUSION_HEADS.names()}")
        for kind, expert in self.experts.items():
            expert_class(kind, expert.name)


def expert_specs(experts: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """The model config's experts (kind -> ComponentConfig) as recorded in a checkpoint, with the hashes of the
    weights they run with (read from disk, not loaded)."""
    out = {}
    for kind, component in experts.items():
        cls = expert_class(kind, component.name)
        out[kind] = {"name": component.name, "args": dict(component.args),
                     "weights": to_dict(cls.weights_record(**component.args))}
    return out


def _component_state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    state = module.own_state_dict() if hasattr(module, "own_state_dict") else module.state_dict()
    return {k: v.detach().cpu().contiguous() for k, v in state.items()}


def save_checkpoint(model: SafetyModel, out_dir: str | Path, preprocessing: PreprocessingConfig,
                    taxonomy: Taxonomy, tokenizer=None, policy_version: str | None = None,
                    training: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
                    calibration: dict[str, Any] | None = None, experts: Mapping[str, Any] | None = None) -> Path:
    """Writes ``model`` as a checkpoint directory (local path).

    Args:
        model: the (unwrapped) model.
        out_dir: destination directory, created if needed.
        preprocessing: the preprocessing the model was trained with.
        taxonomy: the taxonomy its outputs follow (order = ``model.categories``).
        tokenizer: the text tokenizer to save beside the weights (required when the model reads text).
        policy_version: the policy in force when trained (informational; serving may use another).
        training: run facts (config, data fingerprint, epochs, seed): the fields of :class:`TrainingInfo`.
        metrics: validation metrics.
        calibration: :meth:`PlattCalibration.to_dict` (plus its report), applied to the head's logits by
            every scorer; None means raw sigmoids.
        experts: the model config's experts (``ModelConfig.experts``), recorded with their weights' hashes.
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
        "experts": expert_specs(experts or {}),
    }
    try:  # what read() will demand, checked now rather than when a server first loads it
        from_dict(ManifestSpec, json.loads(json.dumps(manifest)), "")
    except ConfigError as exc:
        raise CheckpointError(f"{out / MANIFEST}: {exc}") from None
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=True))
    return out


def with_experts(checkpoint: str | Path, out_dir: str | Path, experts: Mapping[str, Any]) -> Path:
    """A copy of a local checkpoint that also names ``experts`` (kind -> ComponentConfig): a new checkpoint
    (its own creation time, so its own version) whose weights are the original's.

    An expert whose findings the trained model scores (speech, OCR: text through the text encoder) or that scores
    a category itself (nudity) needs no retraining to be added; its weights are recorded like any expert's.
    ``out_dir`` must not exist yet.
    """
    import shutil

    source, out = Path(checkpoint), Path(out_dir)
    data = json.loads((source / MANIFEST).read_text())
    added = expert_specs(experts)
    shutil.copytree(source, out)
    data["experts"] = {**data.get("experts", {}), **added}
    data["created"] = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    try:
        from_dict(ManifestSpec, json.loads(json.dumps(data)), "")
    except ConfigError as exc:
        shutil.rmtree(out)
        raise CheckpointError(f"{out / MANIFEST}: {exc}") from None
    (out / MANIFEST).write_text(json.dumps(data, indent=2, sort_keys=True))
    return out


@dataclasses.dataclass(frozen=True)
class CheckpointManifest:
    """The parsed, validated ``manifest.json`` of a checkpoint at ``uri``.

    ``spec`` holds the typed contents; :attr:`data` is the raw JSON for code not yet moved to ``spec``.
    """

    uri: str
    spec: ManifestSpec
    raw: dict[str, Any] = dataclasses.field(repr=False, compare=False)

    @classmethod
    def read(cls, uri: str | Path) -> "CheckpointManifest":
        """Reads and validates ``<uri>/manifest.json``.

        Raises:
            FileNotFoundError: ``uri`` is not a checkpoint (no manifest there); the message has the path.
            CheckpointError: the manifest is unreadable, not JSON, or does not match the schema.
        """
        uri = str(uri).rstrip("/")
        where = f"{uri}/{MANIFEST}"
        try:
            with fsspec.open(where, "r", encoding="utf-8") as handle:
                data = json.load(handle)
        except (FileNotFoundError, NotADirectoryError):
            raise FileNotFoundError(f"{uri}: not a Tripwire checkpoint (no {MANIFEST})") from None
        except (OSError, ImportError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise CheckpointError(f"{where}: cannot read a JSON manifest: {exc}") from None
        if not isinstance(data, dict):
            raise CheckpointError(f"{where}: expected a JSON object, got {type(data).__name__}")
        if data.get("format") != FORMAT:  # before the schema: another format's fields would only confuse
            raise CheckpointError(f"{where}: unsupported checkpoint format {data.get('format')!r}, expected {FORMAT}")
        try:
            spec = from_dict(ManifestSpec, data, "")
        except ConfigError as exc:
            raise CheckpointError(f"{where}: {exc}") from None
        return cls(uri, spec, data)

    @property
    def data(self) -> dict[str, Any]:
        """The raw manifest JSON. Prefer :attr:`spec`; kept while serving code moves off raw keys."""
        return self.raw

    @property
    def taxonomy(self) -> Taxonomy:
        return self.spec.taxonomy

    @property
    def categories(self) -> list[str]:
        return self.taxonomy.names

    @property
    def modalities(self) -> list[str]:
        """The model's modalities in canonical order (text, image, audio, video)."""
        return [m for m in MODALITIES if m in self.spec.encoders]

    @property
    def encoders(self) -> dict[str, ComponentSpec]:
        return self.spec.encoders

    @property
    def fusion(self) -> ComponentSpec:
        return self.spec.fusion

    @property
    def experts(self) -> dict[str, ExpertSpec]:
        return self.spec.experts

    @property
    def training(self) -> TrainingInfo:
        return self.spec.training

    @property
    def metrics(self) -> dict[str, Any]:
        return self.spec.metrics

    @property
    def policy_version(self) -> str | None:
        return self.spec.policy_version

    @property
    def version(self) -> str:
        """A short model version: the run name and the checkpoint's creation time."""
        return f"{self.spec.training.run_name or 'model'}@{self.spec.created}"

    def preprocessing(self) -> PreprocessingConfig:
        """The preprocessing config with the tokenizer path made local."""
        config = self.spec.preprocessing
        if "text" in self.modalities:
            tokenizer = local_path(f"{self.uri}/{config.text.tokenizer}")
            config = dataclasses.replace(config, text=dataclasses.replace(config.text, tokenizer=tokenizer))
        return config

    @property
    def calibration(self) -> PlattCalibration:
        """The score calibration saved with the model (identity when it has none)."""
        return PlattCalibration.from_dict(self.spec.calibration, len(self.categories))

    def file(self, name: str) -> str:
        return local_path(f"{self.uri}/{name}")

    @property
    def recommended_policy(self) -> str | None:
        """The policy exported beside the checkpoint by training (:data:`RECOMMENDED_POLICY`), if any."""
        fs, root = fsspec.core.url_to_fs(self.uri)
        return f"{self.uri}/{RECOMMENDED_POLICY}" if fs.exists(f"{root}/{RECOMMENDED_POLICY}") else None

    def policy(self, explicit: str | Path | None = None) -> Policy:
        """The policy this checkpoint is served and scanned with: ``explicit`` when given, else its
        recommended policy, else the bundled default. Every path to a result resolves it here."""
        policy = Policy.load(explicit or self.recommended_policy)
        policy.check_taxonomy(self.taxonomy)
        return policy

    def check_files(self) -> None:
        """Checks that every file the manifest names exists, without downloading any.

        Raises:
            CheckpointError: naming the manifest field whose file is missing.
        """
        named = {f"encoders.{m}.file": spec.file for m, spec in self.spec.encoders.items()}
        named["fusion.file"] = self.spec.fusion.file
        if "text" in self.modalities:
            named["preprocessing.text.tokenizer"] = self.spec.preprocessing.text.tokenizer
        fs, root = fsspec.core.url_to_fs(self.uri)
        for field_name, name in named.items():
            if not fs.exists(f"{root}/{name}"):
                raise CheckpointError(f"{self.uri}/{MANIFEST}: {field_name}: {name!r} is not in the checkpoint")


def load_encoders(uri: str | Path, modalities: list[str] | None = None) -> dict[str, Encoder]:
    """Loads the named encoders (default: all) with their weights, in eval mode.

    A frame-pooling video encoder brings its image frame encoder along (it needs it to run).
    """
    manifest = CheckpointManifest.read(uri)
    wanted = modalities or manifest.modalities
    unknown = sorted(set(wanted) - set(manifest.modalities))
    if unknown:
        raise KeyError(f"{manifest.uri}: no encoders for {unknown}; it has {manifest.modalities}")
    specs = manifest.encoders
    needed = set(wanted)
    if any(getattr(ENCODERS.get(specs[m].name), "needs_frame_encoder", False) for m in wanted):
        needed.add("image")
    encoders = build_encoders({m: (specs[m].name, specs[m].args) for m in needed})
    for modality, encoder in encoders.items():
        state = load_file(manifest.file(specs[modality].file))
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
    spec = manifest.fusion
    head = FUSION_HEADS.get(spec.name)(**spec.args)
    head.load_state_dict(load_file(manifest.file(spec.file)))
    return head.eval()


def load_model(uri: str | Path) -> SafetyModel:
    """Loads the whole model in eval mode."""
    manifest = CheckpointManifest.read(uri)
    return SafetyModel(load_encoders(uri), load_fusion(uri), manifest.categories).eval()


def checkpoint_uri(path: str | Path) -> str:
    """Normalises a local path to an absolute one; URIs pass through."""
    text = str(path)
    return text if "://" in text else os.path.abspath(text)
