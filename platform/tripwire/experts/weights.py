"""What weights an expert ran with: the package that shipped them, its version, and each file's sha256."""

from __future__ import annotations

import hashlib
import importlib.metadata
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

_BLOCK = 1 << 20


@lru_cache(maxsize=32)
def _file_sha256(path: str, size: int, mtime_ns: int) -> str:  # size and mtime make a changed file hash again
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_BLOCK), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class WeightsRecord:
    """Where an expert's weights came from (recorded in checkpoints and results' versions).

    Attributes:
        expert: the expert's registry name.
        path: the weights' directory.
        package: the distribution that installed them (None: a directory of the team's own).
        version: that distribution's version.
        files: file name -> sha256, for every file in the directory.
    """

    expert: str
    path: str
    package: str | None = None
    version: str | None = None
    files: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_directory(cls, expert: str, path: str | Path, package: str | None = None) -> "WeightsRecord":
        folder = Path(path)
        if not folder.is_dir():
            raise FileNotFoundError(f"{expert}: weights directory {folder} does not exist")
        files = {}
        for file in sorted(p for p in folder.iterdir() if p.is_file()):
            stat = file.stat()
            files[file.name] = _file_sha256(str(file), stat.st_size, stat.st_mtime_ns)
        version = importlib.metadata.version(package) if package else None
        return cls(expert=expert, path=str(folder), package=package, version=version, files=files)

    @property
    def digest(self) -> str:
        """One short hash over every file's (the expert's weights version)."""
        joined = "".join(f"{name}:{sha}\n" for name, sha in sorted(self.files.items()))
        return hashlib.sha256(joined.encode()).hexdigest()[:12]
