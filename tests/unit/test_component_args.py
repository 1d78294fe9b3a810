"""Component ``args`` in a model config are checked against the constructors when the config loads.

Every registered encoder and fusion head is covered: its own defaults validate, a misspelt argument is
rejected naming the field and listing what is accepted, a wrong type is rejected, and the arguments the
builder injects cannot be set from a config.
"""

from __future__ import annotations

import inspect

import pytest

from tripwire.common.config import ConfigError, from_dict
from tripwire.model import ENCODERS, FUSION_HEADS
from tripwire.model.safety_model import ComponentConfig, ModelConfig, accepted_args, injected_args

WRONG_TYPE = {int: "many", float: "lots", bool: "yes", str: 3, list: "not-a-list"}


def defaults(cls, kind: str) -> dict:
    """The constructor's own defaults, as a config would spell them (lists, not tuples)."""
    args = {}
    for name, param in inspect.signature(cls).parameters.items():
        if name in injected_args(kind, cls) or param.default is inspect.Parameter.empty:
            continue
        args[name] = list(param.default) if isinstance(param.default, tuple) else param.default
    return args


def encoder_config(name: str, args: dict) -> ModelConfig:
    """A model with encoder ``name`` (plus the image encoder a frame-based video encoder needs)."""
    cls = ENCODERS.get(name)
    encoders = {cls.modality: ComponentConfig(name, args)}
    if getattr(cls, "needs_frame_encoder", False):
        encoders.setdefault("image", ComponentConfig("timm"))
    return ModelConfig(encoders=encoders, fusion=ComponentConfig("attention"))


def fusion_config(name: str, args: dict) -> ModelConfig:
    return ModelConfig(encoders={"audio": ComponentConfig("audio_cnn")}, fusion=ComponentConfig(name, args))


COMPONENTS = [("encoder", name) for name, _ in ENCODERS] + [("fusion", name) for name, _ in FUSION_HEADS]


def build(kind: str, name: str, args: dict) -> ModelConfig:
    return encoder_config(name, args) if kind == "encoder" else fusion_config(name, args)


def where(kind: str, name: str) -> str:
    return f"encoders.{ENCODERS.get(name).modality}.args" if kind == "encoder" else "fusion.args"


def registered(kind: str, name: str):
    return ENCODERS.get(name) if kind == "encoder" else FUSION_HEADS.get(name)


@pytest.mark.parametrize("kind, name", COMPONENTS, ids=[f"{k}:{n}" for k, n in COMPONENTS])
def test_every_component_accepts_its_own_arguments(kind, name):
    cls = registered(kind, name)
    accepted = accepted_args(cls, injected_args(kind, cls))
    assert accepted, f"{name}: a registered component should take some configurable arguments"
    args = defaults(cls, kind)
    assert set(args) <= set(accepted)
    config = build(kind, name, args)
    component = config.encoders[cls.modality] if kind == "encoder" else config.fusion
    assert component.name == name and dict(component.args) == args


@pytest.mark.parametrize("kind, name", COMPONENTS, ids=[f"{k}:{n}" for k, n in COMPONENTS])
def test_every_component_rejects_a_misspelt_argument_by_name(kind, name):
    cls = registered(kind, name)
    accepted = accepted_args(cls, injected_args(kind, cls))
    typo = accepted[0][:-2] + accepted[0][-1] + accepted[0][-2]  # d_model -> d_modle
    assert typo not in accepted
    with pytest.raises(ConfigError) as raised:
        build(kind, name, {typo: 1})
    message = str(raised.value)
    assert message.startswith(f"{where(kind, name)}.{typo}: unexpected argument; accepted: "), message
    assert all(arg in message for arg in accepted)


@pytest.mark.parametrize("kind, name", COMPONENTS, ids=[f"{k}:{n}" for k, n in COMPONENTS])
def test_every_component_rejects_a_wrong_type_where_annotated(kind, name):
    import typing

    cls = registered(kind, name)
    hints = typing.get_type_hints(cls.__init__)
    checked = [(arg, hints[arg]) for arg in accepted_args(cls, injected_args(kind, cls))
               if typing.get_origin(hints.get(arg)) in (None, list) and
               (typing.get_origin(hints.get(arg)) or hints.get(arg)) in WRONG_TYPE]
    if not checked:
        pytest.skip(f"{name}: no plainly annotated argument")
    for arg, annotation in checked:
        with pytest.raises(ConfigError, match=rf"^{where(kind, name)}\.{arg}: expected"):
            build(kind, name, {arg: WRONG_TYPE[typing.get_origin(annotation) or annotation]})


def test_builder_arguments_cannot_come_from_the_config():
    with pytest.raises(ConfigError, match=r"fusion\.args\.num_categories: set by the model builder"):
        fusion_config("attention", {"num_categories": 3})
    with pytest.raises(ConfigError, match=r"encoders\.video\.args\.frame_encoder: set by the model builder"):
        encoder_config("frame_pool", {"frame_encoder": "timm"})


def test_a_typo_in_a_training_config_names_the_whole_path():
    from tripwire.training.config import TrainConfig

    with pytest.raises(ConfigError, match=r"TrainConfig\.model\.fusion\.args\.d_modle: unexpected argument; "
                                          r"accepted: \['d_model', "):
        from_dict(TrainConfig, {"model": {"fusion": {"name": "attention", "args": {"d_modle": 32}}}})
