"""The composed model and its builder: config -> encoders + fusion head -> :class:`SafetyModel`."""

from __future__ import annotations

import inspect
import types
import typing
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from tripwire.data.sample import MODALITIES
from tripwire.common.config import ConfigError, check_value
from tripwire.model.encoders import ENCODERS, Encoder
from tripwire.model.fusion import FUSION_HEADS
from tripwire.experts import expert_class, expert_kind
from tripwire.data.preprocess import PreprocessingConfig


@dataclass(frozen=True)
class ComponentConfig:
    """A registry name plus the flat constructor arguments of that class."""

    name: str
    args: dict[str, Any] = field(default_factory=dict)


# Constructor parameters the builders fill in, never the config: a frame-pooling video encoder gets the
# built image encoder; a fusion head gets the encoders' sizes and the number of categories.
FRAME_ENCODER_ARGS = ("frame_encoder",)
FUSION_BUILDER_ARGS = ("encoder_dims", "num_categories")
_SIMPLE_TYPES = (int, float, bool, str, list, tuple, dict, type(None))


def injected_args(kind: str, cls: type) -> tuple[str, ...]:
    """The constructor parameters of a component class that its builder supplies (``kind``: encoder/fusion)."""
    if kind == "fusion":
        return FUSION_BUILDER_ARGS
    return FRAME_ENCODER_ARGS if getattr(cls, "needs_frame_encoder", False) else ()


def accepted_args(cls: type, injected: tuple[str, ...] = ()) -> list[str] | None:
    """The keyword arguments a config may give ``cls``; None when it takes ``**kwargs`` (anything goes)."""
    params = inspect.signature(cls).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.name not in injected
            and p.kind in (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)]


def _is_simple(annotation: Any) -> bool:
    """Whether an annotation is built from plain YAML types only (checked), not a module or class (skipped)."""
    if annotation in _SIMPLE_TYPES or annotation is Any:
        return True
    origin = typing.get_origin(annotation)
    if origin in (list, tuple, dict, typing.Union, types.UnionType):
        return all(arg is Ellipsis or _is_simple(arg) for arg in typing.get_args(annotation))
    return False


def check_component_args(cls: type, args: Mapping[str, Any], where: str, injected: tuple[str, ...] = ()) -> None:
    """Checks a component's config ``args`` against its constructor: names, and the types it annotates.

    Args:
        cls: the registered class.
        args: the config's arguments for it.
        where: the config path of ``args`` for messages (``fusion.args``).
        injected: parameters the builder supplies; a config that sets one is an error too.

    Raises:
        ConfigError: ``<where>.<name>: unexpected argument; accepted: [...]`` or a type error naming it.
    """
    accepted = accepted_args(cls, injected)
    for name in args:
        if name in injected:
            raise ConfigError(f"{where}.{name}: set by the model builder, not the config")
        if accepted is not None and name not in accepted:
            raise ConfigError(f"{where}.{name}: unexpected argument; accepted: {accepted}")
    try:
        inspect.signature(cls).bind_partial(**args)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None
    try:
        hints = typing.get_type_hints(cls.__init__)
    except (NameError, TypeError):  # an annotation that does not resolve here: names are checked, not types
        return
    for name, value in args.items():
        if name in hints and _is_simple(hints[name]):
            check_value(value, hints[name], f"{where}.{name}")


@dataclass(frozen=True)
class ModelConfig:
    """Which encoder serves each modality, the fusion head, and the preprocessing they expect."""

    encoders: dict[str, ComponentConfig] = field(default_factory=lambda: {
        "text": ComponentConfig("hf_text", {"trainable": False}),
        "image": ComponentConfig("timm", {"model_name": "test_resnet"}),
        "audio": ComponentConfig("audio_cnn"),
        "video": ComponentConfig("frame_pool"),
    })
    fusion: ComponentConfig = field(default_factory=lambda: ComponentConfig("attention"))
    preprocessing: PreprocessingConfig = field(default_factory=PreprocessingConfig)
    # Pretrained experts (``speech``, ``ocr``: text found in audio and pictures, scored by the text encoder;
    # ``nudity``: a probability for ``sexual``), recorded in the checkpoint with their weights' hashes.
    experts: dict[str, ComponentConfig] = field(default_factory=dict)

    def __post_init__(self):
        unknown = sorted(set(self.encoders) - set(MODALITIES))
        if unknown:
            raise ConfigError(f"encoders: unknown modalities {unknown}; allowed: {list(MODALITIES)}")
        if not self.encoders:
            raise ConfigError("encoders: at least one modality is required")
        for modality, component in self.encoders.items():
            if component.name not in ENCODERS:
                raise ConfigError(f"encoders.{modality}.name: unknown encoder {component.name!r}; registered: {ENCODERS.names()}")
            if ENCODERS.get(component.name).modality != modality:
                raise ConfigError(f"encoders.{modality}.name: {component.name!r} encodes {ENCODERS.get(component.name).modality}, not {modality}")
            cls = ENCODERS.get(component.name)
            if getattr(cls, "needs_frame_encoder", False) and "image" not in self.encoders:
                raise ConfigError(f"encoders.{modality}: {component.name!r} runs frames through the image encoder; configure encoders.image")
            check_component_args(cls, component.args, f"encoders.{modality}.args", injected_args("encoder", cls))
        if self.fusion.name not in FUSION_HEADS:
            raise ConfigError(f"fusion.name: unknown fusion head {self.fusion.name!r}; registered: {FUSION_HEADS.names()}")
        fusion_cls = FUSION_HEADS.get(self.fusion.name)
        check_component_args(fusion_cls, self.fusion.args, "fusion.args", injected_args("fusion", fusion_cls))
        for kind, component in self.experts.items():
            if expert_kind(kind).needs_text_encoder and "text" not in self.encoders:
                raise ConfigError(f"experts.{kind}: what it finds is text, scored by the text encoder; "
                                  "configure encoders.text")
            check_component_args(expert_class(kind, component.name), component.args, f"experts.{kind}.args")


def build_encoder(name: str, args: Mapping[str, Any], built: Mapping[str, Encoder]) -> Encoder:
    """Instantiates one registered encoder; frame-based video encoders get the already-built image encoder."""
    cls = ENCODERS.get(name)
    kwargs = dict(args)
    if getattr(cls, "needs_frame_encoder", False):
        kwargs["frame_encoder"] = built["image"]
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(f"encoder {name!r}: bad arguments {sorted(args)}: {exc}") from exc


def build_encoders(specs: Mapping[str, ComponentConfig | tuple[str, Mapping[str, Any]]]) -> dict[str, Encoder]:
    """Builds encoders in dependency order (image before video)."""
    order = sorted(specs, key=lambda m: MODALITIES.index(m))
    built: dict[str, Encoder] = {}
    for modality in order:
        spec = specs[modality]
        name, args = (spec.name, spec.args) if isinstance(spec, ComponentConfig) else spec
        built[modality] = build_encoder(name, args, built)
    return built


_BATCH_NORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)


@contextmanager
def _running_norm_statistics(encoder: nn.Module, lone_row: bool) -> Iterator[None]:
    """Batch norm has no batch statistics for one row: where a training batch holds a single item of a modality,
    its encoder's batch-norm layers normalise it with their running statistics (their weights still learn)."""
    norms = [m for m in encoder.modules() if isinstance(m, _BATCH_NORMS) and m.training] if lone_row else []
    for norm in norms:
        norm.eval()
    try:
        yield
    finally:
        for norm in norms:
            norm.train()


class SafetyModel(nn.Module):
    """Encoders + fusion head: preprocessed inputs -> one logit per policy category.

    Args:
        encoders: modality -> encoder; the fusion head must accept exactly these modalities.
        fusion: the fusion head.
        categories: category names, in logit order.
    """

    def __init__(self, encoders: Mapping[str, Encoder], fusion: nn.Module, categories: list[str]):
        super().__init__()
        if set(encoders) != set(fusion.modalities):
            raise ValueError(f"fusion head expects {sorted(fusion.modalities)}, encoders are {sorted(encoders)}")
        if fusion.num_categories != len(categories):
            raise ValueError(f"fusion head has {fusion.num_categories} outputs for {len(categories)} categories")
        self.encoders = nn.ModuleDict(dict(encoders))
        self.fusion = fusion
        self.categories = list(categories)

    @property
    def modalities(self) -> list[str]:
        return list(self.encoders)

    def encode(self, inputs: Mapping[str, Any], present: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Runs each encoder on the rows that have its modality only; other rows get masked placeholders."""
        embeddings = {}
        n = next(iter(present.values())).shape[0]
        for modality, encoder in self.encoders.items():
            rows = present[modality].nonzero().squeeze(1)
            device = rows.device
            if rows.numel() == 0:
                embeddings[modality] = torch.zeros(n, encoder.out_dim, device=device) + self._in_graph(encoder)
                continue
            x = inputs[modality]
            x = {k: v[rows] for k, v in x.items()} if isinstance(x, dict) else x[rows]
            with _running_norm_statistics(encoder, self.training and rows.numel() == 1):
                out = encoder(x)
            full = torch.zeros(n, encoder.out_dim, device=device, dtype=out.dtype)
            embeddings[modality] = full.index_copy(0, rows, out)
        return embeddings

    def _in_graph(self, encoder: nn.Module) -> torch.Tensor | float:
        """0, tied to the trainable parameters of an encoder whose modality a training batch lacks.

        Their gradients are then 0 rather than missing, so DDP sees every parameter take part in every step
        and needs no ``find_unused_parameters`` (an extra graph traversal per step) for batches without some
        modality. Outside training it is a plain 0.0.
        """
        if not (self.training and torch.is_grad_enabled()):
            return 0.0
        touched = [p.reshape(-1)[:1] for p in encoder.parameters() if p.requires_grad]
        return torch.cat(touched).sum() * 0.0 if touched else 0.0

    def forward(self, inputs: Mapping[str, Any], present: Mapping[str, torch.Tensor]) -> torch.Tensor:
        present = {m: present[m] for m in self.encoders}
        return self.fusion(self.encode(inputs, present), present)


def build_model(config: ModelConfig, categories: list[str]) -> SafetyModel:
    """Builds a fresh model from a config (weights from encoder args, otherwise random)."""
    encoders = build_encoders(config.encoders)
    fusion_cls = FUSION_HEADS.get(config.fusion.name)
    fusion = fusion_cls.from_encoders(encoders, len(categories), **config.fusion.args)
    return SafetyModel(encoders, fusion, categories)
