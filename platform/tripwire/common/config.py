"""Typed dataclass configs loaded from YAML and validated at the edge.

Every config in Tripwire is a dataclass. :func:`from_dict` turns plain YAML data into one, checking
field names and types recursively, so a bad file fails at load time with an error that names the
offending field (``policy.markets.de.thresholds.hate: expected a number, got 'high'``) instead of
deep inside a Ray worker.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from pathlib import Path
from typing import Any, TypeVar, Union

import fsspec
import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A config file or dict does not match its schema; the message names the field."""


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _coerce(value: Any, tp: Any, where: str) -> Any:
    """Checks ``value`` against the annotation ``tp`` and converts containers and dataclasses."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{where}: no allowed type matches {value!r}")
    if typing.get_origin(tp) is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item_tp = args[0] if args else Any
        items = [_coerce(v, item_tp, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        key_tp, val_tp = args if args else (Any, Any)
        return {
            _coerce(k, key_tp, f"{where} key"): _coerce(v, val_tp, f"{where}.{k}") for k, v in value.items()
        }
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and not isinstance(value, tp):
        raise ConfigError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    return value


def check_value(value: Any, annotation: Any, where: str) -> Any:
    """Checks one value against a type annotation the way :func:`from_dict` checks fields.

    Returns:
        The value as :func:`from_dict` would store it (ints become floats for ``float``, lists tuples for
        ``tuple``, mappings dataclasses).

    Raises:
        ConfigError: naming ``where``.
    """
    return _coerce(value, annotation, where)


def from_dict(cls: type[T], data: Any, where: str | None = None) -> T:
    """Builds the dataclass ``cls`` from plain data, validating names and types.

    Args:
        cls: the dataclass to build.
        data: a mapping, typically parsed YAML.
        where: the dotted path used in error messages; defaults to the class name. ``""`` names fields
            without a prefix (``encoders.text.file``), for callers that put the file name in front.

    Returns:
        An instance of ``cls``; its ``__post_init__`` runs, so semantic checks live there.

    Raises:
        ConfigError: on unknown or missing fields and wrong types, naming the field.
    """
    label = where or cls.__name__
    prefix = f"{label}." if where is None or where else ""
    if not isinstance(data, dict):
        raise ConfigError(f"{label}: expected a mapping, got {type(data).__name__} {data!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{label}: unknown field(s) {unknown}; allowed: {sorted(fields)}")
    kwargs = {}
    for name, field in fields.items():
        if name not in data:
            if field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
                raise ConfigError(f"{prefix}{name}: required field is missing")
            continue
        kwargs[name] = _coerce(data[name], hints[name], f"{prefix}{name}")
    try:
        return cls(**kwargs)
    except ConfigError as exc:
        # A __post_init__ names the field relative to its class (``epochs: ...``): put the path in front,
        # so a nested config's error reads ``TrainConfig.fit.epochs: ...``.
        raise type(exc)(f"{prefix}{exc}") from None
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{label}: {exc}") from exc


def to_dict(obj: Any) -> Any:
    """The inverse of :func:`from_dict`: plain data suitable for YAML or JSON."""
    if dataclasses.is_dataclass(obj):
        return {f.name: to_dict(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, (list, tuple)):
        return [to_dict(v) for v in obj]
    if isinstance(obj, dict):
        return {k: to_dict(v) for k, v in obj.items()}
    return obj


def read_yaml(uri: str | Path) -> Any:
    """Reads a YAML document from a local path or any fsspec URI."""
    try:
        with fsspec.open(str(uri), "r", encoding="utf-8") as handle:
            return yaml.safe_load(handle)
    except FileNotFoundError as exc:
        raise ConfigError(f"{uri}: file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{uri}: not valid YAML: {exc}") from exc


def load_yaml(cls: type[T], uri: str | Path) -> T:
    """Loads and validates a dataclass config from a YAML file; errors name the file and field."""
    data = read_yaml(uri)
    try:
        return from_dict(cls, data if data is not None else {}, cls.__name__)
    except ConfigError as exc:
        raise ConfigError(f"{uri}: {exc}") from exc
