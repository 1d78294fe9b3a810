"""The taxonomy: the versioned list of categories the model scores (one output per category), and the
bundled default resources."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from tripwire.common.config import ConfigError, load_yaml

DEFAULT_TAXONOMY = "taxonomy.yaml"
DEFAULT_POLICY = "policy.yaml"


def default_resource(name: str) -> str:
    """Path of a YAML file bundled with the package (the default taxonomy and policy)."""
    return str(resources.files("tripwire").joinpath("resources", name))


@dataclass(frozen=True)
class Category:
    """One policy category; a subcategory is named ``parent/child``."""

    name: str
    description: str = ""

    @property
    def parent(self) -> str | None:
        return self.name.rsplit("/", 1)[0] if "/" in self.name else None


@dataclass(frozen=True)
class Taxonomy:
    """The versioned list of categories the model scores, in output order."""

    version: str
    categories: list[Category]

    def __post_init__(self):
        if not self.version:
            raise ConfigError("version: must not be empty")
        names = [c.name for c in self.categories]
        if not names:
            raise ConfigError("categories: at least one category is required")
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ConfigError(f"categories: duplicate names {duplicates}")
        for i, cat in enumerate(self.categories):
            if not cat.name or cat.name != cat.name.strip() or " " in cat.name:
                raise ConfigError(f"categories[{i}].name: {cat.name!r} must be a non-empty identifier")
            if cat.parent is not None and cat.parent not in names:
                raise ConfigError(f"categories[{i}].name: parent {cat.parent!r} of {cat.name!r} is not listed")

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.categories]

    def index(self, name: str) -> int:
        try:
            return self.names.index(name)
        except ValueError:
            raise KeyError(f"category {name!r} is not in taxonomy {self.version}") from None

    @classmethod
    def load(cls, uri: str | Path | None = None) -> "Taxonomy":
        """Loads a taxonomy YAML (the bundled default when ``uri`` is None)."""
        return load_yaml(cls, uri or default_resource(DEFAULT_TAXONOMY))
