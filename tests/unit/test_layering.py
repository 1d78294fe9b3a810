"""Layering: which code may import which, as import-linter contracts in pyproject.toml (``[tool.importlinter]``).

* The top folders: the library imports no job, app or entry point; jobs and the Serve app do not know each
  other; only the entry points (CLI, demo) see both.
* The library's capability packages depend downwards only (``tripwire.review`` on ``tripwire.compliance``,
  ..., everything on ``tripwire.common``); siblings in one layer do not know each other.
* No pipeline imports another (what two jobs share lives in the library).

``lint-imports`` checks the repository. The other tests run the very same contracts over throwaway trees with
the same package names and one import each, so a contract that stopped forbidding something is caught too.
"""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers import REPO

LINT_IMPORTS = str(Path(sys.executable).with_name("lint-imports"))
ROOTS = ["tripwire", "pipelines", "deployments", "entrypoints"]
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
CONTRACTS = {contract["id"]: contract for contract in CONFIG["contracts"]}


def library_layers() -> list[list[str]]:
    """The library contract's layers, top first; each a list of sibling packages."""
    return [[name.strip() for name in layer.split("|")] for layer in CONTRACTS["library"]["layers"]]


def lint(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT_IMPORTS, "--config", str(config), "--no-cache", "--no-logo"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_repository_keeps_its_layers():
    result = lint(REPO, REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONTRACTS)} kept, 0 broken" in result.stdout


def test_the_contracts_name_every_package():
    assert CONFIG["root_packages"] == ROOTS
    assert CONTRACTS["layers"]["layers"] == ["entrypoints", "pipelines | deployments", "tripwire"]
    packages = sorted(p.parent.name for p in (REPO / "platform/tripwire").glob("*/__init__.py"))
    assert sorted(name for layer in library_layers() for name in layer) == packages
    jobs = sorted(f"pipelines.{p.stem}" for p in (REPO / "pipelines").glob("*.py") if p.stem != "__init__")
    assert sorted(CONTRACTS["pipelines"]["modules"]) == jobs


def write_tree(root: Path, importer: str, imported: str) -> None:
    """Every package the contracts name, empty but for ``<importer>.mod`` importing ``imported``."""
    modules = [*ROOTS, *(f"tripwire.{name}" for layer in library_layers() for name in layer),
               *CONTRACTS["pipelines"]["modules"]]
    for name in modules:
        folder = root.joinpath(*name.split("."))
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "__init__.py").write_text("")
    for ignored in CONTRACTS["pipelines"].get("ignore_imports", ()):  # they must match, as in the repository
        source, target = (name.strip() for name in ignored.split("->"))
        with root.joinpath(*source.split("."), "__init__.py").open("a") as handle:
            handle.write(f"import {target}\n")
    root.joinpath(*importer.split("."), "mod.py").write_text(f"import {imported}\n")


def library_cases():
    """Each layer importing the one above it (broken), and the one below (kept); siblings importing each other."""
    layers = library_layers()
    cases = []
    for upper, lower in zip(layers, layers[1:]):
        cases.append((f"tripwire.{lower[0]}", f"tripwire.{upper[-1]}", False))
        cases.append((f"tripwire.{upper[0]}", f"tripwire.{lower[-1]}", True))
    for layer in layers:
        cases += [(f"tripwire.{a}", f"tripwire.{b}", False) for a, b in zip(layer, layer[1:])]
    return cases


@pytest.mark.parametrize("importer, imported, allowed", [
    ("tripwire", "pipelines", False),
    ("tripwire", "deployments", False),
    ("tripwire", "entrypoints", False),
    ("pipelines", "deployments", False),
    ("deployments", "pipelines", False),
    ("pipelines", "entrypoints", False),
    ("deployments", "entrypoints", False),
    ("entrypoints", "pipelines", True),
    ("entrypoints", "deployments", True),
    ("deployments", "tripwire", True),
    ("pipelines.scan", "pipelines.train", False),
    ("pipelines.train", "pipelines.monitor", False),
    *library_cases(),
])
def test_the_contracts_bite(tmp_path, importer, imported, allowed):
    # The repository's contract text as it is (up to the next [tool.*] table), nothing else of pyproject.toml.
    pyproject = (REPO / "pyproject.toml").read_text()
    start = pyproject.index("[tool.importlinter]")
    end = pyproject.find("\n[tool.", start + 1)
    (tmp_path / "pyproject.toml").write_text(pyproject[start:end if end != -1 else None])
    write_tree(tmp_path, importer, imported)
    result = lint(tmp_path, tmp_path / "pyproject.toml")
    output = result.stdout + result.stderr
    if allowed:
        assert result.returncode == 0, output
    else:
        assert result.returncode == 1 and "BROKEN" in output, output
        assert f"{importer}.mod -> {imported}" in output, output
