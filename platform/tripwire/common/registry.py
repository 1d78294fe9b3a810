"""Registries map a config name to a component class. They hold classes, never instances or state."""

from __future__ import annotations

from typing import Callable, Generic, Iterator, TypeVar

T = TypeVar("T", bound=type)


class Registry(Generic[T]):
    """A named table of component classes of one kind (encoders, fusion heads, dataset adapters).

    Example:
        >>> ENCODERS = Registry("encoder")
        >>> @ENCODERS.register("audio_cnn")
        ... class AudioCNN: ...
        >>> ENCODERS.get("audio_cnn")
        <class '...AudioCNN'>
    """

    def __init__(self, kind: str):
        self.kind = kind
        self._classes: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def decorator(cls: T) -> T:
            if name in self._classes and self._classes[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered to {self._classes[name]!r}")
            self._classes[name] = cls
            cls.registry_name = name
            return cls

        return decorator

    def get(self, name: str) -> T:
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.kind} {name!r}; registered: {sorted(self._classes)}") from None

    def names(self) -> list[str]:
        return sorted(self._classes)

    def __contains__(self, name: str) -> bool:
        return name in self._classes

    def __iter__(self) -> Iterator[tuple[str, T]]:
        return iter(sorted(self._classes.items()))
