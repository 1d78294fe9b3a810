"""Layering: the library imports no job, app or entry point; jobs and the Serve app do not know each other.

The contract lives in pyproject.toml (``[tool.importlinter]``) and ``lint-imports`` checks it. The second
test runs the very same contract over a throwaway tree of four packages with one import each, so a
contract that stopped forbidding something would be caught too.
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


def lint(cwd: Path, config: Path) -> subprocess.CompletedProcess:
    return subprocess.run([LINT_IMPORTS, "--config", str(config), "--no-cache", "--no-logo"], cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def test_the_repository_keeps_its_layers():
    result = lint(REPO, REPO / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_the_contract_names_every_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["importlinter"]
    assert config["root_packages"] == ROOTS
    (contract,) = config["contracts"]
    assert contract["type"] == "layers"
    assert contract["layers"] == ["entrypoints", "pipelines | deployments", "tripwire"]


def write_tree(root: Path, importer: str, imported: str) -> None:
    """The four packages, empty but for ``importer.mod`` importing ``imported``."""
    for name in ROOTS:
        (root / name).mkdir()
        (root / name / "__init__.py").write_text("")
    (root / importer / "mod.py").write_text(f"import {imported}\n")


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
])
def test_the_contract_bites(tmp_path, importer, imported, allowed):
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
