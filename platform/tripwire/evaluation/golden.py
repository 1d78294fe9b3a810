"""Golden sets: versioned evaluation manifests registered in a catalogue file, pinned by a content hash.

A catalogue is a YAML file (default ``data/golden/catalogue.yaml``, or ``TRIPWIRE_GOLDEN_CATALOGUE``)::

    sets:
      - name: olid-test
        version: 1
        manifest: olid-test/manifest.jsonl     # relative to the catalogue's folder, or any URI
        sha256: 9f2c...                         # of the manifest and every media file it references
        items: 860
        categories: [harassment]                # the categories it labels
        source: OLID v1.0 official test set (OffensEval 2019 sub-task A)
        licence: CC BY 4.0
        label_provenance: crowd-sourced (Zampieri et al. 2019), OFF -> harassment (mappings/olid.yaml)
        registered_at: "2026-12-01T12:00:00+00:00"

Registering the same name with different content adds the next version; registering identical content
is a no-op. Evaluating a version whose content no longer matches its hash fails: a golden set is the
fixed ground every promotion and report is measured on, so it must never drift silently.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import fsspec
import yaml

from tripwire.common.config import ConfigError, from_dict, to_dict
from tripwire.data.sample import MEDIA_FIELDS, manifest_base, resolve_uri

logger = logging.getLogger(__name__)

DEFAULT_CATALOGUE = "data/golden/catalogue.yaml"
CATALOGUE_ENV = "TRIPWIRE_GOLDEN_CATALOGUE"
HASH_BLOCK = 1 << 20


@dataclass(frozen=True)
class GoldenSet:
    """One registered version of a golden set."""

    name: str
    version: int
    manifest: str
    sha256: str
    items: int
    categories: list[str]
    source: str
    licence: str
    label_provenance: str
    registered_at: str = ""
    description: str = ""

    def __post_init__(self):
        if not self.name or any(c in self.name for c in "@/ \t"):
            raise ConfigError(f"name: {self.name!r} must be non-empty, without '@', '/' or spaces")
        if self.version < 1:
            raise ConfigError(f"{self.name}.version: must be >= 1, got {self.version}")

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"


@dataclass(frozen=True)
class Catalogue:
    """Every registered golden set version."""

    sets: list[GoldenSet] = field(default_factory=list)

    def __post_init__(self):
        refs = [s.ref for s in self.sets]
        duplicates = sorted({r for r in refs if refs.count(r) > 1})
        if duplicates:
            raise ConfigError(f"sets: {duplicates} registered twice")

    def versions(self, name: str) -> list[GoldenSet]:
        return sorted((s for s in self.sets if s.name == name), key=lambda s: s.version)


def catalogue_path(path: str | None = None) -> str:
    return path or os.environ.get(CATALOGUE_ENV) or DEFAULT_CATALOGUE


def load_catalogue(path: str | None = None) -> Catalogue:
    """The catalogue at ``path`` (empty when the file does not exist yet)."""
    path = catalogue_path(path)
    fs, local = fsspec.core.url_to_fs(path)
    if not fs.exists(local):
        return Catalogue()
    with fs.open(local, "r") as handle:
        data = yaml.safe_load(handle) or {}
    return from_dict(Catalogue, data, path)


def save_catalogue(catalogue: Catalogue, path: str | None = None) -> None:
    path = catalogue_path(path)
    fs, local = fsspec.core.url_to_fs(path)
    fs.makedirs(os.path.dirname(local) or ".", exist_ok=True)
    header = "# Tripwire golden-set catalogue: written by `tripwire golden register`; edit with care (hashes pin content).\n"
    with fs.open(local, "w") as handle:
        handle.write(header + yaml.safe_dump(to_dict(catalogue), sort_keys=False, allow_unicode=True))


def manifest_uri(golden: GoldenSet, catalogue: str | None = None) -> str:
    """The set's manifest as a URI (relative paths are relative to the catalogue's folder)."""
    if "://" in golden.manifest or os.path.isabs(golden.manifest):
        return golden.manifest
    return os.path.join(os.path.dirname(os.path.abspath(catalogue_path(catalogue))), golden.manifest)


def _rows(manifest: str) -> Iterator[dict]:
    fs, path = fsspec.core.url_to_fs(manifest)
    if not fs.exists(path):
        raise ConfigError(f"manifest: {manifest} does not exist")
    with fs.open(path, "r", encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ConfigError(f"{manifest}: line {number} is not JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ConfigError(f"{manifest}: line {number} is not an object")
            yield row


def content_hash(manifest: str) -> tuple[str, int]:
    """sha256 of the manifest's bytes and, in order, of every media file its rows reference (inline media is
    in the manifest already); and the number of rows. Streams: one block in memory at a time."""
    if not manifest.endswith((".jsonl", ".json")):
        raise ConfigError(f"manifest: golden sets are JSONL manifests, got {manifest}")
    fs, path = fsspec.core.url_to_fs(manifest)
    if not fs.exists(path):
        raise ConfigError(f"manifest: {manifest} does not exist")
    digest = hashlib.sha256()
    with fs.open(path, "rb") as handle:
        for block in iter(lambda: handle.read(HASH_BLOCK), b""):
            digest.update(block)
    base, rows = manifest_base(manifest), 0
    for row in _rows(manifest):
        rows += 1
        for name in MEDIA_FIELDS:
            ref = row.get(name)
            if not isinstance(ref, str) or not ref or ref.startswith("data:"):
                continue
            uri = resolve_uri(ref, base)
            try:
                with fsspec.open(uri, "rb") as media:
                    digest.update(f"\n{name}:{ref}\n".encode())
                    for block in iter(lambda: media.read(HASH_BLOCK), b""):
                        digest.update(block)
            except FileNotFoundError:
                raise ConfigError(f"{manifest}: row {rows} ({row.get('id')}): {name} file {uri} does not exist") from None
    return digest.hexdigest(), rows


def labelled_categories(manifest: str, taxonomy_names: Sequence[str]) -> list[str]:
    """The taxonomy categories some row labels, in taxonomy order; a label outside the taxonomy is an error."""
    seen, unknown = set(), {}
    for number, row in enumerate(_rows(manifest), 1):
        for category, value in (row.get("labels") or {}).items():
            if category not in taxonomy_names:
                unknown.setdefault(category, number)
            elif value is not None:
                seen.add(category)
    if unknown:
        where = ", ".join(f"{c!r} (first on row {n})" for c, n in sorted(unknown.items()))
        raise ConfigError(f"{manifest}: labels outside the taxonomy: {where}")
    return [c for c in taxonomy_names if c in seen]


def register(name: str, manifest: str, taxonomy_names: Sequence[str], source: str, licence: str,
             label_provenance: str, description: str = "", catalogue: str | None = None) -> tuple[GoldenSet, bool]:
    """Registers ``manifest`` as the next version of ``name`` (or finds the version with its content).

    Returns:
        The registered set and whether it is new.
    """
    path = catalogue_path(catalogue)
    current = load_catalogue(path)
    categories = labelled_categories(manifest, taxonomy_names)
    if not categories:
        raise ConfigError(f"{manifest}: no row labels any category of the taxonomy; a golden set needs labels")
    sha256, items = content_hash(manifest)
    for existing in current.versions(name):
        if existing.sha256 == sha256:
            return existing, False
    folder = os.path.dirname(os.path.abspath(path))
    absolute = os.path.abspath(manifest) if "://" not in manifest else manifest
    stored = os.path.relpath(absolute, folder) if "://" not in manifest and absolute.startswith(folder + os.sep) else absolute
    versions = current.versions(name)
    golden = GoldenSet(name=name, version=(versions[-1].version + 1) if versions else 1, manifest=stored, sha256=sha256,
                       items=items, categories=categories, source=source, licence=licence,
                       label_provenance=label_provenance, description=description,
                       registered_at=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"))
    save_catalogue(dataclasses.replace(current, sets=[*current.sets, golden]), path)
    logger.info("registered golden set %s (%d items, sha256 %s)", golden.ref, items, sha256[:12])
    return golden, True


def resolve(ref: str, catalogue: str | None = None) -> GoldenSet:
    """``NAME`` (the newest version) or ``NAME@VERSION`` -> the registered set."""
    name, _, version = ref.partition("@")
    path = catalogue_path(catalogue)
    versions = load_catalogue(path).versions(name)
    if not versions:
        known = sorted({s.name for s in load_catalogue(path).sets})
        raise ConfigError(f"golden set {name!r} is not registered in {path} (registered: {known or 'none'}; "
                          "see `tripwire golden --help`)")
    if not version:
        return versions[-1]
    try:
        wanted = int(version)
    except ValueError:
        raise ConfigError(f"golden set {ref!r}: the version after '@' is a number") from None
    for golden in versions:
        if golden.version == wanted:
            return golden
    raise ConfigError(f"golden set {name!r} has no version {wanted} (versions: {[g.version for g in versions]})")


def verify(golden: GoldenSet, catalogue: str | None = None) -> str:
    """The set's manifest URI, after checking its content still hashes to what was registered."""
    manifest = manifest_uri(golden, catalogue)
    fs, path = fsspec.core.url_to_fs(manifest)
    if not fs.exists(path):
        raise ConfigError(f"golden set {golden.ref}: manifest {manifest} does not exist")
    sha256, items = content_hash(manifest)
    if sha256 != golden.sha256:
        raise ConfigError(f"golden set {golden.ref}: content changed since it was registered (sha256 {sha256[:12]}, "
                          f"registered {golden.sha256[:12]}; {items} rows, registered {golden.items}); register the "
                          "new content as a new version instead of editing a registered one")
    return manifest
